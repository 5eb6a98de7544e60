"""``python -m bench app``: the device app against the bare pipeline, and the soak, run short
(the figures are the benchmark's business; here, that both run end to end and report what
they say they report)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / "app.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "app", "--quiet", "--json", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(out.read_text())
    assert result["schema"] == "edgeloop.bench.app/1"
    return result


def test_app_against_the_bare_pipeline(tmp_path: Path) -> None:
    overhead = _bench(tmp_path, "--duration", "2", "--rounds", "2")["overhead"]
    assert isinstance(overhead, dict)
    assert len(overhead["bare_fps"]) == len(overhead["app_fps"]) == 2
    assert min(overhead["bare_fps"]) > 0 and min(overhead["app_fps"]) > 0
    ratio = overhead["app_fps_median"] / overhead["bare_fps_median"]
    assert abs(overhead["target"]["measured"] - ratio) < 0.01
    assert overhead["spool_left"] == [0, 0]  # the app drained to the broker each time


def test_a_short_soak_samples_the_app_process(tmp_path: Path) -> None:
    soak = _bench(tmp_path, "--soak", "--duration", "6", "--sample-s", "1", "--streams", "2")[
        "soak"
    ]
    assert isinstance(soak, dict)
    samples = soak["samples"]
    assert len(samples) >= 4 and samples[-1]["rss_bytes"] > 50 * 2**20
    assert all(s["fds"] > 0 and s["threads"] > 1 for s in samples[1:])
    assert soak["frames"] > 0 and soak["spool_left"] == 0
    assert soak["target"]["met"] is None  # shorter than the two minutes it compares with
