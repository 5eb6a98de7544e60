"""bench.scenario: MLPerf LoadGen drives the inference path with tiny settings (plumbing, not
speed); its detail log is read back as the report's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import scenario
from bench.cli import main
from tests.onnx_models import conv_model
from tests.required_tools import require_module


def _record(key: str, value: object, *, error: bool = False) -> str:
    meta = {"is_error": error, "is_warning": False}
    return ":::MLLOG " + json.dumps({"key": key, "value": value, "metadata": meta})


def test_detail_log_is_read_back(tmp_path: Path) -> None:
    log = tmp_path / "mlperf_log_detail.txt"
    log.write_text(
        "\n".join(
            [
                "not a record",
                _record("result_validity", "INVALID"),
                _record("result_invalid_reason", "Reduce target QPS"),
                _record("result_90.00_percentile_latency_ns", 2_000_000),
                _record("result_99.00_percentile_latency_ns", 5_000_000),
                _record("result_completed_samples_per_sec", 123.5),
                _record("effective_samples_per_query", 1),
                _record("error_invalid_config", "bad", error=True),
            ]
        )
    )
    summary = scenario.summarize_log(scenario.read_detail_log(log))
    assert summary["result"] == "INVALID" and summary["invalid_reason"] == "Reduce target QPS"
    assert summary["p90_ms"] == 2.0 and summary["p99_ms"] == 5.0 and summary["p50_ms"] is None
    assert summary["samples_per_second"] == 123.5
    assert summary["errors"] == ["error_invalid_config: bad"]
    assert "result_validity" in summary["records"]


def test_multistream_throughput_is_derived_from_query_latency() -> None:
    records = {
        "errors": [],
        "warnings": [],
        "result_99.00_percentile_per_query_latency_ns": 20_000_000,
        "result_mean_query_latency_ns": 16_000_000,
        "effective_samples_per_query": 8,
    }
    summary = scenario.summarize_log(records)
    assert summary["latency_per"] == "query" and summary["p99_ms"] == 20.0
    assert summary["samples_per_second"] == 500.0


@pytest.mark.parametrize("name", ["singlestream", "offline"])
def test_loadgen_runs_a_scenario_with_tiny_settings(tmp_path: Path, name: str) -> None:
    require_module("mlperf_loadgen")
    model = conv_model(tmp_path / "tiny.onnx", ("batch", 3, 32, 32))
    options = scenario.ScenarioOptions(
        scenario=name,
        model=str(model),
        backend="onnxruntime",
        threads=1,
        batch=4,
        duration_s=0.2,
        min_queries=70 if name == "singlestream" else 1,
        samples=8,
        log_dir=tmp_path / "logs",
    )
    messages: list[str] = []
    result = scenario.run_scenario(options, progress=messages.append)
    assert result["result"] in ("VALID", "INVALID") and result["errors"] == []
    assert result["p90_ms"] > 0 and result["p99_ms"] >= result["p90_ms"]
    assert result["samples_per_second"] > 0 and result["queries"] >= 1
    assert result["settings"]["min_duration_ms"] == 200
    assert result["settings"]["performance_sample_count_override"] == 8
    assert (tmp_path / "logs" / "mlperf_log_summary.txt").is_file()
    assert messages and "LoadGen" in scenario.render(result)


def test_scenario_command_writes_the_report(tmp_path: Path) -> None:
    require_module("mlperf_loadgen")
    model = conv_model(tmp_path / "tiny.onnx", ("batch", 3, 32, 32))
    out = tmp_path / "r.json"
    argv = ["scenario", "server", "--model", str(model), "--duration", "0.2", "--quiet"]
    argv += ["--min-queries", "20", "--samples", "8", "--target-qps", "50", "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["scenario"]["scenario"] == "server"
    assert report["scenario"]["settings"]["server_target_qps"] == 50.0
    assert report["verdict"]["result"] == report["scenario"]["result"]
    assert report["env"]["model"]["sha256"]
