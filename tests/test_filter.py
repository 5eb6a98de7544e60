"""The filter's decision table, deterministically: motion gate, score threshold (NaN never
passes), class allow-list, per-object cooldown on capture time, transmission levels and the
JPEGs each level sends."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from core import jpeg
from core.config import from_mapping
from core.detections import Detections
from core.errors import ConfigError
from core.filter import (
    MAX_TRACKED,
    FilterConfig,
    FilterDecision,
    MotionGate,
    MotionGateConfig,
    ResultFilter,
    crop_box,
)
from core.sample_media import scene_image

NAMES = ("person", "car", "dog")
MS = 1_000_000  # ns


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    """Detections from ``(x0, y0, x1, y1, score, class)`` rows."""
    array = np.array(rows, np.float64).reshape(-1, 6)
    return Detections(array[:, :4], array[:, 4], array[:, 5].astype(np.int64), NAMES)


PERSON = (10, 10, 50, 90, 0.9, 0)
CAR = (100, 40, 220, 110, 0.8, 1)
DOG = (300, 100, 340, 130, 0.7, 2)
NAN_SCORE = (0, 0, 5, 5, float("nan"), 0)
INF_SCORE = (0, 0, 5, 5, float("inf"), 0)
NAN_BOX = (float("nan"), 0, 5, 5, 0.9, 0)
NONE: tuple[bool, str, str, list[str]] = (False, "none", "filtered", [])


def _filter(**settings: object) -> ResultFilter:
    settings.setdefault("cooldown_s", 0.0)
    return ResultFilter(FilterConfig(**settings), NAMES)  # type: ignore[arg-type]


def _summary(decision: FilterDecision) -> tuple[bool, str, str, list[str]]:
    return decision.send, decision.level, decision.reason, decision.detections.labels()


# -- the decision table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "detections", "motion", "expected"),
    [
        ({}, dets(PERSON), False, (False, "none", "no-motion", [])),
        ({}, None, True, (False, "none", "no-detections", [])),
        ({}, dets(), True, (False, "none", "no-detections", [])),
        ({}, dets(PERSON, CAR), True, (True, "crops", "sent", ["person", "car"])),
        ({"score_threshold": 0.85}, dets(PERSON, CAR), True, (True, "crops", "sent", ["person"])),
        ({"score_threshold": 0.9}, dets(PERSON), True, (True, "crops", "sent", ["person"])),
        ({"score_threshold": 0.95}, dets(PERSON, CAR), True, NONE),
        ({"classes": ("car", "dog")}, dets(PERSON, CAR, DOG), True, (True, "crops", "sent", ["car", "dog"])),  # noqa: E501
        ({"classes": ("dog",)}, dets(PERSON, CAR), True, NONE),
        ({"transmission": "metadata"}, dets(CAR), True, (True, "metadata", "sent", ["car"])),
        ({"transmission": "frame"}, dets(CAR), True, (True, "frame", "sent", ["car"])),
        ({"transmission": "frame"}, dets(CAR), False, (False, "none", "no-motion", [])),
        ({"score_threshold": 0.0}, dets(NAN_SCORE), True, NONE),
        ({"score_threshold": 0.0}, dets(INF_SCORE), True, NONE),
        ({}, dets(NAN_BOX, CAR), True, (True, "crops", "sent", ["car"])),
    ],
)  # fmt: skip
def test_decision_table(
    settings: dict[str, object],
    detections: Detections | None,
    motion: bool,
    expected: tuple[bool, str, str, list[str]],
) -> None:
    decision = _filter(**settings).decide(0, 0, detections, motion)
    assert _summary(decision) == expected
    assert decision.send == (len(decision.detections) > 0)


def test_nan_scores_never_pass_whatever_the_threshold() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(200)
    scores[::3] = np.nan
    rows = [(i, i, i + 10, i + 10, s, i % 3) for i, s in enumerate(scores)]
    kept = _filter(score_threshold=0.0).decide(0, 0, dets(*rows), True).detections
    assert len(kept) == 200 - len(scores[::3])
    assert np.isfinite(kept.scores).all()


def test_an_allow_list_naming_an_unknown_class_fails_at_construction() -> None:
    with pytest.raises(
        ConfigError, match=r"classes: 'cat', 'bus' not among .*\(person, car, dog\)"
    ):
        ResultFilter(FilterConfig(classes=("cat", "car", "bus")), NAMES)


# -- cooldown -------------------------------------------------------------------------------


def test_the_same_object_is_not_resent_within_the_cooldown_then_is() -> None:
    f = _filter(cooldown_s=2.0)
    assert f.decide(0, 0, dets(PERSON), True).reason == "sent"
    for t in (33, 1000, 1999):
        assert f.decide(0, t * MS, dets(PERSON), True).reason == "cooldown"
    assert f.decide(0, 2000 * MS, dets(PERSON), True).reason == "sent"  # a heartbeat
    assert f.decide(0, 2033 * MS, dets(PERSON), True).reason == "cooldown"


def test_only_the_new_objects_of_a_frame_are_sent() -> None:
    f = _filter(cooldown_s=2.0)
    f.decide(0, 0, dets(PERSON), True)
    decision = f.decide(0, 40 * MS, dets(PERSON, CAR), True)
    assert _summary(decision) == (True, "crops", "sent", ["car"])


@pytest.mark.parametrize(
    ("second", "same"),
    [
        ((12, 12, 52, 92, 0.9, 0), True),  # moved a little: IoU 0.9
        ((10, 10, 50, 90, 0.9, 1), False),  # same place, another class
        ((40, 10, 80, 90, 0.9, 0), False),  # IoU 0.14 < cooldown_iou 0.3
        ((30, 10, 70, 90, 0.9, 0), True),  # IoU 0.33 >= 0.3
    ],
)
def test_same_object_means_same_class_and_enough_overlap(
    second: tuple[float, float, float, float, float, int], same: bool
) -> None:
    f = _filter(cooldown_s=2.0, cooldown_iou=0.3)
    f.decide(0, 0, dets(PERSON), True)
    assert f.decide(0, 33 * MS, dets(second), True).reason == ("cooldown" if same else "sent")


def test_the_cooldown_follows_a_moving_object() -> None:
    f = _filter(cooldown_s=10.0, cooldown_iou=0.5)
    reasons = []
    for step in range(30):  # 4 px a frame: 120 px in all, far from where it was sent
        x = 10 + 4 * step
        reasons.append(f.decide(0, step * 33 * MS, dets((x, 10, x + 40, 90, 0.9, 0)), True).reason)
    assert reasons == ["sent"] + ["cooldown"] * 29


def test_two_alike_objects_each_match_their_own() -> None:
    f = _filter(cooldown_s=2.0)
    left, right = (0, 0, 40, 40, 0.9, 1), (42, 0, 82, 40, 0.8, 1)
    f.decide(0, 0, dets(left), True)
    decision = f.decide(0, 33 * MS, dets(left, right), True)
    assert decision.reason == "sent" and decision.detections.boxes.tolist() == [[42, 0, 82, 40]]


def test_streams_have_their_own_cooldown_and_reset_forgets() -> None:
    f = _filter(cooldown_s=2.0)
    f.decide(0, 0, dets(PERSON), True)
    assert f.decide(1, 10 * MS, dets(PERSON), True).reason == "sent"
    assert f.decide(0, 20 * MS, dets(PERSON), True).reason == "cooldown"
    f.reset(0)
    assert f.decide(0, 30 * MS, dets(PERSON), True).reason == "sent"


def test_cooldown_zero_sends_every_frame() -> None:
    f = _filter(cooldown_s=0.0)
    assert [f.decide(0, t, dets(PERSON), True).reason for t in range(3)] == ["sent"] * 3


def test_the_cooldown_memory_is_bounded() -> None:
    f = _filter(cooldown_s=100.0)
    for i in range(MAX_TRACKED + 50):
        f.decide(0, i, dets((i * 50, 0, i * 50 + 40, 40, 0.9, 0)), True)
    assert len(f._sent[0].classes) == MAX_TRACKED


# -- motion gate ----------------------------------------------------------------------------


def test_motion_gate_first_frame_passes_still_frames_do_not_moving_ones_do() -> None:
    gate = MotionGate(MotionGateConfig(min_fraction=0.01))
    still = scene_image(96, 128, seed=1)
    moved = still.copy()
    moved[16:48, 32:64] = 255
    assert gate.passes(gate.check(0, still))  # nothing to compare with: passes
    assert not gate.passes(gate.check(0, still))
    assert gate.passes(gate.check(0, moved))
    assert gate.passes(gate.check(1, moved))  # stream 1's first frame
    assert not gate.passes(gate.check(1, moved))
    gate.reset(1)
    assert gate.passes(gate.check(1, moved))


def test_a_disabled_gate_passes_everything_without_computing() -> None:
    gate = MotionGate(MotionGateConfig(enabled=False))
    frame = scene_image(64, 64)
    assert all(gate.passes(gate.check(0, frame)) for _ in range(3))
    assert gate._detectors == {}


# -- what each level sends ------------------------------------------------------------------


def test_levels_send_nothing_crops_with_margin_or_the_frame() -> None:
    frame = scene_image(240, 320, seed=2)
    detections = dets((100, 50, 200, 150, 0.9, 0), (300, 200, 330, 250, 0.8, 1))
    for level, expected in (("metadata", []), ("crops", ["crop", "crop"]), ("frame", ["frame"])):
        f = _filter(transmission=level, crop_margin=0.1, jpeg_quality=90)
        decision = f.decide(0, 0, detections, True)
        images = f.encode(frame, decision)
        assert [image.kind for image in images] == expected
    crops = _filter(crop_margin=0.1).encode(frame, _filter().decide(0, 0, detections, True))
    assert [c.box for c in crops] == [(90.0, 40.0, 210.0, 160.0), (297.0, 195.0, 320.0, 240.0)]
    header = jpeg.read_header(crops[0].jpeg)
    assert (header.width, header.height) == (120, 120)
    whole = _filter(transmission="frame")
    full = whole.encode(frame, whole.decide(0, 0, detections, True))
    assert full[0].box is None and jpeg.decode(full[0].jpeg).shape == frame.shape


def test_nothing_is_encoded_for_a_frame_not_sent() -> None:
    f = _filter(transmission="frame")
    assert f.encode(scene_image(64, 64), f.decide(0, 0, dets(PERSON), False)) == ()


def test_crop_box_clips_and_drops_boxes_outside_the_frame() -> None:
    assert crop_box((10.4, 10.6, 20.2, 30.0), 0.0, 100, 100) == (10.0, 10.0, 21.0, 30.0)
    assert crop_box((-50, -50, -10, -10), 0.1, 100, 100) is None
    assert crop_box((0, 0, 100, 100), 0.5, 100, 100) == (0.0, 0.0, 100.0, 100.0)


# -- config ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pipeline:
    filter: FilterConfig = field(default_factory=FilterConfig)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"filter": {"motion": {"min_fraction": 2}}}, r"^filter\.motion\.min_fraction: must be"),
        ({"filter": {"score_threshold": -0.1}}, r"^filter\.score_threshold: must be between"),
        ({"filter": {"transmission": "video"}}, r"^filter\.transmission: must be one of"),
        ({"filter": {"classes": "car"}}, r"^filter\.classes: must be a list"),
        ({"filter": {"cooldown_s": -1}}, r"^filter\.cooldown_s: must be >= 0"),
    ],
)
def test_config_errors_point_at_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(_Pipeline, data)


def test_config_from_yaml_like_data() -> None:
    config = from_mapping(FilterConfig, {"classes": ["car"], "motion": {"enabled": False}})
    assert config.classes == ("car",) and config.motion == MotionGateConfig(enabled=False)
    with pytest.raises(ConfigError, match="jpeg_quality: must be between 1 and 100"):
        FilterConfig(jpeg_quality=0)
