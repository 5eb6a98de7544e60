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
