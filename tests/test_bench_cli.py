"""``python -m bench``: the JSON contract CI and dashboards read, exit codes, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import SCHEMA
from bench.cli import main


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
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and "--help" in err[0], err


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
