"""One run of a :class:`~core.pipeline.Pipeline`: setup, monitoring, stopping, the report,
closing (:meth:`core.pipeline.Pipeline.run` makes one :class:`Run` each time; how the
workers are laid out is :mod:`core.pipeline.runtime`'s docstring).
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, NamedTuple, Protocol

import numpy as np

from core.backends import Backend
from core.errors import PipelineError
from core.filter import FilterConfig
from core.formats.model import ModelChoice
from core.ledger import BandwidthLedger
from core.metrics import MetricsRegistry
from core.pipeline.batcher import Batcher, Split
from core.pipeline.config import PipelineConfig
from core.pipeline.fairness import MAX_WAIT_S, FairTurns
from core.pipeline.observe import RunObserver, Window, most_seconds, wants_frames
from core.pipeline.placement import place
from core.pipeline.report import PipelineProgress, PipelineReport, StreamReport
from core.pipeline.serving import Serving
from core.pipeline.source_workers import ProcessSourceWorker, SourceWorker, ThreadSourceWorker
from core.pipeline.stages import (
    LIVE_KINDS,
    STAGES,
    StageCallWrapper,
    StageSet,
    build_stages,
    source_policy,
    stage_workers,
)
from core.pipeline.status import RunStatus, StreamStatus
from core.pipeline.streams import FAILED, RUNNING, STATE_NAMES, SourceLoopSettings, StreamBlock
from core.pipeline.telemetry import PipelineMetrics, StreamCounts
from core.pipeline.workers import InferWorker, IngestWorker, OutputWorker, RunState
from core.ring import FrameRing, RingConsumer
from core.sinks import Sink
from core.sources import Source, SourceConfig

log = logging.getLogger("edgeloop.pipeline")

STALL_GRACE_S = 1.0
"""A read running this long past its source's ``timeout_s`` counts as hung."""
TICK_S = 0.02
DRAIN_RESERVE_S = 1.0
METRICS_EVERY_S = 0.25
PROGRESS_EVERY_S = 0.5


class RunHost(Protocol):
    """What a run takes from its pipeline (:class:`core.pipeline.Pipeline`): the loaded
    model and configuration, the sink, the sources' factory and the metrics."""

    config: PipelineConfig
    registry: MetricsRegistry
    source_factory: Callable[[SourceConfig, int], Source]
    wrap_stage_calls: StageCallWrapper | None
    threads_why: str
    telemetry: PipelineMetrics

    @property
    def backend(self) -> Backend: ...

    @property
    def model(self) -> ModelChoice: ...

    @property
    def input_slots(self) -> int: ...

    @property
    def model_version(self) -> str: ...

    ab: Split | None

    def make_sink(self) -> Sink: ...


def _quotas(max_frames: int | None, streams: int) -> list[int | None]:
    """``max_frames`` split over the streams (the first ones take the remainder)."""
    if max_frames is None:
        return [None] * streams
    base, extra = divmod(max_frames, streams)
    return [base + (1 if i < extra else 0) for i in range(streams)]


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


class Run:
    """One run: setup, monitor, stop, report, close (see :meth:`core.pipeline.Pipeline.run`)."""

    def __init__(
        self,
        pipeline: RunHost,
        duration_s: float | None,
        max_frames: int | None,
        warmup_s: float,
        progress: Callable[[PipelineProgress], None] | None,
        *,
        observers: tuple[RunObserver, ...],
        stop: threading.Event | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.stop = stop
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
        self.state: RunState  # made when the run starts (execute)
        self.stages: StageSet | None = None
        self.ticked_ns = 0
        """When the monitoring loop last went round (``time.monotonic_ns``)."""
        self.monitoring = False
        self.closed = False
        """Set (under ``_live``) before the rings and blocks close: a health check or a live
        change from another thread then finds nothing to read or write, never a closed block."""
        self._live = threading.Lock()

    # -- setup ------------------------------------------------------------------------------

    def _open_sources(self) -> None:
        cfg = self.config
        factory = self.pipeline.source_factory
        placed = place(cfg, self.pipeline.backend, factory)
        started: list[ProcessSourceWorker] = []
        try:
            for stream_id, (source_config, kind) in enumerate(placed):
                worker: SourceWorker
                if kind == "process":  # started now, waited for below: side by side
                    worker = ProcessSourceWorker(source_config, stream_id, factory, wait=False)
                    started.append(worker)
                else:
                    worker = ThreadSourceWorker(factory(source_config, stream_id), source_config)
                self.sources.append(worker)
            for process in started:
                process.opened()
        except BaseException:
            for process in started:  # none attached a ring yet, none will: none outlives this
                process.abandon()
            raise

    def _wants_frames(self, stream_id: int) -> bool:
        """Whether a stream competes for frames now (:mod:`core.pipeline.fairness`): its ingest
        has work, or its source -- one that is not a live camera, whose reads wait for the
        world -- is busy reading a frame (and not stuck in that read)."""
        if self.state.busy_since.get(self.ingest[stream_id].thread.name):
            return True
        if self.sources[stream_id].config.kind in LIVE_KINDS:
            return False
        reading = self.blocks[stream_id].reading_for_s(time.monotonic_ns())
        return 0.0 < reading < MAX_WAIT_S

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
        self.stages = stages = build_stages(
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
        self.state = state = RunState(
            len(self.sources),
            BandwidthLedger(),
            raw_bytes,
            cfg.stage_nice,
            cfg.critical_slice_us,
            frame_observers=wants_frames(self.observers),
        )
        m = cfg.model
        serving = Serving(
            backend,
            stages.model,
            stages.infer,
            stages.postprocess,
            stages.spec,
            self.pipeline.model_version,
        )
        self.batcher = Batcher(
            serving, m.batch_size, m.batch_timeout_ms / 1e3, self.pipeline.input_slots
        )
        self.batcher.split(self.pipeline.ab)
        outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.infer = InferWorker(self.batcher, outbox, state)
        self.output = OutputWorker(
            outbox,
            self.batcher,
            self.infer,
            filt=stages.filter,
            compress=stages.compress,
            sink=sink_stage,
            state=state,
            compress_workers=cfg.compress_workers,
            quality=cfg.filter.jpeg_quality,
        )
        many = len(self.sources) > 1  # one stream has no one to take turns with
        turns = FairTurns(len(self.sources), self._wants_frames) if many else None
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
                    turns=turns,
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
            report = self._report(self.pipeline.backend)  # the model serving at the end
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
        self.monitoring = True
        try:
            self._watch()
        finally:
            self.monitoring = False

    def _watch(self) -> None:
        state = self.state
        start_ns = self.start_ns
        marked = self.warmup_s <= 0
        next_metrics = next_progress = 0
        window_ns = int(self.window_s * 1e9)
        next_window_ns = window_ns  # on a grid from the mark: windows end on time, no drift
        while True:
            if state.crash_event.wait(TICK_S) or (self.stop is not None and self.stop.is_set()):
                return
            self.ticked_ns = now = time.monotonic_ns()
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
        self.pipeline.telemetry.update(
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

    # -- live -------------------------------------------------------------------------------

    def status(self) -> RunStatus | None:
        """Each stream's state and each worker's time in its current work (None before the
        workers start and once the run closes)."""
        with self._live:
            return None if self.closed or not self.ticked_ns else self._status()

    def _status(self) -> RunStatus:
        state = self.state
        now = time.monotonic_ns()
        perf_now = time.perf_counter_ns()
        busy = {
            name: (perf_now - since) / 1e9 if since else 0.0
            for name, since in state.busy_since.copy().items()
        }
        if self.monitoring:
            busy["monitor"] = (now - self.ticked_ns) / 1e9
        streams = []
        for i, (worker, block) in enumerate(zip(self.sources, self.blocks, strict=True)):
            busy[f"source-{i}"] = block.reading_for_s(now)
            last = block.last_frame_ns or self.start_ns
            running = block.state == RUNNING
            error = self.stuck.get(i) or (None if running else block.message or None)
            streams.append(
                StreamStatus(
                    i,
                    worker.name,
                    STATE_NAMES.get(block.state, "unknown"),
                    block.produced,
                    state.delivered[i],
                    (now - last) / 1e9,
                    error if error != "stopped" else None,
                )
            )
        return RunStatus(tuple(streams), busy)

    def serving(self) -> Serving | None:
        """The model new batches open on (None before the workers exist)."""
        batcher: Batcher | None = getattr(self, "batcher", None)
        if batcher is None:
            return None
        serving: Serving = batcher.serving
        return serving

    def switch(self, serving: Serving) -> Serving | None:
        """Serve ``serving`` from the next batch (:meth:`Batcher.switch`); the serving it
        replaced, None when the run has no batcher yet or has closed (nothing to switch)."""
        with self._live:
            batcher: Batcher | None = getattr(self, "batcher", None)
            if self.closed or batcher is None:
                return None
            replaced: Serving = batcher.switch(serving)
            return replaced

    def split(self, ab: Split | None) -> None:
        """Start or end an A/B split from the next frame (:meth:`Batcher.split`)."""
        with self._live:
            batcher: Batcher | None = getattr(self, "batcher", None)
            if not self.closed and batcher is not None:
                batcher.split(ab)

    def retune(self, filter_config: FilterConfig, rate: float | None) -> None:
        """Live changes: the filter's rules from the next frame, each stream's pace from its
        next read (:meth:`core.pipeline.Pipeline.retune`)."""
        if self.stages is not None:
            self.stages.result_filter.reconfigure(filter_config)
        with self._live:
            if not self.closed:
                for block in self.blocks:
                    block.ask_rate(rate)
        self.config = replace(self.config, filter=filter_config, rate=rate)

    # -- stopping ---------------------------------------------------------------------------

    def _stop(self) -> None:
        """Stop the sources, let what is in flight drain, stop the rest: all within
        ``stop_timeout_s``; a worker that does not stop is abandoned (and reported). The
        sources get all but a quarter of it (at most :data:`DRAIN_RESERVE_S`), so that a hung
        source does not leave the frames already in flight no time to drain."""
        deadline = time.monotonic() + self.config.stop_timeout_s
        reserve = min(DRAIN_RESERVE_S, self.config.stop_timeout_s / 4)

        def left(keep: float = 0.0) -> float:
            return max(0.0, deadline - keep - time.monotonic())

        for worker in self.sources:
            worker.stop()
        for i, worker in enumerate(self.sources):
            if not worker.join(left(reserve)):
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
        end_ns = time.monotonic_ns()
        if not hasattr(self, "measure_start_ns"):  # stopped before the warm-up ended
            self._mark(end_ns)
        for observer in self.observers:
            observer.on_run_end()
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
            loops=block.loops,
            source={**worker.facts, "workers": worker.kind},
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
        with self._live:  # a status() or retune() under way finishes first
            self.closed = True
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
