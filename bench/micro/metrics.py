"""What the metrics side channel costs: one full sample of every collector plus one Prometheus
exposition, the work the device does each second at the default 1 Hz.

Case ``sample1hz`` (headline keys ``micro.metrics.sample1hz.<key>``, and the issue's headline
``micro.metrics.core_fraction_at_1hz`` at the suite's top level):

rows
    ``sample`` (every collector the default config builds: hardware, gpu, jetson, network --
    absent ones cost their check only), each collector alone, ``exposition`` (the text a scrape
    returns, from a registry holding a two-stream pipeline's families as well), and ``scrape``
    (the same over HTTP on loopback: the server's parsing and socket work, and the client's).
    Each row: wall-time figures (``median_ms``...) and ``cpu_ms``, the CPU time per call (user +
    system, what the core actually spends; wall time on a shared 2-core machine also counts time
    spent preempted): the calling thread's, and for the scrape the whole process's (the server
    answers on its own thread; the sampler is stopped while it is measured).
``core_fraction_at_1hz``
    (sample + exposition) CPU seconds per call, over one second: the fraction of one core the
    side channel takes at 1 Hz. Target <= 0.001 (``target_met``).
"""

from __future__ import annotations

import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.micro import MicroOptions
from bench.stats import summarize
from bench.timing import measure
from core.detections import Detections
from core.metrics import MetricsRegistry
from core.metrics.collect import Sampler
from core.metrics.config import MetricsConfig
from core.metrics.exporter import MetricsServer, exposition
from core.metrics.service import build_collectors, record_info
from core.pipeline.stages import STAGES
from core.pipeline.telemetry import PipelineMetrics

TARGET_CORE_FRACTION = 0.001
STREAMS = 2


def _pipeline_families(registry: MetricsRegistry) -> None:
    """The families a running two-stream pipeline has, with values in every child."""
    metrics = PipelineMetrics(registry)
    metrics.model_info("detector", "0123456789ab", "onnxruntime", load_s=0.2, warmup_s=0.05)
    rng = np.random.default_rng(0)
    for stage in STAGES:
        metrics.latency.labels(stage=stage).observe_many(rng.gamma(2.0, 0.002, 1000))
        metrics.busy.labels(stage=stage).set(0.5)
        metrics.errors.labels(stage=stage).inc(0)
        metrics.heartbeat.labels(stage=stage).set(time.time())
    metrics.e2e.labels().observe_many(rng.gamma(2.0, 0.01, 1000))
    for stream in range(STREAMS):
        metrics.frames.labels(stream=stream).inc(1000)
        metrics.read.labels(stream=stream).inc(1000)
        metrics.drops.labels(stream=stream, reason="overwritten").inc(3)
        metrics.missed.labels(stream=stream).inc(1)
        metrics.occupancy.labels(stream=stream).set(2)
    for kind in ("raw", "jpeg_all", "sent"):
        metrics.bandwidth.labels(kind=kind).inc(1e6)
    for partial in ("true", "false"):
        metrics.batches.labels(partial=partial).inc(10)
    names = ("person", "car")
    metrics.outputs.observe_scores(
        [
            Detections(
                np.zeros((2, 4), np.float32),
                np.array([0.9, 0.4], np.float32),
                np.array([0, 1]),
                names,
            )
        ]
        * 100
    )
    metrics.outputs.observe_batch_sizes([0, 3, 0, 0, 20])


def _timed(
    fn: Callable[[], object], clock: Callable[[], int] = time.thread_time_ns
) -> tuple[Callable[[], None], list[int]]:
    """``fn`` wrapped to add its CPU time per call (by ``clock``) to a list."""
    cpu: list[int] = []

    def call() -> None:
        t0 = clock()
        fn()
        cpu.append(clock() - t0)

    return call, cpu


def _row(
    name: str,
    fn: Callable[[], object],
    options: MicroOptions,
    clock: Callable[[], int] = time.thread_time_ns,
) -> dict[str, Any]:
    call, cpu = _timed(fn, clock)
    options.progress(f"metrics: {name}")
    samples = measure(call, options.budget)
    measured = cpu[-len(samples) :]  # the measured phase, after the warm-up calls
    s = summarize(samples, unit="ms")
    return {
        "name": name,
        "median_ms": s["median_ms"],
        "p99_ms": s["p99_ms"],
        "mean_ms": s["mean_ms"],
        "cpu_ms": float(np.mean(measured)) / 1e6,
        "n": s["n"],
    }


def _case(options: MicroOptions, folder: Path) -> dict[str, Any]:
    registry = MetricsRegistry()
    config = MetricsConfig(data_path=folder)
    record_info(registry, config)
    _pipeline_families(registry)
    collectors = build_collectors(config, registry)
    sampler = Sampler(registry, collectors)
    try:
        rows = [_row("sample (all collectors)", sampler.sample_once, options)]
        for collector in collectors:
            if collector.available:
                rows.append(_row(f"  {collector.name}", collector.sample, options))
        rows.append(_row("exposition", lambda: exposition(registry), options))
        with MetricsServer(registry, port=0) as server:
            url = server.url

            def scrape() -> None:
                with urllib.request.urlopen(url, timeout=5) as response:
                    response.read()

            rows.append(
                _row("scrape over HTTP (server + client)", scrape, options, time.process_time_ns)
            )
        exposition_bytes = len(exposition(registry))
        families = len(registry.names())
    finally:
        sampler.stop()
    cpu_s = (rows[0]["cpu_ms"] + next(r for r in rows if r["name"] == "exposition")["cpu_ms"]) / 1e3
    fraction = cpu_s / 1.0
    return {
        "rows": rows,
        "core_fraction_at_1hz": fraction,
        "target_core_fraction": TARGET_CORE_FRACTION,
        "target_met": fraction <= TARGET_CORE_FRACTION,
        "exposition_bytes": exposition_bytes,
        "families": families,
        "absent": [c.name for c in collectors if not c.available],
    }


def run(options: MicroOptions) -> dict[str, Any]:
    """The ``sample1hz`` case, and its headline at ``micro.metrics.core_fraction_at_1hz``."""
    if not options.wants("sample1hz"):
        return {}
    with tempfile.TemporaryDirectory(prefix="edgeloop-metrics-") as tmp:
        case = _case(options, Path(tmp))
    return {"sample1hz": case, "core_fraction_at_1hz": case["core_fraction_at_1hz"]}
