"""The Grafana dashboards of ``deploy/monitoring/grafana/dashboards/``, written as code.

``python -m deploy.monitoring.dashboards`` rewrites the JSON files; tests check that the
committed files are what this module writes, that every PromQL expression parses, and that it
names only metrics edgeloop really exposes. The JSON is provisioning JSON: ``"id": null``, a
fixed ``uid`` per dashboard, the datasource pinned by uid (:data:`DATASOURCE`, provisioned by
``grafana/provisioning/datasources/edgeloop.yml``), no ``${DS_...}`` import inputs.

Every panel has a ``description`` (Grafana shows it as the panel's (i) tooltip);
docs/monitoring.md's "Dashboards and alerts" section repeats them in prose.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "edgeloop-prometheus"}
FOLDER = Path(__file__).resolve().parent / "grafana" / "dashboards"
SEL = 'device=~"$device"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    """One time series (or stat) panel: title, what it shows, its queries and unit."""

    title: str
    description: str
    exprs: tuple[tuple[str, str], ...]
    """(PromQL, legend) pairs."""
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[str, ...] = ("device",)
    extra_tags: tuple[str, ...] = field(default_factory=tuple)


def _q(expr: str, legend: str) -> tuple[str, str]:
    return expr, legend


def _rate(metric: str, legend: str) -> tuple[str, str]:
    """One device's per-second rate of a counter (the panel's device selector applied)."""
    return _q(f"rate({metric}{{{SEL}}}[{RATE}])", legend)


FLEET = Dashboard(
    uid="edgeloop-fleet",
    title="edgeloop / Fleet overview",
    description="Every device at a glance: throughput, latency, drops, errors, heat.",
    panels=(
        Panel(
            "Frames per second",
            "Frames through every stage per second, per device (all streams).",
            (_q(f"sum by (device) (rate(edgeloop_frames_total{{{SEL}}}[{RATE}]))", "{{device}}"),),
            unit="fps",
        ),
        Panel(
            "End-to-end latency p50 / p99",
            "Capture to sink, from the e2e histogram: p50 solid, p99 dashed by legend.",
            (
                _q(
                    "histogram_quantile(0.5, sum by (device, le) (rate("
                    f"edgeloop_e2e_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "{{device}} p50",
                ),
                _q(
                    "histogram_quantile(0.99, sum by (device, le) (rate("
                    f"edgeloop_e2e_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "{{device}} p99",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Drops per second",
            "Frames dropped per second by device and reason (overwritten: a slow consumer), "
            "and ticks a paced source let pass without a frame (missed: it fell behind).",
            (
                _q(
                    f"sum by (device, reason) (rate(edgeloop_drops_total{{{SEL}}}[{RATE}]))",
                    "{{device}} {{reason}}",
                ),
                _q(
                    f"sum by (device) (rate(edgeloop_frames_missed_total{{{SEL}}}[{RATE}]))",
                    "{{device}} missed",
                ),
            ),
            unit="fps",
        ),
        Panel(
            "Errors per second",
            "Per-frame failures per second by device and stage.",
            (
                _q(
                    f"sum by (device, stage) (rate(edgeloop_errors_total{{{SEL}}}[{RATE}]))",
                    "{{device}} {{stage}}",
                ),
            ),
            unit="short",
        ),
        Panel(
            "Hottest sensor",
            "The highest temperature a device reports (sysfs sensors, tegrastats, NVML); "
            "devices without a sensor show nothing.",
            (
                _q(f"max by (device) (edgeloop_temperature_celsius{{{SEL}}})", "{{device}}"),
                _q(
                    f"max by (device) (edgeloop_jetson_temperature_celsius{{{SEL}}})",
                    "{{device}} (tegrastats)",
                ),
                _q(
                    f"max by (device) (edgeloop_gpu_temperature_celsius{{{SEL}}})", "{{device}} GPU"
                ),
            ),
            unit="celsius",
        ),
        Panel(
            "Builds in the fleet",
            "How many devices run each version and commit (edgeloop_build_info).",
            (
                _q(
                    f"count by (version, commit) (edgeloop_build_info{{{SEL}}})",
                    "{{version}} {{commit}}",
                ),
            ),
            kind="stat",
        ),
    ),
)

DEVICE = Dashboard(
    uid="edgeloop-device",
    title="edgeloop / Device detail",
    description="Every collector of one device: hardware, GPU, Jetson, pipeline, network.",
    panels=(
        Panel(
            "CPU busy",
            "All cores (thick) and each core, as a fraction of the sample period.",
            (
                _q(f"edgeloop_cpu_usage_ratio{{{SEL}}}", "all"),
                _q(f"edgeloop_cpu_core_usage_ratio{{{SEL}}}", "core {{core}}"),
            ),
            unit="percentunit",
        ),
        Panel(
            "Load and clock",
            "Run-queue load averages, and the mean CPU clock where the device reports one.",
            (
                _q(f"edgeloop_load_average{{{SEL}}}", "load {{period}}"),
                _q(f"edgeloop_cpu_frequency_hertz{{{SEL}}} / 1e9", "GHz"),
            ),
        ),
        Panel(
            "Temperatures",
            "Every sensor the device has; absent sensors draw no line (never a 0).",
            (
                _q(f"edgeloop_temperature_celsius{{{SEL}}}", "{{sensor}}"),
                _q(f"edgeloop_jetson_temperature_celsius{{{SEL}}}", "tegra {{sensor}}"),
                _rate("edgeloop_cpu_throttle_events_total", "throttle {{core}}"),
            ),
            unit="celsius",
        ),
        Panel(
            "Memory",
            "Memory available, swap in use, and this process's RSS.",
            (
                _q(f"edgeloop_memory_available_bytes{{{SEL}}}", "available"),
                _q(f"edgeloop_swap_used_bytes{{{SEL}}}", "swap used"),
                _q(f"edgeloop_process_resident_memory_bytes{{{SEL}}}", "RSS"),
            ),
            unit="bytes",
        ),
        Panel(
            "RSS growth (leak detector)",
            "Least-squares slope of RSS over the leak window; steady > 0 is a leak.",
            (_q(f"edgeloop_process_rss_growth_bytes_per_second{{{SEL}}}", "RSS slope"),),
            unit="Bps",
        ),
        Panel(
            "Data volume",
            "Free fraction of the data volume, and its read/write latency (time per operation).",
            (
                _q(
                    f"edgeloop_filesystem_free_bytes{{{SEL}}}"
                    f" / edgeloop_filesystem_size_bytes{{{SEL}}}",
                    "free {{path}}",
                ),
                _q(
                    f"rate(edgeloop_disk_read_time_seconds_total{{{SEL}}}[{RATE}])"
                    f" / rate(edgeloop_disk_reads_completed_total{{{SEL}}}[{RATE}])",
                    "read latency {{device}}",
                ),
                _q(
                    f"rate(edgeloop_disk_write_time_seconds_total{{{SEL}}}[{RATE}])"
                    f" / rate(edgeloop_disk_writes_completed_total{{{SEL}}}[{RATE}])",
                    "write latency {{device}}",
                ),
            ),
        ),
        Panel(
            "Disk I/O",
            "Bytes read and written per second on the data volume's block device.",
            (
                _rate("edgeloop_disk_read_bytes_total", "read"),
                _rate("edgeloop_disk_written_bytes_total", "written"),
            ),
            unit="Bps",
        ),
        Panel(
            "GPU (NVML)",
            "Utilisation and memory use of each NVIDIA GPU; empty on devices without NVML.",
            (
                _q(f"edgeloop_gpu_utilization_ratio{{{SEL}}}", "GPU {{gpu}} busy"),
                _q(
                    f"edgeloop_gpu_memory_used_bytes{{{SEL}}}"
                    f" / edgeloop_gpu_memory_total_bytes{{{SEL}}}",
                    "GPU {{gpu}} memory",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "GPU power and temperature (NVML)",
            "Board power draw and temperature per GPU.",
            (
                _q(f"edgeloop_gpu_power_watts{{{SEL}}}", "GPU {{gpu}} W"),
                _q(f"edgeloop_gpu_temperature_celsius{{{SEL}}}", "GPU {{gpu}} C"),
            ),
        ),
        Panel(
            "Jetson GPU and EMC (tegrastats)",
            "GR3D (GPU) and memory-controller load on a Jetson.",
            (
                _q(f"edgeloop_jetson_gpu_load_ratio{{{SEL}}}", "GR3D"),
                _q(f"edgeloop_jetson_emc_load_ratio{{{SEL}}}", "EMC"),
            ),
            unit="percentunit",
        ),
        Panel(
            "Jetson power rails (tegrastats)",
            "Instantaneous power per rail (VDD_IN is the whole module).",
            (_q(f"edgeloop_jetson_power_watts{{{SEL}}}", "{{rail}}"),),
            unit="watt",
        ),
        Panel(
            "Stage latency p99",
            "Service time per pipeline stage (infer: per batch), p99 over the rate window.",
            (
                _q(
                    "histogram_quantile(0.99, sum by (stage, le) (rate("
                    f"edgeloop_stage_latency_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "{{stage}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Stage busy and ring occupancy",
            "Busy fraction of each stage's workers, and frames waiting in each stream's ring.",
            (
                _q(f"edgeloop_stage_busy_ratio{{{SEL}}}", "{{stage}} busy"),
                _q(f"edgeloop_ring_occupancy{{{SEL}}}", "ring {{stream}}"),
            ),
        ),
        Panel(
            "Frames per stream",
            "Frames read and delivered per second, per stream.",
            (
                _rate("edgeloop_frames_read_total", "read {{stream}}"),
                _rate("edgeloop_frames_total", "delivered {{stream}}"),
            ),
            unit="fps",
        ),
        Panel(
            "Component health",
            "Seconds since each stage last did work, and since the process started (uptime).",
            (
                _q(f"time() - edgeloop_stage_heartbeat_seconds{{{SEL}}}", "{{stage}} idle"),
                _q(f"time() - edgeloop_process_start_time_seconds{{{SEL}}}", "uptime"),
            ),
            unit="s",
        ),
        Panel(
            "Network",
            "Bytes per second received and sent per interface.",
            (
                _rate("edgeloop_network_received_bytes_total", "rx {{interface}}"),
                _rate("edgeloop_network_sent_bytes_total", "tx {{interface}}"),
            ),
            unit="Bps",
        ),
        Panel(
            "Broker",
            "Connection state, reconnects, connect and publish failures by reason, and the "
            "publish-to-PUBACK round-trip p99 to the broker.",
            (
                _q(f"edgeloop_broker_connected{{{SEL}}}", "connected {{broker}}"),
                _q(f"increase(edgeloop_broker_reconnects_total{{{SEL}}}[{RATE}])", "reconnects"),
                _rate("edgeloop_broker_publish_failures_total", "publish failures {{reason}}"),
                _rate("edgeloop_broker_connect_failures_total", "connect failures {{reason}}"),
                _q(
                    "histogram_quantile(0.99, sum by (broker, le) (rate("
                    f"edgeloop_broker_rtt_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "rtt p99 {{broker}}",
                ),
            ),
        ),
        Panel(
            "Broker traffic",
            "Bytes per second this process published to the broker and received from it "
            "(topic and payload), and records per second the broker acknowledged.",
            (
                _rate("edgeloop_broker_sent_bytes_total", "sent {{broker}}"),
                _rate("edgeloop_broker_received_bytes_total", "received {{broker}}"),
                _rate("edgeloop_broker_records_total", "records acked {{broker}}"),
            ),
            unit="Bps",
        ),
        Panel(
            "Outbox spool",
            "Records waiting in the outbox (steady growth means the uplink cannot keep up), "
            "their bytes, and records dropped per second by reason (evicted, rejected, expired).",
            (
                _q(f"edgeloop_spool_depth{{{SEL}}}", "records"),
                _q(f"edgeloop_spool_bytes{{{SEL}}}", "bytes"),
                _rate("edgeloop_spool_dropped_total", "dropped {{reason}}"),
            ),
        ),
        Panel(
            "Cloud sync",
            "Records, images and batches per second the cloud sync stored in S3 (records also "
            "indexed in DynamoDB), failed attempts per second by stage (s3, dynamodb), and "
            "DynamoDB BatchWriteItem retries of unprocessed items (throttling).",
            (
                _rate("edgeloop_cloud_records_total", "records"),
                _rate("edgeloop_cloud_images_total", "images"),
                _rate("edgeloop_cloud_batches_total", "batches"),
                _rate("edgeloop_cloud_failures_total", "failures {{stage}}"),
                _rate("edgeloop_cloud_unprocessed_retries_total", "unprocessed retries"),
            ),
        ),
        Panel(
            "Collectors",
            "Which collectors found their source here (1) and what a full sample costs.",
            (
                _q(f"edgeloop_collector_up{{{SEL}}}", "{{collector}}"),
                _q(f"edgeloop_collector_sample_seconds{{{SEL}}} * 1000", "sample ms"),
            ),
        ),
    ),
)

MODELS = Dashboard(
    uid="edgeloop-models",
    title="edgeloop / Model comparison",
    description="Latency, confidence, throughput and load cost per model version (for A/B).",
    panels=(
        Panel(
            "Inference p99 per model version",
            "p99 of the infer stage per device, labelled with the model version it runs.",
            (
                _q(
                    "histogram_quantile(0.99, sum by (device, le) (rate("
                    f'edgeloop_stage_latency_seconds_bucket{{stage="infer",{SEL}}}[{RATE}])))'
                    " * on (device) group_left (model_version)"
                    f" max by (device, model_version) (edgeloop_model_info{{{SEL}}})",
                    "{{model_version}} on {{device}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Frames per second per model version",
            "Throughput of the devices running each model version.",
            (
                _q(
                    f"sum by (device) (rate(edgeloop_frames_total{{{SEL}}}[{RATE}]))"
                    " * on (device) group_left (model_version)"
                    f" max by (device, model_version) (edgeloop_model_info{{{SEL}}})",
                    "{{model_version}} on {{device}}",
                ),
            ),
            unit="fps",
        ),
        Panel(
            "Model load and warm-up",
            "Seconds from the model file to a ready session, and for the warm-up runs.",
            (
                _q(f"edgeloop_model_load_seconds{{{SEL}}}", "load {{model_version}}"),
                _q(f"edgeloop_model_warmup_seconds{{{SEL}}}", "warm-up {{model_version}}"),
            ),
            unit="s",
        ),
        Panel(
            "Confidence per class and model version",
            "Median and 10th percentile of the detection confidence per class and model "
            "version: a version whose scores sag on a class sees that class worse.",
            (
                _q(
                    "histogram_quantile(0.5, sum by (class, model_version, le) (rate("
                    f"edgeloop_detection_confidence_ratio_bucket{{{SEL}}}[{RATE}])))",
                    "p50 {{class}} {{model_version}}",
                ),
                _q(
                    "histogram_quantile(0.1, sum by (class, model_version, le) (rate("
                    f"edgeloop_detection_confidence_ratio_bucket{{{SEL}}}[{RATE}])))",
                    "p10 {{class}} {{model_version}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Detections per second per class and model version",
            "How often each version finds each class (the confidence histogram's count).",
            (
                _q(
                    "sum by (class, model_version) (rate("
                    f"edgeloop_detection_confidence_ratio_count{{{SEL}}}[{RATE}]))",
                    "{{class}} {{model_version}}",
                ),
            ),
        ),
        Panel(
            "Frames per batch",
            "Mean frames per inference batch per model version (batch size actually reached).",
            (
                _q(
                    "sum by (model_version) (rate("
                    f"edgeloop_inference_batch_frames_sum{{{SEL}}}[{RATE}]))"
                    " / sum by (model_version) (rate("
                    f"edgeloop_inference_batch_frames_count{{{SEL}}}[{RATE}]))",
                    "{{model_version}}",
                ),
            ),
        ),
        Panel(
            "Batches per second",
            "Inference batches per second, full and partial (a partial one left on timeout).",
            (
                _q(
                    f"sum by (device, partial) (rate(edgeloop_batches_total{{{SEL}}}[{RATE}]))",
                    "{{device}} partial={{partial}}",
                ),
            ),
        ),
        Panel(
            "Inference errors",
            "Failures of the infer stage per second.",
            (_q(f'rate(edgeloop_errors_total{{stage="infer",{SEL}}}[{RATE}])', "{{device}}"),),
        ),
    ),
)

BENCH = Dashboard(
    uid="edgeloop-bench",
    title="edgeloop / Bench history",
    description="python -m bench summaries pushed to the Pushgateway, per device and commit.",
    panels=(
        Panel(
            "Pipeline fps per commit",
            "Flat-out fps and the slowest stage's bound of each pushed run.",
            (
                _q(f"edgeloop_bench_pipeline_fps{{{SEL}}}", "{{device}} {{commit}}"),
                _q(f"edgeloop_bench_pipeline_bound_fps{{{SEL}}}", "bound {{device}} {{commit}}"),
            ),
            unit="fps",
        ),
        Panel(
            "End-to-end latency per commit",
            "The flat-out run's summary: quantiles 0.5, 0.99 and 1 (the max) and the mean "
            "(_sum / _count over its frames); the paced run's p99.",
            (
                _q(f"edgeloop_bench_e2e_latency_seconds{{{SEL}}}", "{{commit}} q{{quantile}}"),
                _q(
                    f"edgeloop_bench_e2e_latency_seconds_sum{{{SEL}}} / "
                    f"edgeloop_bench_e2e_latency_seconds_count{{{SEL}}}",
                    "{{commit}} mean",
                ),
                _q(f"edgeloop_bench_paced_e2e_latency_seconds{{{SEL}}}", "{{commit}} paced"),
            ),
            unit="s",
        ),
        Panel(
            "Speed-up over the naive loop",
            "Pipeline fps over the naive loop's, pipeline efficiency (fps / bound), and how far "
            "the machine's speed moved during the run (naive.machine_drift: over 0.1, compare "
            "such runs loosely).",
            (
                _q(f"edgeloop_bench_speedup_vs_naive_ratio{{{SEL}}}", "speed-up {{commit}}"),
                _q(f"edgeloop_bench_pipeline_efficiency_ratio{{{SEL}}}", "efficiency {{commit}}"),
                _q(f"edgeloop_bench_machine_drift_ratio{{{SEL}}}", "machine drift {{commit}}"),
            ),
        ),
        Panel(
            "Metrics sampling cost",
            "micro.metrics.core_fraction_at_1hz: the side channel's share of one core at 1 Hz.",
            (
                _q(
                    f'edgeloop_bench_micro{{suite="metrics",figure="core_fraction_at_1hz",{SEL}}}',
                    "{{device}} {{commit}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Last run",
            "When each device last pushed, and its verdict.",
            (
                _q(f"time() - edgeloop_bench_run_timestamp_seconds{{{SEL}}}", "{{device}} age"),
                _q(f"edgeloop_bench_verdict{{{SEL}}}", "{{device}} {{result}}"),
            ),
            kind="stat",
        ),
    ),
)

DASHBOARDS = (FLEET, DEVICE, MODELS, BENCH)


def _variable() -> dict[str, Any]:
    query = "label_values(edgeloop_build_info, device)"
    return {
        "name": "device",
        "label": "device",
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "device"},
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
    }


def _panel(panel: Panel, index: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": index,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(panel.exprs)
        ],
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard's provisioning JSON."""
    panels = []
    x = y = 0
    for i, panel in enumerate(dashboard.panels, 1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel(panel, i, x, y))
        x += panel.width
    return {
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["edgeloop", *dashboard.extra_tags],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [_variable()]},
        "annotations": {"list": []},
        "panels": panels,
    }


def files() -> Iterator[tuple[Path, str]]:
    """(path, JSON text) of every dashboard."""
    for dashboard in DASHBOARDS:
        name = dashboard.uid.removeprefix("edgeloop-") + ".json"
        yield FOLDER / name, json.dumps(render(dashboard), indent=2) + "\n"


def expressions() -> Iterator[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every query."""
    for dashboard in DASHBOARDS:
        for panel in dashboard.panels:
            for expr, _ in panel.exprs:
                yield dashboard.uid, panel.title, expr


def main(argv: list[str] | None = None) -> int:
    """Write every dashboard's JSON (or, with ``--check``, say which differ: exit 1)."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.monitoring.dashboards",
        description="Write the Grafana dashboards' JSON from their declarations in this module.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file differs"
    )
    parser.add_argument("--json", action="store_true", help="print {path: state} as JSON")
    args = parser.parse_args(argv)
    states: dict[str, str] = {}
    for path, text in files():
        current = path.read_text() if path.exists() else None
        if current == text:
            states[str(path)] = "unchanged"
        elif args.check:
            states[str(path)] = "differs"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            states[str(path)] = "written"
    if args.json:
        print(json.dumps(states, indent=2))
    else:
        for path_name, state in states.items():
            print(f"{state}: {path_name}")
    differs = [p for p, state in states.items() if state == "differs"]
    if differs:
        print(
            f"dashboards: {len(differs)} file(s) differ from their declarations "
            f"(run python -m deploy.monitoring.dashboards): {', '.join(differs)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
