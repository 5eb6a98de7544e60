"""What a pipeline run returns: :class:`PipelineReport` (the run's own account: counts,
latencies, streams), :class:`StreamReport` per stream, :class:`StageCost` per stage
(``stage_costs``) and the :class:`PipelineProgress` a progress callback receives. What a caller
wants beyond that (timelines, accuracy) it builds with a :class:`core.pipeline.RunObserver`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.backends import BackendInfo, LoadTimings


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
    loops: int = 0
    """Times the source went back to its start (a looping file), over the whole run."""
    source: dict[str, Any] = field(default_factory=dict)
    """What it read and how (:meth:`core.sources.Source.facts`) and the ``workers`` kind."""
    missed_ticks: int = 0
    """Ticks of a paced stream that passed without a frame: the source was still reading, or
    waited for a free slot while the stages were behind (back-pressure). Never produced, so
    not in ``dropped``; a camera would have lost them, so a paced run counts them against
    "no drops" (0 for a stream that is not paced)."""


@dataclass
class PipelineReport:
    """What one run measured, raw (latencies are int64 ns; the caller summarises).

    ``stage_ns["infer"]`` holds one sample per batch (an inference call); every other stage
    one per frame; each keeps at most the last :data:`core.pipeline.stats.SAMPLES` calls per
    worker. ``busy_frac`` is a stage's busy time over the run's wall time and its workers.
    ``bytes`` is :meth:`core.ledger.BandwidthLedger.totals`.
    """

    frames: int
    dropped: dict[str, int]
    errors: dict[str, int]
    duration_s: float
    e2e_ns: npt.NDArray[np.int64]
    stage_ns: dict[str, npt.NDArray[np.int64]]
    busy_frac: dict[str, float]
    workers: dict[str, int]
    bytes: dict[str, Any]
    backend: BackendInfo
    timings: LoadTimings
    streams: list[StreamReport] = field(default_factory=list)
    batches: int = 0
    partial_batches: int = 0
    """Batches with rows that went before they were full (batch timeout, or the end)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """The metrics registry's snapshot at the end of the run."""
    model: dict[str, Any] = field(default_factory=dict)
    """The model's format, classes and input (:meth:`core.formats.model.ModelChoice.summary`)."""
    threads_why: str = ""
    """Why inference has ``backend.threads`` intra-op threads (``model.threads``, or what
    :mod:`core.pipeline.threads` measured)."""

    @property
    def fps(self) -> float:
        """Frames delivered per second of the measured phase."""
        return self.frames / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def missed_ticks(self) -> int:
        """Every paced stream's :attr:`StreamReport.missed_ticks`."""
        return sum(stream.missed_ticks for stream in self.streams)
