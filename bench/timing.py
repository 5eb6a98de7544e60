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
