"""The pipeline's worker threads: ingest (one per stream), inference (one), output (one, plus
an optional compress pool) and the ledger's JPEG sampler.

::

   ring ──► ingest[s] ──► Batcher ──► inference ──► queue ──► output ──► sink
           (gate,                     (infer)                (decode, filter,
            preprocess)                                       compress, sink)

Hand-offs are few on purpose: on two cores each costs a wake-up and a turn of the GIL. The
inference worker does nothing but run batches, so the slowest stage has a thread of its own;
decoding, filtering, compressing and sinking a frame take a fraction of its time and share one
thread, which also keeps every stream's results in order. With ``compress_workers > 1`` JPEG
encoding moves to a pool and a sequencer puts results back in order before the sink.

Every frame's ring slot is released exactly once, by the worker that finishes it: the output
worker (or the sequencer) after the sink -- or the JPEG sampler after weighing the frame for the
bandwidth ledger, off the latency path.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from core.errors import InferenceProcessError, PipelineError, RingClosedError, RingTimeoutError
from core.jpeg import encode
from core.ledger import BandwidthLedger
from core.pipeline.batcher import Batch, Batcher, WorkItem
from core.pipeline.fairness import FairTurns
from core.pipeline.model_metrics import ScoreBuffer
from core.pipeline.observe import FrameOutcome, RunObserver
from core.pipeline.priority import ask_short_slice, be_nicer, run_when_idle
from core.pipeline.serving import Serving
from core.pipeline.stages import (
    CompressStage,
    FilterStage,
    PreprocessStage,
    SinkStage,
    describe_exception,
)
from core.pipeline.stats import ErrorLog, StageGroup, StageStats
from core.pipeline.streams import StreamBlock
from core.ring import RingConsumer
from core.threadname import name_this_thread

log = logging.getLogger("edgeloop.pipeline")

POLL_S = 0.05
"""How often a waiting worker looks up to check whether it should stop."""


class RunState:
    """What the workers share with the pipeline for one run: stats, counters, results, and the
    observers shown every delivered frame (:class:`~core.pipeline.observe.RunObserver`)."""

    def __init__(
        self,
        streams: int,
        ledger: BandwidthLedger,
        raw_bytes: list[int],
        stage_nice: int = 0,
        critical_slice_us: int = 0,
        *,
        frame_observers: tuple[RunObserver, ...] = (),
    ) -> None:
        self.stage_nice = stage_nice
        self.critical_slice_us = critical_slice_us
        self.errlog = ErrorLog()
        self.groups: dict[str, StageGroup] = {}
        self.e2e = StageStats("e2e")
        self.scores = ScoreBuffer()
        self.delivered = [0] * streams
        self.raw_bytes = raw_bytes
        self.ledger = ledger
        self.frame_number = 0
        self.frame_observers = frame_observers
        self.crash: BaseException | None = None
        self.crash_event = threading.Event()
        self.busy_since: dict[str, int] = {}
        """Worker name -> when its current piece of work began (``perf_counter_ns``), 0 while
        it waits for work: a worker busy for long is stuck (the device app's stall check)."""

    def group(self, name: str) -> StageGroup:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = StageGroup(name)
        return group

    def fail(self, stage: str, stats: StageStats, exc: BaseException, frames: int = 1) -> None:
        """Count a per-frame failure of ``stage`` and log its cause (rate-limited)."""
        for _ in range(frames):
            stats.error()
        self.errlog.report(stage, describe_exception(exc))

    def crashed(self, where: str, exc: BaseException) -> None:
        """A worker died of a bug (not a per-frame problem): the run stops and raises."""
        log.error("%s worker crashed: %s", where, describe_exception(exc), exc_info=exc)
        if self.crash is None:
            self.crash = exc
        self.crash_event.set()


def _thread(
    name: str, state: RunState, body: Callable[[], None], *, yields: bool = True
) -> threading.Thread:
    """A worker thread; ``yields``: it runs ``state.stage_nice`` steps nicer than inference,
    else it asks for the latency-critical path's short slice (:mod:`core.pipeline.priority`)."""

    def run() -> None:
        name_this_thread(name)
        if yields:
            be_nicer(state.stage_nice)
        else:
            ask_short_slice(state.critical_slice_us)
        try:
            body()
        except BaseException as exc:
            state.crashed(name, exc)

    return threading.Thread(target=run, name=name, daemon=True)


# -- ingest ------------------------------------------------------------------------------------


class IngestWorker:
    """Takes a stream's frames from its ring, gates and preprocesses them into a batch."""

    def __init__(
        self,
        stream_id: int,
        consumer: RingConsumer,
        block: StreamBlock,
        stage: PreprocessStage,
        *,
        batcher: Batcher,
        state: RunState,
        turns: FairTurns | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.consumer = consumer
        self.block = block
        self.stage = stage
        self.batcher = batcher
        self.state = state
        self.turns = turns
        """Takes its frames in turn with the other streams' (:mod:`core.pipeline.fairness`)."""
        self.stats = state.group("preprocess").add(StageStats("preprocess"))
        self.stop = threading.Event()
        self.thread = _thread(f"ingest-{stream_id}", state, self._run)

    def _run(self) -> None:
        consumer, stage, batcher, state, stats = (
            self.consumer,
            self.stage,
            self.batcher,
            self.state,
            self.stats,
        )
        clock = time.perf_counter_ns
        busy, name = state.busy_since, self.thread.name
        turns, stream_id = self.turns, self.stream_id
        stage.on_start()
        try:
            while True:
                busy[name] = 0
                if turns is not None:
                    turns.wait_turn(stream_id, self.stop)
                try:
                    frame = consumer.acquire(timeout=POLL_S)
                except RingTimeoutError:
                    if self.stop.is_set():
                        return
                    continue
                except RingClosedError:
                    return  # the source ended and everything it published was taken
                busy[name] = clock()
                if turns is not None:
                    turns.took(stream_id)
                meta = frame.meta
                item = WorkItem(
                    frame,
                    self.stream_id,
                    meta.seq,
                    meta.flags,
                    meta.capture_ns,
                    self.block.read_truth(meta.slot),
                )
                start = clock()
                try:
                    passed = stage.gate(item)
                except Exception as exc:
                    state.fail("preprocess", stats, exc)
                    item.motion_passed = passed = False
                gated = clock()
                if not passed:
                    stats.record(start, gated)
                    batcher.skip(item)
                    continue
                reserved = self._reserve(item)
                if reserved is None:
                    return  # stopping: the frame was released
                batch, row = reserved
                begin = clock()
                stage.spec = batch.serving.spec  # the input of the model the batch goes to
                try:
                    stage.process((item, row))
                except Exception as exc:
                    state.fail("preprocess", stats, exc)
                end = clock()
                stats.record(start, end - (begin - gated))  # the wait for a slot is not work
                batcher.written(batch)
        finally:
            if turns is not None:
                turns.ended(stream_id)
            stage.on_stop()

    def _reserve(self, item: WorkItem) -> tuple[Batch, Any] | None:
        """A batch row for ``item``, waiting while every input slot is busy; None when the
        run is being torn down (the batcher closed, or the run crashed)."""
        while True:
            try:
                return self.batcher.reserve(item, POLL_S)
            except TimeoutError:
                if not self.state.crash_event.is_set():
                    continue
            except PipelineError:
                pass
            item.frame.release()
            return None


# -- inference ---------------------------------------------------------------------------------


class InferWorker:
    """Runs each batch through the model it was opened on (``batch.serving``:
    :mod:`core.pipeline.serving`); hands (batch, outputs) to the output worker.

    Where that model runs in an inference process (:class:`~core.backends.process.
    ProcessBackend`, or several: :class:`~core.backends.pool.ProcessPool`) it only submits:
    the batch goes to the output worker as (batch, :data:`PENDING`), which collects the
    outputs in the same order and records the inference process's own timings as this
    stage's."""

    def __init__(self, batcher: Batcher, out: queue.SimpleQueue[Any], state: RunState) -> None:
        self.batcher = batcher
        self.out = out
        self.state = state
        self.stats = state.group("infer").add(StageStats("infer"))
        self.off_cpu_ns = 0
        """Its calls' wall time less the CPU time they ran, summed: time a call was waiting for
        a core (a CPU backend does not block), or waiting for a GPU (TensorRT). The CPU time is
        an inference process's (all its threads), or the inference thread's own: in a thread
        with a pool of several, the time it waited for the pool counts too."""
        self.thread = _thread("infer", state, self._run, yields=False)  # the submitter feeds it

    def _run(self) -> None:
        batcher, out, state, stats = self.batcher, self.out, self.state, self.stats
        clock = time.perf_counter_ns
        busy = state.busy_since
        started: list[Any] = []
        try:
            while True:
                busy["infer"] = 0
                batch = batcher.next_batch()
                if batch is None:
                    return
                busy["infer"] = clock()
                serving: Serving = batch.serving
                if serving not in started:
                    serving.infer.on_start()
                    started.append(serving)
                if not batch.rows:
                    out.put((batch, None))
                    continue
                remote = serving.remote
                if remote is not None:
                    remote.submit(batch.rows, batch.slot)
                    out.put((batch, PENDING))
                    continue
                outputs = None
                cpu_start = time.thread_time_ns()
                start = clock()
                try:
                    outputs = serving.infer.process(batch)
                except Exception as exc:
                    state.fail("infer", stats, exc, batch.rows)
                end = clock()
                cpu = time.thread_time_ns() - cpu_start
                self._ran(end - start, cpu)
                serving.record_call(batch.rows, end - start, cpu)
                stats.record(start, end, batch.rows)
                out.put((batch, outputs))
        finally:
            out.put(None)
            for serving in started:
                serving.infer.on_stop()

    def collect(self, batch: Batch) -> Any:
        """A submitted batch's outputs (None when its call failed), its timings recorded."""
        serving: Serving = batch.serving
        remote = serving.remote
        assert remote is not None
        reply = remote.collect(batch.slot)
        if reply.error is not None:
            self.state.fail("infer", self.stats, InferenceProcessError(reply.error), batch.rows)
        cost = reply.cost
        self._ran(cost.end_ns - cost.start_ns, cost.cpu_ns)
        serving.record_call(batch.rows, cost.end_ns - cost.start_ns, cost.cpu_ns)
        self.stats.record(cost.start_ns, cost.end_ns, batch.rows)
        return reply.outputs if reply.error is None else None

    def _ran(self, wall_ns: int, cpu_ns: int) -> None:
        """One call's wall and CPU time: the difference counts as off its core (a pool of
        threads can run longer than the call took: never below zero)."""
        self.off_cpu_ns += max(0, wall_ns - cpu_ns)


PENDING = object()
"""The outputs of a batch an inference process is still running (:meth:`InferWorker.collect`)."""


# -- output ------------------------------------------------------------------------------------


class OutputWorker:
    """Decode, filter, compress (inline, or through the pool) and sink, in arrival order."""

    def __init__(
        self,
        inbox: queue.SimpleQueue[Any],
        batcher: Batcher,
        infer: InferWorker,
        *,
        filt: FilterStage,
        compress: CompressStage,
        sink: SinkStage,
        state: RunState,
        compress_workers: int,
        quality: int,
    ) -> None:
        self.inbox = inbox
        self.batcher = batcher
        self.infer = infer
        self.filter = filt
        self.compress = compress
        self.sink = sink
        self.state = state
        self.post_stats = state.group("postprocess").add(StageStats("postprocess"))
        self._decoders: list[Any] = []
        """Each serving model's decoding stage this worker started (:meth:`_decode`)."""
        self.filter_stats = state.group("filter").add(StageStats("filter"))
        self.sink_stats = state.group("sink").add(StageStats("sink"))
        self.sampler = JpegSampler(state, quality)
        self.pool: CompressPool | None = None
        self.compress_stats: StageStats | None = None
        if compress_workers > 1:
            self.pool = CompressPool(compress, compress_workers, state, self.finish)
        else:
            self.compress_stats = state.group("compress").add(StageStats("compress"))
        # The output thread keeps inference's priority: it is the latency path after inference
        # and needs little CPU (:mod:`core.pipeline.priority`).
        self.thread = _thread("output", state, self._run, yields=False)

    def threads(self) -> list[threading.Thread]:
        extra = self.pool.threads if self.pool is not None else []
        return [self.thread, *extra, self.sampler.thread]

    def _run(self) -> None:
        clock = time.perf_counter_ns
        state = self.state
        filt, sink = self.filter, self.sink
        filter_stats = self.filter_stats
        busy = state.busy_since
        for stage in (filt, self.compress):  # the sink was opened before the run
            stage.on_start()
        try:
            while True:
                busy["output"] = 0
                got = self.inbox.get()
                if got is None:
                    return
                busy["output"] = clock()
                batch, outputs = got
                self._decode(batch, outputs)
                for item in batch.items:
                    start = clock()
                    try:
                        filt.process(item)
                    except Exception as exc:
                        state.fail("filter", filter_stats, exc)
                        item.decision = filt.nothing
                    filter_stats.record(start, clock())
                    if self.pool is not None:
                        self.pool.submit(item)
                    else:
                        self._compress(item)
                        self.finish(item)
                if self.pool is None:
                    self._flush()
        finally:
            if self.pool is not None:
                self.pool.close()
                self._flush()
            self.sampler.close()
            for stage in (filt, self.compress):
                stage.on_stop()
            for post in self._decoders:
                post.on_stop()
            try:
                sink.on_stop()  # flushes and closes the sink
            except Exception as exc:
                state.fail("sink", self.sink_stats, exc)

    def _decode(self, batch: Batch, outputs: Any) -> None:
        """Every inferred row of the batch, then its input slot goes back to the pool."""
        clock = time.perf_counter_ns
        stats = self.post_stats
        serving: Serving = batch.serving
        post = serving.post
        if post not in self._decoders:
            post.on_start()
            self._decoders.append(post)
        try:
            for item in batch.items:
                item.version = serving.version
            if outputs is PENDING:
                outputs = self.infer.collect(batch)
            if outputs is None:
                serving.costs.decoded(batch.rows, batch.rows)  # the call failed
                return
            failed = 0
            tally = serving.tally
            for item in batch.items:
                if item.row < 0:
                    continue
                start = clock()
                try:
                    post.process((item, [o[item.row] for o in outputs]))
                    self.state.scores.add(item.detections)
                    if tally is not None and item.detections is not None:
                        tally.frame(item.detections.classes, item.detections.scores)
                except Exception as exc:
                    failed += 1
                    self.state.fail("postprocess", stats, exc)
                stats.record(start, clock())
            serving.costs.decoded(batch.rows, failed)
        finally:
            self.batcher.free(batch.slot)
            if batch.slot >= 0:
                serving.release()

    def _compress(self, item: WorkItem) -> None:
        stats = self.compress_stats
        assert stats is not None
        start = time.perf_counter_ns()
        try:
            self.compress.process(item)
        except Exception as exc:
            self.state.fail("compress", stats, exc)
            item.images = ()
        stats.record(start, time.perf_counter_ns())

    def _flush(self) -> None:
        try:
            self.sink.flush()
        except Exception as exc:
            self.state.fail("sink", self.sink_stats, exc)

    def finish(self, item: WorkItem) -> None:
        """Sink the frame, count it, and release its slot (or let the sampler weigh it first)."""
        state = self.state
        stats = self.sink_stats
        start = time.perf_counter_ns()
        try:
            sent = self.sink.process(item)
        except Exception as exc:
            state.fail("sink", stats, exc)
            sent = 0
        now = time.monotonic_ns()
        stats.record(start, time.perf_counter_ns())
        state.e2e.record(item.capture_ns, now)
        stream = item.stream_id
        state.delivered[stream] += 1
        if state.frame_observers:
            outcome = FrameOutcome(
                stream,
                item.index,
                item.capture_ns,
                item.detections if item.row >= 0 else None,
                item.truth,
                item.decision,
                item.version,
            )
            for observer in state.frame_observers:
                observer.on_frame(outcome)
        raw = state.raw_bytes[stream]
        number = state.frame_number
        state.frame_number = number + 1
        if state.ledger.wants_sample(number) and self.sampler.offer(item, raw, sent):
            return  # the sampler records it and releases the slot
        state.ledger.record(raw_bytes=raw, sent_bytes=sent)
        item.frame.release()


class JpegSampler:
    """Weighs every ``sample_every``-th frame as a full JPEG for the bandwidth ledger, on a
    thread of its own so the encode of a whole frame never sits on a frame's latency path, on
    idle CPU time only (:func:`~core.pipeline.priority.run_when_idle`: it takes the CPU the
    stages leave idle, never theirs; docs/decisions/0013-jpeg-sampler-off-the-latency-path.md).
    A sample that comes while the last is still encoding is skipped (the ledger scales the ones
    it has). Its busy time is its CPU time."""

    def __init__(self, state: RunState, quality: int) -> None:
        self.state = state
        self.quality = quality
        self.busy = False
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.stats = state.group("compress").add(StageStats("compress"))
        self.thread = _thread("jpeg-sampler", state, self._run)

    def offer(self, item: WorkItem, raw: int, sent: int) -> bool:
        if self.busy:
            return False
        self.busy = True
        self._inbox.put((item, raw, sent))
        return True

    def _run(self) -> None:
        run_when_idle()
        while True:
            got = self._inbox.get()
            if got is None:
                return
            item, raw, sent = got
            start = time.thread_time_ns()
            try:
                size: int | None = len(encode(item.frame.data, quality=self.quality))
            except Exception as exc:
                self.state.fail("compress", self.stats, exc)
                size = None
            # Busy time, but no latency sample: this is not on any frame's path.
            self.stats.add_busy(time.thread_time_ns() - start)
            self.state.ledger.record(raw_bytes=raw, sent_bytes=sent, jpeg_bytes=size)
            item.frame.release()
            self.busy = False

    def close(self) -> None:
        self._inbox.put(None)


class CompressPool:
    """``compress_workers`` threads encoding JPEGs, and a sequencer that hands finished frames
    to the sink in the order they were submitted (whichever thread finishes the next one in
    order delivers it and any that were waiting behind it)."""

    def __init__(
        self,
        stage: CompressStage,
        workers: int,
        state: RunState,
        finish: Callable[[WorkItem], None],
    ) -> None:
        self.stage = stage
        self.state = state
        self.finish = finish
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._done: dict[int, WorkItem] = {}
        self._submitted = 0
        self._next = 0
        self.threads = []
        for i in range(workers):
            stats = state.group("compress").add(StageStats("compress"))
            name = f"compress-{i}"
            self.threads.append(_thread(name, state, self._worker(name, stats)))

    def submit(self, item: WorkItem) -> None:
        self._inbox.put((self._submitted, item))
        self._submitted += 1

    def _worker(self, name: str, stats: StageStats) -> Callable[[], None]:
        busy = self.state.busy_since

        def run() -> None:
            while True:
                busy[name] = 0
                got = self._inbox.get()
                if got is None:
                    return
                busy[name] = time.perf_counter_ns()
                order, item = got
                start = time.perf_counter_ns()
                try:
                    self.stage.process(item)
                except Exception as exc:
                    self.state.fail("compress", stats, exc)
                    item.images = ()
                stats.record(start, time.perf_counter_ns())
                self._deliver(order, item)

        return run

    def _deliver(self, order: int, item: WorkItem) -> None:
        with self._lock:
            self._done[order] = item
            while self._next in self._done:
                self.finish(self._done.pop(self._next))
                self._next += 1

    def close(self, timeout: float = 5.0) -> None:
        """Finish what was submitted, then stop the threads."""
        for _ in self.threads:
            self._inbox.put(None)
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self.threads):
            raise PipelineError("compress workers did not stop")
