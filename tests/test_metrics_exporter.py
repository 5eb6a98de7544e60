"""The Prometheus exporter with real parts: a pipeline run records into the registry, the
exporter serves it, a real Prometheus scrapes it and answers queries; promtool lints the
exposition. No timing assertions (Prometheus is waited for, with a deadline)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.errors import MetricsExportError
from core.metrics import MetricsRegistry
from core.metrics.config import MetricsConfig, Targets
from core.metrics.exporter import MetricsServer, exposition, reference_exposition
from core.metrics.service import MetricsService
from core.pipeline import Pipeline
from tests.pipeline_doubles import small_config
from tests.prom_servers import Server, prometheus, query, wait_for
from tests.required_tools import require

__all__ = ["prometheus"]  # the fixture, imported for pytest


@pytest.fixture(scope="module")
def ran() -> Iterator[MetricsService]:
    """A pipeline run of 40 frames and one hardware sample, all in one registry, served on a
    free loopback port."""
    registry = MetricsRegistry()
    config = MetricsConfig(port=0, targets=Targets(fps=5.0, p99_latency_s=0.5))
    service = MetricsService(config, registry)
    with Pipeline(small_config(streams=2), registry=registry) as pipeline:
        pipeline.run(max_frames=40)
    service.sampler.sample_once()
    yield service
    service.close()


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_exposition_has_every_part_with_prefix_and_base_units(ran: MetricsService) -> None:
    text = exposition(ran.registry).decode()
    families = _families(text)
    assert all(name.startswith("edgeloop_") for name in families)
    for name in (
        "edgeloop_frames",  # counters appear without _total in the parser's family names
        "edgeloop_stage_latency_seconds",
        "edgeloop_e2e_latency_seconds",
        "edgeloop_memory_available_bytes",
        "edgeloop_process_resident_memory_bytes",
        "edgeloop_build_info",
        "edgeloop_model_info",
        "edgeloop_model_load_seconds",
        "edgeloop_stage_heartbeat_seconds",
        "edgeloop_target_fps",
        "edgeloop_collector_up",
    ):
        assert name in families, name
    assert 'edgeloop_frames_total{stream="1"} 20.0' in text
    assert 'edgeloop_stage_latency_seconds_bucket{stage="infer",le="+Inf"}' in text


def test_absent_sensors_have_no_series(ran: MetricsService) -> None:
    """This VM has no NVIDIA GPU, no tegrastats and (checked here) no thermal sensor: their
    collectors say 0 and nothing pretends a reading of 0."""
    text = exposition(ran.registry).decode()
    assert 'edgeloop_collector_up{collector="gpu"} 0.0' in text
    assert "edgeloop_gpu_" not in text
    if shutil.which("tegrastats") is None:
        assert 'edgeloop_collector_up{collector="jetson"} 0.0' in text
        assert "edgeloop_jetson_" not in text
    hardware = next(c for c in ran.sampler.collectors if c.name == "hardware")
    if not hardware.sensors:  # type: ignore[attr-defined]
        assert "edgeloop_temperature_celsius" not in text


def test_promtool_check_metrics_passes(ran: MetricsService) -> None:
    promtool = require("promtool")
    text = get_metrics(ran)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def get_metrics(service: MetricsService) -> str:
    assert service.url is not None and service.url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(service.url, timeout=5) as response:
        return str(response.read().decode())


def test_real_prometheus_scrapes_the_exporter(
    ran: MetricsService, prometheus: Callable[[list[str]], Server]
) -> None:
    assert ran.server is not None
    server = prometheus([f"127.0.0.1:{ran.server.port}"])
    frames = wait_for(server, 'edgeloop_frames_total{job="edgeloop"}')
    assert {r["metric"]["stream"] for r in frames} == {"0", "1"}
    assert sum(float(r["value"][1]) for r in frames) == 40
    assert frames[0]["metric"]["device"] == "test-device"
    up = query(server, "up")
    assert [float(r["value"][1]) for r in up] == [1.0]
    p99 = query(
        server,
        "histogram_quantile(0.99, sum by (le) (edgeloop_stage_latency_seconds_bucket"
        '{stage="infer"}))',
    )
    assert 0 < float(p99[0]["value"][1]) < 10  # seconds: a model call, not ms or ns
    memory = query(server, "edgeloop_memory_available_bytes")
    assert float(memory[0]["value"][1]) > 1e6
    rss = query(server, "edgeloop_process_resident_memory_bytes")
    assert 1e6 < float(rss[0]["value"][1]) < 1e12


def test_default_address_is_loopback_and_a_taken_port_is_one_error() -> None:
    assert MetricsConfig().address == "127.0.0.1"
    registry = MetricsRegistry()
    with (
        MetricsServer(registry, port=0) as first,
        pytest.raises(MetricsExportError, match=rf"127.0.0.1:{first.port}.*another port"),
    ):
        MetricsServer(registry, port=first.port)


def _samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_fast_exposition_matches_prometheus_client(ran: MetricsService) -> None:
    """The text writer and prometheus_client's own, over the custom collector, say the same."""
    ran.registry.gauge("edgeloop_test_escape_ratio", "Help with \\ and\nnewline", ("path",)).labels(
        path='a "quoted" \\ path\n'
    ).set(float("inf"))
    snapshot_text = exposition(ran.registry).decode()
    reference = reference_exposition(ran.registry).decode()
    assert _samples(snapshot_text) == _samples(reference)
    ours = {
        f.name: (f.type, f.documentation) for f in text_string_to_metric_families(snapshot_text)
    }
    theirs = {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(reference)}
    assert ours == theirs


def test_exposition_follows_new_values_and_label_sets_after_a_scrape() -> None:
    """What a scrape keeps of a family (its lines' starts) never freezes a value or hides a
    label set created after it: the second scrape matches prometheus_client's own again."""
    registry = MetricsRegistry()
    frames = registry.counter("edgeloop_frames_total", "Frames", ("stream",))
    latency = registry.histogram("edgeloop_e2e_latency_seconds", "E2E", buckets=(0.01, 0.1))
    frames.labels(stream="0").inc(2)
    latency.observe(0.005)
    first = exposition(registry).decode()
    frames.labels(stream="0").inc(3)
    frames.labels(stream="1").inc(7)
    latency.observe(0.05)
    registry.gauge("edgeloop_late_ratio", "Registered after the first scrape").set(0.5)
    second = exposition(registry).decode()
    assert 'edgeloop_frames_total{stream="0"} 2.0' in first
    assert 'edgeloop_frames_total{stream="0"} 5.0' in second
    assert 'edgeloop_frames_total{stream="1"} 7.0' in second
    assert 'edgeloop_e2e_latency_seconds_bucket{le="0.1"} 2.0' in second
    assert "edgeloop_e2e_latency_seconds_count 2.0" in second
    assert "edgeloop_late_ratio 0.5" in second
    assert _samples(second) == _samples(reference_exposition(registry).decode())
