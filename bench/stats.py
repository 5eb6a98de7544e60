"""Summaries and tests of raw samples: the one place that turns nanoseconds into report figures.

Latencies stay raw (int64 ns) until here; summaries carry their unit in every key
(``median_ms``, ``p99_us``...) or in the key of the block that holds them
(``e2e_latency_ms: {"p50": ...}``), so a reader never guesses.

Comparing two runs (``bench compare``) needs more than two numbers: the change of a figure, an
interval for it and a test of significance from the raw samples. :func:`bootstrap_change`
resamples each run independently (percentile bootstrap; a side of several runs in two stages,
runs first, then their samples); :func:`mann_whitney` asks whether one
run's samples tend to be larger than the other's without assuming any distribution (latencies
are skewed and heavy-tailed, so a t-test would be wrong). Reports keep at most a few thousand
samples per figure: :func:`downsample` keeps evenly spaced order statistics, which preserves
every percentile to within ``1 / max_n`` and makes the bootstrap interval wider, never narrower.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from bench import schema

_SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}
Samples = Sequence[int] | Sequence[float] | np.ndarray
Statistic = Callable[[np.ndarray], np.ndarray]
"""Reduces the last axis of an array (a batch of resamples) to one value per row."""
Runs = Sequence[Samples]
"""Several runs' samples of one side of a comparison (the same code run more than once)."""


def _figures(samples_ns: Samples, unit: str) -> dict[str, float]:
    """min, mean, p50..p99.9, max in ``unit``, then cv and n: the one computation behind both
    summary styles."""
    arr = np.asarray(samples_ns, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no samples to summarise")
    scale = _SCALE[unit]
    out = {"min": float(arr.min() / scale), "mean": float(arr.mean() / scale)}
    values = np.percentile(arr, list(PERCENTILES.values()))
    out.update({name: float(v / scale) for name, v in zip(PERCENTILES, values, strict=True)})
    out["max"] = float(arr.max() / scale)
    out["cv"] = coefficient_of_variation(arr)
    out["n"] = int(arr.size)
    return out


def summarize(samples_ns: Samples, unit: str = "ms") -> dict[str, float]:
    """min, mean, median, p90..p99.9, max, coefficient of variation and count of ``samples_ns``,
    every figure's key ending in its unit (the micro suites' row format).

    >>> s = summarize([1_000_000, 2_000_000, 3_000_000], unit="ms")
    >>> s["median_ms"], s["min_ms"], s["max_ms"], s["n"]
    (2.0, 1.0, 3.0, 3)
    """
    figures = _figures(samples_ns, unit)
    out: dict[str, float] = {}
    for key, value in figures.items():
        if key in ("cv", "n"):
            out[key] = value
        else:
            out[f"{'median' if key == 'p50' else key}_{unit}"] = value
    return out


def latency_block(samples_ns: Samples, unit: str = "ms") -> schema.Latency:
    """The same figures keyed ``min, mean, p50, p90, p95, p99, p99_9, max, cv, n``: for a block
    whose own key names the unit (``e2e_latency_ms``), as report.json's contract wants.

    >>> b = latency_block([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    >>> b["p50"], b["p90"], b["max"], round(b["cv"], 4)
    (2.5, 3.7, 4.0, 0.4472)
    """
    f = _figures(samples_ns, unit)
    return {
        "min": f["min"],
        "mean": f["mean"],
        "p50": f["p50"],
        "p90": f["p90"],
        "p95": f["p95"],
        "p99": f["p99"],
        "p99_9": f["p99_9"],
        "max": f["max"],
        "cv": f["cv"],
        "n": int(f["n"]),
    }


def coefficient_of_variation(values: Samples) -> float:
    """Population standard deviation over mean (0.0 for a zero mean).

    >>> coefficient_of_variation([2.0, 4.0, 6.0]) == (8 / 3) ** 0.5 / 4
    True
    """
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean()) if arr.size else 0.0
    return float(arr.std() / mean) if mean > 0 else 0.0


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is missing or zero."""
    if not denominator:
        return None
    return float(numerator) / float(denominator)


def window_rates(end_ns: Samples, window_s: float) -> list[tuple[float, float]]:
    """Events per second in consecutive windows of ``window_s`` seconds: ``(t_s, rate)`` with
    ``t_s`` the window's end since the first event. A trailing partial window is dropped (its
    rate would be biased low).

    >>> window_rates([0, 400_000_000, 900_000_000, 1_100_000_000, 1_500_000_000], 1.0)
    [(1.0, 3.0)]
    """
    ends = np.asarray(end_ns, dtype=np.int64)
    if ends.size == 0:
        return []
    elapsed = (ends - ends.min()) / 1e9
    full = int(elapsed.max() // window_s)
    counts = np.bincount((elapsed // window_s).astype(np.int64), minlength=full + 1)[:full]
    return [((i + 1) * window_s, float(c) / window_s) for i, c in enumerate(counts)]


def window_values(end_ns: Samples, values: Samples, window_s: float) -> list[tuple[float, float]]:
    """The median of ``values`` per window of their events' ``end_ns`` (same windows as
    :func:`window_rates`; empty windows are left out)."""
    ends = np.asarray(end_ns, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    if ends.size == 0:
        return []
    index = ((ends - ends.min()) / 1e9 // window_s).astype(np.int64)
    full = int((ends.max() - ends.min()) / 1e9 // window_s)
    out = []
    for i in range(full):
        chosen = vals[index == i]
        if chosen.size:
            out.append(((i + 1) * window_s, float(np.median(chosen))))
    return out


STALL_FACTOR = 2.0
"""A window whose p99 is over this many times the median window's held a stall."""


def stall_windows(
    windows: Sequence[tuple[float, float]],
    factor: float = STALL_FACTOR,
    stages: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    infer_off_cpu: Sequence[tuple[float, float]] | None = None,
) -> schema.Stalls:
    """The windows ``(t_s, p99_ms)`` whose p99 is over ``factor`` times the median window's:
    where a run's p99 comes from a few stalls (of the machine or the pipeline) rather than from
    every window. ``count``, the ``median_window_p99_ms`` and ``threshold_ms`` they were judged
    by, and each one's ``t_s`` and ``p99_ms``.

    With ``stages`` (each stage's p99 over the same windows) each stall also has its
    ``stages_p99_ms`` and ``slowest_stage``: the stage whose p99 rose the most milliseconds
    above its own median window (``added_ms``, and ``ratio`` to that median). By time, not by
    ratio: a 0.4 ms filter that took 1.8 ms added less than a 3.2 ms inference that took 6.0.
    An ``added_ms`` far below the stall's own rise says the stages kept most of their speed and
    frames waited between them: at 80 % load a few slower inferences leave a queue that takes
    a hundred milliseconds to drain.

    >>> found = stall_windows([(1.0, 8.0), (2.0, 7.5), (3.0, 25.0), (4.0, 8.2)])
    >>> found["count"], found["windows"], round(found["median_window_p99_ms"], 2)
    (1, [{'t_s': 3.0, 'p99_ms': 25.0}], 8.1)

    >>> infer = [(1.0, 3.0), (2.0, 3.1), (3.0, 4.8), (4.0, 3.0)]
    >>> stall_windows([(1.0, 8.0), (2.0, 7.5), (3.0, 25.0), (4.0, 8.2)], stages={"infer": infer})[
    ...     "windows"][0]["slowest_stage"]
    {'stage': 'infer', 'added_ms': 1.75, 'ratio': 1.57}

    With ``infer_off_cpu`` (the ms inference spent off its core in each window) each stall
    also has its ``infer_off_cpu_ms``, beside the ``median_window_infer_off_cpu_ms``: inference
    that slowed while it kept its core was slowed by the machine; one that waited for a core
    shared it with another thread.

    >>> off = [(1.0, 0.5), (2.0, 0.75), (3.0, 31.0), (4.0, 0.5)]
    >>> found = stall_windows([(1.0, 8.0), (2.0, 7.5), (3.0, 25.0), (4.0, 8.2)], infer_off_cpu=off)
    >>> found["windows"][0]["infer_off_cpu_ms"], found["median_window_infer_off_cpu_ms"]
    (31.0, 0.625)
    """
    values = [v for _, v in windows]
    if not values:
        return {"count": 0, "median_window_p99_ms": None, "threshold_ms": None, "windows": []}
    median = float(np.median(values))
    threshold = factor * median
    aligned = {
        name: np.asarray([v for _, v in timeline], np.float64)
        for name, timeline in (stages or {}).items()
        if len(timeline) == len(windows)
    }
    medians = {name: float(np.nanmedian(v)) for name, v in aligned.items() if np.isfinite(v).any()}
    off_cpu = (
        [v for _, v in infer_off_cpu]
        if infer_off_cpu is not None and len(infer_off_cpu) == len(windows)
        else None
    )
    found: list[schema.StallWindow] = []
    for i, (t, v) in enumerate(windows):
        if not v > threshold:
            continue
        stall: schema.StallWindow = {"t_s": float(t), "p99_ms": float(v)}
        if medians:
            here = {name: float(aligned[name][i]) for name in medians}
            stall["stages_p99_ms"] = here
            added = {
                name: here[name] - medians[name]
                for name in medians
                if medians[name] > 0 and math.isfinite(here[name])
            }
            if added:
                slowest = max(added, key=added.__getitem__)
                stall["slowest_stage"] = {
                    "stage": slowest,
                    "added_ms": round(added[slowest], 3),
                    "ratio": round(here[slowest] / medians[slowest], 2),
                }
        if off_cpu is not None:
            stall["infer_off_cpu_ms"] = float(off_cpu[i])
        found.append(stall)
    out: schema.Stalls = {
        "count": len(found),
        "median_window_p99_ms": median,
        "threshold_ms": threshold,
        "windows": found,
    }
    if medians:
        out["median_window_stages_p99_ms"] = medians
    if off_cpu is not None:
        out["median_window_infer_off_cpu_ms"] = float(np.median(off_cpu))
    return out


def downsample(samples: Samples, max_n: int) -> np.ndarray:
    """At most ``max_n`` evenly spaced order statistics of ``samples`` (sorted): every
    percentile survives to within ``1 / max_n``; fewer samples come back unchanged (sorted).

    >>> downsample([5, 1, 4, 2, 3], 10).tolist()
    [1, 2, 3, 4, 5]
    >>> downsample(list(range(1000)), 4).tolist()
    [125, 375, 625, 875]
    """
    arr = np.sort(np.asarray(samples))
    if arr.size <= max_n:
        return arr
    ranks = ((np.arange(max_n) + 0.5) * arr.size / max_n).astype(np.int64)
    return arr[ranks]


RESAMPLE_BUDGET = 4_000_000
"""Indices drawn at once by a bootstrap: its memory stays bounded whatever the sample count."""


def _resample_blocks(
    rng: np.random.Generator, n: int, rounds: int, budget: int = RESAMPLE_BUDGET
) -> Iterator[np.ndarray]:
    """Index arrays ``(k, n)`` drawn with replacement, ``rounds`` rows in all, in blocks of at
    most ``budget`` draws so memory stays bounded whatever ``n``."""
    per_block = max(1, budget // max(1, n))
    for start in range(0, rounds, per_block):
        yield rng.integers(0, n, size=(min(per_block, rounds - start), n))


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def relative_difference_ci(
    a_ns: Samples,
    b_ns: Samples,
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
    values = np.concatenate(
        [
            np.median(x[idx], axis=1) / np.median(y[idx], axis=1) - 1.0
            for idx in _resample_blocks(rng, x.size, rounds)
        ]
    )
    return (point, *_interval(values, confidence))


def statistic(name: str) -> Statistic:
    """A :data:`Statistic` by name: ``mean``, ``median`` or a percentile ``p90``, ``p99``,
    ``p99_9``... (what ``bench compare`` computes per figure).

    >>> statistic("p90")(np.arange(11.0)[None, :]).tolist(), statistic("mean")(np.ones((2, 3)))
    ([9.0], array([1., 1.]))
    """
    if name == "mean":
        return lambda x: np.asarray(np.mean(x, axis=-1))
    if name == "median":
        return lambda x: np.asarray(np.median(x, axis=-1))
    match = re.fullmatch(r"p(\d+)(?:_(\d+))?", name)
    if not match:
        raise ValueError(f"unknown statistic {name!r}: use mean, median or pNN (p99, p99_9)")
    q = float(f"{match[1]}.{match[2] or 0}")
    return lambda x: np.asarray(np.percentile(x, q, axis=-1))


def bootstrap_change(
    base: Samples | Runs,
    new: Samples | Runs,
    reduce: Statistic | str = "mean",
    *,
    confidence: float = 0.95,
    rounds: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``reduce(new) / reduce(base) - 1`` and its percentile-bootstrap interval, for two
    independent sides (each resampled on its own, unlike :func:`relative_difference_ci`).

    A side is one run's samples or several runs' (:func:`runs_of`); several runs are pooled
    and resampled in two stages (:func:`_resampled`), so the interval carries their spread.

    >>> base = [100.0, 101.0, 99.0, 100.5, 99.5] * 10
    >>> point, low, high = bootstrap_change(base, [x * 0.9 for x in base])
    >>> round(point, 3), low < -0.1 < high < 0
    (-0.1, True)
    """
    rng = np.random.default_rng(seed)
    point, ratios = _ratio_and_resampled(base, new, reduce, rng, rounds)
    return (point - 1.0, *_interval(ratios - 1.0, confidence))


def bootstrap_change_vs_control(
    base: Samples | Runs,
    new: Samples | Runs,
    control_base: Samples | Runs,
    control_new: Samples | Runs,
    *,
    reduce: Statistic | str = "mean",
    control_reduce: Statistic | str = "mean",
    confidence: float = 0.95,
    rounds: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """A throughput's change once a control's is divided out: ``(reduce(new) / reduce(base)) /
    (control(new) / control(base)) - 1``, and its percentile-bootstrap interval with all four
    sides resampled on their own (so a noisy control widens it). ``bench compare`` uses it
    to take the machine's own change in speed (the naive loop's) out of the pipeline's fps.

    >>> base, control = [100.0, 101.0, 99.0, 100.5, 99.5] * 10, [50.0, 51.0, 49.0] * 5
    >>> point, low, high = bootstrap_change_vs_control(
    ...     base, [x * 1.08 for x in base], control, [x * 1.2 for x in control])
    >>> round(point, 3), low < point < high < 0
    (-0.1, True)
    """
    rng = np.random.default_rng(seed)
    point, ratios = _ratio_and_resampled(base, new, reduce, rng, rounds)
    c_point, c_ratios = _ratio_and_resampled(control_base, control_new, control_reduce, rng, rounds)
    return (point / c_point - 1.0, *_interval(ratios / c_ratios - 1.0, confidence))


def runs_of(side: Samples | Runs) -> list[np.ndarray]:
    """One side of a comparison as a list of runs: one run's samples (numbers), or several
    runs' (a sequence of sequences), each at least one sample.

    >>> [r.tolist() for r in runs_of([1, 2, 3])], [r.tolist() for r in runs_of([[1, 2], [3]])]
    ([[1.0, 2.0, 3.0]], [[1.0, 2.0], [3.0]])
    """
    items = [side] if isinstance(side, np.ndarray) and side.ndim == 1 else list(side)
    several = bool(items) and np.ndim(items[0]) == 1
    runs = [np.asarray(r, dtype=np.float64) for r in (items if several else [items])]
    if any(r.size == 0 for r in runs):
        raise ValueError(f"need samples in every run, got runs of {[r.size for r in runs]}")
    return runs


def _resampled(
    side: Samples | Runs, fn: Statistic, rng: np.random.Generator, rounds: int
) -> tuple[float, np.ndarray]:
    """The statistic of a side's samples (its runs pooled) and ``rounds`` bootstrap replicates.

    One run: its samples drawn with replacement. Several runs of the same code: two stages, as
    for clustered data (a hierarchical bootstrap) -- draw as many runs as there are, with
    replacement, then draw each drawn run's samples. Samples within a run share that run's
    state of the machine (its load, the host's speed in those minutes), so resampling the
    pooled samples alone would make an interval as narrow as one run's while the runs
    themselves disagree; drawing runs first puts their disagreement in the interval."""
    runs = runs_of(side)
    pooled = np.concatenate(runs)
    point = float(fn(pooled[None, :])[0])
    if len(runs) == 1:
        blocks = _resample_blocks(rng, pooled.size, rounds)
        return point, np.concatenate([fn(pooled[i]) for i in blocks])
    # Rounds that drew the same runs (in any order) pool as many samples: resample them as
    # one block. Two runs give three such draws, three runs ten.
    offsets = np.cumsum([0] + [run.size for run in runs])
    drawn = np.sort(rng.integers(0, len(runs), (rounds, len(runs))), axis=1)
    replicates = np.empty(rounds)
    for choice in np.unique(drawn, axis=0):
        rows = np.flatnonzero((drawn == choice).all(axis=1))
        per_block = max(1, RESAMPLE_BUDGET // int(sum(runs[j].size for j in choice)))
        for start in range(0, rows.size, per_block):
            block = rows[start : start + per_block]
            index = np.hstack(
                [
                    offsets[j] + rng.integers(0, runs[j].size, (block.size, runs[j].size))
                    for j in choice
                ]
            )
            replicates[block] = fn(pooled[index])
    return point, replicates


def _ratio_and_resampled(
    base: Samples | Runs,
    new: Samples | Runs,
    reduce: Statistic | str,
    rng: np.random.Generator,
    rounds: int,
) -> tuple[float, np.ndarray]:
    """``reduce(new) / reduce(base)`` and ``rounds`` of it with each side resampled on its own."""
    fn = statistic(reduce) if isinstance(reduce, str) else reduce
    point_x, stat_x = _resampled(base, fn, rng, rounds)
    point_y, stat_y = _resampled(new, fn, rng, rounds)
    return point_y / point_x, stat_y / stat_x


def mann_whitney(a: Samples, b: Samples) -> tuple[float, float]:
    """Mann-Whitney U of ``a`` (the count of pairs where ``a`` is larger, ties counting half)
    and its two-sided p-value from the normal approximation with tie and continuity
    corrections (as ``scipy.stats.mannwhitneyu(method="asymptotic")``; exact enough from
    about 8 samples a side, and a comparison has hundreds).

    >>> u, p = mann_whitney([1, 2, 3], [4, 5, 6])
    >>> u, round(p, 4)
    (0.0, 0.0809)
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError(f"need samples on both sides, got {n1} and {n2}")
    both = np.concatenate([x, y])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1  # 1-based rank of each distinct value's first
    average_rank = first_rank + (counts - 1) / 2.0
    ranks = average_rank[inverse]
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    n = n1 + n2
    tie_term = float((counts**3 - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:  # every value equal: no evidence either way
        return u, 1.0
    mean = n1 * n2 / 2.0
    z = (abs(u - mean) - 0.5) / math.sqrt(variance)
    return u, float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0))))
