"""bench.micro.inference: the report's shape with a tiny model and a token budget (plumbing,
not speed), the headline key, skipped models, and the CLI's --backend/--threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.micro import MicroOptions, run_suite
from bench.micro import inference as inference_suite
from bench.timing import Budget
from core.device import probe
from core.errors import ModelNotFoundError
from tests.onnx_models import conv_model

TINY = Budget(warmup_s=0.0, warmup_count=1, min_s=0.005, min_count=3, max_count=10)


def test_suite_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = conv_model(tmp_path / "tiny.onnx", ("batch", 3, 32, 32))

    def models(name: str) -> Path:
        if name == "classifier":
            return tiny
        raise ModelNotFoundError(f"{name} is not here")

    monkeypatch.setattr(inference_suite, "reference_model_path", models)
    messages: list[str] = []
    options = MicroOptions(budget=TINY, quick=True, progress=messages.append, threads=(1, 2))
    result = run_suite("inference", options)
    assert messages and all(m.startswith("inference: ") for m in messages)
    assert result["backend"] == "onnxruntime" and result["threads"] == [1, 2]
    case = result["classifier"]
    assert isinstance(case["overhead_vs_bare_ort"], float)
    assert case["overhead_ci95_low"] <= case["overhead_vs_bare_ort"] <= case["overhead_ci95_high"]
    assert case["overhead_threads"] == 1 and case["overhead_pairs"] >= 3
    names = [(r["name"], r["threads"]) for r in case["rows"]]
    assert names == [
        ("edgeloop onnxruntime", 1),
        ("bare InferenceSession.run", 1),
        ("edgeloop onnxruntime", 2),
        ("bare InferenceSession.run", 2),
    ]
    for row in case["rows"]:
        for key in ("load_ms", "first_inference_ms", "warmup_ms", "median_ms", "p90_ms", "p99_ms"):
            assert row[key] > 0, (row["name"], key)
        assert all(row[f"fps_b{b}"] > 0 for b in (1, 4, 8))
    assert case["rows"][0]["provider"] == "CPUExecutionProvider"
    for model in ("detector-s", "detector-m"):
        assert result[model]["rows"] == [{"name": model, "skipped": f"{model} is not here"}]


def test_cli_backend_that_cannot_run_fails_first_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if probe().has_gpu:
        pytest.skip("this machine has a GPU")
    assert main(["micro", "--only", "jpeg,inference", "--backend", "tensorrt", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tensorrt backend requested but it cannot run here" in err[0]


def test_cli_threads_must_be_positive_integers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["micro", "--only", "inference", "--threads", "1,x", "--quiet"]) == 1
    assert "--threads takes positive integers" in capsys.readouterr().err
