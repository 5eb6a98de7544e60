"""``python -m bench compare``: synthetic reports with controlled samples (fast, deterministic):
A/A passes, an injected 10 % slowdown is flagged, noise and small changes pass, other machines
and models are refused without --force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import compare
from bench.cli import main
from bench.schema import SCHEMA

ENV: dict[str, Any] = {
    "cpu": {"model": "Test CPU", "logical_cores": 2, "usable_cores": 2},
    "cgroup": {"cpu_quota_cores": None},
    "device": {"gpus": [], "jetson": None},
    "model": {"sha256": "ab" * 32},
}


def make_report(
    *,
    seed: int,
    fps: float = 100.0,
    slowdown: float = 1.0,
    noise: float = 0.02,
    paced_load: float = 1.0,
    **env: Any,
) -> dict[str, Any]:
    """A report whose samples come from known distributions: ``slowdown`` divides the fps and
    multiplies every latency; ``paced_load`` multiplies the paced latencies only (a paced run
    that landed at a heavier load, as a shared machine's runs of the same code do)."""
    rng = np.random.default_rng(seed)
    windows = rng.normal(fps / slowdown, fps * noise, 20)
    e2e = rng.lognormal(np.log(20.0), 0.25, 2000) * slowdown
    paced = rng.lognormal(np.log(8.0), 0.2, 1000) * slowdown * paced_load
    naive = rng.normal(50.0, 1.0, 10)
    return {
        "schema": SCHEMA,
        "env": {**ENV, **env},
        "pipeline": {
            "fps": float(windows.mean()),
            "e2e_latency_ms": {"p50": float(np.median(e2e)), "p99": float(np.percentile(e2e, 99))},
            "efficiency": 0.96,
            "naive_fps": float(naive.mean()),
            "samples": {"fps_windows": windows.tolist(), "e2e_latency_ms": e2e.tolist()},
            "paced": {
                "e2e_latency_ms": {
                    "p50": float(np.median(paced)),
                    "p99": float(np.percentile(paced, 99)),
                },
                "samples": {
                    "e2e_latency_ms": paced.tolist(),
                    "latency_windows_p99_ms": window_p99(paced),
                },
            },
        },
        "naive": {"fps": float(naive.mean()), "samples": {"fps_windows": naive.tolist()}},
    }


def window_p99(latencies: np.ndarray, windows: int = 10) -> list[float]:
    """Each window's p99, the windows being consecutive stretches of the run's frames."""
    return [float(np.percentile(w, 99)) for w in np.array_split(latencies, windows)]


def write(path: Path, report: dict[str, Any]) -> Path:
    path.write_text(json.dumps(report))
    return path


def test_a_a_reports_no_regression() -> None:
    result = compare.compare(make_report(seed=1), make_report(seed=2))["comparison"]
    assert result["result"] == "OK" and result["regressed"] == []
    fps = next(r for r in result["figures"] if r["key"] == "pipeline.fps")
    low, high = fps["ci95"]
    assert low <= fps["change"] <= high and abs(fps["change"]) < 0.05
    assert fps["n"] == [20, 20] and 0 <= fps["p_value"] <= 1


def test_injected_ten_percent_slowdown_is_flagged(tmp_path: Path) -> None:
    """fps is gated at 5 %, latency at 10 %: a 10 % slowdown fails on fps; latency fails
    once it rose more than its own threshold."""
    base = write(tmp_path / "base.json", make_report(seed=1))
    slow = write(tmp_path / "slow.json", make_report(seed=2, slowdown=1.1))
    out = tmp_path / "cmp.json"
    assert main(["compare", str(base), str(slow), "--json", str(out)]) == 1
    result = json.loads(out.read_text())["comparison"]
    assert "pipeline fps" in result["regressed"]
    assert result["max_regression_pct"] == 5 and result["max_latency_regression_pct"] == 10
    fps = next(r for r in result["figures"] if r["key"] == "pipeline.fps")
    assert fps["change"] == pytest.approx(1 / 1.1 - 1, abs=0.02) and fps["ci95"][1] < 0
    assert fps["threshold_pct"] == 5
    # the same change under thresholds above it is not a regression
    above = ["--max-regression", "15", "--max-latency-regression", "15"]
    assert main(["compare", str(base), str(slow), *above]) == 0
    # latency at 5 % too: the paced figures fail as well; the flat-out ones are never gated
    assert main(["compare", str(base), str(slow), "--max-latency-regression", "5"]) == 1
    strict = compare.compare(
        make_report(seed=1), make_report(seed=2, slowdown=1.1), max_latency_regression=5
    )["comparison"]
    assert {"paced e2e p50 ms", "paced e2e p99 ms"} <= set(strict["regressed"])
    flat = next(r for r in strict["figures"] if r["key"] == "pipeline.e2e_latency_ms.p50")
    assert flat["verdict"] == "worse (not gated)" and flat["threshold_pct"] == 5
    # latency that rose beyond 10 % fails at the default
    slower = compare.compare(make_report(seed=1), make_report(seed=2, slowdown=1.2))["comparison"]
    assert {"paced e2e p50 ms", "paced e2e p99 ms"} <= set(slower["regressed"])


def _with_paced_latency(report: dict[str, Any], scale: float) -> dict[str, Any]:
    paced = report["pipeline"]["paced"]
    frames = np.asarray(paced["samples"]["e2e_latency_ms"]) * scale
    paced["samples"]["e2e_latency_ms"] = frames.tolist()
    paced["e2e_latency_ms"]["p50"] = float(np.median(frames))
    return report


def test_a_latency_median_that_moved_as_between_same_code_runs_passes() -> None:
    """Measured A/A: the paced p50 moved +6.0 % (significant) with fps and the control still.
    That passes at the default latency threshold and fails at 5 %."""
    shifted = _with_paced_latency(make_report(seed=2), 1.06)
    result = compare.compare(make_report(seed=1), shifted)["comparison"]
    p50 = next(r for r in result["figures"] if r["figure"] == "paced e2e p50 ms")
    assert p50["verdict"] == "worse (small)" and result["regressed"] == []
    strict = compare.compare(make_report(seed=1), shifted, max_latency_regression=5)
    assert strict["comparison"]["regressed"] == ["paced e2e p50 ms"]


def test_significant_but_small_or_large_but_noisy_changes_pass() -> None:
    small = compare.compare(make_report(seed=1), make_report(seed=2, slowdown=1.02))
    assert small["comparison"]["regressed"] == []
    noisy = compare.compare(
        make_report(seed=1, noise=0.3), make_report(seed=2, noise=0.3, slowdown=1.06)
    )
    fps = next(r for r in noisy["comparison"]["figures"] if r["key"] == "pipeline.fps")
    assert fps["verdict"] == compare.NOT_SIGNIFICANT


def test_improvement_and_controls_never_fail() -> None:
    faster = compare.compare(make_report(seed=1), make_report(seed=2, slowdown=0.8))
    assert faster["comparison"]["regressed"] == []
    fps = next(r for r in faster["comparison"]["figures"] if r["key"] == "pipeline.fps")
    assert fps["verdict"] == compare.IMPROVED
    new = make_report(seed=2)
    new["naive"]["samples"]["fps_windows"] = [
        v * 0.5 for v in new["naive"]["samples"]["fps_windows"]
    ]
    control = compare.compare(make_report(seed=1), new)["comparison"]
    naive = next(r for r in control["figures"] if r["key"] == "naive.fps")
    assert naive["verdict"] == "worse (not gated)" and control["regressed"] == []


def _machine(report: dict[str, Any], slowdown: float) -> dict[str, Any]:
    """``report`` as if the machine itself were ``slowdown`` times slower: the control too."""
    windows = report["naive"]["samples"]["fps_windows"]
    report["naive"]["samples"]["fps_windows"] = [v / slowdown for v in windows]
    report["pipeline"]["naive_fps"] /= slowdown
    report["naive"]["fps"] /= slowdown
    return report


def test_a_machine_that_slowed_down_is_not_a_regression() -> None:
    """The same code on a machine 7 % slower: the control fell as much, so nothing is gated."""
    drifted = _machine(make_report(seed=2, slowdown=1.07), 1.07)
    result = compare.compare(make_report(seed=1), drifted)["comparison"]
    assert result["regressed"] == [] and result["machine_change"] < -0.05
    fps = next(r for r in result["figures"] if r["key"] == "pipeline.fps")
    assert fps["verdict"] == compare.MACHINE and abs(fps["change_vs_control"]) < 0.03
    assert "the control changed by" in compare.render({"comparison": result})


def test_a_regression_larger_than_the_machines_drift_still_fails() -> None:
    worse = _machine(make_report(seed=2, slowdown=1.2), 1.05)
    result = compare.compare(make_report(seed=1), worse)["comparison"]
    assert "pipeline fps" in result["regressed"]
    fps = next(r for r in result["figures"] if r["key"] == "pipeline.fps")
    assert fps["change_vs_control"] == pytest.approx(1.05 / 1.2 - 1, abs=0.03)
    faster = _machine(make_report(seed=2, slowdown=1.1), 0.9)  # a control that sped up
    assert "pipeline fps" in compare.compare(make_report(seed=1), faster)["comparison"]["regressed"]


def test_a_slowdown_hidden_by_a_machine_that_sped_up_is_flagged() -> None:
    """10 % slower code on a machine 20 % faster: fps rose 9 %, but the control rose 20 %."""
    hidden = _machine(make_report(seed=2, slowdown=1.1 / 1.2), 1 / 1.2)
    result = compare.compare(make_report(seed=1), hidden)["comparison"]
    fps = next(r for r in result["figures"] if r["key"] == "pipeline.fps")
    assert fps["change"] > 0.05  # on its own, an improvement
    assert fps["verdict"] == compare.REGRESSED and fps["accused_by_control"] is True
    assert fps["change_vs_control"] == pytest.approx(1 / 1.1 - 1, abs=0.03)
    low, high = fps["ci95_vs_control"]
    assert low < fps["change_vs_control"] < high < 0
    assert result["regressed"] == ["pipeline fps"]
    text = compare.render({"comparison": result})
    adjusted = compare._pct(fps["change_vs_control"])
    assert f"pipeline fps: {adjusted}" in text and "once the control's change is taken out" in text
    assert "REGRESSION (vs control)" in text
    # The same code on that faster machine: the control explains the gain, nothing is accused.
    same = compare.compare(
        make_report(seed=1), _machine(make_report(seed=2, slowdown=1 / 1.2), 1 / 1.2)
    )
    assert same["comparison"]["regressed"] == []
    # Latency is only ever excused: paced latency that held while the machine sped up passes.
    paced = next(r for r in same["comparison"]["figures"] if r["key"].startswith("pipeline.paced"))
    assert paced["verdict"] != compare.REGRESSED


def test_other_machine_or_model_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write(tmp_path / "a.json", make_report(seed=1))
    other_cpu = {**ENV["cpu"], "model": "Other CPU"}
    other = write(tmp_path / "b.json", make_report(seed=2, cpu=other_cpu))
    assert main(["compare", str(base), str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different machines" in err[0] and "--force" in err[0]
    assert main(["compare", str(base), str(other), "--force"]) == 0
    assert "warning (--force): different machines" in capsys.readouterr().out
    model = write(tmp_path / "c.json", make_report(seed=2, model={"sha256": "cd" * 32}))
    assert main(["compare", str(base), str(model)]) == 2
    assert "different models" in capsys.readouterr().err


def test_a_worse_paced_latency_shows_the_paced_loads() -> None:
    """The paced runs' loads are printed beside a paced latency that got worse: the figure
    the latency follows, which the machine moves between a flat-out run and its paced run."""
    base, slower = make_report(seed=1), make_report(seed=2, slowdown=1.3)
    base["pipeline"]["paced"]["load"] = {"ratio": 1.048}
    slower["pipeline"]["paced"]["load"] = {"ratio": 1.121}
    result = compare.compare(base, slower)
    assert result["comparison"]["paced_load"] == [1.048, 1.121]
    assert "paced load 1.048 -> 1.121 (+7.0 %)" in compare.render(result)
    faster = make_report(seed=2, slowdown=0.8)
    faster["pipeline"]["paced"]["load"] = {"ratio": 1.121}
    improved = compare.compare(base, faster)  # paced latency got better: no line
    assert "paced load" not in compare.render(improved)


def test_a_worse_paced_latency_at_a_heavier_load_is_shown_not_gated() -> None:
    """Same code, the new paced run 19 % heavier (the H200 host's runs: loads 0.846 and 1.010):
    its paced latency is worse, shown, not gated. At the same load within 5 %, or a lighter
    one, the same change is a regression: the load only excuses what it can explain."""
    base, worse = make_report(seed=1), make_report(seed=2, paced_load=1.3)
    base["pipeline"]["paced"]["load"] = {"ratio": 0.846}
    for load, gated in ((1.010, False), (0.870, True), (0.700, True)):
        worse["pipeline"]["paced"]["load"] = {"ratio": load}
        result = compare.compare(base, worse)["comparison"]
        verdicts = {r["figure"]: r["verdict"] for r in result["figures"]}
        paced = (verdicts["paced e2e p50 ms"], verdicts["paced e2e p99 ms"])
        assert paced == ((compare.REGRESSED,) * 2 if gated else (compare.HEAVIER_LOAD,) * 2)
        assert result["result"] == ("REGRESSION" if gated else "OK"), load
    worse["pipeline"]["paced"]["load"] = {"ratio": 0.870}
    assert "the same load within 5 %" in compare.render(compare.compare(base, worse))


def test_other_workloads_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run paced with --rate delivers the rate: its fps is no capacity to compare with a
    flat-out run's; nor is a run of two streams one of one stream."""

    def run(rate: float | None, streams: int = 1, seed: int = 1) -> dict[str, Any]:
        report = make_report(seed=seed)
        report["pipeline"]["run"] = {"config": {"rate": rate, "sources": [{}] * streams}}
        return report

    base = write(tmp_path / "a.json", run(None))
    paced = write(tmp_path / "b.json", run(40.0, seed=2))
    assert main(["compare", str(base), str(paced)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different workloads" in err[0]
    assert "pacing: flat out vs 40 frames/s a stream" in err[0] and "--force" in err[0]
    assert main(["compare", str(base), str(paced), "--force"]) in (0, 1)
    assert "warning (--force): different workloads" in capsys.readouterr().out
    two = run(None, streams=2, seed=2)
    assert compare.check_comparable(run(None), two) == ["different workloads (streams: 1 vs 2)"]
    assert compare.check_comparable(run(40.0), run(40.0, seed=2)) == []
    assert compare.check_comparable(make_report(seed=1), run(40.0)) == []  # not recorded: no say


def test_several_runs_a_side_put_the_run_to_run_spread_in_the_interval() -> None:
    """Runs of the same code whose paced run landed at different loads (+15 % latency, as
    measured between back-to-back runs on the shared VM): one run a side, the pair "regresses";
    two runs a side, the interval draws runs first and spans their disagreement. A 10 %
    slowdown of both new runs is still flagged."""
    base = [make_report(seed=1), make_report(seed=2, paced_load=1.15)]
    new = [make_report(seed=3, paced_load=1.15), make_report(seed=4)]
    single = compare.compare(base[0], new[0])["comparison"]
    assert single["regressed"] == ["paced e2e p50 ms", "paced e2e p99 ms"]
    assert single["runs"] == [1, 1]

    pooled = compare.compare(base, new)["comparison"]
    assert pooled["regressed"] == [] and pooled["runs"] == [2, 2]
    row = next(r for r in pooled["figures"] if r["figure"] == "paced e2e p50 ms")
    assert row["ci95"][0] < -0.05 and row["ci95"][1] > 0.05  # the runs' spread, both ways
    assert row["n"] == [2000, 2000]
    fps = next(r for r in pooled["figures"] if r["figure"] == "pipeline fps")
    assert fps["base"] == pytest.approx(np.mean([r["pipeline"]["fps"] for r in base]))
    assert "base 2 run(s), new 2" in compare.render(compare.compare(base, new))

    slower = [make_report(seed=5, slowdown=1.1, paced_load=1.15), make_report(seed=6, slowdown=1.1)]
    assert compare.compare(base, slower)["comparison"]["regressed"] == ["pipeline fps"]


def test_folders_of_runs_compare_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, new = tmp_path / "base", tmp_path / "new"
    for folder in (base, new / "1", new / "2"):
        folder.mkdir(parents=True)
    write(base / "1.json", make_report(seed=1))
    invalid = make_report(seed=2)
    invalid["verdict"] = {"result": "INVALID", "reason": "too short"}
    write(base / "2.json", invalid)
    write(new / "1" / "report.json", make_report(seed=3))
    write(new / "2" / "report.json", make_report(seed=4))
    assert [r["pipeline"]["fps"] for r in compare.load_side(base)] == [
        make_report(seed=s)["pipeline"]["fps"] for s in (1, 2)
    ]
    out_json = tmp_path / "c.json"
    assert main(["compare", str(base), str(new), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "base 2 run(s), new 2" in out
    assert "warning: the base run 2 of 2 report is INVALID: too short" in out
    assert json.loads(out_json.read_text())["comparison"]["runs"] == [2, 2]

    write(base / "3.json", make_report(seed=1))  # the same run twice
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    write(other / "1.json", make_report(seed=7))
    write(other / "2.json", make_report(seed=8, cpu={"model": "Other CPU"}))
    for args, cause in (
        ([str(base), str(new)], "is the same run as"),
        ([str(empty), str(new)], "holds no report"),
        ([str(other), str(new)], "different machines"),
    ):
        assert main(["compare", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and cause in err[0], (args, err)


def test_bad_inputs_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "a.json", make_report(seed=1))
    not_json = tmp_path / "x.json"
    not_json.write_text("{")
    other_schema = write(tmp_path / "s.json", {"schema": "other/1"})
    for args in (
        [str(good), str(tmp_path / "missing.json")],
        [str(good), str(not_json)],
        [str(good), str(other_schema)],
        [str(good), str(good), "--max-regression", "-1"],
    ):
        assert main(["compare", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bench: error:"), (args, err)


def test_point_figures_without_samples_are_shown_not_gated() -> None:
    a = {"schema": SCHEMA, "env": ENV, "scenario": {"p90_ms": 2.0, "samples_per_second": 500.0}}
    b = {"schema": SCHEMA, "env": ENV, "scenario": {"p90_ms": 3.0, "samples_per_second": 300.0}}
    result = compare.compare(a, b)["comparison"]
    assert result["regressed"] == []
    assert {r["verdict"] for r in result["figures"]} == {"point only"}
    assert "scenario p90 ms" in compare.render(compare.compare(a, b))


def test_paced_p99_is_judged_on_windows_not_on_frames() -> None:
    """A machine a little slower (2 %: the rank test on 3000 frames calls that significant)
    and one stall in one window lift a run's p99 by more than the threshold; resampled frame by
    frame, that is a "regression". The windows say it was one window: not significant."""
    base = make_report(seed=1)
    new = make_report(seed=2)
    rng = np.random.default_rng(3)
    base_paced = rng.lognormal(np.log(8.0), 0.2, 3000)
    paced = rng.lognormal(np.log(8.0), 0.2, 3000) * 1.02
    paced[1350:1380] = np.sort(paced)[-30:] * 1.3  # a burst of slow frames, all in window 5
    for report, samples in ((base, base_paced), (new, paced)):
        block = report["pipeline"]["paced"]
        block["samples"] = {
            "e2e_latency_ms": samples.tolist(),
            "latency_windows_p99_ms": window_p99(samples),
        }
        block["e2e_latency_ms"] = {
            "p50": float(np.median(samples)),
            "p99": float(np.percentile(samples, 99)),
        }
    result = compare.compare(base, new)["comparison"]
    p99 = next(r for r in result["figures"] if r["key"] == "pipeline.paced.e2e_latency_ms.p99")
    assert p99["new"] / p99["base"] - 1 > 0.05  # the run's own p99 did move
    assert p99["n"] == [10, 10] and p99["verdict"] == compare.NOT_SIGNIFICANT
    by_frames = compare.Figure(
        "p99 on frames",
        "pipeline.paced.e2e_latency_ms.p99",
        "pipeline.paced.samples.e2e_latency_ms",
        "p99",
        False,
    )
    frames = compare.compare_figure(by_frames, base, new, compare.DEFAULT_MAX_REGRESSION)
    assert frames is not None and frames["verdict"] == compare.REGRESSED


def _with_paced_windows(report: dict[str, Any], windows: list[float]) -> dict[str, Any]:
    report["pipeline"]["paced"]["samples"]["latency_windows_p99_ms"] = windows
    report["pipeline"]["paced"]["e2e_latency_ms"]["p99"] = float(np.percentile(windows, 90))
    return report


def test_paced_p99_is_the_median_window_so_stall_windows_do_not_move_it() -> None:
    """Runs of the same code differ in how many stall windows they met (measured: one to four
    windows of 15-25 ms among 29 of 6-9 ms): the mean of the windows moves 10-20 % with them,
    the median does not. A slower pipeline moves every window, and is caught."""
    rng = np.random.default_rng(11)
    quiet = rng.normal(7.5, 0.6, 29)
    stalls = quiet.copy()
    stalls[[4, 11, 17, 27]] = [18.0, 15.4, 20.0, 13.8]
    base = _with_paced_windows(make_report(seed=1), quiet.tolist())
    new = _with_paced_windows(make_report(seed=2), stalls.tolist())
    assert np.mean(stalls) / np.mean(quiet) - 1 > 0.10  # what the mean would have said
    result = compare.compare(base, new)
    row = next(r for r in result["comparison"]["figures"] if r["figure"] == "paced e2e p99 ms")
    assert row["statistic"] == "median" and row["verdict"] != compare.REGRESSED
    assert row["judged"] == [pytest.approx(np.median(quiet)), pytest.approx(np.median(stalls))]
    assert abs(row["change"]) < 0.05
    assert "the change is of the median of latency_windows_p99_ms" in compare.render(result)
    slower = _with_paced_windows(make_report(seed=2), (quiet * 1.12).tolist())
    row = next(
        r
        for r in compare.compare(base, slower)["comparison"]["figures"]
        if r["figure"] == "paced e2e p99 ms"
    )
    assert row["verdict"] == compare.REGRESSED and row["change"] == pytest.approx(0.12)
