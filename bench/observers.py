"""What the bench watches while a pipeline runs (:class:`core.pipeline.RunObserver`s): the
windows' timelines with perf_analyzer's measure-until-stable (:class:`Timelines`), and accuracy
as running counts (:class:`AccuracyCounter`). The runtime keeps none of it: a device pays for
nothing it does not use (docs/decisions/0025-runtime-keeps-no-measuring-state.md).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench import schema
from core.accuracy import DEFAULT_MAX_OCCLUDED, average_precision, match_frame, truth_counts
from core.pipeline import FrameOutcome, RunObserver, Window

Timeline = list[tuple[float, float]]
"""Per window: its end (s into the measured phase) and a value."""


@dataclass(frozen=True)
class Extension:
    """Measure past ``duration_s`` until the windows settle: perf_analyzer's measurement keeps
    going, window after window, until its last three agree or ``--max-trials`` windows were
    taken, and users of its figures expect a run disturbed near its end (a neighbour, one long
    host stall) to be measured a little longer rather than thrown away."""

    settled: Callable[[Timeline, Timeline], bool]
    """Given the fps and median-latency timelines so far: may the run stop now?"""
    step_s: float
    """Measured seconds added each time ``settled`` says no (one measurement window)."""
    max_s: float
    """Measured seconds at most, the extensions included."""

    def __post_init__(self) -> None:
        if self.step_s <= 0:
            raise ValueError(f"step_s must be > 0, got {self.step_s}")


def _percentile_ms(samples: npt.NDArray[np.int64], q: float) -> float:
    return float(np.percentile(samples, q)) / 1e6 if samples.size else math.nan


class Timelines(RunObserver):
    """Each window's fps, end-to-end latency p50 and p99, each stage's p99 and inference's
    time off its core; with an :class:`Extension`, the run measures on while its windows have
    not settled (``extended_s`` says how long)."""

    def __init__(self, duration_s: float | None = None, extension: Extension | None = None):
        if extension is not None and duration_s is None:
            raise ValueError("an extension lengthens a run bounded by duration_s")
        self.duration_s = duration_s
        self.extension = extension
        self.extended_s = 0.0
        """Seconds measured past ``duration_s`` because the windows had not settled."""
        self.fps: Timeline = []
        self.latency_p50: Timeline = []
        """The median end-to-end latency (ms) of each window."""
        self.latency_p99: Timeline = []
        """The same windows' p99: the tail's own spread over time. Within a window, frames
        delayed by one stall come together, so windows -- not frames -- are what vary
        independently from run to run (``bench compare`` judges the paced p99 on them)."""
        self.stage_p99: dict[str, Timeline] = {}
        """Per stage, the windows' p99 of its calls (ms; NaN for a window without one): in a
        window whose end-to-end p99 rose, whether a stage itself ran slower (the machine
        slowed it) or every stage kept its speed and frames waited between them."""
        self.infer_off_cpu: Timeline = []
        """Per window, the ms inference's calls spent off their core (wall less CPU time): a
        window whose inference ran slower with this near its median's ran slower on its core
        (a host, a throttle), one with it high shared its core."""
        self._window_s = 0.0

    def on_measure_start(self) -> None:
        self.fps, self.latency_p50, self.latency_p99 = [], [], []
        self.stage_p99, self.infer_off_cpu = {}, []

    def on_window(self, window: Window) -> None:
        t = window.end_s
        self._window_s = window.seconds
        self.fps.append((t, window.fps))
        e2e = window.e2e_ns()
        self.latency_p50.append((t, _percentile_ms(e2e, 50)))
        self.latency_p99.append((t, _percentile_ms(e2e, 99)))
        for name in window.stage_names():
            timeline = self.stage_p99.setdefault(name, [])
            timeline.append((t, _percentile_ms(window.stage_ns(name), 99)))
        self.infer_off_cpu.append((t, window.infer_off_cpu_ns / 1e6))

    def more_seconds(self, measured_s: float) -> float:
        """A step more while the extension's rule says the windows have not settled and its
        ``max_s`` leaves room (judged on the plan, not the clock: how many steps fit must not
        vary with a late tick)."""
        del measured_s
        extension = self.extension
        if extension is None or self.duration_s is None:
            return 0.0
        planned = self.duration_s + self.extended_s
        if planned + extension.step_s > extension.max_s + self._window_s / 2:
            return 0.0
        if extension.settled(self.fps, self.latency_p50):
            return 0.0
        self.extended_s += extension.step_s
        return extension.step_s


SCORE_BINS = 10_000
"""Score bins of the running AP counts: predictions whose scores share a bin (1e-4 wide) are
ranked as tied, the only way the counts differ from ranking every prediction."""


class AccuracyCounter(RunObserver):
    """mAP@0.5 of the inferred frames that have ground truth, and ``relevant_recall`` of the
    filter, as running counts: each frame is matched once (:func:`core.accuracy.match_frame`)
    and only per-class hit and miss counts by score bin are kept, so memory stays flat however
    long the run. Frames are matched in the monitoring thread's windows, off the output
    thread that delivers them.

    A frame is *relevant* when it holds a ground-truth object hidden by at most
    :data:`core.accuracy.DEFAULT_MAX_OCCLUDED`; it was *delivered* when its filter decision
    sent it, or found its objects sent within the cooldown (``cooldown``). A frame the motion
    gate skipped shows what its stream's last gated-in frame showed, so it inherits that
    frame's answer.
    """

    def __init__(
        self, num_classes: int, *, iou_threshold: float = 0.5, bins: int = SCORE_BINS
    ) -> None:
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self.bins = bins
        self._pending: collections.deque[FrameOutcome] = collections.deque()
        self.on_measure_start()

    def on_measure_start(self) -> None:
        self._pending.clear()
        self.hits = np.zeros((self.num_classes, self.bins), np.int64)
        self.misses = np.zeros((self.num_classes, self.bins), np.int64)
        self.num_truth = np.zeros(self.num_classes, np.int64)
        self.frames_with_truth = 0
        self.relevant_frames = 0
        self.relevant_delivered = 0
        self._last_delivered: dict[int, bool] = {}

    def on_frame(self, frame: FrameOutcome) -> None:
        if frame.truth is not None:
            self._pending.append(frame)  # deque.append: safe beside the draining thread

    def on_window(self, window: Window) -> None:
        del window
        self.drain()

    def on_run_end(self) -> None:
        self.drain()

    def drain(self) -> None:
        """Count every frame delivered so far."""
        pending = self._pending
        while pending:
            self._count(pending.popleft())

    def _count(self, frame: FrameOutcome) -> None:
        truth = frame.truth
        assert truth is not None
        decision = frame.decision
        if decision is not None and decision.reason == "no-motion":
            delivered = self._last_delivered.get(frame.stream_id, False)
        else:
            delivered = decision is not None and (decision.send or decision.reason == "cooldown")
            self._last_delivered[frame.stream_id] = delivered
        occluded = np.asarray(truth.occluded)
        if len(truth.classes) and bool((occluded <= DEFAULT_MAX_OCCLUDED).any()):
            self.relevant_frames += 1
            self.relevant_delivered += delivered
        if frame.detections is None:
            return
        self.frames_with_truth += 1
        self.num_truth += truth_counts(truth, self.num_classes, DEFAULT_MAX_OCCLUDED)
        found = match_frame(frame.detections, truth, self.iou_threshold, DEFAULT_MAX_OCCLUDED)
        known = found.classes < self.num_classes
        if known.any():
            bins = np.minimum((found.scores[known] * self.bins).astype(np.intp), self.bins - 1)
            where = (found.classes[known], bins)
            np.add.at(self.hits, where, found.hits[known])
            np.add.at(self.misses, where, 1 - found.hits[known])

    def map50(self) -> float | None:
        """Mean AP over classes with ground truth; None when no frame had any."""
        aps = [self._class_ap(c) for c in range(self.num_classes) if self.num_truth[c]]
        return float(np.mean(aps)) if aps else None

    def _class_ap(self, cls: int) -> float:
        """AP with one point of the precision/recall curve per score bin (best first): the
        predictions a bin holds count as tied, neither order favoured."""
        hits, misses = self.hits[cls][::-1], self.misses[cls][::-1]
        used = (hits + misses) > 0
        found = np.cumsum(hits[used]).astype(np.float64)
        tried = np.cumsum(hits[used] + misses[used]).astype(np.float64)
        if not found.size:
            return 0.0
        return average_precision(found / self.num_truth[cls], found / tried)

    @property
    def relevant_recall(self) -> float | None:
        return self.relevant_delivered / self.relevant_frames if self.relevant_frames else None

    def block(self) -> schema.Accuracy | None:
        """The report's ``accuracy`` block; None when no frame had ground truth."""
        if not self.frames_with_truth and not self.relevant_frames:
            return None
        return {
            "map50": self.map50() if self.frames_with_truth else None,
            "relevant_recall": self.relevant_recall,
            "frames_with_truth": self.frames_with_truth,
            "relevant_frames": self.relevant_frames,
            "relevant_delivered": self.relevant_delivered,
        }
