"""``python -m bench swap``, run short on the synthetic camera (the figures are the benchmark's
business; here, that it runs end to end and its report holds what it says: each swap applied
and its steps timed, the frames accounted for, the bad version rolled back by its rule)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def test_swaps_and_a_rollback_are_measured(tmp_path: Path) -> None:
    out = tmp_path / "swap.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "swap",
            "--quiet",
            "--json",
            str(out),
            "--source",
            "synthetic",
            "--swaps",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.read_text())
    assert result["schema"] == "edgeloop.bench.swap/1"
    swaps, rollback, targets = result["swaps"], result["rollback"], result["targets"]
    (trial,) = swaps["trials"]
    assert trial["result"] == "applied" and trial["version"] == "1.0.1"
    assert set(trial["timings"]) == {"download_s", "verify_s", "load_s", "swap_s", "total_s"}
    assert trial["frames_before"] > 0 and trial["frames_during"] > 0
    assert abs(trial["p99_ratio"] - trial["p99_during_ms"] / trial["p99_before_ms"]) < 0.01
    assert swaps["produced"] == swaps["delivered"] + swaps["dropped"]
    assert rollback["update"] == "applied" and rollback["rollback"] == "applied"
    assert "frames failed" in rollback["reason"]
    assert set(targets["met"]) == {
        "swap_dropped_frames",
        "swap_p99_ratio",
        "swap_ready_after_checks_s",
        "rollback_after_detectable_s",
    }
    assert "p99 during a swap" in done.stdout
