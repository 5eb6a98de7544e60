"""The pipeline end to end on small synthetic streams: ordering, slots, drops, batching,
filter levels, the ledger, metrics, process sources, observers, stage-call wrappers and stage
costs. No timing assertions."""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bench.observers import Timelines
from bench.slowdown import Slowdown
from core.metrics import MetricsRegistry
from core.pipeline import (
    STAGES,
    FrameOutcome,
    Pipeline,
    PipelineReport,
    RunObserver,
    StageCallWrapper,
    Window,
    run,
)
from core.pipeline.costs import CHUNKS, WARMUP_FRAMES, _chunks
from core.pipeline.priority import slice_us
from core.pipeline.stats import StageStats, stats_buffer
from core.pipeline.telemetry import PipelineMetrics
from core.sources import Source, SourceConfig, SourceFrame, open_source
from tests.pipeline_doubles import (
    HEIGHT,
    WIDTH,
    RecordingSink,
    factory,
    send_everything,
    small_config,
)


def _run(
    *overrides: str,
    streams: int = 1,
    sink: RecordingSink | None = None,
    wrap: StageCallWrapper | None = None,
    **run: object,
) -> PipelineReport:
    config = small_config(*overrides, streams=streams)
    with Pipeline(config, sink=sink, wrap_stage_calls=wrap) as pipeline:
        return pipeline.run(**run)  # type: ignore[arg-type]


class _Recorder(RunObserver):
    """Keeps everything an observer is shown, and asks for ``more`` seconds ``times`` times."""

    def __init__(self, more: float = 0.0, times: int = 0) -> None:
        self.more, self.times = more, times
        self.calls: list[str] = []
        self.frames: list[FrameOutcome] = []
        self.windows: list[tuple[float, float, int, int, dict[str, int]]] = []
        self.asked: list[float] = []

    def on_measure_start(self) -> None:
        self.calls.append("start")
        self.frames.clear()

    def on_frame(self, frame: FrameOutcome) -> None:
        self.frames.append(frame)

    def on_window(self, window: Window) -> None:
        self.calls.append("window")
        sizes = {name: window.stage_ns(name).size for name in window.stage_names()}
        e2e = window.e2e_ns()
        self.windows.append((window.end_s, window.fps, window.delivered, e2e.size, sizes))

    def more_seconds(self, measured_s: float) -> float:
        self.asked.append(measured_s)
        if len(self.asked) > self.times:
            return 0.0
        return self.more

    def on_run_end(self) -> None:
        self.calls.append("end")


def _accounted(report: PipelineReport) -> None:
    """Every frame produced was delivered or dropped, and no slot stayed taken."""
    for stream in report.streams:
        assert stream.produced == stream.delivered + sum(stream.dropped.values()), stream
        assert stream.occupancy_end == 0, stream
        assert "shutdown" not in stream.dropped


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_results_leave_in_order_per_stream(worker: str) -> None:
    sink = RecordingSink()
    report = _run(
        *send_everything("model.batch_size=4", "model.batch_timeout_ms=2"),
        f"infer_worker={worker}",
        streams=3,
        sink=sink,
        max_frames=90,
    )
    assert report.frames == 90 and report.errors == dict.fromkeys(STAGES, 0)
    assert len(sink.records) > 30  # the detector finds the synthetic objects
    for stream in range(3):
        mine = [r for r in sink.records if r.stream_id == stream]
        assert mine, f"stream {stream} sent nothing"
        assert [r.seq for r in mine] == list(range(1, len(mine) + 1))
        indices = [r.frame_index for r in mine]
        assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert sink.opened == 1 and sink.closed == 1
    _accounted(report)


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_no_slot_leaks_and_every_frame_accounted(worker: str) -> None:
    report = _run(f"infer_worker={worker}", max_frames=40, streams=2)
    assert report.frames == 40
    assert [s.state for s in report.streams] == ["ended", "ended"]
    assert sum(s.produced for s in report.streams) == 40
    _accounted(report)
    assert report.e2e_ns.size == 40 and (report.e2e_ns > 0).all()
    assert report.stage_ns["source"].size == 40


def test_drop_oldest_counts_what_a_slow_stage_lost() -> None:
    make, _ = factory()
    config = small_config(
        "filter.motion.enabled=false", "ring_slots=4", kind="v4l2", uri="/dev/video99"
    )
    slow = Slowdown(30)  # every stage 31 times slower than the camera
    with Pipeline(config, source_factory=make, wrap_stage_calls=slow) as pipeline:
        report = pipeline.run(max_frames=60)
    stream = report.streams[0]
    assert stream.policy == "drop_oldest"
    assert stream.produced == 60
    assert stream.dropped.get("overwritten", 0) > 0
    assert report.dropped == stream.dropped
    _accounted(report)


def test_a_paced_source_held_back_by_slow_stages_counts_the_ticks_it_missed() -> None:
    """A ``block`` ring loses nothing, so a source paced faster than the stages go falls
    behind its clock: the ticks without a frame are counted (report and metric), the frames
    it did produce are all accounted for."""
    report = _run(
        "filter.motion.enabled=false",
        "ring_slots=4",
        "rate=200",
        wrap=Slowdown(30),
        duration_s=0.5,
    )
    stream = report.streams[0]
    assert stream.policy == "block" and not stream.dropped
    assert stream.missed_ticks > 0 and report.missed_ticks == stream.missed_ticks
    (missed,) = report.metrics["edgeloop_frames_missed_total"]["samples"]
    assert missed["labels"] == {"stream": "0"} and missed["value"] >= stream.missed_ticks
    _accounted(report)
    assert _run("filter.motion.enabled=false", max_frames=5).missed_ticks == 0  # not paced


def test_batches_form_across_streams_and_partial_ones_go_on_timeout() -> None:
    report = _run(
        "filter.motion.enabled=false",
        "model.batch_size=4",
        "model.batch_timeout_ms=1",
        "rate=40",  # 120 frames/s in all: batches of 4 rarely fill within 1 ms
        streams=3,
        max_frames=30,
    )
    assert report.frames == 30
    assert report.batches == report.stage_ns["infer"].size
    assert 0 < report.partial_batches <= report.batches
    assert report.batches >= 30 / 4
    _accounted(report)


def test_full_batches_when_frames_wait() -> None:
    report = _run(
        "filter.motion.enabled=false",
        "model.batch_size=4",
        "model.batch_timeout_ms=1000",
        streams=2,
        max_frames=32,
    )
    assert report.batches == 8 and report.partial_batches == 0


@pytest.mark.parametrize(
    ("level", "kinds"), [("metadata", set()), ("crops", {"crop"}), ("frame", {"frame"})]
)
def test_transmission_levels_make_the_right_records(level: str, kinds: set[str]) -> None:
    sink = RecordingSink()
    report = _run(*send_everything(f"filter.transmission={level}"), sink=sink, max_frames=12)
    assert sink.records and report.errors["compress"] == 0
    for record in sink.records:
        assert record.level == level
        assert {image.kind for image in record.images} == kinds
        if level == "crops":
            assert len(record.images) == len(record.detections)
        if level == "frame":
            assert len(record.images) == 1 and record.images[0].box is None


def test_cooldown_and_motion_gate_hold_back_what_was_sent() -> None:
    sink = RecordingSink()
    seen = _Recorder()
    _run("filter.cooldown_s=60", sink=sink, max_frames=30, observers=[seen])
    assert 0 < len(sink.records) < 30  # the same objects are not sent again
    assert len(seen.frames) == 30 and all(f.truth is not None for f in seen.frames)
    gated = [f for f in seen.frames if f.decision.reason == "no-motion"]
    assert all(f.detections is None for f in gated)  # not inferred
    assert any(f.decision.reason == "cooldown" for f in seen.frames)


def test_ledger_counts_what_the_sink_was_given() -> None:
    sink = RecordingSink()
    report = _run(*send_everything(), sink=sink, max_frames=31)
    totals = report.bytes
    assert totals["frames"] == 31
    assert totals["raw"] == 31 * WIDTH * HEIGHT * 3
    assert totals["sent"] == sum(r.payload_bytes for r in sink.records) > 0
    assert totals["jpeg_samples"] >= 1 and totals["jpeg_all"] > 0


def test_metrics_registry_has_the_run() -> None:
    report = _run(max_frames=20, streams=2)
    metrics = report.metrics
    frames = {
        s["labels"]["stream"]: s["value"] for s in metrics["edgeloop_frames_total"]["samples"]
    }
    assert frames == {"0": 10.0, "1": 10.0}
    latency = {
        s["labels"]["stage"]: s["count"]
        for s in metrics["edgeloop_stage_latency_seconds"]["samples"]
    }
    assert latency["source"] == 20 and latency["preprocess"] == 20
    assert metrics["edgeloop_e2e_latency_seconds"]["samples"][0]["count"] == 20
    occupancy = metrics["edgeloop_ring_occupancy"]["samples"]
    assert {s["labels"]["stream"] for s in occupancy} == {"0", "1"}
    assert set(metrics) >= {
        "edgeloop_drops_total",
        "edgeloop_errors_total",
        "edgeloop_stage_busy_ratio",
        "edgeloop_model_info",
    }
    # Model outputs, fed in batches by the monitor: every detection's score under its class
    # and the model version in use, every batch's frame count.
    version = metrics["edgeloop_model_info"]["samples"][0]["labels"]["model_version"]
    scores = metrics["edgeloop_detection_confidence_ratio"]["samples"]
    assert scores and all(s["labels"]["model_version"] == version for s in scores)
    assert sum(s["count"] for s in scores) > 0
    assert all(0 < s["sum"] <= s["count"] for s in scores)  # scores are in (0, 1]
    sizes = metrics["edgeloop_inference_batch_frames"]["samples"]
    batches = sum(s["value"] for s in metrics["edgeloop_batches_total"]["samples"])
    assert sizes[0]["labels"] == {"model_version": version}
    assert sizes[0]["count"] == batches and 0 < sizes[0]["sum"] <= 20


def test_sources_in_processes() -> None:
    seen = _Recorder()
    report = _run("source_workers=process", streams=2, max_frames=20, observers=[seen])
    assert report.frames == 20
    assert sum(f.truth is not None for f in seen.frames) == 20  # through the shared block
    assert report.stage_ns["source"].size == 20  # the source's timings too
    _accounted(report)


def test_pacing_and_duration() -> None:
    report = _run("rate=50", duration_s=0.3)
    assert 0 < report.frames < 50  # paced, not flat out
    assert report.streams[0].state == "stopped"
    _accounted(report)


def test_observers_see_the_warm_up_end_every_window_and_frame_then_the_end() -> None:
    seen = _Recorder()
    report = _run("rate=50", warmup_s=0.1, duration_s=0.4, observers=[seen, _Recorder()])
    assert seen.calls[0] == "start" and seen.calls[-1] == "end"
    assert set(seen.calls[1:-1]) == {"window"} and len(seen.windows) >= 3
    assert len(seen.frames) == report.frames  # the warm-up's were cleared on "start"
    ends = [w[0] for w in seen.windows]
    assert ends == sorted(ends) and ends[-1] <= report.duration_s
    for _, fps, delivered, e2e, stages in seen.windows:
        assert e2e == delivered and fps >= 0
        assert set(stages) == set(STAGES) and stages["sink"] == delivered
    assert sum(w[2] for w in seen.windows) <= report.frames
    assert seen.asked and seen.asked[0] >= 0.4  # asked at the planned end, not before


def test_a_run_that_ends_during_its_warm_up_still_starts_measuring_before_it_ends() -> None:
    seen = _Recorder()
    _run(max_frames=5, warmup_s=30.0, observers=[seen])
    assert seen.calls == ["start", "end"]


def test_a_run_measures_on_as_long_as_an_observer_asks() -> None:
    """At the planned end every observer is asked; the run goes on for the most seconds any
    asks, and is asked again at the new end, until none wants more."""
    twice = _Recorder(more=0.2, times=2)
    report = _run("rate=50", duration_s=0.4, observers=[twice, _Recorder(more=0.1, times=1)])
    assert len(twice.asked) == 3  # 0.4: more, 0.6: more, 0.8: enough
    assert twice.asked[1] >= 0.6 and twice.asked[2] >= 0.8
    assert report.duration_s >= 0.8
    _accounted(report)
    assert _Recorder().more_seconds(1.0) == 0.0 and RunObserver().more_seconds(1.0) == 0.0


def _sleepy(stage: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """A stage-call wrapper whose inference calls sleep 1 ms first (off the core)."""
    if stage != "infer":
        return call

    def sleepy(*args: Any) -> Any:
        time.sleep(0.001)
        return call(*args)

    return sleepy


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_time_inference_spent_off_its_core_is_reported(worker: str) -> None:
    """A window's ``infer_off_cpu_ns``: calls' wall time less the CPU time they ran. Made
    certain here by calls that sleep: the stage-call wrapper reaches inference in a thread and
    in a process of its own alike (where it must pickle: the bench's slowdown, which sleeps as
    long as the call ran)."""
    timelines = Timelines()
    report = _run(
        f"infer_worker={worker}",
        "filter.motion.enabled=false",
        "rate=100",
        wrap=Slowdown(1.0) if worker == "process" else _sleepy,
        duration_s=0.5,
        observers=[timelines],
    )
    off_ms = sum(v for _, v in timelines.infer_off_cpu)
    calls = report.stage_ns["infer"].size
    infer_ms = float(report.stage_ns["infer"].sum()) / 1e6
    assert calls > 10
    assert 0.3 * calls < off_ms < infer_ms  # at least most of the sleeps, never the calls'


def test_the_heap_is_frozen_during_a_run_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """What lived before the run is out of the collector's reach while it runs (a full
    collection would stop every thread for 15 ms), and handed back afterwards."""

    seen: list[int] = []
    freeze = run.freeze_heap

    def spy() -> int:
        count = freeze()
        seen.append(gc.get_freeze_count())
        return count

    monkeypatch.setattr(run, "freeze_heap", spy)
    _accounted(_run(max_frames=10))
    assert seen and seen[0] > 1000  # the modules, NumPy, the backend: thousands of objects
    assert gc.get_freeze_count() == 0


def test_warm_up_is_left_out() -> None:
    report = _run(max_frames=40, warmup_s=0.05)
    assert report.frames <= 40
    assert report.e2e_ns.size == report.frames


def test_stage_costs_measure_every_stage() -> None:
    with Pipeline(small_config(*send_everything(), streams=2)) as pipeline:
        costs = pipeline.stage_costs(frames=6)
    assert set(costs) == set(STAGES)
    assert costs["source"].workers == 2 and costs["infer"].workers == 1
    for name in ("source", "preprocess", "infer", "postprocess", "filter"):
        assert costs[name].service_ns > 0 and costs[name].cpu_ns >= 0, name


def test_stage_costs_sample_a_span_in_stretches() -> None:
    """With a span, the timed frames come from eight stretches spread over it (each after one
    untimed lead frame), not from the start of the stream."""
    read: list[int] = []

    def recording(config: SourceConfig, stream_id: int) -> Source:
        source = open_source(config, stream_id)
        read_into = source.read_into

        def spy(out: np.ndarray) -> SourceFrame | None:
            frame = read_into(out)
            if frame is not None:
                read.append(frame.index)
            return frame

        source.read_into = spy  # type: ignore[method-assign]
        return source

    with Pipeline(small_config(), source_factory=recording) as pipeline:
        _ = pipeline.backend  # choosing its threads reads a few frames first
        read.clear()
        costs = pipeline.stage_costs(frames=16, span=(1000, 5000))
    assert costs["source"].service_ns > 0
    assert len(read) == 16 + WARMUP_FRAMES + (CHUNKS - 1)
    assert min(read) == 1000 - WARMUP_FRAMES and max(read) == 4999
    starts = [b for a, b in itertools.pairwise(read) if b != a + 1]
    assert len(starts) == CHUNKS - 1
    assert _chunks(open_source(SourceConfig(), 0), 16, (0, 20)) == [(None, 16)]  # too short


def test_a_stage_call_wrapper_wraps_every_stage_but_the_source() -> None:
    """The wrapper is given each stage's work calls (the preprocess stage's gate and process),
    in runs and in cost measures alike, and the source's reads never."""
    wrapped: list[str] = []

    def noting(stage: str, call: Callable[..., Any]) -> Callable[..., Any]:
        wrapped.append(stage)
        return call

    config = small_config("infer_worker=thread")
    with Pipeline(config, wrap_stage_calls=noting) as pipeline:
        pipeline.run(max_frames=4)
        ran = sorted(wrapped)
        wrapped.clear()
        pipeline.stage_costs(frames=2)
    expected = sorted(["preprocess", *STAGES[1:]])  # gate and process; no source
    assert ran == sorted(wrapped) == expected


def test_report_figures_are_consistent() -> None:
    report = _run(max_frames=24)
    assert report.fps > 0 and report.duration_s > 0
    assert set(report.busy_frac) == set(STAGES) == set(report.workers)
    assert all(0.0 <= v <= 1.5 for v in report.busy_frac.values())
    assert report.backend.name == "onnxruntime" and report.backend.input_slots == 4
    assert "process_pid" in report.backend.extra  # auto: ONNX Runtime runs in a process
    assert np.issubdtype(report.e2e_ns.dtype, np.integer)


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


class _PrioritySink(RecordingSink):
    """Notes the niceness and time slice of the thread that emits (the output worker)."""

    def emit(self, record: object) -> None:  # type: ignore[override]
        self.nice = _nice(threading.get_native_id())
        self.slice_us = slice_us()
        super().emit(record)  # type: ignore[arg-type]


def test_ingest_yields_its_core_to_inference_and_output() -> None:
    """``stage_nice``: the source threads run that much nicer; the inference process and the
    output thread keep the niceness of the process that started them, and (where the kernel
    has per-thread slices) ask for ``critical_slice_us``, which the sources do not get."""
    base = _nice(threading.get_native_id())
    base_slice = slice_us()
    seen: list[int] = []
    slices: list[float | None] = []

    def noting(config: SourceConfig, stream_id: int) -> Source:
        source = open_source(config, stream_id)
        read_into = source.read_into

        def spy(out: np.ndarray) -> SourceFrame | None:
            seen.append(_nice(threading.get_native_id()))
            slices.append(slice_us())
            return read_into(out)

        source.read_into = spy  # type: ignore[method-assign]
        return source

    sink = _PrioritySink()
    config = small_config(
        *send_everything(), "stage_nice=3", "infer_worker=process", "critical_slice_us=150"
    )
    with Pipeline(config, sink=sink, source_factory=noting) as pipeline:
        _ = pipeline.backend  # choosing its threads reads a few frames here, un-niced
        seen.clear()
        slices.clear()
        pipeline.run(max_frames=10)
        child = pipeline.backend.describe().extra["process_pid"]
        assert _nice(child) == base
        child_slice = slice_us(child)
    assert set(seen) == {min(base + 3, 19)} and sink.nice == base
    if base_slice is not None:  # Linux 6.12 and later
        assert child_slice == sink.slice_us == 150.0
        assert set(slices) == {base_slice}


def test_samples_between_two_marks_leave_out_what_the_ring_overwrote() -> None:
    """A window's samples are its own calls: those the ring overwrote are left out, never
    made up from later calls (a window older than the ring would otherwise borrow them)."""
    stats = StageStats("x", stats_buffer(8))
    for i in range(20):
        stats.record(0, i)  # call i took i ns
    assert stats.samples_between(14, 17).tolist() == [14, 15, 16]
    assert stats.samples_between(10, 15).tolist() == [12, 13, 14]  # 10 and 11 are gone
    assert stats.samples_between(2, 5).size == 0
    assert stats.samples_between(18, None).tolist() == [18, 19]
    assert stats.samples_since(0).tolist() == list(range(12, 20))


class _RacingStats(StageStats):
    """Records one more call the first time its count is read after ``arm``: a worker that
    records while the metrics are being brought up to date."""

    armed = False

    @property
    def calls(self) -> int:
        count = super().calls
        if self.armed:
            self.armed = False
            self.record(0, 7)
        return count


def test_a_call_recorded_while_metrics_update_is_counted_next_time() -> None:
    registry = MetricsRegistry()
    metrics = PipelineMetrics(registry)
    e2e = _RacingStats("e2e", stats_buffer(8))
    for _ in range(3):
        e2e.record(0, 5)
    update = dict(wall_s=1.0, workers={}, streams=[], bandwidth={}, batches=(0, 0))
    e2e.armed = True
    metrics.update({}, e2e, **update)  # a fourth call lands meanwhile
    metrics.update({}, e2e, **update)
    (sample,) = registry.snapshot()["edgeloop_e2e_latency_seconds"]["samples"]
    assert sample["count"] == e2e.calls == 4


def test_a_closed_run_answers_status_and_retune_with_nothing() -> None:
    """The health thread asks for status, and a live change writes each stream's pace, from
    other threads: once the run has closed its blocks, neither may touch them (an IndexError
    on a closed block once crashed the device app as it stopped)."""
    config = small_config()
    runs: list[Any] = []
    with Pipeline(config) as pipeline:
        pipeline.run(max_frames=10, progress=lambda _: runs.append(pipeline._run))
    run = runs[-1]
    assert run is not None and run.closed
    assert run.status() is None
    run.retune(config.filter, 10.0)  # nothing to write: no error
