"""The pipeline: sources → rings → preprocess → infer → postprocess → filter → compress → sink.

>>> from core.pipeline import Pipeline, load_pipeline_config
>>> config = load_pipeline_config(overrides=[
...     "sources=[{kind: synthetic, width: 320, height: 180}]", "model.backend=onnxruntime"])
>>> with Pipeline(config) as pipeline:
...     report = pipeline.run(max_frames=20)
>>> report.frames, report.streams[0].state, report.streams[0].occupancy_end
(20, 'ended', 0)

How it runs (the workers are described in :mod:`core.pipeline.workers`, the stages in
:mod:`core.pipeline.stages`):

* one :class:`~core.ring.FrameRing` per stream, sized from the source's first ``open``; the
  source writes frames into its slots (a thread, or a process with ``source_workers:
  process``); only slot indices and results move between workers after that;
* one ingest thread per stream (motion gate, then preprocessing straight into a row of the
  backend's input), batches across streams (:mod:`core.pipeline.batcher`), inference in a
  thread or in a process of its own (``infer_worker``; :mod:`core.backends.process`), one
  output thread (decode, filter, compress, sink); every worker but inference runs
  ``stage_nice`` steps nicer (:mod:`core.pipeline.priority`);
* the calling thread monitors: warm-up, duration, sources that ended or hang, metrics,
  progress. Stopping stops the sources first and lets everything in flight drain, within
  ``stop_timeout_s``; a worker that does not stop is abandoned and reported, never waited on.

Per-frame problems (a bad read, a frame that cannot be preprocessed, NaN model outputs, a
failing sink) are counted by stage and logged; :meth:`Pipeline.run` raises only for what
prevents a run (a model or sink that cannot open, a worker that crashed on a bug), and even
then only after every worker was stopped and every ring closed.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np

from core.backends import Backend, open_backend, resolve_model
from core.backends.pool import ProcessPool, inference_pids
from core.backends.process import ProcessBackend
from core.device import choose_backend, probe
from core.errors import ConfigError, PipelineError
from core.formats import read_metadata
from core.formats.model import ModelChoice, aligned_size, stride_of
from core.ledger import BandwidthLedger
from core.metrics import MetricsRegistry
from core.pipeline.batcher import Batcher
from core.pipeline.config import PipelineConfig
from core.pipeline.costs import measure_stage_costs
from core.pipeline.observe import RunObserver, Window, most_seconds, wants_frames
from core.pipeline.priority import ask_short_slice
from core.pipeline.report import PipelineProgress, PipelineReport, StageCost, StreamReport
from core.pipeline.stages import (
    STAGES,
    StageCallWrapper,
    build_stages,
    settle_detector,
    source_policy,
    stage_workers,
)
from core.pipeline.streams import (
    FAILED,
    RUNNING,
    STATE_NAMES,
    ProcessSourceWorker,
    SourceLoopSettings,
    SourceWorker,
    StreamBlock,
    ThreadSourceWorker,
)
from core.pipeline.telemetry import PipelineMetrics, StreamCounts
from core.pipeline.threads import choose_threads
from core.pipeline.workers import InferWorker, IngestWorker, OutputWorker, RunState
from core.ring import FrameRing, RingConsumer
from core.sinks import Sink, open_sink
from core.sources import Source, SourceConfig, open_source

log = logging.getLogger("edgeloop.pipeline")

INPUT_SLOTS = {"thread": 3, "process": 4}
"""Backend input slots by ``infer_worker``: one filling, one inferring, one being decoded; an
inference process also keeps the next batch queued, so that it never waits for the parent."""
DEFAULT_THREADS = 1
"""ONNX Runtime intra-op threads inference is measured with when ``model.threads`` is None,
and keeps unless its share of the cores says more (:mod:`core.pipeline.threads`)."""
STALL_GRACE_S = 1.0
"""A read running this long past its source's ``timeout_s`` counts as hung."""
TICK_S = 0.02
METRICS_EVERY_S = 0.25
PROGRESS_EVERY_S = 0.5
SourceFactory = Callable[[SourceConfig, int], Source]


def _quotas(max_frames: int | None, streams: int) -> list[int | None]:
    """``max_frames`` split over the streams (the first ones take the remainder)."""
    if max_frames is None:
        return [None] * streams
    base, extra = divmod(max_frames, streams)
    return [base + (1 if i < extra else 0) for i in range(streams)]


class Pipeline:
    """A configured pipeline; :meth:`run` it (as often as wanted), :meth:`stage_costs` to
    measure each stage alone, :meth:`close` (or ``with``) to release the model.

    ``sink`` replaces the configured one (the outbox/MQTT sink plugs in here); ``registry``
    receives the metrics (a new one otherwise: :attr:`registry`); ``source_factory`` makes
    each stream's source from its config (default :func:`core.sources.open_source`; tests pass
    doubles; with ``source_workers: process`` it must be picklable); ``wrap_stage_calls``
    wraps every stage's work call, in runs and cost measures alike
    (:data:`~core.pipeline.stages.StageCallWrapper`; it must pickle where inference runs in a
    process).
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        sink: Sink | None = None,
        registry: MetricsRegistry | None = None,
        source_factory: SourceFactory = open_source,
        wrap_stage_calls: StageCallWrapper | None = None,
    ) -> None:
        if not isinstance(config, PipelineConfig):
            raise TypeError(f"config must be a PipelineConfig, got {type(config).__name__}")
        self.config = config
        self._configured = config
        self.registry = registry if registry is not None else MetricsRegistry()
        self.source_factory = source_factory
        self.wrap_stage_calls = wrap_stage_calls
        self._sink = sink
        self._backend: Backend | None = None
        self._model: ModelChoice | None = None
        self.threads_why = ""
        """Why inference has the threads it has (set when the model loads)."""
        self._infer_worker: str | None = None
        self._metrics = PipelineMetrics(self.registry)

    @property
    def backend(self) -> Backend:
        """The loaded, warmed-up model (loaded on first use, kept until :meth:`close`).

        With ``model.threads`` None and one inference worker on ONNX Runtime, inference gets
        as many cores as its share of a frame's CPU says (:mod:`core.pipeline.threads`):
        measured with one thread, reopened on more cores when it needs them (:meth:`
        _more_cores`); :attr:`threads_why` says what was chosen and why. The configuration
        then says the inference processes it runs (:attr:`config`)."""
        if self._backend is None:
            m = self.config.model
            backend = self._open(m.threads if m.threads is not None else DEFAULT_THREADS)
            self.threads_why = "model.threads" if m.threads is not None else ""
            if m.threads is None and self.config.infer_workers == 1:
                if backend.describe().name == "onnxruntime":
                    cores, self.threads_why = choose_threads(
                        self.config, backend, self.source_factory
                    )
                    if cores > 1:
                        backend.close()
                        backend = self._more_cores(cores)
                else:
                    self.threads_why = f"{backend.describe().name} runs its own threads"
            log.info("inference threads: %s (%s)", backend.describe().threads, self.threads_why)
            self._backend = backend
            for pid in inference_pids(self._backend):  # its one thread runs the model
                ask_short_slice(self.config.critical_slice_us, pid)
            info = self._backend.describe()
            timings = self._backend.timings
            self._metrics.model_info(
                m.model,
                info.model_sha256[:12],
                info.name,
                load_s=timings.load_s,
                warmup_s=timings.first_inference_s + timings.warmup_s,
            )
        return self._backend

    def _more_cores(self, cores: int) -> Backend:
        """The model reopened to run on ``cores``: as that many inference processes of one
        thread each where inference runs in a process (no thread of one waits at another's
        barrier while a stage holds its core), else as that many intra-op threads."""
        if self.infer_worker == "process":
            self.config = dataclasses.replace(self.config, infer_workers=cores)
            self.threads_why += f": {cores} inference processes of one thread"
            return self._open(DEFAULT_THREADS)
        self.threads_why += f": {cores} intra-op threads"
        return self._open(cores)

    def _open(self, threads: int) -> Backend:
        """The configured model opened where ``infer_worker`` says, with ``threads``."""
        m = self.config.model
        opener: Callable[..., Backend] = open_backend
        workers = self.config.infer_workers
        if self.infer_worker == "process":
            opener = ProcessBackend if workers == 1 else partial(ProcessPool, workers=workers)
            if self.wrap_stage_calls is not None:  # the child wraps its own calls
                opener = partial(opener, wrap_infer=partial(self.wrap_stage_calls, "infer"))
        elif workers > 1:
            raise ConfigError(
                f"infer_workers: {workers} inference processes need infer_worker: process "
                "(ONNX Runtime); inference runs in a thread here"
            )
        return opener(
            m.model,
            m.backend,
            input_size=self.input_size,
            threads=threads,
            precision=m.precision,
            batch_size=m.batch_size,
            input_slots=self.input_slots,
            spinning=False,  # a spinning pool thread would hold a core the stages need
        )

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``model.input_size`` rounded up to the model's stride (None: the model's own, or
        640 x 640 for a dynamic input)."""
        wanted = self.config.model.input_size
        if wanted is None:
            return None
        path = resolve_model(self.config.model.model)
        size = aligned_size(wanted, stride_of(read_metadata(path)))
        if size != tuple(wanted):
            log.info(
                "model.input_size %s rounded up to %s, whole cells of its stride", wanted, size
            )
        return size

    @property
    def model(self) -> ModelChoice:
        """The loaded model's format, class names and preprocessing (:mod:`core.formats`;
        settled on first use from ``model.format`` and ``model.labels``)."""
        if self._model is None:
            m = self.config.model
            self._model = settle_detector(self.backend, m.format, m.labels)
            log.info(
                "model %s: format %s, %d classes (names from %s)",
                self.backend.model_path.name,
                self._model.format.name,
                len(self._model.class_names),
                self._model.names_from,
            )
        return self._model

    @property
    def infer_worker(self) -> str:
        """Where inference runs, ``thread`` or ``process``: ``infer_worker: auto`` is a
        process wherever ONNX Runtime is the backend (its buffers can be shared memory), a
        thread for TensorRT."""
        if self._infer_worker is None:
            wanted = self.config.infer_worker
            if wanted == "auto":
                chosen = choose_backend(self.config.model.backend, probe()).backend
                wanted = "process" if chosen == "onnxruntime" else "thread"
            self._infer_worker = wanted
        return self._infer_worker

    @property
    def input_slots(self) -> int:
        """The backend's input slots (:data:`INPUT_SLOTS`, for each inference process)."""
        return INPUT_SLOTS[self.infer_worker] * self.config.infer_workers

    def run(
        self,
        *,
        duration_s: float | None = None,
        max_frames: int | None = None,
        warmup_s: float = 0.0,
        progress: Callable[[PipelineProgress], None] | None = None,
        observers: Sequence[RunObserver] = (),
    ) -> PipelineReport:
        """Run until ``duration_s`` of measurement (after ``warmup_s``), ``max_frames`` read
        in all (split evenly over the streams), or every source ended -- whichever comes
        first; then stop every worker and return the report (see the module docstring).
        ``observers`` are shown the run as it goes (:mod:`core.pipeline.observe`); at
        ``duration_s`` the run measures on for as many seconds as the most any of them asks
        (:meth:`~core.pipeline.observe.RunObserver.more_seconds`)."""
        if duration_s is not None and duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if warmup_s < 0:
            raise ValueError(f"warmup_s must be >= 0, got {warmup_s}")
        run = _Run(self, duration_s, max_frames, warmup_s, progress, observers=tuple(observers))
        return run.execute()

    def stage_costs(
        self, frames: int = 50, *, span: tuple[int, int] | None = None
    ) -> dict[str, StageCost]:
        """Each stage alone, single-threaded, on ``frames`` frames of the first source: mean
        service time and CPU per frame. ``span`` (first, end) spreads them over those frame
        indices (a run's measured frames), where the source can seek (see
        :mod:`core.pipeline.costs`). A sink given to the pipeline is not measured: the null
        sink stands in for it."""
        backend = self.backend  # first: loading may have given inference more cores
        return measure_stage_costs(
            self.config,
            backend,
            self.source_factory,
            frames,
            span=span,
            sink_given=self._sink is not None,
            wrap=self.wrap_stage_calls,
            model=self.model,
        )

    def make_sink(self) -> Sink:
        return self._sink if self._sink is not None else open_sink(self.config.sink)

    def close(self) -> None:
        """Release the model."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            self._model = None
            self.config = self._configured  # the next load measures afresh

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def freeze_heap() -> int:
    """Collect once, then move every object alive into the garbage collector's permanent
    generation (``gc.freeze``); returns how many. Why: a full collection walks every tracked
    object -- the modules, NumPy, ONNX Runtime's bindings, a caller's earlier reports --
    holding the GIL all the while, long enough to put a backlog of frames over their latency
    budget (docs/decisions/0011-gc-freeze-before-a-run.md). Frozen, what existed before the run is
    never walked again, and a full collection costs only what the run itself keeps.
    ``gc.unfreeze`` after the run hands them back."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class _Mark(NamedTuple):
    """A window mark: when, frames delivered, end-to-end samples, each stage's workers' calls
    and inference's time off its core so far (what lies between two marks is the window's)."""

    t_ns: int
    delivered: int
    e2e_calls: int
    stage_calls: dict[str, tuple[int, ...]]
    infer_off_cpu_ns: int


class _Run:
    """One run: setup, monitor, stop, report, close (see :meth:`Pipeline.run`)."""

    def __init__(
        self,
        pipeline: Pipeline,
        duration_s: float | None,
        max_frames: int | None,
        warmup_s: float,
        progress: Callable[[PipelineProgress], None] | None,
        *,
        observers: tuple[RunObserver, ...],
    ) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config
        self.duration_s = duration_s
        self.observers = observers
        self.until_s = duration_s
        """Measured seconds the run stops at: ``duration_s``, moved on as observers ask."""
        self.max_frames = max_frames
        self.warmup_s = warmup_s
        self.progress = progress
        self.sources: list[SourceWorker] = []
        self.rings: list[FrameRing] = []
        self.blocks: list[StreamBlock] = []
        self.consumers: list[RingConsumer] = []
        self.ingest: list[IngestWorker] = []
        self.stuck: dict[int, str] = {}
        self.forced = False
        self.window_s = 1.0 if duration_s is None else min(1.0, max(0.1, duration_s / 10))
        self.last_mark: _Mark | None = None
        """The last window's end (None until the warm-up ended)."""
        self.window_fps = 0.0
        """Frames per second in the last closed window (for progress)."""

    # -- setup ------------------------------------------------------------------------------

    def _open_sources(self) -> None:
        cfg = self.config
        for stream_id, source_config in enumerate(cfg.sources):
            worker: SourceWorker
            if cfg.source_workers == "process":
                worker = ProcessSourceWorker(source_config, stream_id, self.pipeline.source_factory)
            else:
                source = self.pipeline.source_factory(source_config, stream_id)
                worker = ThreadSourceWorker(source, source_config)
            self.sources.append(worker)

    def _make_rings(self) -> None:
        for worker in self.sources:
            height, width = worker.shape
            ring = FrameRing.create(
                shape=(height, width, 3),
                slots=self.config.ring_slots,
                policy=source_policy(worker.config),
            )
            self.rings.append(ring)
            self.blocks.append(StreamBlock(f"{ring.name}.meta", ring.slots, create=True))
            self.consumers.append(ring.consumer("pipeline"))

    def execute(self) -> PipelineReport:
        backend = self.pipeline.backend
        self.config = cfg = self.pipeline.config  # loading may have given inference more cores
        stages = build_stages(
            cfg,
            backend,
            self.pipeline.make_sink(),
            self.pipeline.model,
            self.pipeline.wrap_stage_calls,
        )
        sink_stage = stages.sink
        try:
            self._open_sources()
            self._make_rings()
            sink_stage.on_start()  # a sink that cannot open fails the run before it starts
        except BaseException:
            self._close()
            raise
        raw_bytes = [int(np.prod(w.shape)) * 3 for w in self.sources]
        state = self.state = RunState(
            len(self.sources),
            BandwidthLedger(),
            raw_bytes,
            cfg.stage_nice,
            cfg.critical_slice_us,
            frame_observers=wants_frames(self.observers),
        )
        m = cfg.model
        self.batcher = Batcher(
            lambda slot: backend.input_buffer(m.batch_size, slot),
            m.batch_size,
            m.batch_timeout_ms / 1e3,
            self.pipeline.input_slots,
        )
        outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.infer = InferWorker(stages.infer, self.batcher, outbox, state)
        self.output = OutputWorker(
            outbox,
            self.batcher,
            self.infer,
            post=stages.postprocess,
            filt=stages.filter,
            compress=stages.compress,
            sink=sink_stage,
            state=state,
            compress_workers=cfg.compress_workers,
            quality=cfg.filter.jpeg_quality,
        )
        for stream_id, (consumer, block) in enumerate(
            zip(self.consumers, self.blocks, strict=True)
        ):
            self.ingest.append(
                IngestWorker(
                    stream_id,
                    consumer,
                    block,
                    stages.preprocess(),
                    batcher=self.batcher,
                    state=state,
                )
            )
        for block in self.blocks:
            state.group("source").add(block.stats)
        quotas = _quotas(self.max_frames, len(self.sources))
        freeze_heap()
        self.start_ns = time.monotonic_ns()
        if self.warmup_s <= 0:
            self._mark(self.start_ns)  # before the first frame, so every one is counted
        try:
            for thread in self._threads():
                thread.start()
            for worker, ring, block, quota in zip(
                self.sources, self.rings, self.blocks, quotas, strict=True
            ):
                settings = SourceLoopSettings(
                    worker.stream_id, cfg.rate, quota, cfg.source_error_limit, nice=cfg.stage_nice
                )
                worker.start(ring, block, settings)
            self._monitor()
        finally:
            self._stop()
            gc.unfreeze()
        try:
            report = self._report(backend)
        finally:
            self._close()
        if state.crash is not None:
            raise PipelineError(f"a pipeline worker crashed: {state.crash!r}") from state.crash
        return report

    # -- monitoring -------------------------------------------------------------------------

    def _mark(self, now_ns: int) -> None:
        state = self.state
        for group in state.groups.values():
            group.mark()
        self.e2e_mark = state.e2e.calls
        self.delivered_mark = list(state.delivered)
        self.produced_mark = [b.produced for b in self.blocks]
        self.missed_mark = [b.missed_ticks for b in self.blocks]
        self.dropped_mark = [self._overwritten(i) for i in range(len(self.rings))]
        self.ledger_warmup = state.ledger
        state.ledger = BandwidthLedger()
        self.batches_mark = (self.batcher.batches, self.batcher.partial)
        self.measure_start_ns = now_ns
        self.last_mark = self._mark_now(now_ns)
        for observer in self.observers:
            observer.on_measure_start()

    def _overwritten(self, stream: int) -> int:
        consumer = self.consumers[stream]
        try:
            return int(consumer.dropped)
        except Exception:
            return 0

    def _sources_done(self, now_ns: int) -> bool:
        done = True
        for i, (worker, block) in enumerate(zip(self.sources, self.blocks, strict=True)):
            if block.state != RUNNING:
                continue
            if not worker.alive():
                block.set_state(FAILED, "the source worker exited unexpectedly")
                log.error("stream %s (%s): its worker exited unexpectedly", i, worker.name)
                continue
            limit = worker.config.timeout_s + STALL_GRACE_S
            if block.reading_for_s(now_ns) > limit:
                if i not in self.stuck:
                    self.stuck[i] = (
                        f"read_into has not returned for more than {limit:.1f} s "
                        f"(timeout_s {worker.config.timeout_s})"
                    )
                    log.error("stream %s (%s): %s", i, worker.name, self.stuck[i])
                continue
            done = False
        return done

    def _monitor(self) -> None:
        state = self.state
        start_ns = self.start_ns
        marked = self.warmup_s <= 0
        next_metrics = next_progress = 0
        window_ns = int(self.window_s * 1e9)
        next_window_ns = window_ns  # on a grid from the mark: windows end on time, no drift
        while True:
            if state.crash_event.wait(TICK_S):
                return
            now = time.monotonic_ns()
            if not marked and now - start_ns >= self.warmup_s * 1e9:
                self._mark(now)
                marked = True
            measured_ns = now - self.measure_start_ns if marked else 0
            if marked and measured_ns >= next_window_ns:
                self._close_window(now)
                next_window_ns = (measured_ns // window_ns + 1) * window_ns
            if (
                self.until_s is not None
                and measured_ns >= self.until_s * 1e9
                and self._measured_enough(measured_ns)
            ):
                return
            if now >= next_metrics:
                self._update_metrics(now - start_ns)
                next_metrics = now + int(METRICS_EVERY_S * 1e9)
            if self.progress is not None and now >= next_progress:
                self._report_progress(now, start_ns, marked)
                next_progress = now + int(PROGRESS_EVERY_S * 1e9)
            if self._sources_done(now):
                return

    def _measured_enough(self, measured_ns: int) -> bool:
        """At the planned end, or a later one: stop, unless an observer asks for more."""
        if self.until_s is None:
            return True
        more = most_seconds(self.observers, measured_ns / 1e9)
        if more <= 0:
            return True
        self.until_s += more
        log.info("measuring %.1f s more after %.1f s, as asked", more, measured_ns / 1e9)
        return False

    def _report_progress(self, now: int, start_ns: int, marked: bool) -> None:
        assert self.progress is not None
        state = self.state
        frames = sum(state.delivered) - sum(self.delivered_mark) if marked else 0
        fps = self.window_fps if marked else 0.0
        errors = sum(g.errors for g in state.groups.values()) if marked else 0
        dropped = sum(self._overwritten(i) for i in range(len(self.rings)))
        self.progress(
            PipelineProgress((now - start_ns) / 1e9, frames, fps, dropped, errors, not marked)
        )

    def _update_metrics(self, wall_ns: int) -> None:
        state = self.state
        streams = [
            StreamCounts(
                i,
                block.produced,
                state.delivered[i],
                {"overwritten": self._overwritten(i)},
                ring.occupancy() if not ring.closed else 0,
                block.concealed,
                block.missed_ticks,
            )
            for i, (block, ring) in enumerate(zip(self.blocks, self.rings, strict=True))
        ]
        self.pipeline._metrics.update(
            state.groups,
            state.e2e,
            wall_s=wall_ns / 1e9,
            workers=self._workers(),
            streams=streams,
            bandwidth=state.ledger.totals(),
            batches=(self.batcher.batches, self.batcher.partial),
            batch_sizes=self.batcher.sizes,
            scores=state.scores.drain(),
        )

    def _workers(self) -> dict[str, int]:
        return stage_workers(
            len(self.sources), self.config.compress_workers, self.config.infer_workers
        )

    # -- stopping ---------------------------------------------------------------------------

    def _stop(self) -> None:
        """Stop the sources, let what is in flight drain, stop the rest: all within
        ``stop_timeout_s``; a worker that does not stop is abandoned (and reported)."""
        deadline = time.monotonic() + self.config.stop_timeout_s

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        for worker in self.sources:
            worker.stop()
        for i, worker in enumerate(self.sources):
            if not worker.join(left()):
                what = worker.abandon()
                self.stuck.setdefault(i, "the source did not stop")
                self.stuck[i] += f"; {what}"
                log.error("stream %s (%s): %s", i, worker.name, self.stuck[i])
        for ingest in self.ingest:
            ingest.stop.set()
        for ingest in self.ingest:
            ingest.thread.join(left())
        self.batcher.close()
        for thread in (self.infer.thread, *self.output.threads()):
            if thread.ident is not None:
                thread.join(left())
        alive = [t.name for t in self._threads() if t.is_alive()]
        if alive:
            self.forced = True
            log.error(
                "pipeline workers %s did not stop within stop_timeout_s=%s s: abandoned",
                ", ".join(alive),
                self.config.stop_timeout_s,
            )

    def _threads(self) -> list[threading.Thread]:
        """The in-process workers, in start order: the downstream ones first."""
        return [*self.output.threads(), self.infer.thread, *(w.thread for w in self.ingest)]

    # -- the report -------------------------------------------------------------------------

    def _report(self, backend: Backend) -> PipelineReport:
        state = self.state
        for observer in self.observers:
            observer.on_run_end()
        end_ns = time.monotonic_ns()
        if not hasattr(self, "measure_start_ns"):  # stopped before the warm-up ended
            self._mark(end_ns)
        self._update_metrics(end_ns - self.measure_start_ns)
        duration_s = (end_ns - self.measure_start_ns) / 1e9
        workers = self._workers()
        streams = [self._stream_report(i) for i in range(len(self.sources))]
        dropped: dict[str, int] = {}
        for stream in streams:
            for reason, count in stream.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
        errors = {name: state.group(name).errors for name in STAGES}
        busy = {
            name: (state.group(name).busy_ns / 1e9) / duration_s / workers[name]
            if duration_s > 0
            else 0.0
            for name in STAGES
        }
        batches, partial = self.batcher.batches, self.batcher.partial
        report = PipelineReport(
            frames=sum(s.delivered for s in streams),
            dropped=dropped,
            errors=errors,
            duration_s=duration_s,
            e2e_ns=state.e2e.samples_since(self.e2e_mark),
            stage_ns={name: state.group(name).samples() for name in STAGES},
            busy_frac=busy,
            workers=workers,
            bytes=dict(state.ledger.totals()),
            backend=backend.describe(),
            timings=backend.timings,
            model=self.pipeline.model.summary(),
            threads_why=self.pipeline.threads_why,
            streams=streams,
            batches=batches - self.batches_mark[0],
            partial_batches=partial - self.batches_mark[1],
        )
        report.metrics = self.pipeline.registry.snapshot()
        return report

    def _stream_report(self, i: int) -> StreamReport:
        block, worker, ring = self.blocks[i], self.sources[i], self.rings[i]
        produced = block.produced - self.produced_mark[i]
        delivered = self.state.delivered[i] - self.delivered_mark[i]
        overwritten = self._overwritten(i) - self.dropped_mark[i]
        dropped = {"overwritten": overwritten} if overwritten else {}
        lost = produced - delivered - overwritten
        if lost > 0 and (self.forced or i in self.stuck):
            dropped["shutdown"] = lost
        state_name = STATE_NAMES.get(block.state, "unknown")
        message = block.message
        if i in self.stuck:
            state_name, message = "stalled", self.stuck[i]
        elif block.state == RUNNING:
            state_name = "stopped"
        return StreamReport(
            stream_id=i,
            name=worker.name,
            policy=ring.policy,
            state=state_name,
            message=message,
            produced=produced,
            delivered=delivered,
            dropped=dropped,
            read_errors=block.errors,
            stalls=block.stalls,
            occupancy_end=ring.occupancy(),
            concealed=block.concealed,
            produced_total=block.produced,
            missed_ticks=block.missed_ticks - self.missed_mark[i],
        )

    def _mark_now(self, now_ns: int) -> _Mark:
        state = self.state
        calls = {name: group.calls_each() for name, group in state.groups.items()}
        return _Mark(now_ns, sum(state.delivered), state.e2e.calls, calls, self.infer.off_cpu_ns)

    def _close_window(self, now_ns: int) -> None:
        """End the window that began at the last mark: its fps for progress, and the window
        for every observer."""
        m0, m1 = self.last_mark, self._mark_now(now_ns)
        assert m0 is not None
        self.last_mark = m1
        seconds = (m1.t_ns - m0.t_ns) / 1e9
        self.window_fps = (m1.delivered - m0.delivered) / seconds if seconds > 0 else 0.0
        if not self.observers:
            return
        state = self.state
        stages = {
            name: partial(group.samples_between, m0.stage_calls[name], m1.stage_calls[name])
            for name, group in state.groups.items()
            if len(m0.stage_calls.get(name, ())) == len(m1.stage_calls.get(name, ()))
        }  # a stage whose workers changed within the window (none do) is left out
        window = Window(
            end_s=(m1.t_ns - self.measure_start_ns) / 1e9,
            seconds=seconds,
            delivered=m1.delivered - m0.delivered,
            infer_off_cpu_ns=m1.infer_off_cpu_ns - m0.infer_off_cpu_ns,
            e2e=partial(state.e2e.samples_between, m0.e2e_calls, m1.e2e_calls),
            stages=stages,
        )
        for observer in self.observers:
            observer.on_window(window)

    # -- closing ----------------------------------------------------------------------------

    def _close(self) -> None:
        """Close consumers, rings and blocks (unlinking them), and the sources."""
        for consumer in self.consumers:
            consumer.close()
        for ring in self.rings:
            ring.close()
        for block in self.blocks:
            block.close()
        for worker in self.sources:
            try:
                worker.close()
            except Exception as exc:
                log.warning("closing source %s: %s", worker.name, exc)
