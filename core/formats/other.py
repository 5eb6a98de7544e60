"""The formats that are not detectors: classifiers, and ``raw`` for any other model.

``classifier``: one output ``(N, C)``, logits or probabilities (torchvision, timm, Ultralytics
``classify`` exports). ``raw``: anything no other format fits (a segmentation map, a
text-detection probability map, embeddings); its outputs are kept as tensors.
"""

from __future__ import annotations

from core.formats.base import ModelFacts, ModelFormat, one_output
from core.formats.dense import ULTRALYTICS_TASK
from core.preprocess import PreprocessSpec


class Classifier(ModelFormat):
    name = "classifier"
    task = "classify"
    summary = "(N, C): class logits or probabilities"

    def claims(self, facts: ModelFacts) -> bool:
        return facts.metadata.get(ULTRALYTICS_TASK) == "classify"

    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        shape = one_output(facts, 2)
        if isinstance(shape, str):
            return shape
        if shape[0] < 2:
            return f"its {shape[0]} value is not a score per class"
        return None

    def class_count(self, facts: ModelFacts) -> int | None:
        return facts.outputs[0].shape[1]

    def preprocess(self, facts: ModelFacts) -> PreprocessSpec:
        """torchvision's: resized, RGB, ImageNet mean and std; Ultralytics' classify exports
        take 0..1 without them."""
        if self.claims(facts):
            return PreprocessSpec(facts.input_size)
        return PreprocessSpec.imagenet(facts.input_size)


class Raw(ModelFormat):
    name = "raw"
    task = "raw"
    summary = "any outputs, kept as tensors"
    by_shape = False  # what auto falls back to, never a match of its own

    def mismatch(self, facts: ModelFacts, *, named: bool = False) -> str | None:
        return None if facts.outputs else "it has no outputs"

    def preprocess(self, facts: ModelFacts) -> PreprocessSpec:
        return PreprocessSpec(facts.input_size)


CLASSIFIER, RAW = Classifier(), Raw()
