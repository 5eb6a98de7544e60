"""The formats that are not detectors: classifiers, and ``raw`` for any other model.

``classifier``: one output ``(N, C)``, logits or probabilities (torchvision, timm, Ultralytics
``classify`` exports). Its result is the frame itself, once per class scoring at least the
score floor (probabilities: as they are when they sum to 1, else softmaxed), best first: a
whole-frame box, the class and its probability, so the filter's score threshold, class
allow-list and cooldown work on a classifier as on a detector.

``raw``: anything no other format fits (a segmentation map, a text-detection probability map,
embeddings). Its outputs are kept as tensors: the result carries no detections, only each
output's summary figures (:class:`~core.detections.OutputSummary`)
(docs/decisions/0028-classifier-and-raw-results.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.detections import Detections, OutputSummary
from core.formats.base import DecodeOptions, Decoder, ModelFacts, ModelFormat, one_output
from core.formats.dense import ULTRALYTICS_TASK
from core.postprocess import classify_topk
from core.preprocess import LetterboxTransform, PreprocessSpec


def decode_classes(
    row: np.ndarray,
    transform: LetterboxTransform,
    class_names: Sequence[str] | None,
    options: DecodeOptions,
) -> Detections:
    """One image's ``(C,)`` scores (:func:`~core.postprocess.classify_topk`: probabilities
    when they sum to 1, else logits, softmaxed) to whole-frame detections: each class at least
    ``options.score_floor``, best first, at most ``options.top_k``."""
    top = classify_topk(row, max(1, options.top_k), class_names=class_names)
    kept = top.scores >= options.score_floor
    height, width = transform.src_size
    boxes = np.tile(np.array([0, 0, width, height], np.float32), (int(kept.sum()), 1))
    return Detections(boxes, top.scores[kept], top.class_ids[kept], top.class_names, top.nonfinite)


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

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        del facts
        names = tuple(class_names) if class_names else None  # once, not per frame

        def decode(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
            return decode_classes(outputs[0], transform, names, options)

        return decode

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

    def decoder(
        self, facts: ModelFacts, class_names: Sequence[str] | None, options: DecodeOptions
    ) -> Decoder:
        """Each output's summary figures (:class:`~core.detections.OutputSummary`) and no
        detections."""
        del class_names, options
        names = [output.name for output in facts.outputs]
        empty = (np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64))

        def decode(outputs: Sequence[np.ndarray], transform: LetterboxTransform) -> Detections:
            del transform
            summaries = tuple(
                OutputSummary.of(name, np.asarray(values))
                for name, values in zip(names, outputs, strict=True)
            )
            return Detections(*empty, outputs=summaries)

        return decode


CLASSIFIER, RAW = Classifier(), Raw()
