"""bench.stats and bench.verdict: figures against values computed by hand, and the verdict
rules on synthetic samples (no timing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import stats, verdict


def test_latency_block_matches_hand_computed_percentiles() -> None:
    # 1..10 ms: linear interpolation between order statistics, as numpy's default.
    block = stats.latency_block([i * 1_000_000 for i in range(1, 11)])
    assert block["min"] == 1.0 and block["max"] == 10.0 and block["mean"] == 5.5
    assert block["p50"] == pytest.approx(5.5)
    assert block["p90"] == pytest.approx(9.1)  # rank 0.9 * 9 = 8.1 -> 9 + 0.1
    assert block["p95"] == pytest.approx(9.55)
    assert block["p99"] == pytest.approx(9.91)
    assert block["p99_9"] == pytest.approx(9.991)
    assert block["cv"] == pytest.approx(math.sqrt(8.25) / 5.5)
    assert block["n"] == 10


def test_summarize_keeps_the_micro_row_format() -> None:
    s = stats.summarize([2_000, 4_000], unit="us")
    assert s == {
        "min_us": 2.0,
        "mean_us": 3.0,
        "median_us": 3.0,
        "p90_us": pytest.approx(3.8),
        "p95_us": pytest.approx(3.9),
        "p99_us": pytest.approx(3.98),
        "p99_9_us": pytest.approx(3.998),
        "max_us": 4.0,
        "cv": pytest.approx(1 / 3),
        "n": 2,
    }
    with pytest.raises(ValueError, match="no samples"):
        stats.summarize([])


def test_window_rates_and_values() -> None:
    ends = [0, 100_000_000, 600_000_000, 1_200_000_000, 1_900_000_000, 2_100_000_000]
    assert stats.window_rates(ends, 1.0) == [(1.0, 3.0), (2.0, 2.0)]
    assert stats.window_rates(ends, 0.5) == [(0.5, 4.0), (1.0, 2.0), (1.5, 2.0), (2.0, 2.0)]
    values = [1, 3, 5, 10, 20, 99]
    assert stats.window_values(ends, values, 1.0) == [(1.0, 3.0), (2.0, 15.0)]
    assert stats.window_rates([], 1.0) == []


def test_downsample_keeps_percentiles() -> None:
    samples = np.random.default_rng(3).lognormal(1.0, 0.5, 100_000)
    kept = stats.downsample(samples, 4096)
    assert kept.size == 4096 and np.all(np.diff(kept) >= 0)
    for q in (50, 90, 99):
        assert np.percentile(kept, q) == pytest.approx(np.percentile(samples, q), rel=0.01)


def test_mann_whitney_matches_hand_computed_values() -> None:
    # a = [1, 2, 3], b = [4, 5, 6]: U = 0, mean 4.5, sd sqrt(3 * 3 * 7 / 12);
    # z = (4.5 - 0.5) / sd, p = erfc(z / sqrt 2)
    u, p = stats.mann_whitney([1, 2, 3], [4, 5, 6])
    z = 4.0 / math.sqrt(9 * 7 / 12)
    assert u == 0.0 and p == pytest.approx(math.erfc(z / math.sqrt(2)))
    # ties: a = [1, 2, 2], b = [2, 3]: ranks 1, 3, 3 | 3, 5 -> U = 7 - 6 = 1
    u, p = stats.mann_whitney([1, 2, 2], [2, 3])
    assert u == 1.0 and 0 < p <= 1
    assert stats.mann_whitney([5, 5], [5, 5]) == (2.0, 1.0)  # all equal: no evidence


def test_bootstrap_change_interval_covers_a_known_shift() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(100.0, 2.0, 400)
    new = rng.normal(90.0, 2.0, 400)
    point, low, high = stats.bootstrap_change(base, new, "mean")
    assert point == pytest.approx(new.mean() / base.mean() - 1)
    assert low < -0.1 + 0.005 and high > -0.1 - 0.005 and high < 0
    point, low, high = stats.bootstrap_change(base, base.copy(), "p99")
    assert point == 0.0 and low <= 0.0 <= high
    with pytest.raises(ValueError, match="unknown statistic"):
        stats.statistic("p")


def test_several_runs_a_side_are_resampled_runs_first() -> None:
    """Two runs a side, 10 % apart within each side, the sides alike: pooled frames resampled
    alone give a narrow interval, as if the sides differed for sure; drawing runs first spans
    the runs' disagreement. One run a side is the single-run bootstrap, unchanged."""
    rng = np.random.default_rng(2)
    base = [rng.normal(100.0, 2.0, 300), rng.normal(110.0, 2.0, 300)]
    new = [rng.normal(110.0, 2.0, 300), rng.normal(100.0, 2.0, 300)]
    point, low, high = stats.bootstrap_change(base, new, "mean")
    pooled = np.concatenate(base), np.concatenate(new)
    assert point == pytest.approx(pooled[1].mean() / pooled[0].mean() - 1)
    assert low < -0.05 and high > 0.05
    _, flat_low, flat_high = stats.bootstrap_change(*pooled, "mean")
    assert flat_high - flat_low < 0.02  # what one run's samples would claim
    assert stats.bootstrap_change([base[0]], [new[0]], "mean") == stats.bootstrap_change(
        base[0], new[0], "mean"
    )
    assert [r.size for r in stats.runs_of(base)] == [300, 300]
    with pytest.raises(ValueError, match="need samples in every run"):
        stats.bootstrap_change([base[0], []], new)


def test_relative_difference_ci_unchanged() -> None:
    a = [110, 120, 105, 115, 112] * 20
    b = [100, 110, 95, 105, 102] * 20
    point, low, high = stats.relative_difference_ci(a, b)
    assert point == pytest.approx(112 / 102 - 1) and low <= point <= high


def test_stability_follows_perf_analyzers_rule() -> None:
    assert verdict.stability([30.0, 50.0, 30.0, 31.0, 29.0]).ok  # only the last three count
    unstable = verdict.stability([30.0, 30.0, 36.0], [10.0, 10.0, 10.0])
    assert not unstable.ok and "fps 12.5 %" in unstable.detail
    assert not verdict.stability([30.0, 30.0, 30.0], [10.0, 10.0, 13.0]).ok  # latency too
    assert not verdict.stability([30.0, 30.0]).ok  # too few windows: run longer


def test_drift_and_minimums_and_errors() -> None:
    assert verdict.drift([30, 30, 30, 30]).ok
    assert not verdict.drift([30, 31, 30, 26, 26, 26]).ok
    duration, count = verdict.minimums(measured_s=20.0, count=299, min_s=20.0, min_count=300)
    assert duration.ok and not count.ok and "299 frames" in count.detail
    assert verdict.no_errors({"sink": 0}).ok and not verdict.no_errors({"sink": 1}).ok


def test_verdict_names_the_first_failure_and_combines_runs() -> None:
    good = verdict.verdict([verdict.Check("min_duration", True, "20 s")])
    assert good["result"] == "VALID" and good["reason"] == "all 1 checks held"
    bad = verdict.verdict(
        [verdict.Check("stable", False, "fps 20 %"), verdict.Check("no_drift", False, "x")]
    )
    assert bad["result"] == "INVALID" and bad["reason"] == "stable: fps 20 %"
    both = verdict.combine({"pipeline": good, "naive": bad})
    assert both["result"] == "INVALID" and both["reason"] == "naive: stable: fps 20 %"
    assert both["runs"] == {"pipeline": "VALID", "naive": "INVALID"}
    assert verdict.combine({"pipeline": good})["result"] == "VALID"


def test_stall_windows_name_the_stage_that_slowed() -> None:
    """Each stall window says which stage's own p99 rose the most milliseconds above its
    median window -- not the largest ratio: a small stage that tripled added less -- and a
    stage timeline of another length (not the same windows) or without calls is left out."""
    e2e = [(1.0, 8.0), (2.0, 7.5), (3.0, 30.0), (4.0, 8.2), (5.0, 19.0)]
    infer = [(1.0, 3.0), (2.0, 3.1), (3.0, 3.2), (4.0, 3.0), (5.0, 6.0)]
    output = [(1.0, 0.5), (2.0, 0.5), (3.0, 2.0), (4.0, 0.6), (5.0, 1.5)]
    idle = [(t, math.nan) for t, _ in e2e]
    found = stats.stall_windows(
        e2e, stages={"infer": infer, "output": output, "compress": idle, "short": infer[:3]}
    )
    assert [w["t_s"] for w in found["windows"]] == [3.0, 5.0]
    first, second = found["windows"]
    assert first["slowest_stage"] == {"stage": "output", "added_ms": 1.4, "ratio": 3.33}
    # output took 2.5 times its median but added 0.9 ms; inference added 2.9 ms
    assert second["slowest_stage"] == {"stage": "infer", "added_ms": 2.9, "ratio": 1.94}
    assert set(first["stages_p99_ms"]) == {"infer", "output"}
    assert found["median_window_stages_p99_ms"] == {"infer": 3.1, "output": 0.6}
    # without stage timelines the block is as before
    assert "slowest_stage" not in stats.stall_windows(e2e)["windows"][0]
