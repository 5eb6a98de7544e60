"""A/B tests on the device (core.app.ab, the batcher's Split, the model manager): the frames
split deterministically between two models with every stream's frames still in order; the
comparison's tests judge what they say (error rate, detection rate, confidence, p99 time) and
wait for their samples; a 50/50 split of detector-s and detector-m reports both with their
counts and decides by the configured rule, promoting by a swap or rejecting."""

from __future__ import annotations

import itertools
import queue
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from core.app.ab import ABRules, compare
from core.app.config import ABConfig
from core.models import reference_model_path
from core.pipeline import Pipeline
from core.pipeline.serving import CONFIDENCE_BINS, CallCosts, Tally
from tests.pipeline_doubles import send_everything, small_config
from tests.test_model_manager import Device, published  # noqa: F401 - the fixture
from tests.test_model_swap import _Frames

RULES = ABRules(
    min_frames=100,
    max_error_rate_increase=0.01,
    max_detection_drop=0.2,
    max_confidence_drop=0.1,
    max_latency_ratio=1.5,
)
CLASSES = ("circle", "square")


def _variant(  # noqa: PLR0917 - one figure each, in the order the tests read them
    version: str,
    frames: int,
    errors: int,
    detections: tuple[int, int],
    confidence: float,
    latency_s: float,
    seed: int,
) -> Any:
    """A model's counters as a run would leave them (a stand-in for a Serving: the same
    CallCosts and Tally, filled with figures drawn at random around the given ones)."""
    rng = np.random.default_rng(seed)
    costs = CallCosts()
    costs.decoded(frames, errors)
    tally = Tally(len(CLASSES))
    tally.detections[:] = detections
    scores = np.clip(rng.normal(confidence, 0.05, sum(detections)), 0, 0.999)
    tally.confidence[:] = np.bincount((scores * CONFIDENCE_BINS).astype(int), minlength=20)
    for value in rng.normal(latency_s, latency_s * 0.05, 200):
        costs.add(1, int(value * 1e9), int(value * 1e9))
    model = SimpleNamespace(class_names=CLASSES)
    return SimpleNamespace(version=version, costs=costs, tally=tally, model=model)


def test_an_equal_candidate_is_promoted_once_both_have_their_frames() -> None:
    a = _variant("1.0.0", 500, 2, (400, 300), 0.8, 0.010, 1)
    b = _variant("1.1.0", 500, 2, (410, 290), 0.8, 0.010, 2)
    report = compare(a, b, RULES)
    assert report["decision"] == "promote" and report["reasons"] == []
    assert report["variants"]["b"]["frames"] == 500
    assert report["variants"]["a"]["detections_per_frame"] == {"circle": 0.8, "square": 0.6}
    few = _variant("1.1.0", 50, 0, (40, 30), 0.8, 0.010, 3)
    assert compare(a, few, RULES)["decision"] == "collecting"


@pytest.mark.parametrize(
    ("b_figures", "reason"),
    [
        ((500, 40, (400, 300), 0.8, 0.010), "error rate 8.0% against 0.4%"),
        ((500, 2, (400, 120), 0.8, 0.010), "square: 0.240 detections a frame against 0.600"),
        ((500, 2, (400, 300), 0.6, 0.010), "mean confidence"),
        ((500, 2, (400, 300), 0.8, 0.030), "p99 time per frame"),
    ],
)
def test_a_worse_candidate_is_rejected_for_what_is_worse(
    b_figures: tuple[Any, ...], reason: str
) -> None:
    a = _variant("1.0.0", 500, 2, (400, 300), 0.8, 0.010, 1)
    b = _variant("1.1.0", *b_figures, seed=2)
    report = compare(a, b, RULES)
    assert report["decision"] == "reject" and len(report["reasons"]) == 1
    assert reason in report["reasons"][0], report["reasons"]


def test_a_small_difference_is_not_significant() -> None:
    """B's square rate 12 % lower on few frames: under the margin and not significant."""
    a = _variant("1.0.0", 120, 0, (60, 50), 0.8, 0.010, 1)
    b = _variant("1.1.0", 120, 1, (58, 44), 0.8, 0.010, 2)
    assert compare(a, b, RULES)["decision"] == "promote"


def test_a_split_by_frame_keeps_every_stream_in_order() -> None:
    """Half of each stream's frames go to detector-m, half to detector-s, in batches of two:
    every frame delivered once, in order, labelled with the model that served it."""
    config = small_config(*send_everything(), "model.batch_size=2", "rate=60", streams=2)
    seen = _Frames()
    with Pipeline(config, model_version="1.0.0") as pipeline:
        _ = pipeline.backend
        candidate = pipeline.prepare(reference_model_path("detector-m"), "1.1.0")
        pipeline.split(candidate.serving, 0.5, "frame")
        report = pipeline.run(max_frames=120, observers=[seen])
        candidate.serving.close_when_idle()
    for stream in report.streams:
        assert stream.produced == stream.delivered == 60, stream
    for stream_id in (0, 1):
        frames = [f for f in seen.frames if f.stream_id == stream_id]
        assert [f.frame_index for f in frames] == list(range(60))
        versions = [f.model_version for f in frames]
        assert versions.count("1.1.0") == 30, versions
        assert all(x != y for x, y in itertools.pairwise(versions)), versions  # alternate


def _ab_device(registry: Path, tmp_path: Path, candidate: str, **models: Any) -> Device:
    root = tmp_path / "registry"
    if not root.exists():
        shutil.copytree(registry, root)
    ab = ABConfig(
        candidate=candidate, fraction=0.5, by="frame", min_frames=60, report_s=1.0, **models
    )
    return Device(root, tmp_path / "state", registry=f"file://{root}", name="gate", ab=ab)


def _until(device: Device, kind: str, results: set[str], timeout: float = 90) -> list[Any]:
    """Every event up to the first of ``kind`` with a result in ``results``."""
    seen = []
    while True:
        try:
            event = device.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {kind} {results}; seen {seen}") from None
        seen.append(event)
        if event["type"] == kind and event["result"] in results:
            return seen


def test_a_slower_candidate_is_reported_with_both_counts_and_rejected(
    published: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """detector-m (3-4 x the time per frame) against detector-s, 50/50 by frame: the reports
    carry both models' frame counts, and the p99 rule rejects the candidate by itself."""
    device = _ab_device(published, tmp_path, "1.1.0", auto_decide=True)
    try:
        events = _until(device, "model-ab", {"rejected", "promoted"})
        started = events[0]
        assert started["result"] == "started" and started["version"] == "1.1.0"
        decided = events[-1]
        assert decided["result"] == "rejected", decided
        assert "p99 time per frame" in decided["reason"]
        variants = decided["variants"]
        assert variants["a"]["version"] == device.pipeline.model_version
        assert variants["b"]["version"] == "1.1.0"
        assert min(variants["a"]["frames"], variants["b"]["frames"]) >= 60
        assert decided["tests"]["latency"]["p99_ratio"] > 1.5
        assert device.serves(device.pipeline.model_version)
        assert device.manager.status()["current"] is None
    finally:
        device.close()
    again = _ab_device(published, tmp_path, "1.1.0", auto_decide=True)  # the same state dir
    try:
        with pytest.raises(queue.Empty):  # a decided test is not started again
            again.events.get(timeout=3)
    finally:
        again.close()


def test_an_equal_candidate_is_promoted_by_a_swap_or_only_reported(
    published: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """1.0.0 is detector-s itself: with auto_decide it is promoted (swapped in, on probation);
    without, the decision is reported and both keep serving."""
    device = _ab_device(published, tmp_path / "auto", "1.0.0", auto_decide=True)
    try:
        decided = _until(device, "model-ab", {"promoted", "rejected"})[-1]
        assert decided["result"] == "promoted", decided
        assert device.serves("1.0.0")
        status = device.manager.status()
        assert status["current"] == "1.0.0" and status["watch"]["version"] == "1.0.0"
    finally:
        device.close()
    device = _ab_device(published, tmp_path / "report", "1.0.0", auto_decide=False)
    try:
        decided = _until(device, "model-ab", {"promote", "reject"})[-1]
        assert decided["result"] == "promote" and decided["auto_decide"] is False
        versions = set(device.versions[-40:])
        assert versions == {device.pipeline.model_version, "1.0.0"}  # both still serve
    finally:
        device.close()
