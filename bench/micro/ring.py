"""Frame handoff between processes: FrameRing against what a user would otherwise write.

Every contender moves frames from a producer process to a consumer process:

``edgeloop FrameRing``
    the producer claims a slot, writes the frame header in place, publishes; the consumer gets a
    NumPy view. No pixel is copied.
``multiprocessing.Queue``
    the frame is pickled through a pipe (two copies and an allocation per frame).
``pyzmq PUSH/PULL copy=False``
    zero-copy on the send side, but the bytes still cross an ipc:// socket.
``shared_memory + index over pipe``
    the plain zero-copy baseline: slots in ``multiprocessing.shared_memory``, slot indices over
    one pipe, free slots back over another.

Frames are pre-rendered (a camera decoder writes them in place; that cost is not the
transport's). The producer takes ``time.monotonic_ns()`` immediately before the handoff call and
sends it along with the frame (ring metadata, a tuple, a message part, the index message); the
consumer compares it with the clock once it holds a usable NumPy array. Two phases per
contender: flat out (frames/s and CPU per frame, producer plus consumer) and paced below
capacity (handoff latency, publish -> consumer sees the frame). A last row measures the
machine's floor at the same rate: a bare futex wake between two processes, in C.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from bench.micro import MicroOptions
from bench.stats import ratio, summarize
from core.sample_media import scene_image
from core.spawned import exit_cause

CASES: dict[str, tuple[int, int, int]] = {"1080p": (1080, 1920, 3), "480p": (480, 640, 3)}
CONTENDERS = ("edgeloop", "mp_queue", "pyzmq", "shm_pipe")
LABELS = {
    "edgeloop": "edgeloop FrameRing",
    "mp_queue": "multiprocessing.Queue",
    "pyzmq": "pyzmq PUSH/PULL copy=False ipc://",
    "shm_pipe": "shared_memory + index over pipe",
}
SLOTS = 8
END = -1  # stamp that ends a phase
LATENCY_RATE_CAP = 1000.0  # frames/s of the paced phase, at most


# ------------------------------------------------------------------------------------------------
# Transports: (send side in the parent, receive side in the child), one pair per contender.


def _now_or_end(end: bool) -> int:
    return END if end else time.monotonic_ns()


class _Sender:
    """Producer side; ``send()`` hands one frame over with a timestamp taken right before the
    handoff call (after any wait for a free slot), or the end-of-phase marker with
    ``end=True``."""

    def send(self, end: bool = False) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _RingSender(_Sender):
    def __init__(self, shape: tuple[int, ...], frame: np.ndarray) -> None:
        from core.ring import FrameRing  # noqa: PLC0415 - only the parent needs it this way

        self.ring = FrameRing.create(shape=shape, slots=SLOTS)
        for i in range(SLOTS):  # slots hold realistic pixels, as if a decoder wrote them
            self.ring.slot_array(i, writable=True)[:] = frame
        self.producer: Any = None
        self.address = self.ring.name

    def start(self) -> None:
        self.producer = self.ring.producer()

    def send(self, end: bool = False) -> None:
        slot = self.producer.claim()
        self.producer.publish(slot, capture_ns=_now_or_end(end))

    def close(self) -> None:
        self.ring.close()


class _QueueSender(_Sender):
    def __init__(self, frame: np.ndarray, queue: Any) -> None:
        # put() pickles later, in a feeder thread: rotate more buffers than can be queued.
        self.frames = [frame.copy() for _ in range(2 * SLOTS + 2)]
        self.queue = queue
        self.n = 0

    def send(self, end: bool = False) -> None:
        frame = self.frames[self.n % len(self.frames)]
        self.n += 1
        self.queue.put((_now_or_end(end), frame))


class _ZmqSender(_Sender):
    def __init__(self, frame: np.ndarray, address: str) -> None:
        import zmq  # noqa: PLC0415 - optional comparator

        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDHWM, SLOTS)
        self.socket.bind(address)
        self.path = address.removeprefix("ipc://")
        # copy=False keeps a reference until sent: rotate more buffers than can be in flight.
        self.frames = [frame.copy() for _ in range(4 * SLOTS)]
        self.n = 0

    def send(self, end: bool = False) -> None:
        frame = self.frames[self.n % len(self.frames)]
        self.n += 1
        self.socket.send_multipart([struct.pack("q", _now_or_end(end)), frame], copy=False)

    def close(self) -> None:
        self.socket.close(linger=1000)
        self.context.term()
        if os.path.exists(self.path):  # libzmq leaves the ipc:// socket file behind
            os.unlink(self.path)


class _ShmPipeSender(_Sender):
    def __init__(self, frame: np.ndarray, ready_w: Connection, free_r: Connection) -> None:
        from multiprocessing import shared_memory  # noqa: PLC0415

        self.shm = shared_memory.SharedMemory(create=True, size=SLOTS * frame.nbytes)
        self.views = [
            np.ndarray(frame.shape, frame.dtype, buffer=self.shm.buf, offset=i * frame.nbytes)
            for i in range(SLOTS)
        ]
        for view in self.views:
            view[:] = frame
        self.ready_w, self.free_r = ready_w, free_r
        self.address = self.shm.name

    def send(self, end: bool = False) -> None:
        (index,) = struct.unpack("i", self.free_r.recv_bytes())
        self.ready_w.send_bytes(struct.pack("iq", index, _now_or_end(end)))

    def close(self) -> None:
        self.views.clear()
        self.shm.close()
        self.shm.unlink()


Received = tuple[int, int]  # (stamp, monotonic ns when the consumer held a usable array)
# FrameRing only: publish -> slot taken in C, per frame of the current phase (no Python in it).
_ring_c_level: list[int] = []


def _receiver(
    kind: str, shape: tuple[int, ...], address: Any
) -> tuple[Callable[[], Received], Any]:
    """Child side: a function that returns the next frame's stamp and when it was seen."""
    if kind == "edgeloop":
        from core.ring import FrameRing  # noqa: PLC0415

        ring = FrameRing.attach(address)
        consumer = ring.consumer("bench")

        def recv_ring() -> Received:
            with consumer.acquire() as frame:
                seen = time.monotonic_ns()
                meta = frame.meta
                if meta.capture_ns != END:
                    _ring_c_level.append(meta.taken_ns - meta.publish_ns)
                return meta.capture_ns, seen

        return recv_ring, ring
    if kind == "mp_queue":
        queue = address

        def recv_queue() -> Received:
            stamp, frame = queue.get()
            seen = time.monotonic_ns()
            del frame
            return stamp, seen

        return recv_queue, None
    if kind == "pyzmq":
        import zmq  # noqa: PLC0415

        context = zmq.Context()
        socket = context.socket(zmq.PULL)
        socket.setsockopt(zmq.RCVHWM, SLOTS)
        socket.connect(address)

        def recv_zmq() -> Received:
            head, body = socket.recv_multipart(copy=False)
            frame = np.frombuffer(body.buffer, dtype=np.uint8).reshape(shape)
            seen = time.monotonic_ns()
            del frame
            return struct.unpack("q", head.bytes)[0], seen

        return recv_zmq, (socket, context)
    if kind == "shm_pipe":
        from multiprocessing import shared_memory  # noqa: PLC0415

        name, ready_r, free_w = address
        shm = shared_memory.SharedMemory(name=name)
        nbytes = int(np.prod(shape))
        views = [
            np.ndarray(shape, np.uint8, buffer=shm.buf, offset=i * nbytes) for i in range(SLOTS)
        ]

        def recv_pipe() -> Received:
            index, stamp = struct.unpack("iq", ready_r.recv_bytes())
            frame = views[index]  # a usable NumPy view of the slot
            seen = time.monotonic_ns()
            del frame
            free_w.send_bytes(struct.pack("i", index))
            return stamp, seen

        return recv_pipe, (shm, views)
    raise ValueError(f"unknown contender {kind!r}")


def _consumer_main(kind: str, shape: tuple[int, ...], address: Any, conn: Connection) -> None:
    """Child process: receive two phases of frames, report counts, CPU and latencies."""
    recv, keep = _receiver(kind, shape, address)
    conn.send("ready")
    for phase in ("throughput", "latency"):
        first_ns = last_ns = 0
        count = 0
        latencies: list[int] = []
        _ring_c_level.clear()
        cpu0 = time.process_time()
        while True:
            stamp, now = recv()
            if stamp == END:
                break
            if not count:
                first_ns = now
                cpu0 = time.process_time()
            last_ns = now
            count += 1
            if phase == "latency":
                latencies.append(now - stamp)
        conn.send(
            {
                "phase": phase,
                "count": count,
                "elapsed_ns": last_ns - first_ns,
                "cpu_s": time.process_time() - cpu0,
                "latencies_ns": latencies,
                "c_level_ns": list(_ring_c_level),
            }
        )
    if kind == "pyzmq":
        socket, context = keep
        socket.close(linger=0)
        context.term()
    elif kind == "shm_pipe":
        shm, views = keep
        views.clear()
        shm.close()
    elif kind == "edgeloop":
        keep.close()
    conn.close()


def _run_contender(
    kind: str, shape: tuple[int, int, int], frame: np.ndarray, options: MicroOptions
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    sender: Any
    if kind == "edgeloop":
        sender = _RingSender(shape, frame)
        address: Any = sender.address
    elif kind == "mp_queue":
        queue = ctx.Queue(maxsize=SLOTS)
        sender = _QueueSender(frame, queue)
        address = queue
    elif kind == "pyzmq":
        address = f"ipc:///tmp/edgeloop-bench-{os.getpid()}-{time.monotonic_ns()}"
        sender = _ZmqSender(frame, address)
    else:
        ready_r, ready_w = ctx.Pipe(duplex=False)
        free_r, free_w = ctx.Pipe(duplex=False)
        for i in range(SLOTS):
            free_w.send_bytes(struct.pack("i", i))
        sender = _ShmPipeSender(frame, ready_w, free_r)
        address = (sender.address, ready_r, free_w)
    child = ctx.Process(target=_consumer_main, args=(kind, shape, address, child_conn), daemon=True)
    child.start()
    try:
        deadline = time.monotonic() + 60
        while not parent_conn.poll(0.05):
            if not child.is_alive() or time.monotonic() > deadline:
                cause = exit_cause(child.exitcode)
                raise RuntimeError(f"{LABELS[kind]} consumer did not start: {cause}")
        parent_conn.recv()
        if kind == "edgeloop":
            sender.start()
        budget = options.budget
        # Phase 1: flat out for the budget's duration.
        cpu0 = time.process_time()
        t0 = time.monotonic()
        sent = 0
        while sent < budget.min_count or time.monotonic() - t0 < budget.min_s:
            sender.send()
            sent += 1
        producer_cpu = time.process_time() - cpu0
        sender.send(end=True)
        flat = parent_conn.recv()
        fps = (flat["count"] - 1) / (flat["elapsed_ns"] / 1e9) if flat["elapsed_ns"] else 0.0
        # Phase 2: paced below capacity, so latency is handoff, not queueing.
        rate = min(LATENCY_RATE_CAP, 0.5 * fps) if fps else 10.0
        n_latency = max(budget.min_count, int(rate * budget.min_s * 2))
        n_latency = min(n_latency, int(rate * max(budget.min_s * 3, 0.5)) + 1)
        interval = 1.0 / rate
        start = time.monotonic()
        for i in range(n_latency):
            # Sleep, never busy-wait, between frames: a camera source blocks on I/O. A busy
            # producer makes the scheduler queue the woken consumer on the producer's core
            # (wake-affine), which measures the scheduler, not the handoff.
            remaining = start + i * interval - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            sender.send()
        sender.send(end=True)
        paced = parent_conn.recv()
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
        sender.close()
    cpu_per_frame_ms = (producer_cpu + flat["cpu_s"]) / max(1, flat["count"]) * 1e3
    latency = summarize(paced["latencies_ns"], unit="us")
    extra = {}
    if paced["c_level_ns"]:
        c_level = summarize(paced["c_level_ns"], unit="us")
        extra = {"wake_median_us": c_level["median_us"], "wake_p99_us": c_level["p99_us"]}
    return {
        "name": LABELS[kind],
        "contender": kind,
        "fps": fps,
        "frames": flat["count"],
        "cpu_ms_per_frame": cpu_per_frame_ms,
        "handoff_median_us": latency["median_us"],
        "handoff_p99_us": latency["p99_us"],
        "handoff_n": latency["n"],
        "paced_fps": rate,
        **extra,
    }


def _wake_floor(options: MicroOptions) -> dict[str, Any]:
    """The bare cross-process futex wake (C, no ring, no Python) at the paced phase's rate."""
    from native._ring import wake_probe  # noqa: PLC0415 - compiled; core.ring reports a bad build

    samples = max(options.budget.min_count, int(LATENCY_RATE_CAP * options.budget.min_s * 2))
    latencies = wake_probe(samples + 10, int(1e9 / LATENCY_RATE_CAP))[10:]  # skip the start
    floor = summarize(latencies, unit="us")
    return {
        "name": "floor: bare futex wake (C, no ring)",
        "contender": "floor",
        "handoff_median_us": floor["median_us"],
        "handoff_p99_us": floor["p99_us"],
        "handoff_n": floor["n"],
        "paced_fps": LATENCY_RATE_CAP,
    }


def run(options: MicroOptions) -> dict[str, Any]:
    """Every contender for every frame size; headline ratios against edgeloop."""
    results: dict[str, Any] = {}
    options.progress("ring: the machine's wake-up floor")
    floor = _wake_floor(options)
    for case, shape in CASES.items():
        if not options.wants(case):
            continue
        frame = scene_image(shape[0], shape[1], seed=1)
        rows = []
        for kind in CONTENDERS:
            options.progress(f"ring {case}: {LABELS[kind]}")
            try:
                rows.append(_run_contender(kind, shape, frame, options))
            except ImportError as exc:
                rows.append({"name": LABELS[kind], "contender": kind, "skipped": str(exc)})
        rows.append(floor)
        by_kind = {row["contender"]: row for row in rows if "fps" in row}
        ours = by_kind["edgeloop"]
        results[case] = {
            "shape": list(shape),
            "slots": SLOTS,
            "rows": rows,
            "fps": ours["fps"],
            "cpu_ms_per_frame": ours["cpu_ms_per_frame"],
            "handoff_p99_us": ours["handoff_p99_us"],
            "handoff_median_us": ours["handoff_median_us"],
            "wake_p99_us": ours.get("wake_p99_us"),
            "wake_floor_median_us": floor["handoff_median_us"],
            "wake_floor_p99_us": floor["handoff_p99_us"],
            "ratio_handoff_vs_floor_median": ratio(
                ours["handoff_median_us"], floor["handoff_median_us"]
            ),
            "ratio_handoff_vs_floor_p99": ratio(ours["handoff_p99_us"], floor["handoff_p99_us"]),
            "ratio_vs_mp_queue": ratio(ours["fps"], by_kind.get("mp_queue", {}).get("fps", 0)),
            "ratio_vs_pyzmq": ratio(ours["fps"], by_kind.get("pyzmq", {}).get("fps", 0)),
            "ratio_vs_shm_pipe": ratio(ours["fps"], by_kind.get("shm_pipe", {}).get("fps", 0)),
            "cpu_ratio_vs_shm_pipe": ratio(
                by_kind.get("shm_pipe", {}).get("cpu_ms_per_frame", 0), ours["cpu_ms_per_frame"]
            ),
        }
    return results
