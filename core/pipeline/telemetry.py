"""The pipeline's metrics in the registry (:mod:`core.metrics`), fed by the run's monitor a few
times a second from the workers' raw stats -- nothing on the per-frame path but the raw stats.

=======================================  =========  ==========================================
name                                     type       labels / meaning
=======================================  =========  ==========================================
``edgeloop_frames_total``                counter    ``stream``: frames through every stage
``edgeloop_frames_read_total``           counter    ``stream``: frames the source delivered
``edgeloop_drops_total``                 counter    ``stream``, ``reason`` (``overwritten``...)
``edgeloop_frames_concealed_total``      counter    ``stream``: frames delivered with errors the
                                                    decoder concealed (damaged data)
``edgeloop_frames_missed_total``         counter    ``stream``: ticks a paced source let pass
                                                    without a frame (late, or back-pressure)
``edgeloop_errors_total``                counter    ``stage``: per-frame failures, by stage
``edgeloop_stage_latency_seconds``       histogram  ``stage``: service time (infer: per batch)
``edgeloop_stage_busy_ratio``            gauge      ``stage``: busy time / wall / workers
``edgeloop_ring_occupancy``              gauge      ``stream``: frames in the ring (queue depth)
``edgeloop_e2e_latency_seconds``         histogram  capture to sink, every frame
``edgeloop_batches_total``               counter    inference batches (``partial``: true/false)
``edgeloop_bandwidth_bytes_total``       counter    ``kind``: raw, jpeg_all (estimate), sent
``edgeloop_model_info``                  gauge      1, ``model``, ``model_version``, ``backend``
``edgeloop_model_load_seconds``          gauge      ``model_version``: file to ready session
``edgeloop_model_warmup_seconds``        gauge      ``model_version``: first call + warm-up runs
``edgeloop_stage_heartbeat_seconds``     gauge      ``stage``: Unix time it last did work
=======================================  =========  ==========================================

plus the model-output histograms of :mod:`core.pipeline.model_metrics` (confidence per class,
frames per batch), labelled with the model version :meth:`PipelineMetrics.model_info` set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from core.detections import Detections
from core.metrics import MetricsRegistry
from core.pipeline.model_metrics import ModelMetrics
from core.pipeline.stats import StageGroup, StageStats


class StreamCounts(NamedTuple):
    """One stream's running totals, as the monitor reads them for :meth:`PipelineMetrics.update`."""

    stream_id: int
    read: int
    delivered: int
    dropped: Mapping[str, int]
    """Frames dropped so far, by reason (``overwritten``...)."""
    occupancy: int
    """Frames in the stream's ring now."""
    concealed: int
    missed: int
    """Ticks a paced source let pass without a frame (:attr:`StreamBlock.missed_ticks`)."""


class PipelineMetrics:
    """Registers the pipeline's families once and brings them up to date on :meth:`update`."""

    def __init__(self, registry: MetricsRegistry) -> None:
        r = registry
        self.frames = r.counter("edgeloop_frames_total", "Frames through every stage", ("stream",))
        self.read = r.counter("edgeloop_frames_read_total", "Frames sources delivered", ("stream",))
        self.drops = r.counter(
            "edgeloop_drops_total", "Frames dropped, by reason", ("stream", "reason")
        )
        self.concealed = r.counter(
            "edgeloop_frames_concealed_total",
            "Frames delivered with errors the decoder concealed",
            ("stream",),
        )
        self.missed = r.counter(
            "edgeloop_frames_missed_total",
            "Ticks a paced source let pass without a frame",
            ("stream",),
        )
        self.errors = r.counter("edgeloop_errors_total", "Per-frame failures", ("stage",))
        self.latency = r.histogram(
            "edgeloop_stage_latency_seconds", "Stage service time (infer: per batch)", ("stage",)
        )
        self.busy = r.gauge("edgeloop_stage_busy_ratio", "Busy time / wall time", ("stage",))
        self.occupancy = r.gauge(
            "edgeloop_ring_occupancy", "Frames in a stream's ring", ("stream",)
        )
        self.e2e = r.histogram("edgeloop_e2e_latency_seconds", "Capture to sink")
        self.batches = r.counter("edgeloop_batches_total", "Inference batches", ("partial",))
        self.bandwidth = r.counter(
            "edgeloop_bandwidth_bytes_total", "Bytes: raw, every frame as JPEG, sent", ("kind",)
        )
        self.model = r.gauge(
            "edgeloop_model_info",
            "The model in use (1; 0 for one swapped out)",
            ("model", "model_version", "backend"),
        )
        self.load = r.gauge(
            "edgeloop_model_load_seconds", "Model file to ready session", ("model_version",)
        )
        self.warmup = r.gauge(
            "edgeloop_model_warmup_seconds", "First inference plus warm-up", ("model_version",)
        )
        self.heartbeat = r.gauge(
            "edgeloop_stage_heartbeat_seconds", "Unix time a stage last did work", ("stage",)
        )
        self.outputs = ModelMetrics(r)
        self._calls: dict[str, int] = {}
        self._fed: dict[int, int] = {}  # id(stats) -> calls already fed to the histogram
        self._counted: dict[tuple[str, ...], float] = {}

    def model_info(
        self,
        model: str,
        version: str,
        backend: str,
        *,
        load_s: float | None = None,
        warmup_s: float | None = None,
    ) -> None:
        for _, child in self.model.children():  # a swapped-out model reads 0
            child.set(0)
        self.model.labels(model=model, model_version=version, backend=backend).set(1)
        self.outputs.version = version
        if load_s is not None:
            self.load.labels(model_version=version).set(load_s)
        if warmup_s is not None:
            self.warmup.labels(model_version=version).set(warmup_s)

    def _feed(self, stats: StageStats, histogram: object) -> None:
        done = self._fed.get(id(stats), 0)
        now = stats.calls  # read once: a call a worker records meanwhile is fed next time
        samples = stats.samples_between(done, now)
        self._fed[id(stats)] = now
        if samples.size:
            histogram.observe_many(samples / 1e9)  # type: ignore[attr-defined]

    def _to(self, key: tuple[str, ...], counter: object, total: float) -> None:
        """Counters move by the change of a running total since the last update."""
        delta = total - self._counted.get(key, 0.0)
        if delta > 0:
            counter.inc(delta)  # type: ignore[attr-defined]
            self._counted[key] = total

    def update(
        self,
        groups: Mapping[str, StageGroup],
        e2e: StageStats,
        *,
        wall_s: float,
        workers: Mapping[str, int],
        streams: Sequence[StreamCounts],
        bandwidth: Mapping[str, object],
        batches: tuple[int, int],
        batch_sizes: Sequence[int] = (),
        scores: Sequence[Detections] = (),
    ) -> None:
        """``streams``: each stream's running totals; ``batch_sizes[n]``: batches of n frames
        so far; ``scores``: detections of the frames decoded since the last update."""
        now = time.time()
        for name, group in groups.items():
            calls = sum(s.calls for s in group.workers)
            if calls != self._calls.get(name):  # the stage did work since the last update
                self._calls[name] = calls
                self.heartbeat.labels(stage=name).set(now)
            child = self.latency.labels(stage=name)
            for stats in group.workers:
                self._feed(stats, child)
            busy = sum(s.busy_ns for s in group.workers) / 1e9
            if wall_s > 0:
                self.busy.labels(stage=name).set(busy / wall_s / max(1, workers.get(name, 1)))
            errors = sum(s.errors for s in group.workers)
            self._to(("errors", name), self.errors.labels(stage=name), errors)
        self._feed(e2e, self.e2e.labels())
        for stream in streams:
            s = str(stream.stream_id)
            self._to(("read", s), self.read.labels(stream=s), stream.read)
            self._to(("concealed", s), self.concealed.labels(stream=s), stream.concealed)
            self._to(("missed", s), self.missed.labels(stream=s), stream.missed)
            self._to(("frames", s), self.frames.labels(stream=s), stream.delivered)
            for reason, count in stream.dropped.items():
                self._to(("drops", s, reason), self.drops.labels(stream=s, reason=reason), count)
            self.occupancy.labels(stream=s).set(stream.occupancy)
        for kind in ("raw", "jpeg_all", "sent"):
            value = bandwidth.get(kind)
            if isinstance(value, (int, float)):
                self._to(("bytes", kind), self.bandwidth.labels(kind=kind), float(value))
        total, partial = batches
        self._to(("batches", "true"), self.batches.labels(partial="true"), partial)
        self._to(("batches", "false"), self.batches.labels(partial="false"), total - partial)
        self.outputs.observe_batch_sizes(batch_sizes)
        self.outputs.observe_scores(scores)
