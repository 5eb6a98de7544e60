"""A backend whose model runs in a process of its own, its buffers in shared memory.

Why: in a pipeline whose other stages are Python threads, an inference thread must win the GIL
back each time ONNX Runtime returns, and whichever thread holds it makes the bottleneck wait; in
a process of its own the runtime's caller holds a GIL nobody else wants
(docs/decisions/0001-inference-in-its-own-process.md).

Nothing is copied on the way. The child opens the backend with every input and output array
allocated in a shared-memory segment (:mod:`core.shm`); the parent maps the same segments, so
the pipeline preprocesses straight into the memory ONNX Runtime reads and decodes straight from
the memory it wrote. Only ``(slot, rows)`` requests and ``(slot, timings, error)`` replies
travel, through two pipes. Once the parent has mapped the segments the child unlinks their
names, so nothing is left in /dev/shm whichever process dies first.

Calls: ``infer(n, slot)`` (the :class:`~core.backends.base.Backend` contract, synchronous), or
``submit(n, slot)`` now and ``collect(slot)`` later, in the same order: a pipeline keeps the
next batch queued in the child while it decodes the last, so the child never waits for the
parent. :attr:`last_call` holds the child's own wall and CPU time of the latest call (the
parent's clocks see neither the child's CPU nor a run without the pipe's round trip).

Only ONNX Runtime can run here: TensorRT's buffers are CUDA pinned or device memory, which
another process cannot map.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core.backends.base import Backend, BackendInfo, LoadTimings, Outputs
from core.errors import ConfigError, EdgeloopError, InferenceProcessError
from core.shm import create_segment, open_segment, segment_names, unlink_segment
from core.threadname import name_this_thread

log = logging.getLogger("edgeloop.backends")

START_TIMEOUT_S = 300.0
"""How long the child may take to load and warm up the model (an engine build is slow)."""
STOP_TIMEOUT_S = 5.0
POLL_S = 100e-6
"""How often :meth:`ProcessBackend.collect` looks for a reply once it is due."""
POLL_NS = int(POLL_S * 1e9)
ROW_NS_WEIGHT = 0.05
"""Weight of each new call in the moving average of the child's time per row."""
LATE_FACTOR, LATE_MIN_NS = 4, 20_000_000
"""A reply later than due by this many calls' time (and at least 20 ms) is waited for in
the pipe."""
_REQUEST = struct.Struct("<Bii")  # op, slot, rows
_REPLY = struct.Struct("<iiqqq")  # slot, rows, start ns, end ns, cpu ns; then the error text
_RUN, _CLOSE = 1, 2
_SEGMENT_PREFIX = "infer."
InferCall = Callable[[int, int], Outputs]
CallWrapper = Callable[[InferCall], InferCall]
"""Wraps the child's ``backend.infer`` in a call that does the same (instrumentation, timed
with the call: :data:`core.pipeline.stages.StageCallWrapper` with its stage name bound)."""


class CallCost(NamedTuple):
    """One call as the child measured it: ``perf_counter_ns`` start and end (one clock for
    every process of the machine), and the child's CPU time."""

    start_ns: int
    end_ns: int
    cpu_ns: int


class Reply(NamedTuple):
    """What :meth:`ProcessBackend.collect` returns: the slot's outputs (first ``rows`` rows),
    the call's cost, and the error the child met (None when it ran)."""

    outputs: Outputs
    cost: CallCost
    error: str | None


# -- the child ---------------------------------------------------------------------------------


class _SharedArrays:
    """The child's allocator: each array in a segment of its own, named after the child."""

    def __init__(self) -> None:
        self.prefix = f"{_SEGMENT_PREFIX}{os.getpid()}."
        self.names: list[str] = []
        self.layout: list[tuple[str, tuple[int, ...], str]] = []
        self._maps: list[Any] = []  # the mappings: alive as long as the arrays
        self._addresses: list[int] = []

    def __call__(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        dtype = np.dtype(dtype)
        name = f"{self.prefix}{len(self.names)}"
        size = max(1, int(np.prod(shape)) * dtype.itemsize)
        self.names.append(name)
        segment = create_segment(name, size)
        self._maps.append(segment)
        self.layout.append((name, tuple(int(d) for d in shape), dtype.str))
        array: np.ndarray = np.ndarray(shape, dtype, buffer=segment)
        self._addresses.append(_address(array))
        return array

    def index_of(self, array: np.ndarray) -> int:
        """Which allocation ``array`` (or a view at its start) is."""
        try:
            return self._addresses.index(_address(array))
        except ValueError:
            raise InferenceProcessError(
                "the backend holds a buffer outside shared memory"
            ) from None

    def unlink(self) -> None:
        for name in self.names:
            unlink_segment(name)


def _address(array: np.ndarray) -> int:
    address: int = array.__array_interface__["data"][0]
    return address


def _open_in_child(model: str, backend: str, options: dict[str, Any]) -> tuple[Backend, Any]:
    from core.backends import open_backend  # noqa: PLC0415 - the child's own import
    from core.device import choose_backend, probe  # noqa: PLC0415

    choice = choose_backend(backend, probe())
    if choice.backend != "onnxruntime":
        raise ConfigError(
            f"infer_worker: process runs ONNX Runtime only, and {backend!r} chose "
            f"{choice.backend} (its buffers are CUDA memory another process cannot map): "
            "use infer_worker: thread"
        )
    shared = _SharedArrays()
    try:
        opened = open_backend(model, "onnxruntime", allocator=shared, **options)
    except BaseException:
        shared.unlink()
        raise
    return opened, shared


def _child_main(requests: Connection, replies: Connection) -> None:
    """The inference process: open the backend in shared memory, say where, serve calls."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    name_this_thread("infer-server")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(name)s[%(process)d]: %(message)s")
    try:
        model, backend, options, wrap_infer = requests.recv()
        opened, shared = _open_in_child(model, backend, options)
    except EOFError:
        return
    except BaseException as exc:
        replies.send(("error", _portable(exc)))
        return
    try:
        try:
            layout = [
                (shared.index_of(inputs), [shared.index_of(o) for o in outputs])
                for inputs, outputs in (opened.slot_buffers(s) for s in range(opened.input_slots))
            ]
            replies.send(("ready", opened.describe(), opened.timings, shared.layout, layout))
            try:
                requests.recv_bytes()  # the parent mapped every segment (or went away)
            except EOFError:
                return
        finally:
            shared.unlink()  # whatever happened: a parent killed while this loaded maps nothing
        _serve(requests, replies, opened.infer if wrap_infer is None else wrap_infer(opened.infer))
    except (BrokenPipeError, ConnectionResetError):  # the parent went away mid-answer
        return
    finally:
        opened.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling as itself, else the same cause as our own error."""
    import pickle  # noqa: PLC0415

    if isinstance(exc, EdgeloopError):
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            pass
        else:
            return exc
    return InferenceProcessError(f"{type(exc).__name__}: {exc}")


def _serve(requests: Connection, replies: Connection, infer: InferCall) -> None:
    clock, cpu = time.perf_counter_ns, time.process_time_ns
    pack, unpack = _REPLY.pack, _REQUEST.unpack
    while True:
        try:
            op, slot, rows = unpack(requests.recv_bytes())
        except EOFError:  # the parent is gone
            return
        if op == _CLOSE:
            return
        error = b""
        cpu_start = cpu()
        start = clock()
        try:
            infer(rows, slot)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}".encode()
        end = clock()
        replies.send_bytes(pack(slot, rows, start, end, cpu() - cpu_start) + error)


# -- the parent ---------------------------------------------------------------------------------


class ProcessBackend(Backend):
    """A :class:`Backend` served by a child process (see the module docstring).

    Takes :func:`core.backends.open_backend`'s arguments; the child opens the model with them
    (``backend`` must come out as ONNX Runtime). Raises what opening raised there (a
    :class:`~core.errors.ModelError`, a :class:`~core.errors.ConfigError`...), or
    :class:`~core.errors.InferenceProcessError` when the child did not start.
    ``wrap_infer`` (picklable) wraps the child's calls (:data:`CallWrapper`).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: str | os.PathLike[str],
        backend: str = "auto",
        *,
        start_timeout_s: float = START_TIMEOUT_S,
        wrap_infer: CallWrapper | None = None,
        **options: Any,
    ) -> None:
        requests_in, requests_out = os.pipe()
        replies_in, replies_out = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the parent's imports
        try:
            # A fresh interpreter running this module, not multiprocessing's spawn: that one
            # re-runs the parent's main script, which a script without a main guard forbids.
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(requests_in), str(replies_out)],
                pass_fds=(requests_in, replies_out),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(requests_in)
            os.close(replies_out)
        self._requests = Connection(requests_out, readable=False)
        self._replies = Connection(replies_in, writable=False)
        self.pid = self._process.pid
        self._closed = False
        try:
            self._requests.send((str(model), backend, options, wrap_infer))
            info, timings, segments, layout = self._await_ready(start_timeout_s)
            inputs, outputs = self._map(segments, layout)
            self._requests.send_bytes(b"mapped")
        except BaseException:
            self._terminate()
            raise
        height, width = info.input_shape[2:]
        super().__init__(
            Path(info.model),
            inputs=info.inputs,
            outputs=info.outputs,
            batch_size=options.get("batch_size", 1),
            input_size=(height, width),
            input_slots=info.input_slots,
        )
        self._adopt_buffers(inputs, outputs)
        self._sha256 = info.model_sha256
        self._timings = timings
        self._described = dataclasses.replace(info, extra={**info.extra, "process_pid": self.pid})
        self.last_call = CallCost(0, 0, 0)
        """The child's own measure of the latest completed call."""
        self._row_ns = timings.warmup_s * 1e9 / max(1, timings.warmup_runs * self.capacity)
        """Service time per row, a moving average of the child's own timings."""
        self._busy_until = 0  # when the child will have run every call submitted so far
        self._due: collections.deque[int] = collections.deque()  # each outstanding call's

    def _await_ready(self, timeout_s: float) -> tuple[BackendInfo, LoadTimings, Any, Any]:
        deadline = time.monotonic() + timeout_s
        while not self._replies.poll(0.2):
            if self._process.poll() is not None:
                raise InferenceProcessError(
                    f"the inference process exited while opening the model "
                    f"(exit code {self._process.returncode})"
                )
            if time.monotonic() > deadline:
                raise InferenceProcessError(
                    f"the inference process did not open the model within {timeout_s:.0f} s"
                )
        try:
            message = self._replies.recv()
        except EOFError:
            raise InferenceProcessError(
                "the inference process exited while opening the model"
            ) from None
        if message[0] == "error":
            raise message[1]
        _, info, timings, segments, layout = message
        return info, timings, segments, layout

    @staticmethod
    def _map(
        segments: list[tuple[str, tuple[int, ...], str]], layout: list[tuple[int, list[int]]]
    ) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        arrays = [
            np.ndarray(shape, np.dtype(dtype), buffer=open_segment(name))
            for name, shape, dtype in segments
        ]
        inputs = [arrays[i] for i, _ in layout]
        outputs = [[arrays[k] for k in outs] for _, outs in layout]
        return inputs, outputs

    # -- calls ---------------------------------------------------------------------------------

    def submit(self, n: int, slot: int = 0) -> None:
        """Queue a run of the first ``n`` images of ``slot``; :meth:`collect` it later."""
        count, index = self._count(n), self._slot(slot)
        now = time.perf_counter_ns()
        due = max(now, self._busy_until) + int(self._row_ns * count)
        self._busy_until = due
        self._due.append(due)
        try:
            self._requests.send_bytes(_REQUEST.pack(_RUN, index, count))
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise self._gone() from exc

    def collect(self, slot: int = 0) -> Reply:
        """The reply to the oldest submitted call, which must be ``slot``'s."""
        due = self._due.popleft() if self._due else 0
        try:
            if self._due and not self._replies.poll(0):  # more queued: the child is busy
                self._await_reply(due)
            message = self._replies.recv_bytes()
        except (EOFError, OSError) as exc:
            raise self._gone() from exc
        got, rows, start, end, cpu = _REPLY.unpack_from(message)
        if got != slot:
            raise InferenceProcessError(
                f"the inference process answered for slot {got}, expected slot {slot}"
            )
        error = message[_REPLY.size :].decode(errors="replace") or None
        self.last_call = CallCost(start, end, cpu)
        self._row_ns += (max(0, end - start) / max(1, rows) - self._row_ns) * ROW_NS_WEIGHT
        return Reply(self._results[got][rows - 1], self.last_call, error)

    def _await_reply(self, due_ns: int) -> None:
        """While the child has more calls queued, sleep until this reply is due, then look
        every :data:`POLL_S` -- never wait *in* the pipe: a reader blocked there makes the
        child's write wake it, and waking a thread on another core takes time from the
        bottleneck (docs/decisions/0010-futex-wakeups.md). With nothing queued
        behind it (a paced camera), :meth:`collect` waits in the pipe: the wake then costs the
        child nothing it needed, and the reply comes without the polling's delay. A reply much
        later than due (a stalled child) is waited for in the pipe after all."""
        clock = time.perf_counter_ns
        poll = self._replies.poll
        late = due_ns + LATE_FACTOR * int(self._row_ns) + LATE_MIN_NS
        ahead_ns = due_ns - clock()  # read once: a thread pre-empted between two reads would
        if ahead_ns > POLL_NS:  # ask for a negative sleep (ValueError)
            time.sleep((ahead_ns - POLL_NS / 2) / 1e9)
        while not poll(0):
            if clock() > late:
                poll(None)
                return
            time.sleep(POLL_S)

    def _run(self, n: int, slot: int) -> None:
        self.submit(n, slot)
        reply = self.collect(slot)
        if reply.error is not None:
            raise InferenceProcessError(f"inference failed in its process: {reply.error}")

    def _gone(self) -> InferenceProcessError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(1.0)
        return InferenceProcessError(
            f"the inference process (pid {self.pid}) is gone (exit code {self._process.returncode})"
        )

    # -- the rest of the contract ------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """The processes that run the model, as :class:`core.backends.pool.ProcessPool` has."""
        return [self.pid]

    def describe(self) -> BackendInfo:
        return self._described

    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        """Ask the child to stop (it releases the model); kill it if it does not."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):  # BrokenPipeError: it is gone already
            self._requests.send_bytes(_REQUEST.pack(_CLOSE, 0, 0))
        self._terminate()

    def _terminate(self) -> None:
        """Reap the child: it stops on its own once told to close, or once it has reported
        that it could not start; one still running after :data:`STOP_TIMEOUT_S` is killed."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(STOP_TIMEOUT_S)
        if self._process.poll() is None:
            log.warning("the inference process did not stop within %.0f s: killed", STOP_TIMEOUT_S)
            self._process.kill()
            self._process.wait()
        for conn in (self._requests, self._replies):
            conn.close()
        prefix = f"{_SEGMENT_PREFIX}{self.pid}."
        for name in segment_names():  # a child killed before it unlinked them
            if name.startswith(prefix):
                unlink_segment(name)


if __name__ == "__main__":  # the inference process: python -m core.backends.process R W
    _child_main(
        Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    )
