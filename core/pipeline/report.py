"""What a pipeline run returns: :class:`PipelineReport` (raw figures for the bench and the
tests), :class:`StreamReport` per stream, :class:`StageCost` per stage (``stage_costs``) and the
:class:`PipelineProgress` a progress callback receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.backends import BackendInfo, LoadTimings
from core.detections import Detections, GroundTruth


@dataclass(frozen=True)
class StageCost:
    """One stage measured alone, single-threaded, in this process: mean wall time
    (``service_ns``) and CPU time of the whole process (``cpu_ns``, so a runtime's own thread
    pool counts) per frame, and how many workers the pipeline gives the stage. The bench's
    ``bound_fps`` is ``min(workers / service)`` over the stages, capped by
    ``cores / sum(cpu)``."""

    service_ns: float
    cpu_ns: float
    workers: int


@dataclass(frozen=True)
class PipelineProgress:
    """What a ``progress`` callback gets, a few times a second."""

    elapsed_s: float
    """Since the run started (warm-up included)."""
    frames: int
    """Frames delivered since the warm-up ended (0 while warming up)."""
    fps: float
    """Frames per second over the last window."""
    dropped: int
    errors: int
    warming_up: bool


@dataclass(frozen=True)
class StreamReport:
    """One stream's account: ``produced == delivered + sum(dropped)`` for a run without
    warm-up (frames in flight when the warm-up ends are counted on both sides of it)."""

    stream_id: int
    name: str
    policy: str
    """The ring's: ``block`` or ``drop_oldest``."""
    state: str
    """``ended`` (end of stream or ``max_frames``), ``failed`` (too many failed reads),
    ``stalled`` (a read hung past its timeout; the worker was abandoned) or ``stopped``."""
    message: str
    """The end's cause, or the last read error."""
    produced: int
    """Frames the source put into the ring."""
    delivered: int
    """Frames that went through every stage."""
    dropped: dict[str, int]
    """By reason: ``overwritten`` (a drop_oldest ring replaced a frame nobody took yet),
    ``shutdown`` (in flight when a stuck worker was abandoned)."""
    read_errors: int
    stalls: int
    occupancy_end: int
    """Ring occupancy after the run drained, before the ring closed (0: no slot leaked)."""
    concealed: int = 0
    """Frames delivered in which the decoder concealed errors (damaged data it decoded around:
    FFmpeg marked them corrupt), over the whole run."""
    produced_total: int = 0
    """Frames the source put into the ring over the whole run, warm-up included: the measured
    frames are the last ``produced`` of them (``Pipeline.stage_costs(span=...)`` samples those)."""
    missed_ticks: int = 0
    """Ticks of a paced stream that passed without a frame: the source was still reading, or
    waited for a free slot while the stages were behind (back-pressure). Never produced, so
    not in ``dropped``; a camera would have lost them, so a paced run counts them against
    "no drops" (0 for a stream that is not paced)."""


Timeline = list[tuple[float, float]]
"""Per window: its end (s into the measured phase) and a value."""


@dataclass(frozen=True)
class Extension:
    """Measure past ``duration_s`` until the windows settle: perf_analyzer's measurement keeps
    going, window after window, until its last three agree or ``--max-trials`` windows were
    taken, and users of its figures expect a run disturbed near its end (a neighbour, one long
    host stall) to be measured a little longer rather than thrown away. Where the rule lives is
    the caller's business (the bench's stability check); the run only asks it."""

    settled: Callable[[Timeline, Timeline], bool]
    """Given the fps and median-latency timelines so far: may the run stop now?"""
    step_s: float
    """Measured seconds added each time ``settled`` says no (one measurement window)."""
    max_s: float
    """Measured seconds at most, the extensions included."""

    def __post_init__(self) -> None:
        if self.step_s <= 0:
            raise ValueError(f"step_s must be > 0, got {self.step_s}")


@dataclass
class PipelineReport:
    """Everything one run measured, raw (the bench summarises; latencies are int64 ns).

    ``stage_ns["infer"]`` holds one sample per batch (an inference call); every other stage
    one per frame. ``busy_frac`` is a stage's busy time over the run's wall time and its
    workers. ``bytes`` is :meth:`core.ledger.BandwidthLedger.totals`. ``predictions`` and
    ``truths`` pair the detections of every inferred frame that had ground truth (for
    :func:`core.accuracy.map50`); ``relevant_frames`` counts frames with a visible
    ground-truth object, ``relevant_delivered`` those whose objects the filter delivered (sent
    now, or within the cooldown: decision ``sent`` or ``cooldown``; a frame the motion gate
    skipped inherits the answer of its stream's last gated-in frame, since nothing moved).
    """

    frames: int
    dropped: dict[str, int]
    errors: dict[str, int]
    duration_s: float
    e2e_ns: npt.NDArray[np.int64]
    stage_ns: dict[str, npt.NDArray[np.int64]]
    busy_frac: dict[str, float]
    workers: dict[str, int]
    fps_timeline: list[tuple[float, float]]
    latency_timeline: list[tuple[float, float]]
    """Per window: its end (s into the measured phase) and the median end-to-end latency (ms)."""
    latency_p99_timeline: list[tuple[float, float]]
    """The same windows' p99: the tail's own spread over time. Within a window, frames delayed
    by one stall come together, so windows -- not frames -- are what vary independently from
    run to run (``bench compare`` judges the paced p99 on them)."""
    bytes: dict[str, Any]
    predictions: list[Detections]
    truths: list[GroundTruth]
    relevant_frames: int
    relevant_delivered: int
    backend: BackendInfo
    timings: LoadTimings
    streams: list[StreamReport] = field(default_factory=list)
    batches: int = 0
    partial_batches: int = 0
    """Batches with rows that went before they were full (batch timeout, or the end)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """The metrics registry's snapshot at the end of the run."""
    stage_p99_timeline: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per stage, the latency windows' p99 of its calls (ms; NaN for a window without one): in a
    window whose end-to-end p99 rose, whether a stage itself ran slower (the machine slowed
    it, a throttle) or every stage kept its speed and frames waited between them."""
    infer_off_cpu_timeline: list[tuple[float, float]] = field(default_factory=list)
    """Per latency window, the ms inference's calls spent off their core (wall time less CPU
    time, summed). On a CPU backend a call does not block, so this is how long inference was
    ready but waiting for a core: a window whose inference ran slower with this near its
    median's ran slower on its core (the machine: a host, a throttle), one with it high shared
    its core. On TensorRT it is time spent waiting for the GPU."""
    extended_s: float = 0.0
    """Seconds measured past ``duration_s`` because the windows had not settled: the
    :class:`Extension`'s steps taken (0.0 without one)."""

    @property
    def fps(self) -> float:
        """Frames delivered per second of the measured phase."""
        return self.frames / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def missed_ticks(self) -> int:
        """Every paced stream's :attr:`StreamReport.missed_ticks`."""
        return sum(stream.missed_ticks for stream in self.streams)

    @property
    def relevant_recall(self) -> float | None:
        return self.relevant_delivered / self.relevant_frames if self.relevant_frames else None
