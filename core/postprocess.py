"""Raw network outputs to typed results: classification top-k and detection decoding.

Both results are small frozen objects with ``to_dict()`` (plain, JSON-ready Python) that later
stages -- the filter, the MQTT payload -- serialise. Non-finite outputs (NaN, infinity: a
broken model, an fp16 overflow) never crash a stage: the affected scores or candidate boxes are
dropped and *counted* in the result's ``nonfinite``, so monitoring can see them.

Detector output layout (what :func:`decode_detections` reads, what the reference detectors in
:mod:`core.models` produce): ``(N, A, 4 + C)`` or one image's ``(A, 4 + C)``: per candidate
(anchor point) a box ``x1, y1, x2, y2`` in network-input pixels, then ``C`` class scores in
0..1. Decoding keeps each candidate's best class, drops those under the score threshold, maps
the boxes to frame pixels through the letterbox transform and runs the native NMS.

>>> import numpy as np
>>> from core.preprocess import PreprocessSpec
>>> _, transform = PreprocessSpec.yolo((4, 8)).layout(10, 20)   # a 20x10 frame into 8x4
>>> raw = np.array([[0, 0, 4, 4, 0.9, 0.1],      # box at the left edge, class 0
...                 [0, 0, 4, 4, 0.8, 0.2],      # its duplicate: NMS drops it
...                 [4, 0, 8, 4, 0.05, 0.6]], np.float32)
>>> dets = decode_detections(raw, transform, class_names=("cat", "dog"))
>>> dets.boxes                                   # in frame pixels: 2.5 per network pixel
array([[ 0.,  0., 10., 10.],
       [10.,  0., 20., 10.]], dtype=float32)
>>> dets.labels()
['cat', 'dog']
>>> classify_topk(np.array([1.0, 3.0, 2.0]), k=2).class_ids   # logits: softmax applied
array([1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.detections import Detections, nms
from core.errors import ConfigError, FrameError
from core.preprocess import LetterboxTransform

Activation = Literal["auto", "softmax", "none"]

PROBABILITY_TOLERANCE = 1e-3
"""``activation="auto"`` takes a row as probabilities when it sums to 1 within this."""


@dataclass(frozen=True)
class Classification:
    """The ``k`` best classes of one image, best first: ids (int64) and probabilities (float32).

    ``nonfinite`` counts the network's scores that were NaN or infinite (left out of the
    ranking and of the softmax).
    """

    class_ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    class_names: tuple[str, ...] | None = field(default=None, compare=False)
    nonfinite: int = 0

    def __len__(self) -> int:
        return len(self.class_ids)

    def labels(self) -> list[str]:
        """Each class's name (the id as text where no names were given)."""
        names = self.class_names
        return [names[c] if names else str(c) for c in self.class_ids.tolist()]

    def to_dict(self, *, score_decimals: int = 4) -> dict[str, Any]:
        """``{"classes": [{"class_id": c, "label": name, "score": p}, ...], "nonfinite": n}``."""
        scores = np.round(self.scores.astype(np.float64), score_decimals).tolist()
        items = [
            {"class_id": cid, "label": label, "score": score}
            for cid, label, score in zip(
                self.class_ids.tolist(), self.labels(), scores, strict=True
            )
        ]
        return {"classes": items, "nonfinite": self.nonfinite}


def _one_row(output: npt.ArrayLike, what: str, width: int) -> np.ndarray:
    """``output`` as a 2-D array of rows at least ``width`` wide (a leading batch of 1 dropped)."""
    array = np.asarray(output)
    if array.dtype.kind not in "fiu":
        raise FrameError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[1] < width:
        raise FrameError(
            f"{what} must be (rows, >= {width}) or (1, rows, >= {width}) for one image, got "
            f"shape {np.shape(output)}; decode a batch one image at a time"
        )
    return array


def classify_topk(
    output: npt.ArrayLike,
    k: int = 5,
    *,
    class_names: Sequence[str] | None = None,
    activation: Activation = "auto",
) -> Classification:
    """The ``k`` best classes of one image's classifier output (``(C,)`` or ``(1, C)``).

    ``activation="softmax"`` treats the output as logits, ``"none"`` as probabilities already,
    ``"auto"`` (the default) as probabilities when every value is in 0..1 and they sum to 1,
    else as logits. Ties rank the lower class id first. Fewer than ``k`` come back when fewer
    finite scores exist.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if activation not in ("auto", "softmax", "none"):
        raise ConfigError(f"activation must be 'auto', 'softmax' or 'none', got {activation!r}")
    row = _one_row(np.reshape(np.asarray(output), (1, -1)), "classifier output", 1)[0]
    names = tuple(class_names) if class_names is not None else None
    if names is not None and len(names) != row.shape[0]:
        raise ConfigError(f"{len(names)} class names for {row.shape[0]} classifier outputs")
    values = row.astype(np.float64)
    finite = np.isfinite(values)
    ids = np.flatnonzero(finite)
    values = values[finite]
    if values.size:
        probabilities = (
            values.min() >= 0
            and values.max() <= 1
            and abs(values.sum() - 1) <= PROBABILITY_TOLERANCE
        )
        if activation == "softmax" or (activation == "auto" and not probabilities):
            values = np.exp(values - values.max())
            values /= values.sum()
    order = np.lexsort((ids, -values))[:k]
    return Classification(
        ids[order].astype(np.int64),
        values[order].astype(np.float32),
        names,
        int(row.shape[0] - ids.size),
    )


def decode_detections(
    raw_output: npt.ArrayLike,
    transform: LetterboxTransform,
    *,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    top_k: int = 100,
    class_names: Sequence[str] | None = None,
    impl: str | None = None,
) -> Detections:
    """One image's detector output (``(A, 4 + C)`` or ``(1, A, 4 + C)``) to :class:`Detections`.

    Boxes come back in frame pixels (through ``transform``, the one :func:`preprocess_into`
    returned for this frame), best first, at most ``top_k``, after class-aware NMS at
    ``iou_threshold`` (the native kernel; ``impl`` forces an implementation). Candidates with
    any non-finite value are dropped and counted in ``nonfinite``.
    """
    if np.isnan(score_threshold):
        raise ConfigError("score_threshold must be a number, got NaN")
    rows = _one_row(raw_output, "detector output", 5)
    num_classes = rows.shape[1] - 4
    names = tuple(class_names) if class_names is not None else None
    if names is not None and len(names) != num_classes:
        raise ConfigError(
            f"{len(names)} class names for a detector output with {num_classes} classes "
            f"(rows of 4 box values + {num_classes} scores)"
        )
    scores = rows[:, 4:]
    best = scores.argmax(axis=1)
    best_score = scores[np.arange(len(best)), best]
    keep = best_score >= score_threshold
    nonfinite = 0
    # One pass over the whole output first: NumPy's per-row reductions cost more than the
    # element tests, and a model rarely gives NaN or infinity, so the per-row test runs only
    # when it did (docs/decisions/0022-output-path-decoding.md).
    if not np.isfinite(rows).all():
        finite = np.isfinite(rows).all(axis=1)
        nonfinite = int(rows.shape[0] - np.count_nonzero(finite))
        keep &= finite
    candidates = np.flatnonzero(keep)
    boxes = transform.to_source(rows[candidates, :4].astype(np.float32, copy=False))
    classes = best[candidates].astype(np.int64)
    kept = nms(
        boxes,
        best_score[candidates],
        classes,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        top_k=top_k,
        impl=impl,
    )
    return Detections(boxes[kept], best_score[candidates][kept], classes[kept], names, nonfinite)


def decode_batch(
    raw_output: npt.ArrayLike,
    transforms: Sequence[LetterboxTransform],
    **options: Any,
) -> list[Detections]:
    """:func:`decode_detections` for each image of a batch output ``(N, A, 4 + C)``."""
    batch = np.asarray(raw_output)
    if batch.ndim != 3 or batch.shape[0] < len(transforms):
        raise FrameError(
            f"batch output must be (N, A, 4 + C) with N >= {len(transforms)} images, "
            f"got shape {batch.shape}"
        )
    return [decode_detections(batch[i], t, **options) for i, t in enumerate(transforms)]
