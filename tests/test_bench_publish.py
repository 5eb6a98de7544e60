"""``--push-gateway`` and ``--prom-textfile``: a bench summary reaches a real Pushgateway and
is read back; the textfile parses and passes the real ``promtool check metrics`` (which
``make test`` installs: these tests fail, never skip, without it)."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench import publish
from bench.cli import main
from core.errors import MetricsExportError
from tests.prom_servers import Server, get, pushgateway
from tests.required_tools import require

__all__ = ["pushgateway"]  # the fixture, imported for pytest

REPORT: dict[str, Any] = {  # the standard suite's keys that the summary reads
    "schema": "edgeloop.bench/1",
    "env": {"host": "gate-01", "git_commit": "0123456789ab"},
    "verdict": {"result": "VALID", "reason": "every run valid"},
    "pipeline": {
        "fps": 31.5,
        "bound_fps": 33.0,
        "efficiency": 0.95,
        "naive_fps": 14.0,
        "speedup_vs_naive": 2.25,
        "dropped": 0,
        "e2e_latency_ms": {"mean": 41.0, "p50": 40.0, "p99": 71.0, "max": 90.0, "n": 630},
        "paced": {
            "e2e_latency_ms": {"mean": 30.0, "p50": 29.0, "p99": 52.0, "max": 60.0, "n": 500},
            "load": {"ratio": 1.09},
        },
    },
    "naive": {"fps": 15.0, "machine_drift": 0.12},
    "micro": {
        "ring": {"1080p": {"rows": [], "ratio_vs_mp_queue": 900.0, "median_ms": 0.004}},
        "metrics": {"core_fraction_at_1hz": 0.0006, "sample1hz": {"target_met": True}},
    },
}


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """The real ``promtool check metrics`` on an exposition text."""
    return subprocess.run(
        [require("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_summary_in_base_units() -> None:
    registry = publish.summary_registry(REPORT)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in registry.collect()
        for s in f.samples
    }
    assert values[("edgeloop_bench_pipeline_fps", ())] == 31.5
    assert values[("edgeloop_bench_e2e_latency_seconds", (("quantile", "0.99"),))] == 0.071
    assert values[("edgeloop_bench_paced_e2e_latency_seconds", (("quantile", "0.99"),))] == 0.052
    assert values[("edgeloop_bench_e2e_latency_seconds", (("quantile", "1"),))] == 0.09
    assert values[("edgeloop_bench_e2e_latency_seconds_count", ())] == 630
    assert values[("edgeloop_bench_e2e_latency_seconds_sum", ())] == pytest.approx(630 * 0.041)
    assert values[("edgeloop_bench_paced_e2e_latency_seconds_count", ())] == 500
    assert values[("edgeloop_bench_verdict", (("result", "VALID"),))] == 1
    assert values[("edgeloop_bench_paced_load_ratio", ())] == 1.09
    assert values[("edgeloop_bench_machine_drift_ratio", ())] == 0.12
    micro = (("case", "1080p"), ("figure", "median_seconds"), ("suite", "ring"))
    assert values[("edgeloop_bench_micro", micro)] == pytest.approx(4e-6)
    headline = (("case", ""), ("figure", "core_fraction_at_1hz"), ("suite", "metrics"))
    assert values[("edgeloop_bench_micro", headline)] == 0.0006
    assert not [k for k in values if k[0] == "edgeloop_bench_micro" and "target_met" in str(k)]


def test_push_and_read_back(pushgateway: Server) -> None:
    key = publish.push(REPORT, pushgateway.url)
    assert key == {"device": "gate-01", "commit": "0123456789ab"}
    text = get(f"{pushgateway.url}/metrics").decode()
    values = _values(text)
    group = (("commit", "0123456789ab"), ("device", "gate-01"), ("instance", ""))
    labels = tuple(sorted((*group, ("job", "edgeloop_bench"))))
    assert values[("edgeloop_bench_pipeline_fps", labels)] == 31.5
    assert values[("edgeloop_bench_e2e_latency_seconds_count", labels)] == 630
    p99 = tuple(sorted((*labels, ("quantile", "0.99"))))
    assert values[("edgeloop_bench_paced_e2e_latency_seconds", p99)] == 0.052
    assert "# TYPE edgeloop_bench_e2e_latency_seconds summary" in text
    groups = json.loads(get(f"{pushgateway.url}/api/v1/metrics"))["data"]
    assert [g["labels"] for g in groups] == [
        {"job": "edgeloop_bench", "device": "gate-01", "commit": "0123456789ab"}
    ]
    # The group stays until deleted (docs/bench.md#publishing-results): delete it, and it is gone.
    request = urllib.request.Request(
        f"{pushgateway.url}/metrics/job/edgeloop_bench/device/gate-01/commit/0123456789ab",
        method="DELETE",
    )
    urllib.request.urlopen(request, timeout=5).close()
    assert json.loads(get(f"{pushgateway.url}/api/v1/metrics"))["data"] == []


def test_bench_cli_pushes_a_micro_run(pushgateway: Server, tmp_path: Path) -> None:
    textfile = tmp_path / "textfile" / "edgeloop_bench.prom"
    argv = ["micro", "--only", "metrics", "--quick", "--quiet", "--push-gateway", pushgateway.url]
    assert main([*argv, "--prom-textfile", str(textfile)]) == 0
    pushed = get(f"{pushgateway.url}/metrics").decode()
    assert 'figure="core_fraction_at_1hz"' in pushed and 'job="edgeloop_bench"' in pushed
    written = textfile.read_text()
    assert 'edgeloop_bench_micro{case="",commit=' in written
    checked = promtool_check_metrics(written)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_textfile_of_a_standard_report_passes_promtool(tmp_path: Path) -> None:
    """The latencies are summaries (a ``quantile`` label is a summary's): the textfile of a
    standard suite's report passes ``promtool check metrics``, and the same promtool refuses
    the quantile label on a gauge, as the latencies once were (the check has teeth)."""
    textfile = tmp_path / "edgeloop_bench.prom"
    publish.write_textfile(REPORT, textfile)
    written = textfile.read_text()
    checked = promtool_check_metrics(written)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    families = {f.name: f for f in text_string_to_metric_families(written)}
    for name in ("edgeloop_bench_e2e_latency_seconds", "edgeloop_bench_paced_e2e_latency_seconds"):
        assert families[name].type == "summary", name
    assert all(
        "quantile" not in s.labels
        for f in families.values()
        if f.type != "summary"
        for s in f.samples
    )
    assert (
        'edgeloop_bench_e2e_latency_seconds_count{commit="0123456789ab",device="gate-01"} 630.0'
        in written
    )
    old = CollectorRegistry()  # the latencies as they were: a gauge with a quantile label
    gauge = Gauge("edgeloop_bench_e2e_latency_seconds", "latency", ("quantile",), registry=old)
    gauge.labels(quantile="0.99").set(0.071)
    refused = promtool_check_metrics(generate_latest(old).decode())
    assert refused.returncode != 0
    assert 'non-summary metrics should not have "quantile" label' in refused.stdout + refused.stderr


def test_unreachable_gateway_and_unwritable_textfile_are_one_error() -> None:
    with pytest.raises(MetricsExportError, match=re.escape("Pushgateway http://127.0.0.1:9/")):
        publish.push(REPORT, "http://127.0.0.1:9/")
    with pytest.raises(MetricsExportError, match="cannot write"):
        publish.write_textfile(REPORT, Path("/proc/edgeloop.prom"))
