"""Detector outputs with NMS (or a set prediction) inside the model: no NMS after decoding.

``end2end`` reads three layouts, told apart by the outputs:

* one output ``(N, K, 6)``: x1, y1, x2, y2 in input pixels, score, class (YOLOv10, YOLO26,
  Ultralytics ``nms=True`` exports, ONNX ``NonMaxSuppression`` graphs);
* one output ``(N, K, 4 + C)`` with ``K`` not a feature-map cell count: normalized cx, cy, w, h
  and a score per class (Ultralytics RT-DETR before 8.4.47): each query keeps its best class;
* Ultralytics RT-DETR from 8.4.47 (its metadata's ``head`` or ``description`` says so): rows of
  6, normalized cx, cy, w, h, score, class;
* four outputs, EfficientNMS's: a count ``(N, 1)``, boxes ``(N, K, 4)`` (x1, y1, x2, y2, input
  pixels), scores ``(N, K)`` and classes ``(N, K)``.

``ssd``: the TF Object Detection API's (SSD-MobileNet, exported with tf2onnx): boxes
``(N, K, 4)`` normalized y1, x1, y2, x2, scores ``(N, K)``, classes ``(N, K)`` (1-based label
map ids, as floats) and a count ``(N,)``.

>>> from core.preprocess import PreprocessSpec
>>> from core.formats.dense import _facts
>>> _, transform = PreprocessSpec.yolo((4, 8)).layout(10, 20)  # a 20x10 frame into 8x4
>>> rows = np.array([[0, 0, 4, 4, 0.9, 1], [4, 0, 8, 4, 0.1, 0]], np.float32)
>>> decode = END2END.decoder(_facts((4, 8), (1, 2, 6)), None, DecodeOptions())
>>> dets = decode([rows], transform)          # the second is under the score floor
>>> dets.boxes, dets.classes
(array([[ 0.,  0., 10., 10.]], dtype=float32), array([1]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.detections import Detections
from core.errors import ModelError
from core.formats.base import DecodeOptions, Decoder, ModelFacts, ModelFormat
from core.formats.dense import ULTRALYTICS_TASK, _to_xyxy
from core.formats.labels import names_from_metadata
from core.preprocess import LetterboxTransform, PreprocessSpec

MAX_QUERIES = 1000
"""More rows than this in a one-output end-to-end layout are candidates, not detections."""
Layout = Literal["rows6", "queries", "rtdetr6", "four"]
SSD_NAMES = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
SSD_EXTRA_NAMES = frozenset(
    {
        "detection_anchor_indices",
        "detection_multiclass_scores",
        "raw_detection_boxes",
        "raw_detection_scores",
    }
)
"""The other outputs of a TF2 Object Detection API export: not read, allowed beside the four."""
"""The TF Object Detection API's output names (tf2onnx keeps them, with a ``:0`` suffix)."""


def _layout(facts: ModelFacts) -> Layout | str:
    """Which of :mod:`end2end`'s layouts the outputs have, or why none."""
    shapes = facts.row_shapes()
    if len(shapes) == 4:
        roles = _four_roles(facts)
        return "four" if not isinstance(roles, str) else roles
    if len(shapes) != 1:
        return f"it has {len(shapes)} outputs, not 1 or 4"
    shape = shapes[0]
    if len(shape) != 2:
        return f"its output has rank {len(shape) + 1}, not 3"
    queries, width = shape
    if queries > MAX_QUERIES:
        return f"its {queries} rows are more than an end-to-end model's {MAX_QUERIES} detections"
    if queries in facts.grid_cells():
        return f"its {queries} rows are one per feature-map cell: candidates, not detections"
    if width in facts.grid_cells():
        return f"its {width} columns are one per feature-map cell: a channels-first dense output"
    names = names_from_metadata(facts.metadata)
    if is_rtdetr(facts):  # Ultralytics RT-DETR: rows of 6 are normalized cx, cy, w, h too
        if width == 6:
            return "rtdetr6"
        if names is None or width == 4 + len(names):
            return "queries"
        return f"its rows of {width} are not RT-DETR's 6 values or 4 + {len(names)} classes"
    if width == 6:
        return "rows6"  # a set predictor of 2 classes says RT-DETR in its metadata
    if names is None and width > queries:
        return (
            f"its {queries} rows of {width} are wider than they are many: a dense output seen "
            "channels first, not a set prediction's queries (name its format, or give the "
            "model its class names)"
        )
    if width >= 5 and (names is None or width == 4 + len(names)):
        return "queries"
    return f"its rows of {width} are neither 6 values nor 4 box values + {len(names or ())} classes"


def is_rtdetr(facts: ModelFacts) -> bool:
    """Whether Ultralytics' metadata says RT-DETR (its ``head``, or its ``description``)."""
    meta = facts.metadata
    return meta.get("head") == "RTDETRDecoder" or "rtdetr" in meta.get("description", "").lower()


def _four_roles(facts: ModelFacts) -> tuple[int, int, int, int] | str:
    """Indices of the count, boxes, scores and classes among four EfficientNMS-style
    outputs, or why they are not."""
    shapes = facts.row_shapes()
    count = [i for i, s in enumerate(shapes) if s in ((1,), ())]
    if len(count) > 1:  # K = 1: scores and classes are (1,) too; the count says so by name
        count = [i for i in count if "num" in facts.outputs[i].name.lower()]
    boxes = [i for i, s in enumerate(shapes) if len(s) == 2 and s[1] == 4]
    pairs = [i for i, s in enumerate(shapes) if len(s) == 1 and i not in count]
    if len(count) != 1 or len(boxes) != 1 or len(pairs) != 2:
        return "its four outputs are not a count, boxes (K, 4), scores (K) and classes (K)"
    names = [facts.outputs[i].name.lower() for i in pairs]
    first_classes = "class" in names[0] or "label" in names[0]
    scores, classes = (pairs[1], pairs[0]) if first_classes else (pairs[0], pairs[1])
    return count[0], boxes[0], scores, classes


class End2end(ModelFormat):
    name = "end2end"
    summary = (
        "NMS inside: (N, K, 6) x1, y1, x2, y2, score, class; or (N, K, 4 + C) normalized "
        "cx, cy, w, h and class scores (RT-DETR); or count, boxes, scores, classes"
    )

    def claims(self, facts: ModelFacts) -> bool:
        return facts.metadata.get(ULTRALYTICS_TASK) == "detect"

    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        layout = _layout(facts)
        if layout in ("rows6", "queries", "rtdetr6", "four"):
            if layout == "four" and _is_ssd(facts):
                return "its four outputs are the TF Object Detection API's (format ssd)"
            return None
        return layout

    def class_count(self, facts: ModelFacts) -> int | None:
        if _layout(facts) == "queries":
            return facts.outputs[0].shape[2] - 4
        return None

    def preprocess(self, facts: ModelFacts) -> PreprocessSpec:
        """RT-DETR's exports stretch the frame to the input (no letterbox); the YOLO family's
        letterbox it."""
        if is_rtdetr(facts):
            return PreprocessSpec(facts.input_size)
        return PreprocessSpec.yolo(facts.input_size)

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        layout = _layout(facts)
        names = tuple(class_names) if class_names is not None else None
        height, width = facts.input_size
        scale = np.array([width, height, width, height], np.float32)
        if layout == "rtdetr6":

            def rtdetr6(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
                rows = outputs[0]
                boxes = _to_xyxy(rows[:, :4].astype(np.float32)) * scale
                return _kept(boxes, rows[:, 4], rows[:, 5], transform, names=names, options=options)

            return rtdetr6
        if layout == "rows6":

            def rows6(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
                rows = outputs[0]
                return _kept(
                    rows[:, :4], rows[:, 4], rows[:, 5], transform, names=names, options=options
                )

            return rows6
        if layout == "queries":

            def queries(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
                rows = outputs[0]
                scores = rows[:, 4:]
                best = scores.argmax(axis=1)
                best_score = np.take_along_axis(scores, best[:, None], axis=1)[:, 0]
                if not np.isfinite(rows).all():  # a non-finite value anywhere drops the row
                    best_score = np.where(np.isfinite(rows).all(axis=1), best_score, np.nan)
                boxes = _to_xyxy(rows[:, :4].astype(np.float32)) * scale
                return _kept(boxes, best_score, best, transform, names=names, options=options)

            return queries
        roles = _four_roles(facts)
        assert not isinstance(roles, str)
        count_at, boxes_at, scores_at, classes_at = roles

        def four(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
            n = int(np.asarray(outputs[count_at]).reshape(-1)[0])
            return _kept(
                outputs[boxes_at][:n], outputs[scores_at][:n], outputs[classes_at][:n],
                transform, names=names, options=options,
            )  # fmt: skip

        return four


def _is_ssd(facts: ModelFacts) -> bool:
    """Whether the outputs are the TF Object Detection API's: its four names (and none but its
    TF2 extras beside them), its count ``(N,)``."""
    names = {o.name.split(":")[0] for o in facts.outputs}
    counts = [o for o in facts.outputs if o.name.split(":")[0] == "num_detections"]
    known = set(SSD_NAMES) <= names <= set(SSD_NAMES) | SSD_EXTRA_NAMES
    return known and bool(counts) and len(counts[0].shape) == 1


class Ssd(ModelFormat):
    name = "ssd"
    summary = (
        "TF Object Detection API: detection_boxes (N, K, 4) normalized y1, x1, y2, x2, "
        "detection_scores, detection_classes (1-based ids), num_detections"
    )

    def claims(self, facts: ModelFacts) -> bool:
        return _is_ssd(facts)

    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        if not _is_ssd(facts):
            return f"its outputs are not {', '.join(SSD_NAMES)} with a count (N,)"
        return None

    def preprocess(self, facts: ModelFacts) -> PreprocessSpec:
        """The Object Detection API resizes (no letterbox) and takes 0..255 RGB."""
        return PreprocessSpec(facts.input_size, scale=1.0)

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        names = tuple(class_names) if class_names is not None else None
        height, width = facts.input_size
        scale = np.array([width, height, width, height], np.float32)
        at = {o.name.split(":")[0]: i for i, o in enumerate(facts.outputs)}

        def decode(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
            n = int(np.asarray(outputs[at["num_detections"]]).reshape(-1)[0])
            yxyx = outputs[at["detection_boxes"]][:n].astype(np.float32)
            boxes = yxyx[:, [1, 0, 3, 2]] * scale
            classes = outputs[at["detection_classes"]][:n] - 1  # the label map counts from 1
            scores = outputs[at["detection_scores"]][:n]
            return _kept(boxes, scores, classes, transform, names=names, options=options)

        return decode


def _kept(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    classes: npt.ArrayLike,
    transform: LetterboxTransform,
    *,
    names: tuple[str, ...] | None,
    options: DecodeOptions,
) -> Detections:
    """Detections at or over the score floor, best first, at most ``top_k``: the model did its
    own NMS. Rows with a non-finite value are dropped and counted; a class id outside the
    names is a :class:`ModelError` (the names do not belong to this model)."""
    box = np.asarray(boxes, np.float32).reshape(-1, 4)
    score = np.asarray(scores, np.float32).reshape(-1)
    cls = np.asarray(classes).reshape(-1)
    finite = np.isfinite(box).all(axis=1) & np.isfinite(score) & np.isfinite(cls)
    nonfinite = int(finite.size - np.count_nonzero(finite))
    keep = np.flatnonzero(finite & (score >= options.score_floor))
    keep = keep[np.argsort(-score[keep], kind="stable")][: options.top_k]
    ids = np.rint(cls[keep]).astype(np.int64)
    if names is not None and ids.size and (ids.min() < 0 or ids.max() >= len(names)):
        raise ModelError(
            f"the model gave class id {int(ids.max() if ids.max() >= len(names) else ids.min())}"
            f" for {len(names)} class names"
        )
    return Detections(transform.to_source(box[keep]), score[keep], ids, names, nonfinite)


END2END, SSD = End2end(), Ssd()
