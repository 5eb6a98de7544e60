"""What a caller can watch while a pipeline runs: :class:`RunObserver` and what it is shown.

The runtime keeps only the account a run needs (counts, latencies, the stream reports). Anything
a caller wants beyond it -- the bench's timelines and accuracy, a test's own record -- it builds
itself from these hooks, so that a device pays for none of it
(docs/decisions/0025-runtime-keeps-no-measuring-state.md):

* :meth:`RunObserver.on_measure_start`: the warm-up ended, what came before is not measured;
* :meth:`RunObserver.on_frame`: a frame left the pipeline (output thread: keep it cheap, hand
  the work to :meth:`~RunObserver.on_window`);
* :meth:`RunObserver.on_window`: a measurement window closed (the monitoring thread);
* :meth:`RunObserver.more_seconds`: the run reached its planned duration; seconds to measure
  on (0: stop);
* :meth:`RunObserver.on_run_end`: every worker stopped; nothing else will be called.

>>> from core.pipeline import Pipeline, load_pipeline_config
>>> class Counting(RunObserver):
...     frames = 0
...     def on_frame(self, frame: FrameOutcome) -> None:
...         self.frames += 1
>>> config = load_pipeline_config(
...     overrides=["sources=[{kind: synthetic, width: 320, height: 180}]"])
>>> counting = Counting()
>>> with Pipeline(config) as pipeline:
...     report = pipeline.run(max_frames=12, observers=[counting])
>>> counting.frames == report.frames == 12
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from core.detections import Detections, GroundTruth
    from core.filter import FilterDecision


class FrameOutcome(NamedTuple):
    """One frame that went through every stage, as the output worker finished it."""

    stream_id: int
    frame_index: int
    """The frame's index in its source."""
    capture_ns: int
    detections: Detections | None
    """None when the frame was not inferred (the motion gate skipped it, or a stage failed)."""
    truth: GroundTruth | None
    """The source's ground truth for it (synthetic and recorded streams), else None."""
    decision: FilterDecision | None
    """What the filter decided (``reason`` ``no-motion`` for a frame the gate skipped)."""
    model_version: str = ""
    """The version of the model that served it (:mod:`core.pipeline.serving`)."""


class Window:
    """One closed measurement window: its place in the run and what happened in it.

    The sample accessors copy the window's latencies out of the stage rings: call them from
    :meth:`RunObserver.on_window` itself (a ring overwrites what is older than its capacity)."""

    __slots__ = ("_e2e", "_stages", "delivered", "end_s", "infer_off_cpu_ns", "seconds")

    def __init__(
        self,
        *,
        end_s: float,
        seconds: float,
        delivered: int,
        infer_off_cpu_ns: int,
        e2e: Callable[[], npt.NDArray[np.int64]],
        stages: Mapping[str, Callable[[], npt.NDArray[np.int64]]],
    ) -> None:
        self.end_s = end_s
        """Its end, in seconds into the measured phase."""
        self.seconds = seconds
        self.delivered = delivered
        """Frames that went through every stage in it."""
        self.infer_off_cpu_ns = infer_off_cpu_ns
        """Inference calls' wall time less their CPU time in it: time ready but waiting for a
        core (a CPU backend does not block), or waiting for the GPU (TensorRT)."""
        self._e2e = e2e
        self._stages = stages

    @property
    def fps(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def e2e_ns(self) -> npt.NDArray[np.int64]:
        """End-to-end latencies of the frames delivered in it (int64 ns)."""
        return self._e2e()

    def stage_names(self) -> tuple[str, ...]:
        return tuple(self._stages)

    def stage_ns(self, name: str) -> npt.NDArray[np.int64]:
        """Latencies of ``name``'s calls in it (int64 ns; one per batch for ``infer``)."""
        return self._stages[name]()


class RunObserver:
    """Hooks a :meth:`core.pipeline.Pipeline.run` calls (see the module docstring); each does
    nothing unless overridden. An observer that raises stops the run like a crashed worker."""

    def on_measure_start(self) -> None:
        """The warm-up ended (at once for a run without one)."""

    def on_frame(self, frame: FrameOutcome) -> None:
        """A frame left the pipeline (output thread: on every frame's path)."""

    def on_window(self, window: Window) -> None:
        """A measurement window closed (the monitoring thread)."""

    def more_seconds(self, measured_s: float) -> float:
        """At the planned end of a run bounded by ``duration_s``: seconds to measure on."""
        del measured_s
        return 0.0

    def on_run_end(self) -> None:
        """Every worker stopped; called before the run's report is returned."""


def wants_frames(observers: tuple[RunObserver, ...]) -> tuple[RunObserver, ...]:
    """The observers that override :meth:`RunObserver.on_frame`: only they cost a call on
    every frame's path."""
    return tuple(o for o in observers if type(o).on_frame is not RunObserver.on_frame)


def most_seconds(observers: tuple[RunObserver, ...], measured_s: float) -> float:
    """The most seconds any observer asks to measure on (0.0 when none asks)."""
    return max((max(0.0, o.more_seconds(measured_s)) for o in observers), default=0.0)


__all__ = ["FrameOutcome", "RunObserver", "Window", "most_seconds", "wants_frames"]
