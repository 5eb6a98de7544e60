"""Who gets a core first when the stages want more cores than there are.

On a small CPU-only box (2 cores), inference is the bottleneck and the other stages together
need most of the second core. Whenever three workers are ready at once, the scheduler shares
the cores evenly, and the bottleneck loses time that no other stage can give back. The ingest
and compress workers therefore run ``stage_nice`` steps nicer than the inference worker
(``PipelineConfig.stage_nice``): they still get all the CPU time inference leaves, and
inference keeps its core. Raising niceness needs no privilege, so this works for a Greengrass
component's unprivileged user; a thread's niceness is its own on Linux (``setpriority`` on its
thread id), and a process started from it inherits it.

The output thread (decode, filter, compress, sink) keeps inference's priority: it takes a
fraction of a millisecond a frame, but every frame waits for it after inference, and niced it
would wait for the heavy ingest thread's time slice.

Inference (its process's thread, or its thread) and output also ask for a short time slice
(:func:`ask_short_slice`, ``PipelineConfig.critical_slice_us``, 100 µs). Nice values set
*how much* CPU each thread gets, not *when*: Linux's EEVDF scheduler lets the running thread
finish its slice before a thread that woke takes the core, and inference and output wake for
every frame. The other stages are niced, never ``SCHED_IDLE``, which would starve them on a
busy machine. Evidence for all three: docs/decisions/0002-stage-priorities-and-short-slices.md.

The ledger's JPEG sampler goes further (:func:`run_when_idle`): it runs only on idle time (it
may starve: a sample is not needed for any frame).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import threading

SAMPLER_NICE = 10
"""How much nicer the ledger's JPEG sampler runs where ``SCHED_IDLE`` is not available."""


def be_nicer(steps: int) -> bool:
    """Make the calling thread ``steps`` nicer (lower priority); False where not allowed."""
    if steps <= 0:
        return True
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + steps)
    except (AttributeError, OSError):  # pragma: no cover - not Linux, or not allowed
        return False
    return True


def run_when_idle(nice: int = SAMPLER_NICE) -> str:
    """Let the calling thread run only on CPU time nobody else wants: Linux's ``SCHED_IDLE``
    (a thread of any other policy that wakes takes the CPU from it at once), else ``nice``
    steps nicer. Returns which it got ("idle", "nice" or "none").

    Why idle rather than only niced: a niced sampler's encode still delays the frames beside it
    (docs/decisions/0013-jpeg-sampler-off-the-latency-path.md)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread (Linux)
        return "idle"
    except (AttributeError, OSError):
        pass
    return "nice" if be_nicer(nice) else "none"


CRITICAL_SLICE_US = 100
"""The time slice inference and output ask for (``PipelineConfig.critical_slice_us``): the
shortest Linux grants."""

_SETATTR, _GETATTR = {"x86_64": (314, 315), "aarch64": (274, 275)}.get(platform.machine(), (0, 0))
"""``sched_setattr(2)`` / ``sched_getattr(2)``'s syscall numbers (Python has no wrapper)."""

_ATTR = struct.Struct("=IIQiIQQQ")  # struct sched_attr, SCHED_ATTR_SIZE_VER0 (48 bytes)
_KEEP_POLICY = 0x08  # SCHED_FLAG_KEEP_POLICY: only the nice value and the slice change


def _syscall(number: int, *args: object) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(number, *args))


def ask_short_slice(slice_us: int, tid: int = 0) -> bool:
    """Ask the scheduler for a ``slice_us`` time slice for thread ``tid`` (0: the calling
    thread); False where it could not be asked (not Linux on x86-64 or arm64, or refused).

    A thread that asked for a shorter slice than the running thread's takes the core when it
    wakes, instead of waiting for that slice to end (EEVDF, Linux 6.12 and later; older
    kernels accept the request and ignore it). Its share of the CPU is still set by its nice
    value, so nobody starves (see the module docstring). No privilege is needed."""
    if slice_us <= 0 or not _SETATTR:
        return False
    try:
        nice = os.getpriority(os.PRIO_PROCESS, tid or threading.get_native_id())
        attr = ctypes.create_string_buffer(
            _ATTR.pack(_ATTR.size, 0, _KEEP_POLICY, nice, 0, slice_us * 1000, 0, 0)
        )
        return _syscall(_SETATTR, tid, attr, 0) == 0
    except (AttributeError, OSError):  # pragma: no cover - no libc to call
        return False


def slice_us(tid: int = 0) -> float | None:
    """The time slice thread ``tid`` runs with (0: the calling thread), in µs; None where
    the kernel does not say (before 6.12 a normal thread's slice is not reported)."""
    if not _SETATTR:
        return None
    try:
        attr = ctypes.create_string_buffer(_ATTR.size)
        if _syscall(_GETATTR, tid, attr, _ATTR.size, 0) != 0:
            return None
    except (AttributeError, OSError):  # pragma: no cover - no libc to call
        return None
    runtime_ns = _ATTR.unpack(attr.raw)[5]
    return runtime_ns / 1000 if runtime_ns else None
