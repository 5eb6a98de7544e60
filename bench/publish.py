"""A bench run's summary as Prometheus metrics: pushed to a Pushgateway (``--push-gateway URL``)
or written in node_exporter's textfile format (``--prom-textfile PATH``), so bench history sits
beside the fleet's live figures in Grafana.

The Pushgateway group is ``job="edgeloop_bench"`` with grouping labels ``device`` (the host)
and ``commit`` (the checkout's, ``unknown`` outside git): one group per device and build, which
a later run of the same build replaces. A Pushgateway keeps every group until it is deleted
(``DELETE /metrics/job/edgeloop_bench/device/D/commit/C``): old builds do not expire.

=========================================  =========================================
name                                       meaning (base units; ms become seconds)
=========================================  =========================================
``edgeloop_bench_run_timestamp_seconds``   when the report was published
``edgeloop_bench_verdict``                 1, ``result`` VALID or INVALID
``edgeloop_bench_pipeline_fps``            flat-out frames per second
``edgeloop_bench_pipeline_bound_fps``      the slowest stage's bound
``edgeloop_bench_pipeline_efficiency_ratio`` fps / bound_fps
``edgeloop_bench_naive_fps``               the naive loop
``edgeloop_bench_speedup_vs_naive_ratio``  pipeline fps / naive fps
``edgeloop_bench_dropped_frames``          frames dropped flat out
``edgeloop_bench_e2e_latency_seconds``     summary, flat out: ``quantile`` 0.5, 0.99 and 1
                                           (the max); ``_count`` frames, ``_sum`` seconds
``edgeloop_bench_paced_e2e_latency_seconds`` summary, paced at 80 %: ``quantile`` 0.99;
                                           ``_count`` frames, ``_sum`` seconds
``edgeloop_bench_paced_load_ratio``        the paced run's load on the bounding stage over
                                           the 80 % it aimed at (``pipeline.paced.load``)
``edgeloop_bench_machine_drift_ratio``     the naive loop segments' spread: the machine's
                                           speed moving during the run (a fraction)
``edgeloop_bench_micro``                   ``suite``, ``case``, ``figure``: every scalar
                                           headline of the micro suites (``figure``
                                           with its unit, ``_ms`` turned into ``_seconds``)
=========================================  =========================================

The latencies are summaries, not gauges: a ``quantile`` label is a summary's, and
``promtool check metrics`` refuses it on any other type. Each is the run's distribution once
(its quantiles over every measured frame, ``_count`` and ``_sum`` of the same frames, so
``_sum / _count`` is the mean), not a sliding window as a live summary's; everything else is
a gauge.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile
from prometheus_client.metrics_core import Metric, SummaryMetricFamily

from bench import schema
from bench.schema import lookup
from core.errors import MetricsExportError

__all__ = ["JOB", "grouping_key", "push", "summary_registry", "write_textfile"]

JOB = "edgeloop_bench"

_PIPELINE = (
    ("edgeloop_bench_pipeline_fps", schema.PIPELINE_FPS, "Flat-out frames per second"),
    ("edgeloop_bench_pipeline_bound_fps", schema.BOUND_FPS, "Slowest stage's bound"),
    ("edgeloop_bench_pipeline_efficiency_ratio", schema.EFFICIENCY, "fps / bound_fps"),
    ("edgeloop_bench_naive_fps", schema.NAIVE_FPS, "Naive loop frames per second"),
    ("edgeloop_bench_speedup_vs_naive_ratio", schema.SPEEDUP_VS_NAIVE, "fps / naive fps"),
    ("edgeloop_bench_dropped_frames", schema.PIPELINE_DROPPED, "Frames dropped flat out"),
    (
        "edgeloop_bench_paced_load_ratio",
        schema.PACED_LOAD_RATIO,
        "Paced run's busy fraction of the bounding stage over the one it aimed at",
    ),
    (
        "edgeloop_bench_machine_drift_ratio",
        schema.MACHINE_DRIFT,
        "Naive loop segments' largest distance from their mean fps: the machine's drift",
    ),
)
_LATENCY = (("0.5", "p50"), ("0.99", "p99"), ("1", "max"))
_LATENCIES = (
    ("edgeloop_bench_e2e_latency_seconds", schema.E2E_LATENCY, _LATENCY, "flat out"),
    (
        "edgeloop_bench_paced_e2e_latency_seconds",
        schema.PACED_E2E_LATENCY,
        _LATENCY[1:2],
        "paced",
    ),
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _micro_figures(micro: dict[str, Any]) -> Iterator[tuple[str, str, str, float]]:
    """(suite, case, figure, value) for every scalar headline (``case`` empty at a suite's top
    level), milliseconds turned into seconds."""
    for suite, cases in micro.items():
        if not isinstance(cases, dict):
            continue
        for case, data in cases.items():
            items = data.items() if isinstance(data, dict) else [("", data)]
            for key, value in items:
                number = _number(value)
                if number is None or key == "rows":
                    continue
                figure, where = (key, case) if key else (case, "")
                if figure.endswith("_ms"):
                    figure, number = figure[:-3] + "_seconds", number / 1e3
                yield suite, where, figure, number


def _latency(
    name: str, block: Any, quantiles: tuple[tuple[str, str], ...], run: str
) -> Metric | None:
    """A report's ``e2e_latency_ms`` block as a summary in seconds: the ``quantiles`` it has,
    then ``_count`` and ``_sum`` where it has ``n`` and ``mean``; None without any quantile."""
    if not isinstance(block, dict):
        return None
    family = SummaryMetricFamily(name, f"End-to-end latency of the run's frames, {run}")
    for quantile, key in quantiles:
        value = _number(block.get(key))
        if value is not None:
            family.add_sample(name, {"quantile": quantile}, value / 1e3)
    if not family.samples:
        return None
    count, mean = block.get("n"), _number(block.get("mean"))
    if isinstance(count, int) and not isinstance(count, bool) and mean is not None:
        family.add_metric([], count, mean * count / 1e3)
    return family


def grouping_key(report: Mapping[str, Any]) -> dict[str, str]:
    """``device`` (the host) and ``commit`` of the report's environment."""
    env = report.get("env") or {}
    return {
        "device": str(env.get("host") or "unknown"),
        "commit": str(env.get("git_commit") or "unknown"),
    }


def summary_registry(report: Mapping[str, Any]) -> CollectorRegistry:
    """The report's headline figures as gauges in a registry of their own."""
    registry = CollectorRegistry()
    Gauge(
        "edgeloop_bench_run_timestamp_seconds", "When the run was published", registry=registry
    ).set(time.time())
    verdict = report.get("verdict")
    if isinstance(verdict, dict) and verdict.get("result"):
        Gauge(
            "edgeloop_bench_verdict", "The run's verdict (1)", ("result",), registry=registry
        ).labels(result=str(verdict["result"])).set(1)
    for name, path, help_text in _PIPELINE:
        value = _number(lookup(report, path))
        if value is not None:
            Gauge(name, help_text, registry=registry).set(value)
    latencies = [
        family
        for name, path, quantiles, run in _LATENCIES
        if (family := _latency(name, lookup(report, path), quantiles, run)) is not None
    ]
    if latencies:
        registry.register(_Families(latencies))
    figures = list(_micro_figures(report.get("micro") or {}))
    if figures:
        micro = Gauge(
            "edgeloop_bench_micro",
            "Micro-benchmark headlines (figure names their unit)",
            ("suite", "case", "figure"),
            registry=registry,
        )
        for suite, case, figure, value in figures:
            micro.labels(suite=suite, case=case, figure=figure).set(value)
    return registry


def push(report: Mapping[str, Any], url: str) -> dict[str, str]:
    """PUT the summary to the Pushgateway at ``url`` (replacing this device and commit's
    group); the grouping key used."""
    key = grouping_key(report)
    try:
        push_to_gateway(url, job=JOB, registry=summary_registry(report), grouping_key=key)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise MetricsExportError(f"Pushgateway {url} refused the bench summary: {reason}") from None
    return key


def write_textfile(report: Mapping[str, Any], path: Path) -> None:
    """The summary in node_exporter's textfile format at ``path`` (written to a temporary file
    and renamed, so the collector never reads half a file), grouping labels on every series."""
    registry = summary_registry(report)
    key = grouping_key(report)
    labelled = CollectorRegistry()
    labelled.register(_WithLabels(registry, key))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), labelled)
    except OSError as exc:
        raise MetricsExportError(f"cannot write {path}: {exc.strerror or exc}") from None


class _Families:
    """A collector of families made once (the report's figures do not change)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class _WithLabels:
    """A collector adding constant labels (the Pushgateway's grouping key) to every sample."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self.registry = registry
        self.labels = labels

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [
                s._replace(labels={**s.labels, **self.labels}) for s in family.samples
            ]
            yield labelled
