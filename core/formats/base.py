"""What every model output format provides, and the facts about a model it is chosen from.

A format (:class:`ModelFormat`) says from a model's outputs whether they have its layout
(:meth:`~ModelFormat.mismatch`), whether its metadata claims it (:meth:`~ModelFormat.claims`),
which preprocessing its exporters use (:meth:`~ModelFormat.preprocess`) and how one image's
outputs become :class:`~core.detections.Detections` (:meth:`~ModelFormat.decoder`). The
formats themselves live one family a module (:mod:`core.formats.dense`,
:mod:`core.formats.end2end`, :mod:`core.formats.other`); :mod:`core.formats.choose` picks one.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from core.backends.tensor_spec import TensorSpec
from core.preprocess import LetterboxTransform, PreprocessSpec

if TYPE_CHECKING:
    from core.detections import Detections

Task = Literal["detect", "classify", "raw"]
Decoder = Callable[[Sequence[np.ndarray], LetterboxTransform], "Detections"]
"""One image's outputs (each output's row for that image) and its letterbox transform, to
detections in frame pixels."""
STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))
"""The feature-map strides of YOLO-family heads (P3-P5, and the P6 models' P3-P6)."""


@dataclass(frozen=True)
class OutputShape:
    """One output: its name and its shape as the runtime allocated it (batch axis first)."""

    name: str
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.name} {list(self.shape)}"


@dataclass(frozen=True)
class ModelFacts:
    """What a format is chosen from: the model's image input, the size it is fed at, its
    outputs' shapes and its ONNX metadata (``metadata_props``)."""

    name: str
    """The model file's name (for messages)."""
    input: TensorSpec
    input_size: tuple[int, int]
    """(height, width) the model is fed at."""
    outputs: tuple[OutputShape, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    def row_shapes(self) -> list[tuple[int, ...]]:
        """Each output's shape for one image (the batch axis dropped)."""
        return [o.shape[1:] for o in self.outputs]

    def describe_outputs(self) -> str:
        return ", ".join(str(o) for o in self.outputs) or "none"

    def grid_cells(self, anchors: int = 1) -> set[int]:
        """Candidate counts a YOLO-family head gives at this input size: ``anchors`` per cell
        of every feature map, for each usual stride set."""
        height, width = self.input_size
        return {
            anchors * sum(math.ceil(height / s) * math.ceil(width / s) for s in strides)
            for strides in STRIDE_SETS
        }


@dataclass(frozen=True)
class DecodeOptions:
    """What a decoder keeps: candidates scoring at least ``score_floor``, class-aware NMS at
    ``iou_threshold`` for formats without NMS inside, at most ``top_k`` per image."""

    score_floor: float = 0.25
    iou_threshold: float = 0.45
    top_k: int = 100


class ModelFormat(abc.ABC):
    """One output layout (see the module docstring). Formats are stateless singletons."""

    name: ClassVar[str]
    task: ClassVar[Task] = "detect"
    summary: ClassVar[str]
    """One line: the layout, for ``inspect`` and errors."""
    by_shape: ClassVar[bool] = True
    """Whether ``auto`` may pick it from the shapes alone (without its metadata)."""

    def claims(self, facts: ModelFacts) -> bool:
        """Whether the model's metadata says it has this format."""
        del facts
        return False

    @abc.abstractmethod
    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        """None when the outputs have this format's layout, else why not (one phrase).
        ``named``: the user named the format, so a check that only tells formats apart (a
        head's candidate count, which a P2 or one-scale head changes) is left out."""

    def class_count(self, facts: ModelFacts) -> int | None:
        """Classes the outputs carry (None where the layout does not say)."""
        del facts
        return None

    def preprocess(self, facts: ModelFacts) -> PreprocessSpec:
        """The preprocessing this format's exporters train and export with."""
        return PreprocessSpec.yolo(facts.input_size)

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        """A function decoding one image's outputs (detection formats only)."""
        del facts, class_names, options
        raise NotImplementedError(f"{self.name} models are not decoded into detections")


def one_output(facts: ModelFacts, rank: int) -> tuple[int, ...] | str:
    """The one output's per-image shape when the model has exactly one output of ``rank``
    (batch axis included), else why not."""
    if len(facts.outputs) != 1:
        return f"it has {len(facts.outputs)} outputs, not 1"
    shape = facts.outputs[0].shape
    if len(shape) != rank:
        return f"its output has rank {len(shape)}, not {rank}"
    return shape[1:]
