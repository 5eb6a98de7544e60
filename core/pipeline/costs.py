"""``Pipeline.stage_costs``: every stage alone, single-threaded, on the pipeline's own work.

The bench divides each stage's workers by its mean service time per frame and caps the result
by the cores over the stages' total CPU per frame (``bound_fps``); the running pipeline's fps
over that bound is its efficiency. So the stages here do exactly the work they do in the
pipeline, on consecutive frames of the first configured source, one call at a time with
nothing else running, each call timed on its own (wall and process CPU):

* ``source``: ``read_into`` a buffer;
* ``preprocess``: the motion gate, and ``preprocess_into`` a row of the backend's input for
  the frames it lets through;
* ``infer``: one call per batch of ``batch_size`` gated-in frames (the last may be partial),
  timed on a second run right after a first (warm, as in a pipeline that keeps it busy);
* ``postprocess``: decoding each inferred frame; ``filter``: every frame's decision;
* ``compress``: the JPEGs the decisions ask for, plus the ledger's full-frame sample every
  ``sample_every`` frames;
* ``sink``: emitting the records to the configured sink kind (a file sink writes into a
  temporary folder; ``sink_given``: the pipeline was given a sink of its own, which is not
  measured: the null sink stands in).

The stages are the pipeline's own (:func:`core.pipeline.stages.build_stages`), their calls
wrapped as the pipeline's are.

A stage's service time per frame is its total over the frames (so the motion gate's skipped
inferences cost the infer stage nothing, as in the pipeline). CPU is the whole process's
(``time.process_time_ns``): a runtime's thread pool counts. An inference process times its
own calls (wall and CPU), and those are the infer stage's.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core import jpeg
from core.backends import Backend
from core.backends.pool import REMOTE_BACKENDS
from core.backends.process import CallCost
from core.errors import InferenceProcessError, PipelineError
from core.formats.model import ModelChoice
from core.ledger import BandwidthLedger
from core.pipeline.batcher import WorkItem
from core.pipeline.config import PipelineConfig
from core.pipeline.placement import place
from core.pipeline.report import StageCost
from core.pipeline.stages import (
    STAGES,
    StageCallWrapper,
    build_stages,
    settle_backend,
    stage_workers,
)
from core.sinks import NullSink, Sink, open_sink
from core.sources import Source, SourceConfig

WARMUP_FRAMES = 3
"""Frames run through every stage before timing (lazy allocations, caches, first frame)."""
CHUNKS = 8
"""Stretches of a run's frames that ``span`` spreads the measured frames over."""


class _Frame:
    """Stands in for a ring frame: ``data`` and a no-op ``release``."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def release(self) -> None:
        pass


class _Rows:
    """Stands in for a batch of ``rows`` rows in input slot 0 (what ``InferStage`` reads)."""

    slot = 0

    def __init__(self, rows: int) -> None:
        self.rows = rows


class _Clock:
    """Wall and process-CPU ns per stage, summed over calls."""

    def __init__(self) -> None:
        self.wall = dict.fromkeys(STAGES, 0)
        self.cpu = dict.fromkeys(STAGES, 0)
        self.on = False

    def time(self, stage: str, work: Callable[..., Any], *args: Any) -> Any:
        cpu = time.process_time_ns()  # read outside the wall interval: a few µs after ORT runs
        wall = time.perf_counter_ns()
        result = work(*args)
        end = time.perf_counter_ns()
        if self.on:
            self.wall[stage] += end - wall
            self.cpu[stage] += time.process_time_ns() - cpu
        return result

    def add(self, stage: str, cost: CallCost) -> None:
        """A call timed elsewhere (an inference process)."""
        if self.on:
            self.wall[stage] += cost.end_ns - cost.start_ns
            self.cpu[stage] += cost.cpu_ns


def measure_stage_costs(
    config: PipelineConfig,
    backend: Backend,
    source_factory: Callable[[SourceConfig, int], Source],
    frames: int,
    *,
    span: tuple[int, int] | None = None,
    sink_given: bool = False,
    wrap: StageCallWrapper | None = None,
    model: ModelChoice | None = None,
) -> dict[str, StageCost]:
    """See the module docstring: each stage's :class:`StageCost` by name."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    m = config.model
    workers = stage_workers(len(config.sources), config.compress_workers, config.infer_workers)
    remote = backend if isinstance(backend, REMOTE_BACKENDS) else None
    ledger = BandwidthLedger()
    quality = config.filter.jpeg_quality
    clock = _Clock()
    placed, _ = place(config, backend, source_factory)[0]  # its decoder as a run sets it up
    source = source_factory(placed, 0)
    with tempfile.TemporaryDirectory(prefix="edgeloop-costs-") as folder:
        measured = _measured_sink(config, sink_given, Path(folder))
        if model is None:
            model = settle_backend(backend, config.model.format, config.model.labels)
        stages = build_stages(config, backend, measured, model, wrap)
        pre, post, filt, compress = (
            stages.preprocess(),
            stages.postprocess,
            stages.filter,
            stages.compress,
        )
        result_filter, sink, infer = stages.result_filter, stages.sink, stages.infer
        sink.on_start()
        try:
            height, width = source.open()
            spare = [np.empty((height, width, 3), np.uint8) for _ in range(m.batch_size + 1)]
            batch: list[WorkItem] = []
            number = 0

            def finish(item: WorkItem) -> None:
                nonlocal number
                clock.time("filter", filt.process, item)
                clock.time("compress", compress.process, item)
                if ledger.wants_sample(number):
                    clock.time("compress", partial(jpeg.encode, quality=quality), item.frame.data)
                number += 1
                clock.time("sink", sink.process, item)
                spare.append(item.frame.data)

            def run_batch() -> None:
                # Each batch runs twice, back to back, and the second run is timed: weights and
                # input are warm, as when the pipeline keeps inference busy.
                if remote is None:
                    on, clock.on = clock.on, False
                    backend.infer(len(batch), 0)
                    clock.on = on
                    outputs = clock.time("infer", infer.process, _Rows(len(batch)))
                else:  # both queued at once: the child does not sleep (and go cold) between
                    remote.submit(len(batch), 0)
                    remote.submit(len(batch), 0)
                    remote.collect(0)
                    reply = remote.collect(0)
                    if reply.error is not None:
                        raise InferenceProcessError(reply.error)
                    outputs = reply.outputs
                    clock.add("infer", reply.cost)  # the child's own time and CPU
                for item in batch:
                    rows = [o[item.row] for o in outputs]
                    clock.time("postprocess", post.process, (item, rows))
                    finish(item)
                batch.clear()

            def one_frame() -> None:
                data = spare.pop()
                got = clock.time("source", source.read_into, data)
                if got is None:
                    raise PipelineError(f"{source.name} ended before {frames} frames were timed")
                seq, index = got.index + 1, got.index
                item = WorkItem(_Frame(data), 0, seq, index, got.capture_ns, got.truth)
                if not clock.time("preprocess", pre.gate, item):
                    finish(item)
                    return
                item.row = len(batch)
                row = backend.input_buffer(m.batch_size, 0)[item.row]
                clock.time("preprocess", pre.process, (item, row))
                batch.append(item)
                if len(batch) == m.batch_size:
                    run_batch()

            for chunk, (first, timed) in enumerate(_chunks(source, frames, span)):
                if chunk:  # a jump: the gate and the cooldowns start afresh, as after a gap
                    pre.motion.reset(0)
                    result_filter.reset(0)
                lead = WARMUP_FRAMES if chunk == 0 else 1
                if first is not None:
                    source.seek(max(0, first - lead))
                clock.on = False
                for _ in range(lead):
                    one_frame()
                if batch:
                    run_batch()
                clock.on = True
                for _ in range(timed):
                    one_frame()
                if batch:
                    run_batch()
        finally:
            source.close()
            sink.on_stop()
    return {
        name: StageCost(clock.wall[name] / frames, clock.cpu[name] / frames, workers[name])
        for name in STAGES
    }


def _chunks(source: Any, frames: int, span: tuple[int, int] | None) -> list[tuple[int | None, int]]:
    """``(first index or None: where the source is, frames timed)`` per chunk: one run of
    consecutive frames, or, with a ``span`` and a source that can seek, :data:`CHUNKS` runs
    spread evenly over it (the motion gate's pass rate, and so every later stage's work,
    changes along a scene: a few hundred consecutive frames would stand for only their
    stretch of it)."""
    if span is None or span[1] - span[0] < 2 * frames or not source.seek(span[0]):
        return [(None, frames)]
    count = min(CHUNKS, frames)
    base, extra = divmod(frames, count)
    sizes = [base + (1 if k < extra else 0) for k in range(count)]
    first, end = span
    room = end - first - max(sizes)
    return [(first + room * k // max(1, count - 1), size) for k, size in enumerate(sizes)]


def _measured_sink(pipeline_config: PipelineConfig, sink_given: bool, folder: Path) -> Sink:
    config = pipeline_config.sink
    if sink_given:
        return NullSink()
    if config.kind == "file":
        return open_sink(dataclasses.replace(config, path=folder))
    return open_sink(config)
