"""FrameRing: preallocated shared-memory frame slots, handed over without copying pixels.

A producer claims a slot, writes the frame in place (a decoder can write straight into
``slot.array``) and publishes it; every consumer gets a read-only NumPy *view* of the slot, in
publication order, and releases it when done. Slots are reused only when every consumer let go.

Two policies:

``block``
    Back-pressure: the producer waits for a free slot (a file source, a recorded replay).
``drop_oldest``
    Live camera: the producer never waits for slow consumers; it overwrites the oldest frame
    that nobody is reading and counts a drop for each consumer that had not taken it.

The slot protocol is lock-free C11 atomics in ``native/src/ring.h``; a waiter spins about a
microsecond (``spin_us``: a longer spin takes a core from the thread it waits for;
docs/decisions/0010-futex-wakeups.md) and then sleeps on a futex. It works between threads and
between processes
(``FrameRing.attach(name)``; a ring also pickles as an attach). Peers that die are detected by
pid and start time: their slots are reclaimed, a dead producer ends the stream for consumers
and can be replaced by a new producer.

>>> import numpy as np
>>> with FrameRing.create(shape=(4, 6, 3), slots=2) as ring:
...     consumer = ring.consumer("doc")
...     producer = ring.producer()
...     slot = producer.claim()
...     slot.array[:] = 7
...     seq = producer.publish(slot, stream_id=3)
...     with consumer.acquire(timeout=1.0) as frame:
...         print(frame.meta.seq, frame.meta.stream_id, int(frame.data.sum()))
1 3 504
"""

from __future__ import annotations

import mmap
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import (
    FrameError,
    NativeBuildError,
    RingClosedError,
    RingNotFoundError,
    RingTimeoutError,
    RingUsageError,
    RingVersionError,
)
from core.frame import Frame, FrameMeta
from core.liveness import is_alive, process_start_time
from core.shm import create_segment, open_segment, segment_names, unlink_segment

try:
    from native import _ring
except ImportError as _exc:  # pragma: no cover - depends on the build
    raise NativeBuildError(
        f"native._ring is not built ({_exc}); run `make setup` or "
        "`python setup.py build_ext --inplace` in the edgeloop checkout"
    ) from _exc

POLICIES: dict[str, int] = {"block": _ring.POLICY_BLOCK, "drop_oldest": _ring.POLICY_DROP_OLDEST}
_POLICY_NAMES = {v: k for k, v in POLICIES.items()}
# How often a long wait comes up for air to check that its peers are alive.
LIVENESS_CHECK_S = 0.1
_LIVENESS_NS = int(LIVENESS_CHECK_S * 1e9)


@dataclass(frozen=True)
class FrameSpec:
    """Shape and dtype of every frame in a ring (a slot holds exactly one such frame)."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @classmethod
    def of(cls, shape: tuple[int, ...] | list[int], dtype: npt.DTypeLike = np.uint8) -> FrameSpec:
        dims = tuple(int(d) for d in shape)
        if not 1 <= len(dims) <= _ring.MAX_DIMS or any(d <= 0 for d in dims):
            raise FrameError(
                f"frame shape {dims} must have 1..{_ring.MAX_DIMS} positive dimensions"
            )
        dt = np.dtype(dtype)
        if dt.hasobject or dt.itemsize == 0:
            raise FrameError(f"frame dtype {dt} cannot live in shared memory")
        return cls(dims, dt)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


@dataclass(frozen=True)
class ConsumerStats:
    """One consumer as the ring sees it (``heartbeat_age_s``: since it last took a frame)."""

    index: int
    name: str
    pid: int
    received: int
    dropped: int
    last_seq: int
    heartbeat_age_s: float


@dataclass(frozen=True)
class RingStats:
    """Counters for metrics: occupancy is the queue depth (frames not yet released by all)."""

    name: str
    slots: int
    occupancy: int
    published: int
    unread: int
    reaped: int
    takeovers: int
    consumers: tuple[ConsumerStats, ...]


class WritableSlot:
    """A claimed slot: write the frame into ``array``, then ``producer.publish(slot)``."""

    __slots__ = ("array", "index")

    def __init__(self, index: int, array: npt.NDArray[Any]) -> None:
        self.index = index
        self.array = array


class FrameRing:
    """A named ring of preallocated shared-memory frame slots. Use :meth:`create` or
    :meth:`attach`; close it (or use ``with``) when done. The creator unlinks the segment on
    close unless ``unlink_on_close=False``."""

    def __init__(
        self,
        name: str,
        segment: mmap.mmap,
        *,
        owner: bool,
        unlink_on_close: bool,
        spin_us: float,
    ) -> None:
        self._name = name
        self._segment = segment
        self._core = _ring.RingCore(segment)
        self._owner = owner
        self._unlink_on_close = unlink_on_close
        self.spin_ns = int(spin_us * 1000)
        self._closed = False
        self._ends: list[RingProducer | RingConsumer] = []
        try:
            header = self._check_header()
        except BaseException:
            self._core.release()  # drop the buffer export so the caller can unmap
            raise
        self._spec = FrameSpec.of(header["shape"], np.dtype(header["dtype"]))
        self._slot_count = int(header["slot_count"])
        self._policy = _POLICY_NAMES.get(int(header["policy"]), "unknown")
        self._writable: list[npt.NDArray[Any]] = []
        self._readonly: list[npt.NDArray[Any]] = []
        readonly = memoryview(segment).toreadonly()
        for i in range(self._slot_count):
            offset = int(self._core.slot_offset(i))
            for views, buffer in ((self._writable, segment), (self._readonly, readonly)):
                views.append(
                    np.ndarray(
                        self._spec.shape, dtype=self._spec.dtype, buffer=buffer, offset=offset
                    )
                )

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str | None = None,
        *,
        shape: tuple[int, ...] | list[int],
        dtype: npt.DTypeLike = np.uint8,
        slots: int = 8,
        policy: str = "block",
        max_consumers: int = 8,
        spin_us: float = 1.0,
        unlink_on_close: bool = True,
    ) -> FrameRing:
        """Create a ring of ``slots`` slots for frames of ``shape``/``dtype``.

        ``name`` defaults to a unique one; other processes attach with it. ``spin_us`` is how
        long a waiter spins before sleeping (keep it about 1 µs on small machines).
        """
        spec = FrameSpec.of(shape, dtype)
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
        if not 1 <= slots <= 4096:
            raise ValueError(f"slots must be 1..4096, got {slots}")
        if not 1 <= max_consumers <= _ring.MAX_CONSUMERS:
            raise ValueError(f"max_consumers must be 1..{_ring.MAX_CONSUMERS}")
        if name is None:
            sweep_orphans()
            name = f"ring-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        size = int(_ring.total_bytes(slots, spec.nbytes))
        segment = create_segment(name, size)
        try:
            core = _ring.RingCore(segment)
            core.init(
                slots,
                spec.nbytes,
                POLICIES[policy],
                max_consumers,
                spec.shape,
                spec.dtype.str.encode("ascii"),
            )
            core.release()
            return cls(name, segment, owner=True, unlink_on_close=unlink_on_close, spin_us=spin_us)
        except BaseException:
            segment.close()
            unlink_segment(name)
            raise

    @classmethod
    def attach(cls, name: str, *, spin_us: float = 1.0, wait: float = 0.0) -> FrameRing:
        """Attach to the ring ``name`` created by another thread or process.

        ``wait`` > 0 retries that long while the ring does not exist yet (a consumer started
        before its producer).
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                segment = open_segment(name)
                break
            except RingNotFoundError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
        try:
            return cls(name, segment, owner=False, unlink_on_close=False, spin_us=spin_us)
        except BaseException:
            segment.close()
            raise

    def _check_header(self) -> dict[str, Any]:
        magic, version = self._core.magic_and_version()
        if magic != _ring.MAGIC:
            raise RingVersionError(
                f"/dev/shm segment of ring {self._name!r} is not an edgeloop FrameRing "
                "(bad magic); another program uses that name"
            )
        if version != _ring.VERSION:
            raise RingVersionError(
                f"ring {self._name!r} was created with ring format v{version}, this edgeloop "
                f"reads v{_ring.VERSION}; run producer and consumers from the same edgeloop version"
            )
        header: dict[str, Any] = self._core.header()
        if header["total_bytes"] > len(self._segment):
            raise RingVersionError(
                f"ring {self._name!r} is truncated: header says {header['total_bytes']} bytes, "
                f"segment has {len(self._segment)}"
            )
        return header

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickles as an attach by name (e.g. when passed to a ``multiprocessing.Process``)."""
        return (FrameRing.attach, (self._name,))

    # -- properties ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def spec(self) -> FrameSpec:
        return self._spec

    @property
    def slots(self) -> int:
        return self._slot_count

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def closed(self) -> bool:
        return self._closed

    def _core_checked(self) -> _ring.RingCore:
        if self._closed:
            raise RingClosedError(f"ring {self._name!r} handle is closed")
        return self._core

    # -- ends ---------------------------------------------------------------------------------

    def producer(self) -> RingProducer:
        """Become the ring's one producer (replacing a producer process that died)."""
        end = RingProducer(self)
        self._ends.append(end)
        return end

    def consumer(self, name: str = "") -> RingConsumer:
        """Register a consumer; it receives every frame published from now on."""
        end = RingConsumer(self, name)
        self._ends.append(end)
        return end

    def slot_array(self, index: int, *, writable: bool = False) -> npt.NDArray[Any]:
        """The NumPy view of slot ``index`` (for stages that receive slot indices)."""
        views = self._writable if writable else self._readonly
        return views[index]

    # -- health -------------------------------------------------------------------------------

    def occupancy(self) -> int:
        """Frames published and not yet released by every consumer."""
        return int(self._core_checked().occupancy())

    def reap(self) -> int:
        """Detach consumers whose process died, freeing their slots; returns how many."""
        core = self._core_checked()
        reaped = 0
        for index, pid, start_time, *_ in core.consumer_records():
            if not is_alive(pid, start_time):
                core.detach_consumer(index)
                core.note_reaped()
                reaped += 1
        return reaped

    def producer_alive(self) -> bool:
        pid, start_time = self._core_checked().producer
        return bool(pid) and is_alive(pid, start_time)

    def in_use(self) -> bool:
        """Whether a live process is attached as producer or consumer."""
        records = self._core_checked().consumer_records()
        return self.producer_alive() or any(is_alive(r[1], r[2]) for r in records)

    def stats(self) -> RingStats:
        core = self._core_checked()
        counters = core.counters()
        now = time.monotonic_ns()
        consumers = tuple(
            ConsumerStats(
                index=index,
                name=name,
                pid=pid,
                received=received,
                dropped=dropped,
                last_seq=last_seq,
                heartbeat_age_s=max(0.0, (now - heartbeat) / 1e9),
            )
            for index, pid, _start, name, received, dropped, heartbeat, last_seq in (
                core.consumer_records()
            )
        )
        return RingStats(
            name=self._name,
            slots=self._slot_count,
            occupancy=int(core.occupancy()),
            published=int(counters["published"]),
            unread=int(counters["unread"]),
            reaped=int(counters["reaped"]),
            takeovers=int(counters["takeovers"]),
            consumers=consumers,
        )

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every end opened through this handle and unmap; the creator also unlinks.

        Views still referenced elsewhere keep the mapping alive until they are garbage.
        """
        if self._closed:
            return
        for end in reversed(self._ends):
            end.close()
        self._ends.clear()
        self._closed = True
        self._core.release()
        self._writable.clear()
        self._readonly.clear()
        # NumPy views keep the mmap object alive (as their base) without a buffer export, so
        # closing it under a view someone still holds would leave that view dangling. Unmap now
        # only when nothing else refers to the mapping; otherwise the last view unmaps it.
        if sys.getrefcount(self._segment) <= 2:  # our attribute and the call's argument
            self._segment.close()
        if self._owner and self._unlink_on_close:
            unlink_segment(self._name)

    def unlink(self) -> None:
        """Remove the ring's name now (attached handles keep working until they close)."""
        unlink_segment(self._name)

    def __enter__(self) -> FrameRing:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._slot_count} slots"
        return (
            f"FrameRing({self._name!r}, {state}, frame={self._spec.shape} "
            f"{self._spec.dtype}, policy={self._policy})"
        )


_DEFAULT_NAME = re.compile(r"^(ring-(\d+)-[0-9a-f]{8})(\..+)?$")
"""A default ring name (group 1) and its creator's pid (group 2), or a companion of one."""


def sweep_orphans() -> list[str]:
    """Unlink the segments of default-named rings whose creator died without closing them
    (``kill -9``, a crash, a profiler that killed its target), with their companions
    (``<name>.*``, e.g. the pipeline's per-stream blocks); returns the names removed.

    A creator that dies cannot unlink its ring, and nothing else owns the name, so without this
    /dev/shm (RAM) fills up run after run. A ring is only swept when its creator's process
    (the pid in its default name ``ring-<pid>-<hex>``) is gone *and* no live producer or
    consumer is attached, so a ring that another process still reads, or a replacement
    producer writes, stays. :meth:`FrameRing.create` sweeps before creating a default-named
    ring; named rings are their owner's to manage.
    """
    kept: set[str] = set()
    removed: list[str] = []
    for name in sorted(segment_names()):  # a ring sorts before its companions
        found = _DEFAULT_NAME.match(name)
        if found is None or is_alive(int(found.group(2))):
            continue
        if found.group(3) is None and _in_use(name):
            kept.add(name)
            continue
        if found.group(1) in kept:  # a companion of a ring still in use
            continue
        if unlink_segment(name):
            removed.append(name)
    return removed


def _in_use(name: str) -> bool:
    """Whether a live producer or consumer is attached to ring ``name`` (an unreadable or
    foreign segment counts as in use: not ours to remove)."""
    try:
        ring = FrameRing.attach(name)
    except (RingNotFoundError, RingVersionError, ValueError, OSError):
        return True
    try:
        return ring.in_use()
    finally:
        ring.close()


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


def _slice_ns(deadline: float | None) -> int:
    """Wait at most until the deadline, and no longer than the liveness-check interval."""
    if deadline is None:
        return int(LIVENESS_CHECK_S * 1e9)
    return max(0, int(min(deadline - time.monotonic(), LIVENESS_CHECK_S) * 1e9))


class RingProducer:
    """The writing end. One per ring; not shared between threads."""

    def __init__(self, ring: FrameRing) -> None:
        self._ring = ring
        self._core = ring._core_checked()
        self._pid = os.getpid()
        start_time = process_start_time(self._pid)
        other = self._core.producer_attach(self._pid, start_time)
        if other:
            other_pid, other_start = self._core.producer
            if other_pid == self._pid or is_alive(other_pid, other_start):
                raise RingUsageError(
                    f"ring {ring.name!r} already has a producer (pid {other_pid}); "
                    "a ring has exactly one producer"
                )
            if not self._core.producer_takeover(other_pid, self._pid, start_time):
                raise RingUsageError(f"another process took over ring {ring.name!r} first")
            self._core.reopen_stream()
        self._claimed: set[int] = set()
        self._closed = False

    def claim(self, timeout: float | None = None) -> WritableSlot:
        """A free slot to write into (waits under ``block``; never for long under
        ``drop_oldest``). Raises :class:`RingTimeoutError` after ``timeout`` seconds."""
        if self._closed:
            raise RingClosedError(f"producer of ring {self._ring.name!r} is closed")
        deadline = _deadline(timeout)
        while True:
            idx = self._core.claim(_slice_ns(deadline), self._ring.spin_ns)
            if idx >= 0:
                self._claimed.add(idx)
                return WritableSlot(idx, self._ring._writable[idx])
            if idx == _ring.INTERRUPTED:
                continue  # Python runs signal handlers between bytecodes, then we wait again
            if deadline is not None and time.monotonic() >= deadline:
                holders = [c.name or f"#{c.index}" for c in self._ring.stats().consumers]
                raise RingTimeoutError(
                    f"no free slot in ring {self._ring.name!r} after {timeout}s: all "
                    f"{self._ring.slots} slots wait for consumers {holders} (policy "
                    f"{self._ring.policy})"
                )
            self._ring.reap()

    def publish(
        self,
        slot: WritableSlot,
        *,
        stream_id: int = 0,
        capture_ns: int | None = None,
        flags: int = 0,
    ) -> int:
        """Hand the written slot to every consumer; returns its sequence number."""
        if slot.index not in self._claimed:
            raise RingUsageError(f"slot {slot.index} was not claimed by this producer")
        self._claimed.discard(slot.index)
        if capture_ns is None:
            capture_ns = time.monotonic_ns()
        seq: int = self._core.publish(slot.index, stream_id, capture_ns, flags)
        return seq

    def abandon(self, slot: WritableSlot) -> None:
        """Give a claimed slot back without publishing it."""
        if slot.index in self._claimed:
            self._claimed.discard(slot.index)
            self._core.abandon(slot.index)

    def put(
        self,
        frame: npt.NDArray[Any],
        *,
        stream_id: int = 0,
        capture_ns: int | None = None,
        flags: int = 0,
        timeout: float | None = None,
    ) -> int:
        """Copy ``frame`` into a slot and publish it (for sources that cannot write in place)."""
        spec = self._ring.spec
        if frame.shape != spec.shape or frame.dtype != spec.dtype:
            raise FrameError(
                f"frame of shape {frame.shape} {frame.dtype} does not fit ring "
                f"{self._ring.name!r}, which holds {spec.shape} {spec.dtype}"
            )
        slot = self.claim(timeout)
        try:
            np.copyto(slot.array, frame)
        except BaseException:
            self.abandon(slot)
            raise
        return self.publish(slot, stream_id=stream_id, capture_ns=capture_ns, flags=flags)

    def close(self, *, end_of_stream: bool = True) -> None:
        """Detach; with ``end_of_stream`` consumers drain the ring, then see the end."""
        if self._closed:
            return
        self._closed = True
        for idx in list(self._claimed):
            self._core.abandon(idx)
        self._claimed.clear()
        if end_of_stream:
            self._core.close_stream()
        self._core.producer_detach(self._pid)


class RingConsumer:
    """A reading end with its own cursor. Not shared between threads: one per stage worker."""

    def __init__(self, ring: FrameRing, name: str = "") -> None:
        self._ring = ring
        self._core = ring._core_checked()
        self.name = name
        encoded = name.encode("utf-8")[:31]
        pid = os.getpid()
        index = self._core.attach_consumer(pid, process_start_time(pid), encoded)
        if index < 0:
            raise RingUsageError(
                f"ring {ring.name!r} has no free consumer record (max_consumers reached); "
                "create it with a larger max_consumers"
            )
        self.index: int = index
        self._closed = False

    def _frame(self, taken: tuple[int, int, int, int, int, int, int]) -> Frame:
        idx, seq, stream_id, capture_ns, publish_ns, flags, taken_ns = taken
        meta = FrameMeta(seq, stream_id, capture_ns, publish_ns, flags, idx, taken_ns)
        return Frame(self._ring._readonly[idx], meta, self._release)

    def _release(self, frame: Frame) -> None:
        if self._closed:
            return
        if self._core.release_slot(self.index, frame.meta.slot) < 0:
            raise RingUsageError(
                f"frame seq {frame.meta.seq} is not held by consumer {self.name or self.index} "
                f"of ring {self._ring.name!r} (released twice?)"
            )

    def acquire(self, timeout: float | None = None) -> Frame:
        """The next frame (oldest first). Raises :class:`RingTimeoutError` after ``timeout``
        seconds and :class:`RingClosedError` once the producer ended the stream (or died) and
        everything published was taken."""
        if self._closed:
            raise RingClosedError(f"consumer of ring {self._ring.name!r} is closed")
        # Fast path first: this runs once per frame and every microsecond shows in the latency.
        first_wait = _LIVENESS_NS if timeout is None else min(_LIVENESS_NS, int(timeout * 1e9))
        taken = self._core.acquire(self.index, max(0, first_wait), self._ring.spin_ns)
        if taken[0] >= 0:
            return self._frame(taken)
        deadline = _deadline(timeout)
        while True:
            idx = taken[0]
            if idx >= 0:
                return self._frame(taken)
            if idx == _ring.CLOSED:
                raise RingClosedError(f"ring {self._ring.name!r}: end of stream")
            if idx == _ring.INTERRUPTED:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise RingTimeoutError(f"no frame from ring {self._ring.name!r} within {timeout}s")
            pid, start_time = self._core.producer
            if pid and not is_alive(pid, start_time):
                self._core.close_stream()  # the producer died: drain, then end of stream
            taken = self._core.acquire(self.index, _slice_ns(deadline), self._ring.spin_ns)

    def try_acquire(self) -> Frame | None:
        """The next frame if one is ready, else None (never waits)."""
        if self._closed:
            raise RingClosedError(f"consumer of ring {self._ring.name!r} is closed")
        taken = self._core.acquire(self.index, 0, 0)
        return self._frame(taken) if taken[0] >= 0 else None

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the end of stream; release each one (``with frame:``)."""
        while True:
            try:
                frame = self.acquire()
            except RingClosedError:
                return
            yield frame

    @property
    def received(self) -> int:
        return self._stats().received

    @property
    def dropped(self) -> int:
        """Frames the producer overwrote before this consumer took them (``drop_oldest``)."""
        return self._stats().dropped

    def _stats(self) -> ConsumerStats:
        for c in self._ring.stats().consumers:
            if c.index == self.index:
                return c
        raise RingUsageError(f"consumer {self.index} of ring {self._ring.name!r} is detached")

    def close(self) -> None:
        """Detach: frames it still holds are released (their views must not be used)."""
        if self._closed:
            return
        self._closed = True
        self._core.detach_consumer(self.index)
