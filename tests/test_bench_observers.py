"""The bench's run observers: accuracy as running counts agrees with ranking every prediction
(:func:`core.accuracy.map50`), the filter's relevant recall follows its rule, and the timelines
come from the run's own windows."""

from __future__ import annotations

import numpy as np
import pytest

from bench.observers import AccuracyCounter, Extension, Timelines
from core.accuracy import map50
from core.detections import Detections, GroundTruth
from core.filter import FilterDecision
from core.pipeline import FrameOutcome, Pipeline, RunObserver
from core.synthetic import CLASS_NAMES
from tests.pipeline_doubles import small_config


def _random_frames(count: int, classes: int, seed: int) -> list[tuple[Detections, GroundTruth]]:
    """Frames with a few objects each and predictions near some of them, some of them off."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        n = int(rng.integers(0, 4))
        corner = rng.uniform(0, 200, (n, 2))
        truth_boxes = np.hstack([corner, corner + rng.uniform(20, 60, (n, 2))])
        truth = GroundTruth(
            truth_boxes.astype(np.float32),
            rng.integers(0, classes, n),
            rng.choice([0.0, 0.9], n, p=[0.8, 0.2]).astype(np.float32),
        )
        m = int(rng.integers(0, 6))
        picked = rng.integers(0, max(n, 1), m)
        boxes = truth_boxes[picked] if n else rng.uniform(0, 200, (m, 4))
        boxes = boxes + rng.normal(0, 6, (m, 4))
        labels = truth.classes[picked] if n else rng.integers(0, classes, m)
        labels = np.where(rng.random(m) < 0.15, rng.integers(0, classes, m), labels)
        scores = rng.uniform(0.05, 1.0, m).astype(np.float32)
        frames.append((Detections(boxes.astype(np.float32), scores, labels), truth))
    return frames


def _outcome(
    detections: Detections | None, truth: GroundTruth, decision: FilterDecision | None = None
) -> FrameOutcome:
    return FrameOutcome(0, 0, 0, detections, truth, decision)


def test_running_counts_agree_with_ranking_every_prediction() -> None:
    frames = _random_frames(400, classes=3, seed=7)
    counter = AccuracyCounter(3)
    for detections, truth in frames:
        counter.on_frame(_outcome(detections, truth))
    counter.on_run_end()
    exact = map50([d for d, _ in frames], [t for _, t in frames], 3)
    assert 0.2 < exact < 0.95  # a curve worth comparing, neither empty nor perfect
    assert counter.map50() == pytest.approx(exact, abs=1e-3)
    assert counter.frames_with_truth == 400
    coarse = AccuracyCounter(3, bins=4)  # every score in four ties: no longer the same
    for detections, truth in frames:
        coarse.on_frame(_outcome(detections, truth))
    coarse.drain()
    assert abs(coarse.map50() - exact) > 1e-3  # type: ignore[operator]


def test_memory_stays_flat_however_many_frames() -> None:
    counter = AccuracyCounter(3)
    frames = _random_frames(50, classes=3, seed=1)
    sizes = set()
    for round_ in range(20):
        for detections, truth in frames:
            counter.on_frame(_outcome(detections, truth))
        counter.drain()
        sizes.add((counter.hits.nbytes, counter.misses.nbytes, len(counter._pending)))
        assert counter.frames_with_truth == 50 * (round_ + 1)
    assert sizes == {(3 * 10_000 * 8, 3 * 10_000 * 8, 0)}


def _decision(reason: str, send: bool) -> FilterDecision:
    nothing = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))
    return FilterDecision(send, "metadata" if send else "none", nothing, reason)


def test_relevant_recall_counts_sent_or_cooling_frames_and_skipped_ones_inherit() -> None:
    visible = GroundTruth(
        np.array([[0, 0, 10, 10]], np.float32), np.array([0]), np.zeros(1, np.float32)
    )
    hidden = GroundTruth(
        np.array([[0, 0, 10, 10]], np.float32), np.array([0]), np.ones(1, np.float32)
    )
    counter = AccuracyCounter(1)
    for truth, decision in [
        (visible, _decision("sent", True)),  # relevant, delivered
        (visible, _decision("no-motion", False)),  # inherits: delivered
        (visible, _decision("filtered", False)),  # relevant, missed
        (visible, _decision("no-motion", False)),  # inherits: missed
        (visible, _decision("cooldown", False)),  # relevant, delivered earlier
        (hidden, _decision("filtered", False)),  # nobody can be blamed: not relevant
    ]:
        counter.on_frame(_outcome(None, truth, decision))
    counter.on_frame(FrameOutcome(0, 0, 0, None, None, None))  # no truth: not counted
    counter.drain()
    assert (counter.relevant_frames, counter.relevant_delivered) == (5, 3)
    assert counter.block() == {
        "map50": None,  # nothing was inferred
        "relevant_recall": 0.6,
        "frames_with_truth": 0,
        "relevant_frames": 5,
        "relevant_delivered": 3,
    }
    assert AccuracyCounter(1).block() is None


class _Pairs(RunObserver):
    def __init__(self) -> None:
        self.pairs: list[tuple[Detections, GroundTruth]] = []

    def on_measure_start(self) -> None:
        self.pairs.clear()

    def on_frame(self, frame: FrameOutcome) -> None:
        if frame.detections is not None and frame.truth is not None:
            self.pairs.append((frame.detections, frame.truth))


def test_a_real_run_counts_the_same_map_as_its_kept_frames() -> None:
    counter, kept, timelines = AccuracyCounter(len(CLASS_NAMES)), _Pairs(), Timelines()
    config = small_config("filter.motion.enabled=false", "rate=60")
    with Pipeline(config) as pipeline:
        report = pipeline.run(duration_s=1.0, warmup_s=0.1, observers=[timelines, counter, kept])
    assert counter.frames_with_truth == len(kept.pairs) == report.frames
    exact = map50([d for d, _ in kept.pairs], [t for _, t in kept.pairs], len(CLASS_NAMES))
    assert counter.map50() == pytest.approx(exact, abs=1e-3) and exact > 0.3
    assert len(timelines.fps) == len(timelines.latency_p99) >= 5
    assert set(timelines.stage_p99) >= {"infer", "sink"}
    assert all(
        p50 <= p99
        for (_, p50), (_, p99) in zip(timelines.latency_p50, timelines.latency_p99, strict=True)
        if not np.isnan(p50)
    )


def test_an_extension_steps_until_settled_and_never_past_its_most() -> None:
    asked: list[int] = []

    def settled(fps: list[tuple[float, float]], latency: list[tuple[float, float]]) -> bool:
        asked.append(len(fps))
        return len(asked) >= 3

    timelines = Timelines(1.0, Extension(settled, step_s=0.5, max_s=5.0))
    assert [timelines.more_seconds(1.0) for _ in range(4)] == [0.5, 0.5, 0.0, 0.0]
    assert timelines.extended_s == 1.0 and len(asked) == 4
    never = Timelines(1.0, Extension(lambda fps, latency: False, step_s=0.4, max_s=2.0))
    assert sum(never.more_seconds(1.0) for _ in range(10)) == pytest.approx(0.8)
    assert Timelines().more_seconds(1.0) == 0.0
    with pytest.raises(ValueError, match="duration_s"):
        Timelines(None, Extension(settled, step_s=0.5, max_s=5.0))
    with pytest.raises(ValueError, match="step_s"):
        Extension(settled, step_s=0.0, max_s=1.0)
