"""A process source started from a script without a main guard: one line that says so, at
once, instead of a timeout (multiprocessing's spawn re-imports the script in the child)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from core.spawned import MAIN_GUARD_HINT, exit_cause

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    from core.errors import PipelineError
    from core.pipeline import Pipeline, load_pipeline_config

    config = load_pipeline_config(
        overrides=[
            "sources=[{width: 64, height: 48}]",
            "source_workers=process",
            "model.backend=onnxruntime",
        ]
    )
    try:
        with Pipeline(config) as pipeline:
            pipeline.run(max_frames=3)
    except PipelineError as exc:
        print("CAUSE:", exc)
        raise SystemExit(3) from None
    """
)


def test_a_script_without_main_guard_is_told_why_its_source_process_died(tmp_path: Path) -> None:
    script = tmp_path / "no_guard.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("CAUSE: source process 0 did not open its source (it exited with")
    assert MAIN_GUARD_HINT in line and "within" not in line


def test_exit_causes() -> None:
    assert exit_cause(None) == "it is still running but did not answer"
    assert exit_cause(-9) == "it was killed by signal 9"
    assert exit_cause(2) == "it exited with code 2"
