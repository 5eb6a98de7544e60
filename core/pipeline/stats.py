"""Per-stage timers and counters, kept raw and cheap, plus the rate-limited error log.

Each worker owns its :class:`StageStats` (one writer, no lock): a preallocated ring of raw
service latencies (int64 ns; the last :data:`SAMPLES` are kept, older ones overwritten) and
totals (calls, frames, busy ns, errors) in one small int64 array. The array can live in shared
memory, so a source running in its own process records into the same structure the parent
reads. A stage with several workers (a source per stream, a compress pool) is the union of
their stats. The pipeline's monitor turns new samples into the metrics registry's histograms in
batches; the bench reads the raw arrays for its percentiles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLES = 1 << 17
"""Raw latencies kept per worker (131 072: ~7 minutes at 300 frames/s; 1 MiB of int64)."""

_CALLS, _FRAMES, _BUSY, _ERRORS = range(4)
HEADER = 4
"""int64 fields before the latency ring: calls, frames, busy ns, errors."""

log = logging.getLogger("edgeloop.pipeline")


def stats_buffer(capacity: int = SAMPLES) -> npt.NDArray[np.int64]:
    """A zeroed buffer for one :class:`StageStats` (header plus ``capacity`` samples)."""
    return np.zeros(HEADER + capacity, np.int64)


class StageStats:
    """One worker's record of one stage: raw latencies and totals (see the module docstring).

    ``buffer`` (from :func:`stats_buffer`, possibly in shared memory) holds everything; its
    length fixes the number of samples kept, a power of two.
    """

    __slots__ = ("_head", "_lat", "_mask", "buffer", "name")

    def __init__(self, name: str, buffer: npt.NDArray[np.int64] | None = None) -> None:
        self.name = name
        self.buffer = stats_buffer() if buffer is None else buffer
        capacity = len(self.buffer) - HEADER
        if capacity < 1 or capacity & (capacity - 1):
            raise ValueError(f"a stats buffer holds a power-of-two of samples, got {capacity}")
        self._head = self.buffer[:HEADER]
        self._lat = self.buffer[HEADER:]
        self._mask = capacity - 1

    def record(self, start_ns: int, end_ns: int, frames: int = 1) -> None:
        """One call that took ``end_ns - start_ns`` and served ``frames`` frames."""
        head = self._head
        n = int(head[_CALLS])
        elapsed = end_ns - start_ns
        self._lat[n & self._mask] = elapsed
        head[_CALLS] = n + 1
        head[_FRAMES] += frames
        head[_BUSY] += elapsed

    def add_busy(self, elapsed_ns: int) -> None:
        """Work that served no frame of its own (busy time without a latency sample)."""
        self._head[_BUSY] += elapsed_ns

    def error(self) -> None:
        self._head[_ERRORS] += 1

    @property
    def calls(self) -> int:
        return int(self._head[_CALLS])

    @property
    def frames(self) -> int:
        return int(self._head[_FRAMES])

    @property
    def busy_ns(self) -> int:
        return int(self._head[_BUSY])

    @property
    def errors(self) -> int:
        return int(self._head[_ERRORS])

    def mark(self) -> StatsMark:
        """Where the counts stand now (a report covers what happened after a mark)."""
        calls, frames, busy, errors = (int(v) for v in self._head.copy())
        return StatsMark(calls, frames, busy, errors)

    def samples_since(self, calls: int) -> npt.NDArray[np.int64]:
        """A copy of the latencies recorded after the first ``calls`` calls (at most the last
        ring's worth), oldest first."""
        return self.samples_between(calls, None)

    def samples_between(self, first: int, end: int | None) -> npt.NDArray[np.int64]:
        """A copy of the latencies of calls ``first`` to ``end`` (exclusive; None: to now),
        oldest first; those the ring has overwritten since are left out, never replaced by
        later ones."""
        now = self.calls
        stop = now if end is None else min(end, now)
        start = max(first, now - (self._mask + 1))
        if stop <= start:
            return np.zeros(0, np.int64)
        index = np.arange(start, stop) & self._mask
        samples: npt.NDArray[np.int64] = self._lat[index]
        return samples


@dataclass(frozen=True)
class StatsMark:
    """The totals of a :class:`StageStats` at one moment."""

    calls: int = 0
    frames: int = 0
    busy_ns: int = 0
    errors: int = 0


class StageGroup:
    """All workers' stats of one stage, and what a report wants of them since a mark."""

    def __init__(self, name: str, workers: Sequence[StageStats] = ()) -> None:
        self.name = name
        self.workers: list[StageStats] = list(workers)
        self._marks: list[StatsMark] = [StatsMark() for _ in self.workers]

    def add(self, stats: StageStats) -> StageStats:
        self.workers.append(stats)
        self._marks.append(StatsMark())
        return stats

    def mark(self) -> None:
        """Start counting from now (the end of the warm-up)."""
        self._marks = [w.mark() for w in self.workers]

    def _since(self, field: str) -> int:
        return sum(
            getattr(w, field) - getattr(m, field)
            for w, m in zip(self.workers, self._marks, strict=True)
        )

    @property
    def frames(self) -> int:
        return self._since("frames")

    @property
    def busy_ns(self) -> int:
        return self._since("busy_ns")

    @property
    def errors(self) -> int:
        return self._since("errors")

    def samples(self) -> npt.NDArray[np.int64]:
        """Every worker's latencies since the mark, concatenated (int64 ns)."""
        return self.samples_between(tuple(m.calls for m in self._marks), None)

    def calls_each(self) -> tuple[int, ...]:
        """Each worker's call count now: a bookmark for :meth:`samples_between`."""
        return tuple(w.calls for w in self.workers)

    def samples_between(
        self, start: tuple[int, ...], end: tuple[int, ...] | None
    ) -> npt.NDArray[np.int64]:
        """Every worker's latencies between two bookmarks (``end`` None: until now)."""
        parts = [
            w.samples_between(c0, None if end is None else end[i])
            for i, (w, c0) in enumerate(zip(self.workers, start, strict=True))
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class ErrorLog:
    """Logs per-frame problems with their cause, at most once per ``interval_s`` per stage
    (a camera that sends garbage for an hour must not write a line per frame); the lines say
    how many were left out. Thread-safe enough: a lost increment of the left-out count is
    harmless, and the counts that matter live in :class:`StageStats`."""

    def __init__(self, interval_s: float = 1.0, logger: logging.Logger = log) -> None:
        self.interval_ns = int(interval_s * 1e9)
        self.logger = logger
        self._last: dict[str, int] = {}
        self._held: dict[str, int] = {}

    def report(self, stage: str, message: str) -> None:
        now = time.monotonic_ns()
        last = self._last.get(stage)
        if last is not None and now - last < self.interval_ns:
            self._held[stage] = self._held.get(stage, 0) + 1
            return
        self._last[stage] = now
        held = self._held.pop(stage, 0)
        more = f" ({held} more since the last line)" if held else ""
        self.logger.warning("%s: %s%s", stage, message, more)
