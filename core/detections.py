"""Detections and non-maximum suppression (the native kernel behind a checked wrapper).

>>> import numpy as np
>>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
>>> scores = np.array([0.9, 0.8, 0.7], np.float32)
>>> nms(boxes, scores)                       # box 1 overlaps box 0 by IoU 0.81
array([0, 2])
>>> nms(boxes, scores, np.array([0, 1, 0]))  # ... but is another class
array([0, 1, 2])

This module keeps what every detector shares: the boxes, their scores and classes (the typed
result later stages serialise with :meth:`Detections.to_dict`), ground truth in the same shape,
and NMS. Decoding a network's raw output into :class:`Detections` lives in
:mod:`core.postprocess`, scoring detections against ground truth in :mod:`core.accuracy`.

>>> dets = Detections(boxes[:1], scores[:1], np.array([2]), class_names=("a", "b", "c"))
>>> dets.to_dict()
{'detections': [{'box': [0.0, 0.0, 10.0, 10.0], 'score': 0.9, 'class_id': 2, 'label': 'c'}], \
'nonfinite': 0}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from core._native import kernel
from core.errors import ConfigError, FrameError
from core.preprocess import LetterboxTransform


def _float32_array(name: str, value: npt.ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise FrameError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.shape != shape and not (array.size == 0 and shape[0] == 0):
        raise FrameError(f"{name} must have shape {shape}, got {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32).reshape(shape)


def nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    classes: npt.ArrayLike | None = None,
    *,
    iou_threshold: float = 0.45,
    score_threshold: float = 0.25,
    top_k: int = 300,
    impl: str | None = None,
) -> npt.NDArray[np.int64]:
    """Indices of the boxes greedy NMS keeps, best score first (equal scores: lower index first).

    ``boxes`` is ``(N, 4)`` xyxy, ``scores`` ``(N,)``, ``classes`` ``(N,)`` integers or None
    (one class). A box is dropped when its score is below ``score_threshold``, when it or its
    score is not finite, or when it overlaps a kept box of its class by IoU > ``iou_threshold``;
    at most ``top_k`` are kept. Boxes of zero or negative width or height have zero area (they
    overlap nothing). IoU is computed in float64 from float32 coordinates: anything that is not
    C-contiguous float32 (``boxes``, ``scores``) or int64 (``classes``) is converted, a copy.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ConfigError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if np.isnan(score_threshold):
        raise ConfigError("score_threshold must be a number, got NaN")
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0, got {top_k}")
    score_array = np.asarray(scores)
    if score_array.ndim != 1:
        raise FrameError(f"scores must have shape (N,), got {score_array.shape}")
    n = score_array.shape[0]
    box32 = _float32_array("boxes", boxes, (n, 4))
    score32 = _float32_array("scores", score_array, (n,))
    labels = None
    if classes is not None:
        class_array = np.asarray(classes)
        if class_array.shape != (n,) or class_array.dtype.kind not in "iu":
            raise FrameError(
                f"classes must be ({n},) integers, got {class_array.shape} {class_array.dtype}"
            )
        labels = np.ascontiguousarray(class_array, dtype=np.int64)
    keep: npt.NDArray[np.int64] = kernel("nms", impl)(
        box32, score32, labels, float(iou_threshold), float(score_threshold), int(top_k)
    )
    return keep


class GroundTruth(NamedTuple):
    """The objects really in a frame: what detections are scored against.

    ``boxes`` ``(K, 4)`` float32 xyxy in frame pixels (clipped to the frame), ``classes``
    ``(K,)`` int64, ``occluded`` ``(K,)`` float32: the fraction of each object that cannot be
    seen (hidden behind others or outside the frame), so an evaluator can leave mostly hidden
    objects out of the score (:mod:`core.accuracy` does above 0.7). A NamedTuple: one per frame.
    """

    boxes: npt.NDArray[np.float32]
    classes: npt.NDArray[np.int64]
    occluded: npt.NDArray[np.float32]


class OutputSummary(NamedTuple):
    """Summary figures of one model output for one image: what a model the pipeline does not
    decode (``model.format: raw``) sends instead of detections. ``min``, ``max`` and ``mean``
    are over the finite values (None when there are none); ``nonfinite`` counts the rest."""

    name: str
    shape: tuple[int, ...]
    min: float | None
    max: float | None
    mean: float | None
    nonfinite: int

    @classmethod
    def of(cls, name: str, values: np.ndarray) -> OutputSummary:
        """The figures of ``values`` (one image's row of the output ``name``)."""
        finite = np.isfinite(values) if values.dtype.kind == "f" else None
        kept = values if finite is None or finite.all() else values[finite]
        nonfinite = 0 if finite is None else int(values.size - kept.size)
        if not kept.size:
            return cls(name, tuple(values.shape), None, None, None, nonfinite)
        return cls(
            name,
            tuple(values.shape),
            float(kept.min()),
            float(kept.max()),
            float(kept.mean(dtype=np.float64)),
            nonfinite,
        )

    def to_dict(self, decimals: int = 6) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, decimals)

        return {
            "name": self.name,
            "shape": list(self.shape),
            "min": rounded(self.min),
            "max": rounded(self.max),
            "mean": rounded(self.mean),
            "nonfinite": self.nonfinite,
        }


@dataclass(frozen=True)
class Detections:
    """Boxes (``(N, 4)`` float32 xyxy), scores (``(N,)`` float32) and classes (``(N,)`` int64).

    ``class_names`` (optional) names the class ids in :meth:`to_dict`; ``nonfinite`` counts the
    candidates a decoder dropped because the network gave NaN or infinity for them (a sign of a
    broken model or precision overflow that monitoring should see, not a reason to crash).
    ``outputs`` summarises the outputs of a model that is not decoded into detections
    (``model.format: raw``; none otherwise).
    """

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    classes: npt.NDArray[np.int64]
    class_names: tuple[str, ...] | None = field(default=None, compare=False)
    nonfinite: int = 0
    outputs: tuple[OutputSummary, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        n = len(self.scores)
        object.__setattr__(self, "boxes", _float32_array("boxes", self.boxes, (n, 4)))
        object.__setattr__(self, "scores", _float32_array("scores", self.scores, (n,)))
        classes = np.asarray(self.classes)
        if classes.shape != (n,) or classes.dtype.kind not in "iu":
            raise FrameError(f"classes must be ({n},) integers, got {classes.shape}")
        object.__setattr__(self, "classes", classes.astype(np.int64, copy=False))
        if self.class_names is not None:
            names = tuple(self.class_names)
            if n and (self.classes.min() < 0 or self.classes.max() >= len(names)):
                raise FrameError(
                    f"class ids must be in [0, {len(names)}) to be named by class_names, "
                    f"got {self.classes.min()}..{self.classes.max()}"
                )
            object.__setattr__(self, "class_names", names)

    def __len__(self) -> int:
        return len(self.scores)

    def _like(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> Detections:
        """New detections that keep this one's class names, non-finite count and outputs."""
        return Detections(boxes, scores, classes, self.class_names, self.nonfinite, self.outputs)

    def take(self, indices: npt.ArrayLike) -> Detections:
        """The detections at ``indices``, in that order."""
        index = np.asarray(indices, dtype=np.intp)
        return self._like(self.boxes[index], self.scores[index], self.classes[index])

    def labels(self) -> list[str]:
        """Each detection's class name (the id as text where no names were given)."""
        names = self.class_names
        return [names[c] if names else str(c) for c in self.classes.tolist()]

    def to_dict(self, *, box_decimals: int = 1, score_decimals: int = 4) -> dict[str, Any]:
        """Plain Python (JSON-ready): one dict per detection, rounded to keep messages small.

        ``{"detections": [{"box": [x1, y1, x2, y2], "score": s, "class_id": c, "label": name},
        ...], "nonfinite": n}``, best first where the detections came from NMS; with
        ``"outputs": [{"name", "shape", "min", "max", "mean", "nonfinite"}, ...]`` when the
        model's outputs are summarised (:class:`OutputSummary`).
        """
        boxes = np.round(self.boxes.astype(np.float64), box_decimals).tolist()
        scores = np.round(self.scores.astype(np.float64), score_decimals).tolist()
        items = [
            {"box": box, "score": score, "class_id": cid, "label": label}
            for box, score, cid, label in zip(
                boxes, scores, self.classes.tolist(), self.labels(), strict=True
            )
        ]
        found: dict[str, Any] = {"detections": items, "nonfinite": self.nonfinite}
        if self.outputs:
            found["outputs"] = [summary.to_dict() for summary in self.outputs]
        return found

    def nms(
        self,
        *,
        iou_threshold: float = 0.45,
        score_threshold: float = 0.25,
        top_k: int = 300,
        class_aware: bool = True,
    ) -> Detections:
        """The detections :func:`nms` keeps, best first."""
        keep = nms(
            self.boxes,
            self.scores,
            self.classes if class_aware else None,
            iou_threshold=iou_threshold,
            score_threshold=score_threshold,
            top_k=top_k,
        )
        return self.take(keep)

    def to_source(self, transform: LetterboxTransform) -> Detections:
        """The same detections with boxes mapped from network input to frame pixels."""
        return self._like(transform.to_source(self.boxes), self.scores, self.classes)
