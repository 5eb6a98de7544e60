"""Every NMS implementation against the greedy reference in ``tests/reference.py``: the kept
indices must be *identical* (same boxes, same order), ties and thresholds included."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from core.detections import Detections, nms
from core.errors import ConfigError, FrameError
from core.preprocess import PreprocessSpec
from tests import reference
from tests.kernel_params import each_impl


def random_detections(
    seed: int, n: int, classes: int, tied: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered boxes (so that NMS has work), some degenerate, scores optionally tied."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 100, (max(1, n // 6), 2))
    xy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 4, (n, 2))
    wh = rng.uniform(-2, 30, (n, 2))  # a few negative: degenerate boxes
    boxes = np.round(np.concatenate([xy, xy + wh], axis=1), 1).astype(np.float32)
    if tied:
        scores = rng.choice(np.float32([0.2, 0.3, 0.5, 0.7, 0.9]), n)
    else:
        scores = rng.random(n).astype(np.float32)
    return boxes, scores, rng.integers(0, classes, n)


SETTINGS = [(0.45, 0.25, 300), (0.7, 0.0, 300), (0.3, 0.5, 7), (0.0, 0.1, 50)]


@functools.cache
def reference_keep(seed: int, class_aware: bool, tied: bool) -> list[list[int]]:
    """The reference's answers for one input under every setting (computed once, not per impl)."""
    boxes, scores, classes = random_detections(seed, 150, 3, tied)
    labels = classes if class_aware else None
    return [reference.nms(boxes, scores, labels, *setting) for setting in SETTINGS]


@each_impl
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("class_aware", [True, False], ids=["classes", "agnostic"])
@pytest.mark.parametrize("tied", [False, True], ids=["distinct", "tied"])
def test_matches_reference(impl: str, seed: int, class_aware: bool, tied: bool) -> None:
    boxes, scores, classes = random_detections(seed, 150, 3, tied)
    labels = classes if class_aware else None
    for (iou, score, top_k), want in zip(
        SETTINGS, reference_keep(seed, class_aware, tied), strict=True
    ):
        got = nms(
            boxes, scores, labels, iou_threshold=iou, score_threshold=score, top_k=top_k, impl=impl
        )
        assert got.dtype == np.int64
        assert got.tolist() == want, (iou, score, top_k)


@each_impl
def test_iou_equal_to_threshold_is_not_suppressed(impl: str) -> None:
    boxes = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], np.float32)  # IoU exactly 0.5
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, iou_threshold=0.5, impl=impl).tolist() == [0, 1]
    assert nms(boxes, scores, iou_threshold=0.4999, impl=impl).tolist() == [0]


@each_impl
def test_ties_keep_lower_index_first_and_signed_zero_ties(impl: str) -> None:
    boxes = np.array([[i * 10, 0, i * 10 + 5, 5] for i in range(5)], np.float32)
    scores = np.array([0.5, 0.0, 0.5, -0.0, 0.5], np.float32)
    kept = nms(boxes, scores, score_threshold=0.0, impl=impl)
    assert kept.tolist() == [0, 2, 4, 1, 3]


@each_impl
def test_non_finite_are_never_kept(impl: str) -> None:
    boxes = np.array([[0, 0, 5, 5], [0, 0, np.inf, 5], [10, 10, 15, 15], [20, 20, 25, np.nan]])
    scores = np.array([np.nan, 0.9, np.inf, 0.8])
    assert nms(boxes, scores, score_threshold=-1.0, impl=impl).tolist() == []
    scores[2] = 0.7
    assert nms(boxes, scores, impl=impl).tolist() == [2]


@each_impl
def test_degenerate_boxes_overlap_nothing(impl: str) -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 5, 20], [0, 0, 10, 10], [8, 8, 2, 2]], np.float32)
    scores = np.array([0.9, 0.95, 0.8, 0.85], np.float32)
    assert nms(boxes, scores, impl=impl).tolist() == [1, 0, 3]


@each_impl
def test_empty_and_top_k_zero(impl: str) -> None:
    empty = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), impl=impl)
    assert empty.dtype == np.int64
    assert empty.shape == (0,)
    assert nms([], [], impl=impl).tolist() == []
    boxes, scores, _ = random_detections(0, 20, 1, False)
    assert nms(boxes, scores, top_k=0, impl=impl).tolist() == []


@each_impl
def test_any_numeric_input_is_converted(impl: str) -> None:
    boxes, scores, classes = random_detections(1, 60, 4, True)
    want = nms(boxes, scores, classes, impl=impl).tolist()
    as_lists = nms(boxes.tolist(), scores.tolist(), classes.tolist(), impl=impl)
    strided = np.asfortranarray(boxes.astype(np.float64))
    assert as_lists.tolist() == want
    assert nms(strided, scores[::1], classes.astype(np.uint8), impl=impl).tolist() == want


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((np.zeros((3, 5)), np.zeros(3)), FrameError, r"shape \(3, 4\)"),
        ((np.zeros((3, 4)), np.zeros((3, 1))), FrameError, r"\(N,\)"),
        ((np.zeros((3, 4)), np.zeros(3), np.zeros(3)), FrameError, "integers"),
        ((np.zeros((3, 4)), np.zeros(3), np.zeros(2, int)), FrameError, "integers"),
        ((np.zeros((3, 4), "U1"), np.zeros(3)), FrameError, "real numbers"),
    ],
)
def test_bad_arrays(args: tuple[np.ndarray, ...], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        nms(*args)


@pytest.mark.parametrize(
    "options", [dict(iou_threshold=1.5), dict(iou_threshold=-0.1), dict(top_k=-1)]
)
def test_bad_settings(options: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        nms(np.zeros((1, 4)), np.ones(1), **options)  # type: ignore[arg-type]


def test_detections_nms_and_mapping_back() -> None:
    boxes = np.array([[0, 13, 32, 32], [1, 14, 32, 32], [40, 20, 60, 40]], np.float32)
    detections = Detections(boxes, np.array([0.9, 0.8, 0.6]), np.array([1, 1, 2]))
    kept = detections.nms()
    assert len(kept) == 2
    assert kept.classes.tolist() == [1, 2]
    assert len(detections.nms(class_aware=False, iou_threshold=0.0)) == 2
    _, transform = PreprocessSpec.yolo((64, 64)).layout(48, 80)
    mapped = kept.to_source(transform)
    assert mapped.boxes.dtype == np.float32
    assert np.allclose(mapped.boxes[0], [0, 0, 40, 24])  # 38 rows hold 48: scale 38/48
    with pytest.raises(FrameError):
        Detections(boxes, np.ones(2), np.zeros(3))
