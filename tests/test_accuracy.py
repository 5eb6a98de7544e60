"""AP at IoU 0.5 on cases small enough to check by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.accuracy import average_precision, box_iou, evaluate, map50
from core.detections import Detections, GroundTruth
from core.errors import ConfigError, FrameError


def truth(
    boxes: list[list[float]], classes: list[int], occluded: list[float] | None = None
) -> GroundTruth:
    return GroundTruth(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(classes, np.int64),
        np.array(occluded if occluded is not None else [0.0] * len(classes), np.float32),
    )


def dets(boxes: list[list[float]], scores: list[float], classes: list[int]) -> Detections:
    return Detections(np.array(boxes).reshape(-1, 4), np.array(scores), np.array(classes, int))


A, B, C = [0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]


def test_perfect_detections_score_one() -> None:
    gt = [truth([A, B], [0, 1]), truth([C], [0])]
    pred = [dets([A, B], [0.9, 0.8], [0, 1]), dets([C], [0.7], [0])]
    report = evaluate(pred, gt, num_classes=2)
    assert report.map == 1.0 and report.per_class_ap == (1.0, 1.0)
    assert report.recall == (1.0, 1.0) and report.num_ground_truth == (2, 1)


def test_ranked_hits_and_misses_by_hand() -> None:
    """Two objects; ranked TP (0.9), FP (0.8), TP (0.7): precision 1, 1/2, 2/3 at recall 1/2,
    1/2, 1. All-point AP = 1/2 * 1 + 1/2 * 2/3 = 5/6."""
    gt = [truth([A], [0]), truth([B], [0])]
    pred = [dets([A, C], [0.9, 0.8], [0, 0]), dets([B], [0.7], [0])]
    assert map50(pred, gt, 1) == pytest.approx(5 / 6)
    assert average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(5 / 6)


def test_envelope_takes_best_precision_to_the_right() -> None:
    # recall 1/3, 1/3, 2/3, 1 with precision 1, 1/2, 2/3, 3/4: the dip at 1/2 is lifted
    # to 3/4 (the best at higher recall) -> 1/3 * 1 + 1/3 * 3/4 + 1/3 * 3/4 = 5/6.
    ap = average_precision([1 / 3, 1 / 3, 2 / 3, 1.0], [1.0, 0.5, 2 / 3, 0.75])
    assert ap == pytest.approx(5 / 6)


def test_duplicate_is_a_false_positive_and_iou_half_counts() -> None:
    gt = [truth([A], [0])]
    # IoU([0,0,10,10], [0,0,10,5]) = 0.5 exactly: a hit (COCO's >=); the second is a duplicate.
    pred = [dets([[0, 0, 10, 5], A], [0.9, 0.8], [0, 0])]
    report = evaluate(pred, gt, 1)
    assert report.per_class_ap[0] == 1.0  # the hit came first; the duplicate adds only an FP
    pred = [dets([A, [0, 0, 10, 5]], [0.8, 0.9], [0, 0])]  # duplicate ranked first: still 1.0
    assert evaluate(pred, gt, 1).map == 1.0
    pred = [dets([[0, 0, 10, 4.9]], [0.9], [0])]  # IoU 0.49: a miss
    assert evaluate(pred, gt, 1).map == 0.0


def test_wrong_class_is_a_miss_and_a_false_positive() -> None:
    gt = [truth([A, B], [0, 1])]
    pred = [dets([A, B], [0.9, 0.8], [1, 1])]
    report = evaluate(pred, gt, 2)
    # Class 1 ranks the wrong box (FP) before its own (TP): precision 1/2 at recall 1.
    assert report.per_class_ap == (0.0, 0.5)
    assert report.map == 0.25


def test_mostly_hidden_objects_are_ignored() -> None:
    gt = [truth([A, B], [0, 0], occluded=[0.0, 0.9])]
    # Finding the hidden one is no false positive, missing it is no miss.
    assert map50([dets([B, A], [0.95, 0.9], [0, 0])], gt, 1) == 1.0
    assert map50([dets([A], [0.9], [0])], gt, 1) == 1.0
    assert evaluate([dets([A], [0.9], [0])], gt, 1).num_ground_truth == (1,)
    # ... unless the caller counts everything.
    assert map50([dets([A], [0.9], [0])], gt, 1, max_occluded=1.0) == 0.5


def test_classes_without_ground_truth_are_left_out() -> None:
    gt = [truth([A], [0])]
    pred = [dets([A, B], [0.9, 0.9], [0, 2])]  # a class-2 false positive: no class-2 truth
    report = evaluate(pred, gt, 3)
    assert report.map == 1.0
    assert report.per_class_ap[0] == 1.0 and math.isnan(report.per_class_ap[1])
    assert report.num_predictions == (1, 0, 1)
    assert json.loads(json.dumps(report.to_dict()))["per_class_ap"] == [1.0, None, None]


def test_no_ground_truth_at_all_is_nan_and_no_predictions_zero() -> None:
    assert math.isnan(map50([dets([A], [0.9], [0])], [truth([], [])], 2))
    assert map50([dets([], [], [])], [truth([A], [0])], 1) == 0.0
    assert math.isnan(map50([], [], 1))


def test_box_iou() -> None:
    np.testing.assert_allclose(box_iou([A], [A, B, [5, 0, 15, 10]]), [[1.0, 0.0, 1 / 3]])
    assert box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0.0  # degenerate: no division


def test_bad_arguments() -> None:
    with pytest.raises(FrameError, match="one prediction per ground truth"):
        map50([dets([], [], [])], [], 1)
    with pytest.raises(ConfigError):
        evaluate([], [], 0)
    with pytest.raises(ConfigError):
        evaluate([], [], 1, iou_threshold=0.0)
