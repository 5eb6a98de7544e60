"""``python -m bench``: the JSON contract CI and dashboards read, exit codes, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import schema
from bench.cli import build_parser, main, strict_failure
from bench.schema import SCHEMA
from tests.test_bench_publish import promtool_check_metrics
from tests.test_bench_report import SMALL


def test_micro_ring_quick_run_writes_the_headline_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert main(["micro", "--only", "ring", "--quick", "--quiet", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["schema"] == SCHEMA
    assert report["env"]["cpu"]["logical_cores"] >= 1
    ring = report["micro"]["ring"]
    for case in ("1080p", "480p"):
        for key in ("ratio_vs_mp_queue", "ratio_vs_pyzmq", "ratio_vs_shm_pipe"):
            assert ring[case][key] > 0, (case, key)
        assert ring[case]["handoff_p99_us"] > 0
        names = [row["name"] for row in ring[case]["rows"]]
        assert names[0] == "edgeloop FrameRing" and len(names) == 5
        assert ring[case]["wake_floor_p99_us"] > 0
    printed = capsys.readouterr().out
    assert "== micro.ring.1080p" in printed and "multiprocessing.Queue" in printed


def test_unknown_suite_fails_with_one_line_cause(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["micro", "--only", "nope", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown micro suite" in err[0]


def test_help_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "micro", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "--json" in result.stdout


@pytest.mark.parametrize("command", [[], ["micro"], ["pipeline"], ["scenario"], ["compare"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--json" in out and "--quiet" in out


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a command line refused with status 2 printed on stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--nope"],
        ["micro", "--threads"],
        ["pipeline", "--streams", "two"],
        ["pipeline", "--streams", "0"],
        ["pipeline", "--infer-workers", "0"],
        ["pipeline", "--duration", "0"],
        ["--duration", "-5"],
        ["scenario", "server", "--target-qps", "-1"],
        ["pipeline", "--backend", "cuda"],
        ["scenario", "offlne"],
        ["--max-trials", "-1"],
        ["scenario"],
        ["compare", "only-one.json"],
    ],
)
def test_bad_command_lines_fail_with_one_line_and_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = _refused(argv, capsys)
    assert "error:" in line and "--help" in line


@pytest.mark.parametrize(
    ("argv", "status", "words"),
    [
        (["pipeline", "--source", "/nonexistent.mp4", "--quiet"], 2, "no such file"),
        (["scenario", "singlestream", "--model", "/nonexistent.onnx", "--quiet"], 2, "nonexistent"),
        (["compare", "a.json", "b.json"], 2, "does not exist"),
        (["pipeline", "--infer-workers", "17", "--quiet"], 2, "infer_workers: must be between"),
    ],
)
def test_runs_that_cannot_start_fail_in_one_line(
    argv: list[str], status: int, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_a_backend_that_cannot_run_fails_before_measuring(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from core.device import probe

    if probe().has_gpu:
        pytest.skip("this machine has a GPU")
    for argv in (
        ["--backend", "tensorrt", "--quiet"],
        ["scenario", "offline", "--backend", "tensorrt"],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "tensorrt" in err[0].lower(), err


VALID = {"result": "VALID", "reason": "every run valid (pipeline)"}
MET = {"target": ">= 0.95", "measured": 0.97, "met": True}
MISSED = {"target": ">= 0.95", "measured": 0.8834, "met": False}
UNMEASURED = {"target": ">= 1.7", "measured": None, "met": None}


@pytest.mark.parametrize(
    ("report", "cause"),
    [
        ({"verdict": VALID, "targets": {"efficiency": MET, "speedup": UNMEASURED}}, None),
        ({"verdict": {"result": "VALID", "reason": "LoadGen: VALID"}}, None),  # scenario
        (
            {"verdict": {"result": "INVALID", "reason": "pipeline: min_count: 5 frames"}},
            "verdict INVALID (pipeline: min_count: 5 frames)",
        ),
        (
            {"verdict": VALID, "targets": {"efficiency": MISSED, "speedup": UNMEASURED}},
            "target missed: efficiency 0.883 (>= 0.95)",
        ),
        (
            {
                "verdict": {"result": "INVALID", "reason": "paced: stable:\nfps 12 %"},
                "targets": {
                    "efficiency": MISSED,
                    "paced_drops": {"target": "0 dropped", "measured": 3, "met": False},
                },
            },
            "verdict INVALID (paced: stable: fps 12 %); targets missed: efficiency 0.883 "
            "(>= 0.95), paced_drops 3 (0 dropped)",
        ),
        ({"micro": {}}, "the report has no verdict"),
    ],
)
def test_strict_fails_an_invalid_verdict_or_a_missed_target(
    report: dict[str, object], cause: str | None
) -> None:
    assert strict_failure(report) == cause


@pytest.mark.parametrize("argv", [["--strict", "micro"], ["--strict", "compare", "a", "b"]])
def test_strict_on_a_command_without_a_verdict_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert "--strict applies to" in _refused(argv, capsys)


@pytest.mark.parametrize(
    ("argv", "strict"),
    [
        ([], False),
        (["--strict"], True),
        (["pipeline"], False),
        (["--strict", "pipeline"], True),  # the command's own default does not undo it
        (["pipeline", "--strict"], True),
        (["scenario", "offline", "--strict"], True),
    ],
)
def test_strict_is_read_before_or_after_the_command(argv: list[str], strict: bool) -> None:
    assert build_parser().parse_args(argv).strict is strict


def test_strict_pipeline_run_exits_1_on_an_invalid_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real short run judged INVALID for certain (paced at 10 frames/s for 0.5 s: a handful
    of frames, under the 20 its verdict's min_count asks for): the plain command exits 0,
    ``--strict`` exits 1 with the verdict in one line on stderr, after writing its JSON and
    its summary (which passes ``promtool check metrics``)."""
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    argv = ["pipeline", "--quick", "--quiet", "--no-naive", "--config", str(config)]
    argv += ["--duration", "0.5", "--rate", "10"]
    assert main([*argv, "--json", str(tmp_path / "plain.json")]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert plain["verdict"]["result"] == "INVALID" and "min_count" in plain["verdict"]["reason"]
    assert schema.problems(plain) == []  # a --rate run's blocks are the schema's too
    capsys.readouterr()
    textfile = tmp_path / "edgeloop_bench.prom"
    strict = [*argv, "--strict", "--json", str(tmp_path / "strict.json")]
    assert main([*strict, "--prom-textfile", str(textfile)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: strict: verdict INVALID ("), err
    assert "min_count" in err[0]
    report = json.loads((tmp_path / "strict.json").read_text())
    assert report["verdict"]["result"] == "INVALID"
    checked = promtool_check_metrics(textfile.read_text())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "# TYPE edgeloop_bench_e2e_latency_seconds summary" in textfile.read_text()
