"""Which format a model has: the one ``model.format`` names, or ``auto``'s choice.

``auto`` reads the ONNX metadata first (edgeloop's ``edgeloop`` key; Ultralytics' ``task``;
YOLOv5's ``stride`` and ``names``), then the output shapes. It never guesses: when the
metadata claims a format the outputs must have its layout, and when the shapes alone fit
several formats the model is refused with the output, its shape and the formats that would fit,
so that the user names one. A model no format fits is ``raw``.

>>> from core.formats.dense import _facts
>>> choose_format(_facts((640, 640), (1, 84, 8400))).name
'yolov8'
>>> choose_format(_facts((640, 640), (1, 25200, 85))).name
'yolov5'
>>> choose_format(_facts((640, 640), (1, 2, 640, 640))).name
'raw'
"""

from __future__ import annotations

from core.errors import ConfigError, ModelError
from core.formats.base import ModelFacts, ModelFormat
from core.formats.dense import EDGELOOP, ULTRALYTICS_TASK, YOLOV5, YOLOV8, YOLOX
from core.formats.end2end import END2END, SSD
from core.formats.other import CLASSIFIER, RAW

FORMATS: dict[str, ModelFormat] = {
    f.name: f for f in (EDGELOOP, YOLOV8, YOLOV5, YOLOX, END2END, SSD, CLASSIFIER, RAW)
}
"""Every format, by the name ``model.format`` takes."""
UNSUPPORTED_TASKS = ("segment", "pose", "obb")
"""Ultralytics tasks whose outputs carry more than boxes: refused, never decoded as boxes."""


def format_named(name: str) -> ModelFormat:
    """The format ``name`` (:class:`ConfigError` listing the names for another)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(
            f"model.format: {name!r} is not a format; use auto or one of {', '.join(FORMATS)}"
        ) from None


def choose_format(facts: ModelFacts, wanted: str = "auto") -> ModelFormat:
    """The format of the model ``facts`` describes (see the module docstring);
    :class:`ModelError` naming the outputs when the named format does not fit, when the
    metadata and the outputs disagree, or when the shapes fit several formats."""
    if wanted != "auto":
        chosen = format_named(wanted)
        reason = chosen.mismatch(facts, named=True)
        if reason is not None:
            raise ModelError(
                f"{facts.name}: model.format {chosen.name} reads {chosen.summary}, but {reason} "
                f"(outputs: {facts.describe_outputs()})"
            )
        return chosen
    task = facts.metadata.get(ULTRALYTICS_TASK)
    if task in UNSUPPORTED_TASKS:
        raise ModelError(
            f"{facts.name}: an Ultralytics {task} model (metadata task={task}; outputs "
            f"{facts.describe_outputs()}); edgeloop decodes detect and classify models: export "
            "a detection model"
        )
    claimed = [f for f in FORMATS.values() if f.claims(facts)]
    if claimed:
        fitting = [f for f in claimed if f.mismatch(facts) is None]
        if len(fitting) == 1:
            return fitting[0]
        if not fitting:
            why = "; ".join(f"{f.name}: {f.mismatch(facts)}" for f in claimed)
            raise ModelError(
                f"{facts.name}: its metadata says {' or '.join(f.name for f in claimed)}, but "
                f"its outputs ({facts.describe_outputs()}) do not have that layout ({why})"
            )
        return _ambiguous(facts, fitting)
    fitting = [f for f in FORMATS.values() if f.by_shape and f.mismatch(facts) is None]
    if len(fitting) == 1:
        return fitting[0]
    if fitting:
        return _ambiguous(facts, fitting)
    return RAW


def _ambiguous(facts: ModelFacts, fitting: list[ModelFormat]) -> ModelFormat:
    names = ", ".join(f"{f.name} ({f.summary})" for f in fitting)
    raise ModelError(
        f"{facts.name}: its outputs ({facts.describe_outputs()}) fit several formats: {names}; "
        "set model.format to the one it has"
    )
