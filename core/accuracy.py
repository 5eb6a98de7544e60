"""Detection accuracy: average precision at IoU 0.5 (PASCAL VOC's all-point AP, COCO's AP50).

Per class, every prediction of every frame is ranked by score; walking down the ranking, a
prediction is a true positive when its best-overlapping ground-truth box of the same class and
frame (IoU >= ``iou_threshold``) is not taken yet, else a false positive. AP is the area under
the precision/recall curve after making precision monotonic (the "all-point interpolation" of
VOC2010+, not the 11-point one of VOC2007). The mean is over classes that have ground truth.

Mostly hidden objects are *ignored*, as VOC's "difficult" ones are: a ground-truth box whose
``occluded`` fraction exceeds ``max_occluded`` counts neither as a miss when nobody finds it
nor as a false positive when somebody does (a detector cannot be blamed for a sliver).

>>> import numpy as np
>>> from core.detections import Detections, GroundTruth
>>> box = np.array([[0, 0, 10, 10]], np.float32)
>>> truth = GroundTruth(box, np.array([0]), np.zeros(1, np.float32))
>>> hit = Detections(np.array([[1, 1, 10, 10]]), np.array([0.9]), np.array([0]))
>>> miss = Detections(np.array([[50, 50, 60, 60]]), np.array([0.8]), np.array([0]))
>>> map50([hit, miss], [truth, truth], num_classes=1)  # one of two found, ranked first
0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from core.detections import Detections, GroundTruth
from core.errors import ConfigError, FrameError

DEFAULT_MAX_OCCLUDED = 0.7
"""Ground truth hidden by more than this fraction is ignored (neither missed nor matched)."""


@dataclass(frozen=True)
class AccuracyReport:
    """AP per class and their mean, with the counts behind them.

    ``per_class_ap[c]`` is NaN for a class with no (non-ignored) ground truth: it takes no part
    in ``map``. ``recall[c]`` is the share of class ``c``'s objects found at all (by any
    prediction given, whatever its score): what the detector could reach at its threshold.
    """

    map: float
    """Mean AP over classes with ground truth (NaN when no class has any)."""
    per_class_ap: tuple[float, ...]
    recall: tuple[float, ...]
    num_ground_truth: tuple[int, ...]
    num_predictions: tuple[int, ...]
    iou_threshold: float

    def to_dict(self) -> dict[str, object]:
        """Plain Python for reports (NaN as None: JSON has no NaN)."""

        def clean(values: Sequence[float]) -> list[float | None]:
            return [None if math.isnan(v) else round(v, 6) for v in values]

        return {
            "map": None if math.isnan(self.map) else round(self.map, 6),
            "per_class_ap": clean(self.per_class_ap),
            "recall": clean(self.recall),
            "num_ground_truth": list(self.num_ground_truth),
            "num_predictions": list(self.num_predictions),
            "iou_threshold": self.iou_threshold,
        }


def average_precision(recall: npt.ArrayLike, precision: npt.ArrayLike) -> float:
    """Area under a precision/recall curve, all-point interpolated (VOC2010+).

    ``recall`` (non-decreasing) and ``precision`` are the values after each ranked prediction.

    >>> average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3])
    0.8333333333333333
    """
    r = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    p = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # precision envelope: best precision at >= recall
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """IoU of every box in ``a`` (``(N, 4)`` xyxy) with every box in ``b`` (``(M, 4)``): ``(N, M)``.

    >>> box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2], [5, 5, 6, 6]])
    array([[0.33333333, 0.        ]])
    """
    x = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    y = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    # np.maximum(..., 0), not np.clip: the same values (NaN stays NaN), without np.clip's
    # Python-level wrapper -- the filter's cooldown calls this for every frame it decides.
    w = np.maximum(np.minimum(x[..., 2], y[..., 2]) - np.maximum(x[..., 0], y[..., 0]), 0.0)
    h = np.maximum(np.minimum(x[..., 3], y[..., 3]) - np.maximum(x[..., 1], y[..., 1]), 0.0)
    inter = w * h
    area_x = np.maximum(x[..., 2] - x[..., 0], 0.0) * np.maximum(x[..., 3] - x[..., 1], 0.0)
    area_y = np.maximum(y[..., 2] - y[..., 0], 0.0) * np.maximum(y[..., 3] - y[..., 1], 0.0)
    union = area_x + area_y - inter
    out: npt.NDArray[np.float64] = np.divide(
        inter, union, out=np.zeros_like(inter), where=union > 0
    )
    return out


class FrameMatch(NamedTuple):
    """One frame's predictions, best score first (ties in their given order), each judged
    against the frame's ground truth; predictions that matched an ignored object are left out."""

    classes: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    hits: npt.NDArray[np.int8]
    """1: a true positive, 0: a false positive."""


def match_frame(
    prediction: Detections,
    truth: GroundTruth,
    iou_threshold: float = 0.5,
    max_occluded: float = DEFAULT_MAX_OCCLUDED,
) -> FrameMatch:
    """Judge one frame's predictions, every class at once: walking down the frame's ranking, a
    prediction hits when its best-overlapping ground-truth object of its class (IoU >=
    ``iou_threshold``) is not taken yet (see the module docstring).

    A frame's matches depend only on the order of its own predictions, and a prediction only
    ever meets objects of its class, so judging frame by frame and ranking every frame's
    outcomes together afterwards is the same as ranking all predictions first: what lets a
    running count (the bench's) score frames as they come.

    >>> box = np.array([[0, 0, 10, 10]], np.float32)
    >>> truth = GroundTruth(box, np.array([0]), np.zeros(1, np.float32))
    >>> twice = Detections(np.array([[0, 0, 10, 10], [1, 1, 10, 10]]), np.array([0.6, 0.9]),
    ...                    np.array([0, 0]))
    >>> found = match_frame(twice, truth)
    >>> [round(float(v), 2) for v in found.scores], found.hits.tolist()  # the best takes it
    ([0.9, 0.6], [1, 0])
    """
    scores = np.asarray(prediction.scores, np.float32)
    order = np.argsort(-scores, kind="stable")
    classes = np.asarray(prediction.classes, np.int64)[order]
    scores = scores[order]
    hits = np.zeros(len(order), np.int8)
    truth_classes = np.asarray(truth.classes, np.int64)
    if not len(order) or not len(truth_classes):
        return FrameMatch(classes, scores, hits)
    boxes = np.asarray(prediction.boxes, np.float64).reshape(-1, 4)[order]
    overlaps = box_iou(boxes, truth.boxes)
    overlaps[classes[:, None] != truth_classes[None, :]] = -1.0  # only objects of its class
    best = overlaps.argmax(axis=1)
    best_iou = overlaps[np.arange(len(order)), best]
    ignored = np.asarray(truth.occluded) > max_occluded
    taken = np.zeros(len(truth_classes), bool)
    kept = np.ones(len(order), bool)
    for rank, (obj, iou) in enumerate(zip(best.tolist(), best_iou.tolist(), strict=True)):
        if iou < iou_threshold:
            continue
        if ignored[obj]:
            kept[rank] = False
        elif not taken[obj]:
            taken[obj] = True
            hits[rank] = 1
    return FrameMatch(classes[kept], scores[kept], hits[kept])


def truth_counts(
    truth: GroundTruth, num_classes: int, max_occluded: float
) -> npt.NDArray[np.int64]:
    """Objects per class in a frame's ground truth, ignored ones left out."""
    classes = np.asarray(truth.classes, np.int64)[np.asarray(truth.occluded) <= max_occluded]
    return np.bincount(classes[classes < num_classes], minlength=num_classes)


def _ranked_ap(outcomes: npt.ArrayLike, num_truth: int) -> tuple[float, float]:
    """(AP, recall) of outcomes already ranked by descending score (1 hit, 0 miss) against
    ``num_truth`` objects; NaN for both when there are none."""
    ranked = np.asarray(outcomes, np.float64)
    if num_truth == 0:
        return math.nan, math.nan
    if ranked.size == 0:
        return 0.0, 0.0
    found = np.cumsum(ranked)
    recall = found / num_truth
    precision = found / np.arange(1, ranked.size + 1, dtype=np.float64)
    return average_precision(recall, precision), float(recall[-1])


def evaluate(
    predictions: Sequence[Detections],
    ground_truths: Sequence[GroundTruth],
    num_classes: int,
    *,
    iou_threshold: float = 0.5,
    max_occluded: float = DEFAULT_MAX_OCCLUDED,
) -> AccuracyReport:
    """Score ``predictions`` (one :class:`Detections` per frame, boxes in frame pixels) against
    ``ground_truths`` (one :class:`GroundTruth` per frame, same order).

    Predictions should be everything the detector reports for the frame (after NMS); a low
    score threshold gives a fuller curve and a higher, truer AP, as with COCO's 0.001.
    """
    if len(predictions) != len(ground_truths):
        raise FrameError(
            f"need one prediction per ground truth, got {len(predictions)} and {len(ground_truths)}"
        )
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ConfigError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    matches = [
        match_frame(pred, truth, iou_threshold, max_occluded)
        for pred, truth in zip(predictions, ground_truths, strict=True)
    ]
    num_truth = sum(
        (truth_counts(truth, num_classes, max_occluded) for truth in ground_truths),
        np.zeros(num_classes, np.int64),
    )
    classes = np.concatenate([np.zeros(0, np.int64), *(m.classes for m in matches)])
    scores = np.concatenate([np.zeros(0, np.float32), *(m.scores for m in matches)])
    hits = np.concatenate([np.zeros(0, np.int8), *(m.hits for m in matches)])
    ranked = np.argsort(-scores, kind="stable")
    rows = [
        _ranked_ap(hits[ranked][classes[ranked] == c], int(num_truth[c]))
        for c in range(num_classes)
    ]
    predicted = [
        sum(int((np.asarray(p.classes) == c).sum()) for p in predictions)
        for c in range(num_classes)
    ]
    aps = tuple(ap for ap, _ in rows)
    scored = [ap for ap in aps if not math.isnan(ap)]
    return AccuracyReport(
        map=float(np.mean(scored)) if scored else math.nan,
        per_class_ap=aps,
        recall=tuple(recall for _, recall in rows),
        num_ground_truth=tuple(int(n) for n in num_truth),
        num_predictions=tuple(predicted),
        iou_threshold=iou_threshold,
    )


def map50(
    predictions: Sequence[Detections],
    ground_truths: Sequence[GroundTruth],
    num_classes: int,
    *,
    max_occluded: float = DEFAULT_MAX_OCCLUDED,
) -> float:
    """Mean AP at IoU 0.5 over classes with ground truth (NaN when none has any)."""
    report = evaluate(
        predictions, ground_truths, num_classes, iou_threshold=0.5, max_occluded=max_occluded
    )
    return report.map
