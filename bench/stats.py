"""Summaries of raw samples: the one place that turns nanoseconds into report figures.

Latencies stay raw (int64 ns) until here; summaries carry their unit in every key
(``median_ms``, ``p99_us``...) so a reader never guesses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}


def to_unit(value_ns: float, unit: str) -> float:
    """Convert nanoseconds to ``unit`` (ns, us, ms, s)."""
    return float(value_ns) / _SCALE[unit]


def summarize(samples_ns: Sequence[int] | np.ndarray, unit: str = "ms") -> dict[str, float]:
    """min, mean, median, p90..p99.9, max, coefficient of variation and count of ``samples_ns``.

    >>> s = summarize([1_000_000, 2_000_000, 3_000_000], unit="ms")
    >>> s["median_ms"], s["min_ms"], s["max_ms"], s["n"]
    (2.0, 1.0, 3.0, 3)
    """
    arr = np.asarray(samples_ns, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no samples to summarise")
    scale = _SCALE[unit]
    out: dict[str, float] = {
        f"min_{unit}": float(arr.min() / scale),
        f"mean_{unit}": float(arr.mean() / scale),
        f"median_{unit}": float(np.median(arr) / scale),
    }
    for name, q in PERCENTILES.items():
        if name == "p50":
            continue
        out[f"{name}_{unit}"] = float(np.percentile(arr, q) / scale)
    out[f"max_{unit}"] = float(arr.max() / scale)
    mean = arr.mean()
    out["cv"] = float(arr.std() / mean) if mean > 0 else 0.0
    out["n"] = int(arr.size)
    return out


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is missing or zero."""
    if not denominator:
        return None
    return float(numerator) / float(denominator)


def relative_difference_ci(
    a_ns: Sequence[int] | np.ndarray,
    b_ns: Sequence[int] | np.ndarray,
    *,
    confidence: float = 0.95,
    rounds: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``median(a) / median(b) - 1`` and its bootstrap confidence interval, for paired samples
    (``a_ns[i]`` and ``b_ns[i]`` measured back to back, as :func:`bench.timing.interleave`
    does): pairs are resampled together, so drift shared by both cancels.

    >>> a = [110, 120, 105, 115, 112] * 20
    >>> b = [100, 110, 95, 105, 102] * 20
    >>> point, low, high = relative_difference_ci(a, b)
    >>> round(point, 3), low <= point <= high
    (0.098, True)
    """
    x = np.asarray(a_ns, dtype=np.float64)
    y = np.asarray(b_ns, dtype=np.float64)
    if x.size == 0 or x.shape != y.shape:
        raise ValueError(f"need paired samples of equal length, got {x.shape} and {y.shape}")
    point = float(np.median(x) / np.median(y) - 1.0)
    rng = np.random.default_rng(seed)
    step = max(1, rounds * x.size // 4_000_000 + 1)  # bound memory: at most ~4 M draws a block
    estimates = []
    for block in np.array_split(np.arange(rounds), step):
        idx = rng.integers(0, x.size, size=(block.size, x.size))
        estimates.append(np.median(x[idx], axis=1) / np.median(y[idx], axis=1) - 1.0)
    values = np.concatenate(estimates)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return point, float(low), float(high)
