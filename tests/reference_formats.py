"""Plain NumPy references for the model output formats, written from the layout definitions in
:mod:`core.formats`' docstrings and nothing else (no ``core`` import): slow, float64, a loop
where a loop reads plainer.

Every decoder takes one image's outputs (no batch axis), the :class:`Placement` of the frame in
the network input (letterbox or plain resize, by the YOLO definition), the score floor, and for
the dense formats the IoU threshold of the greedy class-aware NMS (:func:`tests.reference.nms`)
that runs on the boxes in frame pixels; it returns :class:`Expected` boxes (x1, y1, x2, y2 in
frame pixels), scores and classes, best first, and how many candidates held NaN or infinity.

Definitions used:

* a candidate of a dense output keeps its best class; its score is that class's score
  (``edgeloop``, ``yolov8``) or the objectness times it (``yolov5``, ``yolox``); a candidate
  with any non-finite value is dropped and counted; one scoring under the floor is dropped;
* ``yolox`` rows are, per cell of the stride-8, 16, 32 (and 64, when the count says so) feature
  maps in order, row by row: ``cx = (x + col) * s``, ``cy = (y + row) * s``,
  ``w = exp(log_w) * s``, ``h = exp(log_h) * s``; a box infinite in float32 is dropped;
* end-to-end layouts did their own NMS: rows at or over the floor, best first (equal scores
  in row order), at most ``top_k``; a row with a non-finite value is dropped and counted;
  ``four`` and ``ssd`` read the first ``count`` rows only; ``queries`` are normalized
  cx, cy, w, h (times the input width and height) with a best class, Ultralytics RT-DETR's
  rows of 6 (``rtdetr6``) normalized cx, cy, w, h, score, class; ``ssd`` boxes are
  normalized y1, x1, y2, x2, its classes 1-based;
* network pixels map back to frame pixels as ``(x - pad) / scale``, clipped to the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tests.reference import nms

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Placement:
    """Where a ``frame`` (height, width) sits in the network input: network pixel ``x`` is
    frame pixel ``(x - pad_x) / scale_x``."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    frame: tuple[int, int]


def letterbox(frame: tuple[int, int], size: tuple[int, int]) -> Placement:
    """YOLO's letterbox: ``r = min(H_in / H, W_in / W)``, the image ``round(W r) x round(H r)``
    centred at ``((W_in - w) // 2, (H_in - h) // 2)``."""
    (height, width), (in_h, in_w) = frame, size
    r = min(in_h / height, in_w / width)
    w, h = round(width * r), round(height * r)
    return Placement(w / width, h / height, (in_w - w) // 2, (in_h - h) // 2, frame)


def stretched(frame: tuple[int, int], size: tuple[int, int]) -> Placement:
    """A plain resize to the input size (no padding)."""
    return Placement(size[1] / frame[1], size[0] / frame[0], 0, 0, frame)


@dataclass
class Expected:
    boxes: np.ndarray  # (N, 4) float64, frame pixels
    scores: np.ndarray  # (N,) float64
    classes: np.ndarray  # (N,) int64
    nonfinite: int


def to_frame(boxes: np.ndarray, at: Placement) -> np.ndarray:
    """x1, y1, x2, y2 network pixels to frame pixels, clipped to the frame."""
    out = np.array(boxes, np.float64).reshape(-1, 4)
    height, width = at.frame
    for row in out:
        for k in range(4):
            if k % 2 == 0:
                row[k] = min(max((row[k] - at.pad_x) / at.scale_x, 0.0), width)
            else:
                row[k] = min(max((row[k] - at.pad_y) / at.scale_y, 0.0), height)
    return out


def center_to_corners(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _finite(values: np.ndarray) -> bool:
    return all(math.isfinite(float(v)) for v in np.ravel(values))


def _dense(
    candidates: list[tuple[list[float], float, int]],
    nonfinite: int,
    at: Placement,
    *,
    score_floor: float,
    iou_threshold: float,
    top_k: int,
) -> Expected:
    """Candidates (box xyxy in network pixels, score, class) to NMS-kept detections."""
    kept = [c for c in candidates if c[1] >= score_floor and _finite(c[0])]
    boxes = to_frame(np.array([c[0] for c in kept], np.float64), at)
    scores = np.array([c[1] for c in kept], np.float64)
    classes = np.array([c[2] for c in kept], np.int64)
    order = nms(boxes, scores, classes, iou_threshold, score_floor, top_k)
    return Expected(boxes[order], scores[order], classes[order], nonfinite)


def _best(scores: np.ndarray) -> tuple[int, float]:
    best = max(range(len(scores)), key=lambda k: (float(scores[k]), -k))
    return best, float(scores[best])


def edgeloop(
    output: np.ndarray, at: Placement, *, score_floor: float, iou: float, top_k: int = 100
) -> Expected:
    """``(A, 4 + C)``: x1, y1, x2, y2 in input pixels, then class scores."""
    candidates, bad = [], 0
    for row in output:
        if not _finite(row):
            bad += 1
            continue
        cls, score = _best(row[4:])
        candidates.append(([float(v) for v in row[:4]], score, cls))
    return _dense(candidates, bad, at, score_floor=score_floor, iou_threshold=iou, top_k=top_k)


def yolov8(
    output: np.ndarray, at: Placement, *, score_floor: float, iou: float, top_k: int = 100
) -> Expected:
    """``(4 + C, A)``, channels first: cx, cy, w, h in input pixels, then class scores."""
    candidates, bad = [], 0
    for a in range(output.shape[1]):
        column = output[:, a]
        if not _finite(column):
            bad += 1
            continue
        cls, score = _best(column[4:])
        candidates.append((center_to_corners(*(float(v) for v in column[:4])), score, cls))
    return _dense(candidates, bad, at, score_floor=score_floor, iou_threshold=iou, top_k=top_k)


def yolov5(
    output: np.ndarray, at: Placement, *, score_floor: float, iou: float, top_k: int = 100
) -> Expected:
    """``(A, 5 + C)``: cx, cy, w, h in input pixels, objectness, class scores."""
    candidates, bad = [], 0
    for row in output:
        if not _finite(row):
            bad += 1
            continue
        cls, score = _best(row[5:])
        box = center_to_corners(*(float(v) for v in row[:4]))
        candidates.append((box, float(row[4]) * score, cls))
    return _dense(candidates, bad, at, score_floor=score_floor, iou_threshold=iou, top_k=top_k)


def yolox_cells(size: tuple[int, int], count: int) -> list[tuple[int, int, int]]:
    """(col, row, stride) of every candidate, stride by stride, row by row."""
    height, width = size
    for strides in ((8, 16, 32), (8, 16, 32, 64)):
        cells = [
            (col, row, s)
            for s in strides
            for row in range(math.ceil(height / s))
            for col in range(math.ceil(width / s))
        ]
        if len(cells) == count:
            return cells
    raise ValueError(f"{count} candidates are no YOLOX grid at {size}")


def yolox(
    output: np.ndarray,
    at: Placement,
    *,
    size: tuple[int, int],
    score_floor: float,
    iou: float,
    top_k: int = 100,
) -> Expected:
    """Raw grid ``(A, 5 + C)``: offsets and log sizes per cell, objectness, class scores."""
    candidates, bad = [], 0
    for row, (col, line, stride) in zip(output, yolox_cells(size, len(output)), strict=True):
        if not _finite(row):
            bad += 1
            continue
        cx = (float(row[0]) + col) * stride
        cy = (float(row[1]) + line) * stride
        try:
            w = math.exp(float(row[2])) * stride
            h = math.exp(float(row[3])) * stride
        except OverflowError:
            continue  # an infinite box
        if max(w, h) > FLOAT32_MAX:
            continue  # infinite in the model's float32
        cls, score = _best(row[5:])
        candidates.append((center_to_corners(cx, cy, w, h), float(row[4]) * score, cls))
    return _dense(candidates, bad, at, score_floor=score_floor, iou_threshold=iou, top_k=top_k)


def _end2end(
    rows: list[tuple[list[float], float, float]], at: Placement, *, score_floor: float, top_k: int
) -> Expected:
    """Rows (box xyxy in network pixels, score, class) the model already suppressed."""
    good = [r for r in rows if _finite(r[0]) and math.isfinite(r[1]) and math.isfinite(r[2])]
    bad = len(rows) - len(good)
    order = sorted(
        (i for i, r in enumerate(good) if r[1] >= score_floor), key=lambda i: (-good[i][1], i)
    )[:top_k]
    boxes = to_frame(np.array([good[i][0] for i in order], np.float64), at)
    scores = np.array([good[i][1] for i in order], np.float64)
    classes = np.array([round(good[i][2]) for i in order], np.int64)
    return Expected(boxes, scores, classes, bad)


def rows6(output: np.ndarray, at: Placement, *, score_floor: float, top_k: int = 100) -> Expected:
    """``(K, 6)``: x1, y1, x2, y2 in input pixels, score, class."""
    rows = [([float(v) for v in r[:4]], float(r[4]), float(r[5])) for r in output]
    return _end2end(rows, at, score_floor=score_floor, top_k=top_k)


def queries(
    output: np.ndarray,
    at: Placement,
    *,
    size: tuple[int, int],
    score_floor: float,
    top_k: int = 100,
) -> Expected:
    """``(K, 4 + C)``: normalized cx, cy, w, h, then a score per class; best class kept."""
    height, width = size
    rows = []
    for r in output:
        cx, cy, w, h = (float(v) for v in r[:4])
        box = center_to_corners(cx * width, cy * height, w * width, h * height)
        if not _finite(r[4:]):
            rows.append((box, math.nan, 0.0))
            continue
        cls, score = _best(r[4:])
        rows.append((box, score, float(cls)))
    return _end2end(rows, at, score_floor=score_floor, top_k=top_k)


def rtdetr6(
    output: np.ndarray,
    at: Placement,
    *,
    size: tuple[int, int],
    score_floor: float,
    top_k: int = 100,
) -> Expected:
    """``(K, 6)``: normalized cx, cy, w, h, score, class (Ultralytics RT-DETR)."""
    height, width = size
    rows = []
    for r in output:
        cx, cy, w, h = (float(v) for v in r[:4])
        box = center_to_corners(cx * width, cy * height, w * width, h * height)
        rows.append((box, float(r[4]), float(r[5])))
    return _end2end(rows, at, score_floor=score_floor, top_k=top_k)


def four(
    count: int,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    at: Placement,
    *,
    score_floor: float,
    top_k: int = 100,
) -> Expected:
    """A count, boxes ``(K, 4)`` x1, y1, x2, y2 in input pixels, scores, classes: the first
    ``count`` rows are detections."""
    rows = [
        ([float(v) for v in boxes[i]], float(scores[i]), float(classes[i])) for i in range(count)
    ]
    return _end2end(rows, at, score_floor=score_floor, top_k=top_k)


def ssd(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    count: float,
    at: Placement,
    *,
    size: tuple[int, int],
    score_floor: float,
    top_k: int = 100,
) -> Expected:
    """Boxes ``(K, 4)`` normalized y1, x1, y2, x2, scores, 1-based classes, a count."""
    height, width = size
    rows = []
    for i in range(int(count)):
        y1, x1, y2, x2 = (float(v) for v in boxes[i])
        box = [x1 * width, y1 * height, x2 * width, y2 * height]
        rows.append((box, float(scores[i]), float(classes[i]) - 1.0))
    return _end2end(rows, at, score_floor=score_floor, top_k=top_k)
