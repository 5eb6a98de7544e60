"""A loaded model's format, class names and preprocessing, settled once before a run.

>>> from core.formats.dense import _facts
>>> choice = settle_model(_facts((640, 640), (1, 84, 8400)), labels="coco")
>>> choice.format.name, len(choice.class_names), choice.names_from
('yolov8', 80, 'labels')
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def preprocess(self) -> PreprocessSpec:
        """The format's preprocessing at the model's input size."""
        return self.format.preprocess(self.facts)

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
