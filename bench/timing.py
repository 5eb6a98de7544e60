"""The measuring loop every micro-benchmark uses: bounded warm-up, then measure until both a
minimum duration and a minimum count are met (as perf_analyzer and MLPerf do), keeping raw ns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Budget:
    """How long to warm up and measure. ``quick()`` is for tests and ``--quick`` runs."""

    warmup_s: float = 0.2
    warmup_count: int = 5
    min_s: float = 1.0
    min_count: int = 50
    max_count: int = 200_000

    @classmethod
    def quick(cls) -> Budget:
        return cls(warmup_s=0.02, warmup_count=2, min_s=0.1, min_count=10, max_count=2_000)

    def scaled(self, factor: float) -> Budget:
        """The same budget with durations multiplied by ``factor`` (counts unchanged)."""
        return Budget(
            warmup_s=self.warmup_s * factor,
            warmup_count=self.warmup_count,
            min_s=self.min_s * factor,
            min_count=self.min_count,
            max_count=self.max_count,
        )


def measure(fn: Callable[[], object], budget: Budget) -> np.ndarray:
    """Call ``fn`` repeatedly; return the per-call wall times of the measured phase in ns."""
    clock = time.perf_counter_ns
    start = clock()
    done = 0
    while done < budget.warmup_count or clock() - start < budget.warmup_s * 1e9:
        fn()
        done += 1
    samples: list[int] = []
    start = clock()
    while len(samples) < budget.max_count:
        t0 = clock()
        fn()
        samples.append(clock() - t0)
        if len(samples) >= budget.min_count and clock() - start >= budget.min_s * 1e9:
            break
    return np.asarray(samples, dtype=np.int64)


def interleave(
    a: Callable[[], object], b: Callable[[], object], budget: Budget
) -> tuple[np.ndarray, np.ndarray]:
    """Time ``a`` and ``b`` in alternation (A B B A A B ...), per call, in ns.

    For comparisons finer than the machine's drift (a wrapper's overhead of a percent or two):
    both see the same noise, caches and clock changes, and the alternating order cancels any
    advantage of going first. ``budget.min_s`` and the counts apply to the pairs.
    """
    clock = time.perf_counter_ns
    start = clock()
    done = 0
    while done < budget.warmup_count or clock() - start < budget.warmup_s * 1e9:
        a()
        b()
        done += 1
    times_a: list[int] = []
    times_b: list[int] = []
    start = clock()
    while len(times_a) < budget.max_count:
        first, second, out_first, out_second = (
            (a, b, times_a, times_b) if len(times_a) % 2 == 0 else (b, a, times_b, times_a)
        )
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        out_first.append(t1 - t0)
        out_second.append(t2 - t1)
        if len(times_a) >= budget.min_count and clock() - start >= budget.min_s * 1e9:
            break
    return np.asarray(times_a, dtype=np.int64), np.asarray(times_b, dtype=np.int64)
