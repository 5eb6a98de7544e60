"""``--push-gateway`` and ``--prom-textfile``: a bench summary reaches a real Pushgateway and
is read back; the textfile parses and passes ``promtool check metrics``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench import publish
from bench.cli import main
from core.errors import MetricsExportError
from tests.prom_servers import Server, get, pushgateway

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
        "e2e_latency_ms": {"p50": 40.0, "p99": 71.0, "max": 90.0},
        "paced": {"e2e_latency_ms": {"p99": 52.0}, "load": {"ratio": 1.09}},
    },
    "naive": {"fps": 15.0, "machine_drift": 0.12},
    "micro": {
        "ring": {"1080p": {"rows": [], "ratio_vs_mp_queue": 900.0, "median_ms": 0.004}},
        "metrics": {"core_fraction_at_1hz": 0.0006, "sample1hz": {"target_met": True}},
    },
}


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
    values = _values(get(f"{pushgateway.url}/metrics").decode())
    group = (("commit", "0123456789ab"), ("device", "gate-01"), ("instance", ""))
    fps = ("edgeloop_bench_pipeline_fps", tuple(sorted((*group, ("job", "edgeloop_bench")))))
    assert values[fps] == 31.5
    groups = json.loads(get(f"{pushgateway.url}/api/v1/metrics"))["data"]
    assert [g["labels"] for g in groups] == [
        {"job": "edgeloop_bench", "device": "gate-01", "commit": "0123456789ab"}
    ]
    # The group stays until deleted (README): delete it, and it is gone.
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
    promtool = shutil.which("promtool")
    if promtool is not None:
        checked = subprocess.run(
            [promtool, "check", "metrics"],
            input=written,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_unreachable_gateway_and_unwritable_textfile_are_one_error() -> None:
    with pytest.raises(MetricsExportError, match=re.escape("Pushgateway http://127.0.0.1:9/")):
        publish.push(REPORT, "http://127.0.0.1:9/")
    with pytest.raises(MetricsExportError, match="cannot write"):
        publish.write_textfile(REPORT, Path("/proc/edgeloop.prom"))
