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
