"""``python -m bench --quick``: every key of report.json's contract, the report folder (plots,
Markdown), the summary table, and compare's plumbing on a real report (plumbing, not speed:
small frames, seconds of measuring, no micro summary)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.progress import ProgressBar
from bench.schema import SCHEMA

SMALL = """\
sources:
  - kind: synthetic
    width: 320
    height: 180
model:
  backend: onnxruntime
"""
CONTRACT = {
    "pipeline": (
        "fps",
        "frames",
        "dropped",
        "duration_s",
        "e2e_latency_ms",
        "stages",
        "bound_fps",
        "efficiency",
        "cpu_efficiency",
        "naive_fps",
        "speedup_vs_naive",
        "bytes",
        "accuracy",
    ),
    "e2e_latency_ms": ("p50", "p90", "p99", "max"),
    "stage": ("p50_ms", "p99_ms", "busy_frac"),
    "bytes": ("raw", "jpeg_all", "sent"),
    "accuracy": ("map50", "relevant_recall"),
    "multistream": (
        "streams",
        "fps",
        "cpu_efficiency",
        "fairness",
        "per_stream_fps",
        "dropped_by_stream",
    ),
}
STAGES = ("source", "preprocess", "infer", "postprocess", "filter", "compress", "sink")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    folder = tmp_path_factory.mktemp("bench")
    config = folder / "small.yaml"
    config.write_text(SMALL)
    out = folder / "report"
    argv = ["--quick", "--no-micro", "--quiet", "--config", str(config), "--out", str(out)]
    capture = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", capture)
        assert main([*argv, "--json", str(folder / "copy.json")]) == 0
    return out, json.loads((out / "report.json").read_text()), capture.getvalue()


def test_report_json_has_every_contract_key(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, report, _ = quick_run
    assert list(report)[:4] == ["schema", "env", "verdict", "pipeline"]
    assert report["schema"] == SCHEMA
    assert report["verdict"]["result"] in ("VALID", "INVALID") and report["verdict"]["reason"]
    pipeline = report["pipeline"]
    for key in CONTRACT["pipeline"]:
        assert key in pipeline, key
    for key in CONTRACT["e2e_latency_ms"]:
        assert pipeline["e2e_latency_ms"][key] > 0, key
    assert set(pipeline["stages"]) == set(STAGES)
    for name, stage in pipeline["stages"].items():
        for key in CONTRACT["stage"]:
            assert stage[key] is not None, (name, key)
    for key in CONTRACT["bytes"]:
        assert pipeline["bytes"][key] >= 0, key
    for key in CONTRACT["accuracy"]:
        assert key in pipeline["accuracy"], key
    assert pipeline["fps"] > 0 and pipeline["frames"] > 0 and pipeline["duration_s"] > 0
    assert pipeline["bound_fps"] > 0
    assert pipeline["efficiency"] == pytest.approx(pipeline["fps"] / pipeline["bound_fps"])
    assert pipeline["speedup_vs_naive"] == pytest.approx(pipeline["fps"] / pipeline["naive_fps"])
    assert isinstance(pipeline["dropped"], int)
    assert pipeline["missed_ticks"] is None  # flat out: no ticks to miss
    paced, quiet = pipeline["paced"], pipeline["quiet"]
    for key in ("rate", "e2e_latency_ms", "infer_p99_ms", "dropped"):
        assert key in paced, key
    assert isinstance(paced["missed_ticks"], int) and paced["missed_ticks"] >= 0
    assert paced["rate"] == pytest.approx(0.8 * pipeline["fps"])
    assert set(paced["stages"]) == set(STAGES) and 0 < paced["stages"]["infer"]["busy_frac"] <= 1
    limit, load = pipeline["bound"]["limit"], paced["load"]
    if limit in paced["stages"]:  # how busy the paced run kept the bounding stage
        assert load["stage"] == limit
        assert load["busy_frac"] == paced["stages"][limit]["busy_frac"]
        assert load["ratio"] == pytest.approx(load["busy_frac"] / load["expected"])
    else:
        assert load is None
    stalls = paced["stalls"]
    assert stalls["count"] == len(stalls["windows"]) and stalls["median_window_p99_ms"] > 0
    assert stalls["threshold_ms"] == pytest.approx(2 * stalls["median_window_p99_ms"])
    assert all(w["p99_ms"] > stalls["threshold_ms"] for w in stalls["windows"])
    assert quiet["quiet_fraction"] == 0.05 and quiet["frames"] == 120
    bound = pipeline["bound"]
    assert bound["cpu_fps"] == pytest.approx(bound["cores"] / bound["cpu_ms_per_frame"] * 1e3)
    assert pipeline["cpu_efficiency"] == pytest.approx(pipeline["fps"] / bound["cpu_fps"])
    assert set(report["verdict"]["runs"]) == {
        "pipeline",
        "multistream",
        "multistream paced",
        "paced",
        "quiet",
        "naive",
    }
    assert report["env"]["model"]["sha256"] and report["env"]["git_commit"]
    around = report["naive"]["segments_fps"][:2]  # the speed-up's: around the flat-out run
    assert min(around) <= pipeline["naive_fps"] <= max(around)
    assert report["naive"]["machine_drift"] >= 0
    assert report["naive"]["settings"]["segments"] == 3  # around the flat and paced runs


def test_the_multistream_runs_report_each_stream(
    quick_run: tuple[Path, dict[str, Any], str],
) -> None:
    _, report, printed = quick_run
    multi = report["multistream"]
    for key in CONTRACT["multistream"]:
        assert key in multi, key
    assert multi["streams"] == 3 and len(multi["dropped_by_stream"]) == 3
    per_stream = multi["per_stream_fps"]
    assert len(per_stream) == 3 and all(v > 0 for v in per_stream)
    assert sum(per_stream) == pytest.approx(multi["fps"], rel=0.02)
    assert multi["fairness"] == pytest.approx(min(per_stream) / max(per_stream))
    assert multi["cpu_efficiency"] == pytest.approx(multi["fps"] / multi["bound"]["cpu_fps"])
    assert multi["source"]["streams"] == 3
    paced = multi["paced"]
    assert paced["rate_per_stream"] >= 30.0
    assert paced["rate_per_stream"] >= 1.25 * multi["fps"] / 3 - 1e-9  # past capacity
    assert paced["lost_by_stream"] == [
        d + m for d, m in zip(paced["dropped_by_stream"], paced["missed_by_stream"], strict=True)
    ]
    assert paced["latency_bound_ms"] == pytest.approx(
        1e3
        * (report["multistream"]["run"]["config"]["ring_slots"] + 1)
        / min(paced["per_stream_fps"])
    )
    targets = report["targets"]
    for name in ("multistream_fairness", "multistream_paced_fairness", "multistream_paced_latency"):
        assert targets[name]["met"] in (True, False), name
    assert "== multistream" in printed and "bound.cpu_fps = cores" in printed


def test_report_keeps_the_samples_compare_needs(
    quick_run: tuple[Path, dict[str, Any], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report, _ = quick_run
    samples = report["pipeline"]["samples"]
    assert samples["fps_windows"] and samples["e2e_latency_ms"]
    assert len(samples["e2e_latency_ms"]) <= 4096
    assert "order statistics" in samples["e2e_latency_method"]
    assert report["naive"]["samples"]["fps_windows"]
    same = out / "report.json"
    result = tmp_path / "cmp.json"
    assert main(["compare", str(same), str(same), "--json", str(result)]) == 0
    figures = json.loads(result.read_text())["comparison"]["figures"]
    fps = next(f for f in figures if f["key"] == "pipeline.fps")
    assert fps["change"] == 0.0 and fps["verdict"] == "not significant"
    assert "no significant regression" in capsys.readouterr().out


def test_report_folder_and_terminal_summary(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    out, report, printed = quick_run
    for name in ("stage_latency_cdf.png", "fps_over_time.png", "latency_over_time.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    assert report["plots"] == [
        "stage_latency_cdf.png",
        "fps_over_time.png",
        "latency_over_time.png",
    ]
    markdown = (out / "report.md").read_text()
    assert "**verdict:" in markdown and "![fps_over_time.png](fps_over_time.png)" in markdown
    assert "== summary" in printed and "== pipeline stages" in printed
    assert "speedup_vs_naive" in printed and "verdict:" in printed


def test_a_run_paced_with_rate_reports_latency_not_capacity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bench pipeline --rate``: the fps is the rate the user chose, so the ratios of capacity
    are None (not a missed target), and the run is judged as the paced run is."""
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    out = tmp_path / "paced.json"
    argv = ["pipeline", "--quick", "--quiet", "--config", str(config), "--rate", "40"]
    assert main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    pipeline = report["pipeline"]
    assert pipeline["fps"] == pytest.approx(40, rel=0.2)
    assert pipeline["bound_fps"] > 40  # measured all the same: the stages alone
    assert pipeline["naive_fps"] > 0  # the naive loop ran, flat out
    assert pipeline["efficiency"] is None and pipeline["speedup_vs_naive"] is None
    assert report["targets"]["efficiency"]["met"] is None
    assert report["targets"]["speedup_vs_naive"]["met"] is None
    paced = pipeline["paced"]
    assert paced["rate"] == 40 and paced["frames"] == pipeline["frames"]
    assert set(pipeline["samples"]) == {"fps_windows"}  # the latencies once, paced's
    assert paced["samples"]["e2e_latency_ms"] and paced["samples"]["latency_windows_p99_ms"]
    assert paced["infer_p99_ms"] > 0 and "paced_p99" in report["targets"]
    assert report["targets"]["paced_drops"]["measured"] == pipeline["dropped"]
    missed = report["targets"]["paced_missed_ticks"]
    assert missed["measured"] == paced["missed_ticks"] == pipeline["missed_ticks"] >= 0
    assert missed["met"] is (paced["missed_ticks"] == 0)
    printed = capsys.readouterr().out
    assert "paced missed ticks" in printed
    assert "paced at 40 frames/s in all (--rate)" in printed
    rows = [line.split()[0] for line in printed.split("== pipeline")[0].splitlines() if line]
    assert "pipeline" in rows and "efficiency" not in rows and "speedup_vs_naive" not in rows


def test_progress_bar_draws_in_place_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.progress.REDRAW_S", 0.0)
    stream = io.StringIO()
    bar = ProgressBar([("a", 1.0), ("b", 3.0)], stream=stream, tty=True)
    bar.phase("a", "first")
    bar.phase("b", "second")
    bar.update(0.5, "halfway")
    assert bar.overall == pytest.approx((1.0 + 1.5) / 4.0)
    bar.finish()
    text = stream.getvalue()
    assert "\n" not in text and "\r[#####" in text and "halfway" in text
    log = io.StringIO()
    plain = ProgressBar([("a", 1.0)], stream=log, tty=False)
    plain.phase("a", "starting")
    plain.update(0.1)  # no message: nothing new to log
    assert log.getvalue().count("\n") == 1 and "starting" in log.getvalue()


def test_the_test_only_slowdown_is_read_from_the_environment_and_checked() -> None:
    from bench import slowdown

    assert slowdown.read_fraction({}) == 0.0 and slowdown.from_env({}) is None
    for bad in ("soon", "-1", "nan"):
        assert slowdown.read_fraction({slowdown.TEST_SLOWDOWN_ENV: bad}) == 0.0
    made = slowdown.from_env({slowdown.TEST_SLOWDOWN_ENV: "0.1"})
    assert made is not None and made.fraction == 0.1
    with pytest.raises(ValueError, match="fraction"):
        slowdown.Slowdown(-0.5)


def test_a_slowdown_stretches_each_call_by_its_fraction_on_average() -> None:
    """Calls of 4 ms slowed by half take about 6 ms each, exactly on average (what a sleep
    overshoots is carried to the next call), and it pickles for an inference process."""
    import pickle
    import time

    from bench.slowdown import Slowdown

    slow = pickle.loads(pickle.dumps(Slowdown(0.5)))
    stretched = slow("infer", lambda x: time.sleep(0.004) or x)
    start = time.perf_counter()
    assert [stretched(i) for i in range(10)] == list(range(10))
    elapsed = time.perf_counter() - start
    assert elapsed >= 10 * 0.006 * 0.95
