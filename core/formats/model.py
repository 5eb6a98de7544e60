"""A loaded model's format, class names and preprocessing, settled once before a run.

>>> from core.formats.dense import _facts
>>> choice = settle_model(_facts((640, 640), (1, 84, 8400)), labels="coco")
>>> choice.format.name, len(choice.class_names), choice.names_from
('yolov8', 80, 'labels')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ModelError
from core.formats.base import DecodeOptions, Decoder, ModelFacts, ModelFormat
from core.formats.choose import choose_format
from core.formats.labels import load_labels, names_from_metadata
from core.preprocess import PreprocessSpec


@dataclass(frozen=True)
class ModelChoice:
    """What :func:`settle_model` found: the model's facts, its format, its class names (in
    class-id order: from ``model.labels``, else the metadata, else the ids as text where the
    layout says how many) and where they came from (``labels``, ``metadata``, ``ids``,
    ``none``)."""

    facts: ModelFacts
    format: ModelFormat
    class_names: tuple[str, ...]
    names_from: str

    def decoder(self, options: DecodeOptions) -> Decoder:
        """The format's decoder for this model's outputs."""
        return self.format.decoder(self.facts, self.class_names or None, options)

    def preprocess(self, changes: Mapping[str, Any] | None = None) -> PreprocessSpec:
        """The format's preprocessing at the model's input size, with ``changes`` (fields of
        :class:`~core.preprocess.PreprocessSpec`: ``model.preprocess``) applied."""
        spec = self.format.preprocess(self.facts)
        return dataclasses.replace(spec, **changes) if changes else spec

    def detects(self, classes: tuple[str, ...]) -> bool:
        """Whether its detections can be scored against ground truth of ``classes``: a
        detector whose class names are those (or, named by no one, as many of them). A
        classifier, a raw model or another label set scored against them would give a wrong
        figure, not a low one."""
        names = tuple(self.class_names)
        if self.format.task != "detect" or len(names) != len(classes):
            return False
        return self.names_from in ("ids", "none") or names == classes

    def summary(self) -> dict[str, object]:
        """Plain figures for a report: format, classes, where their names came from, input."""
        return {
            "format": self.format.name,
            "task": self.format.task,
            "classes": len(self.class_names) or None,
            "class_names_from": self.names_from,
            "input_size": list(self.facts.input_size),
        }


def settle_model(facts: ModelFacts, wanted: str = "auto", labels: str | None = None) -> ModelChoice:
    """The format (:func:`~core.formats.choose.choose_format`) and class names of the model
    ``facts`` describe; :class:`ModelError` when the names given or found do not match the
    classes its outputs carry."""
    chosen = choose_format(facts, wanted)
    count = chosen.class_count(facts)
    names: tuple[str, ...] | None
    if labels is not None:
        names, source = load_labels(labels), "labels"
    else:
        names, source = names_from_metadata(facts.metadata), "metadata"
    if names is not None and count is not None and len(names) != count:
        where = f"model.labels {labels}" if labels is not None else "its metadata"
        raise ModelError(
            f"{facts.name}: {where} names {len(names)} classes, but its {chosen.name} outputs "
            f"({facts.describe_outputs()}) carry {count}"
        )
    if names is None:
        names, source = (tuple(str(i) for i in range(count)), "ids") if count else ((), "none")
    return ModelChoice(facts, chosen, names, source)


DEFAULT_STRIDE = 32
"""The largest feature-map stride of the usual detection heads (P3-P5)."""


def stride_of(metadata: Mapping[str, str]) -> int:
    """The model's largest stride: its metadata's ``stride`` (Ultralytics, YOLOv5), else 32."""
    try:
        stride = int(float(metadata.get("stride", DEFAULT_STRIDE)))
    except ValueError:
        return DEFAULT_STRIDE
    return stride if stride > 0 else DEFAULT_STRIDE


def aligned_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``size`` (height, width) rounded up to whole multiples of ``stride``.

    >>> aligned_size((360, 640), 32)
    (384, 640)
    """
    height, width = size
    return (math.ceil(height / stride) * stride, math.ceil(width / stride) * stride)
