"""Dense detector outputs: one row of box and scores per candidate, NMS after decoding.

============ ======================= ====================================== ================
format       one image's output      box                                    score
============ ======================= ====================================== ================
``edgeloop`` ``(A, 4 + C)``          x1, y1, x2, y2, input pixels           class score
``yolov8``   ``(4 + C, A)``          cx, cy, w, h, input pixels             class score
``yolov5``   ``(A, 5 + C)``          cx, cy, w, h, input pixels             objectness x class
``yolox``    ``(A, 5 + C)`` raw grid offsets and log sizes per stride cell  objectness x class
============ ======================= ====================================== ================

``A`` is the candidate count: one per feature-map cell for the anchor-free heads
(``yolov8``, ``yolox``: 8,400 at 640 x 640), three per cell for YOLOv5's anchors (25,200), which
is how ``auto`` tells them apart without metadata. Each decoder keeps a candidate's best class,
drops those under the score floor and those with a non-finite value (counted in
``nonfinite``), maps the boxes to frame pixels and runs the native class-aware NMS.

>>> from core.preprocess import PreprocessSpec
>>> _, transform = PreprocessSpec.yolo((4, 8)).layout(10, 20)  # a 20x10 frame into 8x4
>>> row = np.array([[2, 6], [2, 2], [4, 4], [4, 4], [0.9, 0.05], [0.1, 0.6]], np.float32)
>>> decode = YOLOV8.decoder(_facts((4, 8), (1, 6, 2)), ("cat", "dog"), DecodeOptions())
>>> dets = decode([row], transform)
>>> dets.boxes, dets.labels()                # cx, cy, w, h to frame pixels (2.5 per pixel)
(array([[ 0.,  0., 10., 10.],
       [10.,  0., 20., 10.]], dtype=float32), ['cat', 'dog'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from core.backends.tensor_spec import TensorSpec
from core.detections import Detections, nms
from core.errors import ModelError
from core.formats.base import (
    STRIDE_SETS,
    DecodeOptions,
    Decoder,
    ModelFacts,
    ModelFormat,
    OutputShape,
    one_output,
)
from core.formats.labels import EDGELOOP_KEY
from core.postprocess import decode_detections
from core.preprocess import LetterboxTransform, PreprocessSpec

ULTRALYTICS_TASK = "task"
"""The metadata key Ultralytics (YOLOv8 and later) writes: ``detect``, ``classify``..."""
YOLOV5_KEYS = ("stride", "names")
"""What YOLOv5's export writes (and Ultralytics too, beside ``task``)."""


def _facts(size: tuple[int, int], shape: tuple[int, ...]) -> ModelFacts:
    """Facts for a one-output model (the doctests' helper)."""
    spec = TensorSpec("images", (1, 3, *size), "float32")
    return ModelFacts("model.onnx", spec, size, (OutputShape("output0", shape),))


def _to_xyxy(boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """cx, cy, w, h rows to x1, y1, x2, y2 (a new array)."""
    half = boxes[:, 2:4] * 0.5
    return np.concatenate([boxes[:, 0:2] - half, boxes[:, 0:2] + half], axis=1)


def _finish(
    boxes: npt.NDArray[Any],
    scores: npt.NDArray[Any],
    classes: npt.NDArray[Any],
    transform: LetterboxTransform,
    *,
    names: tuple[str, ...] | None,
    options: DecodeOptions,
    nonfinite: int,
    center: bool,
) -> Detections:
    """Candidates (network pixels) to detections in frame pixels, after class-aware NMS."""
    boxes = boxes.astype(np.float32, copy=False)
    if center:
        boxes = _to_xyxy(boxes)
    boxes = transform.to_source(boxes)
    scores = scores.astype(np.float32, copy=False)
    classes = classes.astype(np.int64, copy=False)
    kept = nms(
        boxes,
        scores,
        classes,
        iou_threshold=options.iou_threshold,
        score_threshold=options.score_floor,
        top_k=options.top_k,
    )
    return Detections(boxes[kept], scores[kept], classes[kept], names, nonfinite)


def _finite_rows(rows: np.ndarray, axis: int) -> tuple[npt.NDArray[np.bool_] | None, int]:
    """(mask of candidates whose values are all finite, how many are not), or (None, 0) when
    all are: one pass over the whole output first, the per-candidate test only when needed
    (docs/decisions/0022-output-path-decoding.md)."""
    if np.isfinite(rows).all():
        return None, 0
    finite = np.isfinite(rows).all(axis=axis)
    return finite, int(finite.size - np.count_nonzero(finite))


def _names(names: Sequence[str] | None, classes: int, what: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    if len(names) != classes:
        raise ModelError(f"{len(names)} class names for {what} with {classes} classes")
    return tuple(names)


def _candidates_mismatch(facts: ModelFacts, candidates: int, *, anchors: int) -> str | None:
    """Why ``candidates`` is not ``anchors`` per feature-map cell at the model's input size."""
    cells = facts.grid_cells(anchors)
    if candidates in cells:
        return None
    height, width = facts.input_size
    per_cell = "one per cell" if anchors == 1 else f"{anchors} anchors per cell"
    return (
        f"its {candidates} candidates are not {per_cell} of the feature maps at "
        f"{height}x{width} ({' or '.join(map(str, sorted(cells)))})"
    )


class Edgeloop(ModelFormat):
    """edgeloop's reference layout (:mod:`core.models`): ``(N, A, 4 + C)``, decoded by
    :func:`core.postprocess.decode_detections`."""

    name = "edgeloop"
    summary = "(N, A, 4 + C): x1, y1, x2, y2 in input pixels, then C class scores"
    by_shape = False  # its shape is also YOLOX's and YOLOv5's: claimed by its metadata

    def claims(self, facts: ModelFacts) -> bool:
        return EDGELOOP_KEY in facts.metadata

    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        shape = one_output(facts, 3)
        if isinstance(shape, str):
            return shape
        if shape[1] < 5:
            return f"its rows hold {shape[1]} values, not 4 + classes"
        return None

    def class_count(self, facts: ModelFacts) -> int | None:
        return facts.outputs[0].shape[2] - 4

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        names = _names(class_names, facts.outputs[0].shape[2] - 4, "an edgeloop output")

        def decode(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
            return decode_detections(
                outputs[0],
                transform,
                score_threshold=options.score_floor,
                iou_threshold=options.iou_threshold,
                top_k=options.top_k,
                class_names=names,
            )

        return decode


class Yolov8(ModelFormat):
    """Ultralytics YOLOv8, v9, v11 and YOLO-World: ``(N, 4 + C, A)``, channels first."""

    name = "yolov8"
    summary = "(N, 4 + C, A): cx, cy, w, h in input pixels, then C class scores; no objectness"

    def claims(self, facts: ModelFacts) -> bool:
        return facts.metadata.get(ULTRALYTICS_TASK) == "detect"

    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        shape = one_output(facts, 3)
        if isinstance(shape, str):
            return shape
        channels, candidates = shape
        if channels < 5:
            return f"its {channels} channels are not 4 box values + classes"
        return None if named else _candidates_mismatch(facts, candidates, anchors=1)

    def class_count(self, facts: ModelFacts) -> int | None:
        return facts.outputs[0].shape[1] - 4

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        names = _names(class_names, facts.outputs[0].shape[1] - 4, "a YOLOv8 output")

        def decode(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
            rows = outputs[0]  # (4 + C, A)
            scores = rows[4:]
            best = scores.argmax(axis=0)
            best_score = np.take_along_axis(scores, best[None, :], axis=0)[0]
            keep = best_score >= options.score_floor
            finite, nonfinite = _finite_rows(rows, axis=0)
            if finite is not None:
                keep &= finite
            cand = np.flatnonzero(keep)
            return _finish(
                rows[:4, cand].T, best_score[cand], best[cand], transform,
                names=names, options=options, nonfinite=nonfinite, center=True,
            )  # fmt: skip

        return decode


class Yolov5(ModelFormat):
    """YOLOv5, v7 and YOLOR: ``(N, A, 5 + C)`` with an objectness column, three anchors a cell."""

    name = "yolov5"
    summary = "(N, A, 5 + C): cx, cy, w, h in input pixels, objectness, then C class scores"

    def claims(self, facts: ModelFacts) -> bool:
        keys = facts.metadata
        return all(k in keys for k in YOLOV5_KEYS) and ULTRALYTICS_TASK not in keys

    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        shape = one_output(facts, 3)
        if isinstance(shape, str):
            return shape
        candidates, width = shape
        if width < 6:
            return f"its rows hold {width} values, not 4 box values + objectness + classes"
        return None if named else _candidates_mismatch(facts, candidates, anchors=3)

    def class_count(self, facts: ModelFacts) -> int | None:
        return facts.outputs[0].shape[2] - 5

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        names = _names(class_names, facts.outputs[0].shape[2] - 5, "a YOLOv5 output")
        return _objectness_decoder(names, options)


def _objectness_decoder(names: tuple[str, ...] | None, options: DecodeOptions) -> Decoder:
    """Rows of cx, cy, w, h, objectness, class scores; score = objectness x best class."""

    def decode(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
        rows = outputs[0]
        return _objectness_rows(rows, rows, transform, names, options)

    return decode


def _objectness_rows(
    rows: np.ndarray,
    boxes: np.ndarray,
    transform: LetterboxTransform,
    names: tuple[str, ...] | None,
    options: DecodeOptions,
) -> Detections:
    """Candidates of ``rows`` (objectness at column 4, classes after), their boxes (cx, cy,
    w, h) from ``boxes``' first four columns."""
    objectness = rows[:, 4]
    keep = objectness >= options.score_floor  # a product of scores <= 1 is below each
    finite, nonfinite = _finite_rows(rows, axis=1)
    if boxes is not rows and not np.isfinite(boxes[:, :4]).all():  # decoded sizes overflowed
        finite = np.isfinite(boxes[:, :4]).all(axis=1) & (True if finite is None else finite)
        nonfinite = int(finite.size - np.count_nonzero(finite))
    if finite is not None:
        keep &= finite
    cand = np.flatnonzero(keep)
    scores = rows[cand, 5:]
    best = scores.argmax(axis=1)
    best_score = np.take_along_axis(scores, best[:, None], axis=1)[:, 0] * objectness[cand]
    return _finish(
        boxes[cand, :4], best_score, best, transform,
        names=names, options=options, nonfinite=nonfinite, center=True,
    )  # fmt: skip


class Yolox(ModelFormat):
    """YOLOX exported without its decode (``decode_in_inference=False``): per feature-map cell,
    offsets from the cell and log sizes in stride units, objectness, class scores."""

    name = "yolox"
    summary = (
        "(N, A, 5 + C) raw grid: x, y offsets and log w, h per cell of strides 8/16/32, "
        "objectness, C class scores"
    )
    by_shape = False  # its shape is the anchor-free heads' own: never guessed

    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        shape = one_output(facts, 3)
        if isinstance(shape, str):
            return shape
        candidates, width = shape
        if width < 6:
            return f"its rows hold {width} values, not 4 box values + objectness + classes"
        return _candidates_mismatch(facts, candidates, anchors=1)  # its decode needs the grid

    def class_count(self, facts: ModelFacts) -> int | None:
        return facts.outputs[0].shape[2] - 5

    def preprocess(self, facts: ModelFacts) -> PreprocessSpec:
        """YOLOX's own: BGR, 0..255, grey padding."""
        return PreprocessSpec.yolo(facts.input_size, output_order="BGR", scale=1.0)

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        names = _names(class_names, facts.outputs[0].shape[2] - 5, "a YOLOX output")
        grid, strides = yolox_grid(facts.input_size, facts.outputs[0].shape[1])

        def decode(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
            rows = outputs[0]
            boxes = np.empty((rows.shape[0], 4), np.float32)
            boxes[:, 0:2] = (rows[:, 0:2] + grid) * strides
            with np.errstate(over="ignore"):  # a huge log size is an infinite box: dropped
                boxes[:, 2:4] = np.exp(rows[:, 2:4]) * strides
            return _objectness_rows(rows, boxes, transform, names, options)

        return decode


def yolox_grid(
    size: tuple[int, int], candidates: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Each candidate's cell (x, y) and stride, in YOLOX's order (stride by stride, rows of
    cells); the stride set is the one whose cells add up to ``candidates``."""
    height, width = size
    for strides in STRIDE_SETS:
        cells, steps = [], []
        for s in strides:
            h, w = -(-height // s), -(-width // s)
            ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            steps.append(np.full((h * w, 1), s))
        grid = np.concatenate(cells)
        if len(grid) == candidates:
            return grid.astype(np.float32), np.concatenate(steps).astype(np.float32)
    raise ModelError(f"{candidates} candidates match no YOLOX stride set at {height}x{width}")


EDGELOOP, YOLOV8, YOLOV5, YOLOX = Edgeloop(), Yolov8(), Yolov5(), Yolox()
