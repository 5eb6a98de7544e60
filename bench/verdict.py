"""Is a measurement worth reading? The checks behind every run's VALID/INVALID verdict.

A figure from a run that was too short, still warming up, drifting or disturbed is not a
figure, and a report must say so rather than print it with the same confidence. The rules
follow the anchors:

* **MLPerf LoadGen**: a run is valid only when it lasted at least its minimum duration *and*
  completed at least its minimum count of queries (here: frames).
* **perf_analyzer**: a measurement is stable when, over the last three measurement windows
  (5 s each, its default; shorter when a run is too short for three), throughput and latency
  each stay within ``stability`` (10 %) of their average. Like perf_analyzer, a run that is
  not stable when its planned duration ends measures on, a window at a time, up to
  ``--max-trials`` windows (:func:`extension_plan`); its figures are the whole measured
  phase's (MLPerf's way), not only the last three windows' (perf_analyzer's).
* Beyond them, for one long run: no drift (first half and second half of the windows agree
  within ``stability`` on throughput) -- a thermal throttle or a neighbour that woke up midway
  shows here even when the last three windows look calm -- and no errors.

The verdict of a report is the conjunction of its runs' verdicts; its ``reason`` names the
first failing check of each run that failed, so a reader knows what to fix (a longer
``--duration``, an idle machine).

>>> checks = [Check("min_duration", True, "20.1 s >= 20 s"), Check("stable", False, "fps 9 %")]
>>> verdict(checks)["result"], verdict(checks)["reason"]
('INVALID', 'stable: fps 9 %')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench import schema

VALID = "VALID"
INVALID = "INVALID"
STABILITY = 0.10
"""perf_analyzer's default ``--stability-percentage`` (10 %), as a fraction."""
STABLE_WINDOWS = 3
"""perf_analyzer's default number of measurement windows that must agree."""
MAX_TRIALS = 10
"""perf_analyzer's default ``--max-trials``: measurement windows a run may take in all while
it waits for the last three to agree (:func:`extension_plan`)."""
MEASUREMENT_INTERVAL_S = 5.0
"""perf_analyzer's default measurement window (``--measurement-interval 5000`` ms). The
pipeline reports 1 s windows; the rule judges them merged to this length: on the synthetic
scene, 1 s windows swing with what the frames hold (how many pass the motion gate and need
inference), which is the workload, not the measurement
(docs/decisions/0009-windows-and-measuring-on.md)."""


@dataclass(frozen=True)
class Check:
    """One rule: its name, whether it held, and the figures that say so (or why not)."""

    name: str
    ok: bool
    detail: str

    def as_dict(self) -> schema.Check:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def minimums(*, measured_s: float, count: int, min_s: float, min_count: int) -> list[Check]:
    """LoadGen's rule: the minimum duration and the minimum count, both.

    >>> [c.ok for c in minimums(measured_s=10.2, count=40, min_s=10, min_count=50)]
    [True, False]
    """
    return [
        Check(
            "min_duration",
            measured_s >= min_s,
            f"measured {measured_s:.1f} s, minimum {min_s:g} s",
        ),
        Check("min_count", count >= min_count, f"measured {count} frames, minimum {min_count}"),
    ]


def spread(values: Sequence[float]) -> float:
    """Largest distance of a value from the values' mean, as a fraction of the mean."""
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    return float(np.abs(arr - mean).max() / mean) if mean > 0 else 0.0


def merge_windows(values: Sequence[float], window_s: float, interval_s: float) -> list[float]:
    """Consecutive windows of ``window_s`` averaged into measurement windows of about
    ``interval_s`` -- fewer when the run is too short for three of them (the rule needs three);
    a trailing group shorter than the others is left out.

    >>> merge_windows([1, 2, 3, 4, 5, 6, 7], 1.0, 2.0)
    [1.5, 3.5, 5.5]
    >>> merge_windows([1, 2, 3, 4], 1.0, 5.0)   # too short for 5 s windows: 1 s each
    [1.0, 2.0, 3.0, 4.0]
    """
    per = _per_window(len(values), window_s, interval_s)
    return [float(np.mean(values[i * per : (i + 1) * per])) for i in range(len(values) // per)]


def _per_window(count: int, window_s: float, interval_s: float) -> int:
    """How many windows of ``window_s`` make one measurement window (at least 3 of them)."""
    return max(1, min(round(interval_s / window_s), count // STABLE_WINDOWS))


def stability(
    fps_windows: Sequence[float],
    latency_windows: Sequence[float] = (),
    *,
    window_s: float | None = None,
    interval_s: float = MEASUREMENT_INTERVAL_S,
    tolerance: float = STABILITY,
    last: int = STABLE_WINDOWS,
) -> Check:
    """perf_analyzer's rule: over the last ``last`` measurement windows, throughput and latency
    each within ``tolerance`` of their own average. Windows of ``window_s`` seconds (given: they
    are merged into measurement windows of ``interval_s``, perf_analyzer's default 5 s).

    >>> stability([30, 31, 30, 29.5], [10, 10.2, 9.9, 10.1]).ok
    True
    >>> check = stability([30, 31, 25, 30])
    >>> check.ok, check.detail
    (False, 'last 3 windows: fps 12.8 % from their mean (limit 10 %)')
    >>> stability([40, 20] * 8, window_s=1.0).detail    # 2 s swings, 5 s windows
    'last 3 windows of 5 s: fps 8.7 % from their mean (limit 10 %)'
    """
    which = f"last {last} windows"
    if window_s is not None:
        length = window_s * _per_window(len(fps_windows), window_s, interval_s)
        which += f" of {length:.3g} s"
        fps_windows = merge_windows(fps_windows, window_s, interval_s)
        latency_windows = merge_windows(latency_windows, window_s, interval_s)
    if len(fps_windows) < last:
        return Check(
            "stable", False, f"{len(fps_windows)} windows measured, {last} needed: run longer"
        )
    fps = spread(fps_windows[-last:])
    parts = [f"fps {fps * 100:.1f} %"]
    ok = fps <= tolerance
    if len(latency_windows) >= last:
        latency = spread(latency_windows[-last:])
        parts.append(f"latency {latency * 100:.1f} %")
        ok = ok and latency <= tolerance
    detail = f"{which}: {', '.join(parts)} from their mean (limit {tolerance * 100:g} %)"
    return Check("stable", ok, detail)


def extension_plan(duration_s: float, max_trials: int = MAX_TRIALS) -> tuple[float, float]:
    """(step s, most measured s) for a run planned at ``duration_s`` that measures on until
    :func:`stability` holds: one measurement window a step (perf_analyzer's 5 s, or a third of
    a shorter run: the rule needs three), up to ``max_trials`` windows in all -- never less
    than the plan.

    >>> extension_plan(20.0), extension_plan(30.0), extension_plan(3.0, 4)
    ((5.0, 50.0), (5.0, 50.0), (1.0, 4.0))
    """
    step = min(MEASUREMENT_INTERVAL_S, duration_s / STABLE_WINDOWS)
    return step, max(duration_s, step * max_trials)


def drift(fps_windows: Sequence[float], *, tolerance: float = STABILITY) -> Check:
    """Mean throughput of the first and the second half of the windows within ``tolerance``.

    >>> drift([30, 30, 30, 24, 24, 24]).detail
    'second half 20.0 % below the first (limit 10 %)'
    """
    if len(fps_windows) < 2:
        return Check("no_drift", False, f"{len(fps_windows)} window(s): nothing to compare")
    half = len(fps_windows) // 2
    first = float(np.mean(fps_windows[:half]))
    second = float(np.mean(fps_windows[-half:]))
    change = second / first - 1.0 if first > 0 else 0.0
    word = "above" if change >= 0 else "below"
    detail = f"second half {abs(change) * 100:.1f} % {word} the first (limit {tolerance * 100:g} %)"
    return Check("no_drift", abs(change) <= tolerance, detail)


def no_errors(errors: Mapping[str, int]) -> Check:
    """Nothing counted as an error (bad frames, sink failures...).

    >>> no_errors({"source": 0, "sink": 2}).detail
    'errors: sink 2'
    """
    bad = {k: v for k, v in errors.items() if v}
    if not bad:
        return Check("no_errors", True, "no errors")
    return Check("no_errors", False, "errors: " + ", ".join(f"{k} {v}" for k, v in bad.items()))


def verdict(checks: Sequence[Check]) -> schema.Verdict:
    """``{"result": VALID|INVALID, "reason": ..., "checks": [...]}``: the reason is the first
    failing check (or that all passed)."""
    failed = [c for c in checks if not c.ok]
    reason = f"{failed[0].name}: {failed[0].detail}" if failed else f"all {len(checks)} checks held"
    return {
        "result": INVALID if failed else VALID,
        "reason": reason,
        "checks": [c.as_dict() for c in checks],
    }


def combine(runs: Mapping[str, schema.Verdict]) -> schema.Verdict:
    """The report's verdict from its runs' verdicts: VALID when every run is, else INVALID
    with each failing run's reason.

    >>> ok = verdict([Check("a", True, "")])
    >>> bad = verdict([Check("stable", False, "fps 12 %")])
    >>> combine({"pipeline": ok, "paced": bad})["reason"]
    'paced: stable: fps 12 %'
    """
    failed = {name: v for name, v in runs.items() if v["result"] != VALID}
    if failed:
        reason = "; ".join(f"{name}: {v['reason']}" for name, v in failed.items())
        return {
            "result": INVALID,
            "reason": reason,
            "runs": {n: v["result"] for n, v in runs.items()},
        }
    return {
        "result": VALID,
        "reason": f"every run valid ({', '.join(runs)})",
        "runs": {n: v["result"] for n, v in runs.items()},
    }
