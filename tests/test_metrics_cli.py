"""``python -m core.metrics``: the JSON snapshot's contract, the text and EMF forms, ``serve``
with a real scrape, and one-line failures."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from core.metrics import MetricsRegistry
from core.metrics.__main__ import main
from core.metrics.emf import MAX_METRICS, emf_lines, unit_of


def test_snapshot_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["snapshot", "--json", "--settle", "0", "--set", "device=gate-01"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "edgeloop.metrics/1" and doc["device"] == "gate-01"
    assert set(doc) == {"schema", "device", "timestamp", "collectors", "metrics"}
    assert set(doc["collectors"]) == {"hardware", "gpu", "jetson", "network"}
    assert doc["collectors"]["hardware"] == {"available": True, "why_absent": None}
    if not doc["collectors"]["gpu"]["available"]:
        assert doc["collectors"]["gpu"]["why_absent"]
        assert not [n for n in doc["metrics"] if n.startswith("edgeloop_gpu_")]
    memory = doc["metrics"]["edgeloop_memory_available_bytes"]
    assert memory["type"] == "gauge" and memory["samples"][0]["value"] > 0


def test_snapshot_text_and_emf(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["snapshot", "--settle", "0"]) == 0
    text = capsys.readouterr().out
    assert (
        "edgeloop_memory_total_bytes " in text and 'edgeloop_collector_up{collector="gpu"}' in text
    )
    assert main(["snapshot", "--emf", "--settle", "0", "--set", "device=gate-01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert all(r["device"] == "gate-01" for r in records)
    directive = records[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "edgeloop" and directive["Dimensions"][0][0] == "device"
    names = {m["Name"] for r in records for m in r["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert "edgeloop_memory_available_bytes" in names


def test_emf_histograms_units_and_chunks() -> None:
    r = MetricsRegistry()
    r.histogram("edgeloop_e2e_latency_seconds", "x", buckets=(0.01,)).observe(0.004)
    for i in range(MAX_METRICS + 5):
        r.gauge(f"edgeloop_g{i}_bytes", "x").set(i)
    lines = [json.loads(x) for x in emf_lines(r.snapshot(), device="d", timestamp_ms=1)]
    assert len(lines) == 2  # one label set (none), split at the directive's limit
    assert lines[0]["edgeloop_e2e_latency_seconds_count"] == 1.0
    assert sum(len(x["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for x in lines) == 107
    assert unit_of("edgeloop_disk_read_bytes_total") == "Bytes"
    assert unit_of("edgeloop_frames_total") == "Count"
    assert unit_of("edgeloop_cpu_usage_ratio") == "None"


def test_bad_config_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["snapshot", "--set", "port=99999"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["core.metrics: error: port: must be between 0 and 65535, got 99999"]


def test_help_exits_0() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["snapshot", "--help"])
    assert exc.value.code == 0


def test_serve_answers_scrapes_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "core.metrics", "serve", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = json.loads(process.stdout.readline())["url"]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        assert "edgeloop_memory_available_bytes" in body
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
