"""The reference detectors at run time: where the committed ONNX files are, what input they
take, and how well they detect on the synthetic camera.

``detector-s`` and ``detector-m`` are small anchor-free YOLO-style networks the project trains
itself on :mod:`core.synthetic` frames (``python -m examples.training.train_detector`` in a
checkout; see ``MODEL_CARD.md`` beside this file). They are committed, not rebuilt: CI never
trains. Each file describes itself in its ONNX metadata (class names, preprocessing, output
layout), and its input is fixed (``images``: ``(batch, 3, H, W)`` float32 RGB 0..1,
letterboxed, as :meth:`core.preprocess.PreprocessSpec.yolo` makes it); the output is the
``(batch, A, 4 + C)`` layout :func:`core.postprocess.decode_detections` reads.

Nothing here needs torch; ONNX Runtime is imported only by the functions that run a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.accuracy import AccuracyReport, evaluate
from core.detections import Detections, GroundTruth
from core.errors import ModelError, ModelNotFoundError
from core.onnxruntime_session import import_onnxruntime, session_options
from core.postprocess import decode_batch
from core.preprocess import LetterboxTransform, PreprocessSpec, preprocess_into
from core.synthetic import SceneConfig, SyntheticCamera

DETECTORS = ("detector-s", "detector-m")
"""The committed detector sizes, smallest first."""
MODEL_DIR = Path(__file__).resolve().parent
INPUT_NAME = "images"
OUTPUT_NAME = "detections"
METADATA_KEY = "edgeloop"
"""ONNX metadata key whose JSON value describes the model (classes, preprocessing, layout)."""
EVAL_SCORE_THRESHOLD = 0.01
"""Score threshold for measuring AP: low, so the precision/recall curve is complete."""


def detector_path(name: str) -> Path:
    """The committed ONNX file of detector ``name`` (``detector-s`` or ``detector-m``)."""
    if name not in DETECTORS:
        raise ModelNotFoundError(f"no detector named {name!r}; known: {', '.join(DETECTORS)}")
    path = MODEL_DIR / f"{name}.onnx"
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing: it is committed with the package; a checkout without it can "
            f"rebuild it with `python -m examples.training.train_detector --size {name[-1]}`"
        )
    return path


@dataclass(frozen=True)
class LoadedDetector:
    """An ONNX Runtime session on a detector with what it takes to feed it and read it."""

    session: Any
    spec: PreprocessSpec
    class_names: tuple[str, ...]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Raw ``(N, A, 4 + C)`` output for an ``(N, 3, H, W)`` input batch."""
        out: np.ndarray = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        return out

    def detect(
        self, frames: Sequence[np.ndarray], **options: Any
    ) -> tuple[list[Detections], list[LetterboxTransform]]:
        """Detections (frame pixels) for each frame; ``options`` go to ``decode_detections``."""
        batch = self.spec.empty_batch(len(frames))
        transforms = [preprocess_into(f, batch[i], self.spec) for i, f in enumerate(frames)]
        options.setdefault("class_names", self.class_names)
        return decode_batch(self.infer(batch), transforms, **options), transforms


def load_detector(path: str | Path, *, threads: int = 1) -> LoadedDetector:
    """Open ``path`` with ONNX Runtime's CPU provider using ``threads`` intra-op threads, with
    the session options the ONNX Runtime backend uses (so the model card's latencies, the
    evaluation and the pipeline run the same graph optimisations)."""
    ort = import_onnxruntime()
    options = session_options(threads, 1)
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors for bad files
        raise ModelError(f"ONNX Runtime cannot load {path}: {exc}") from exc
    meta = json.loads(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "{}"))
    shape = session.get_inputs()[0].shape
    if (
        not meta.get("class_names")
        or len(shape) != 4
        or not all(isinstance(v, int) for v in shape[2:])
    ):
        raise ModelError(
            f"{path} is not an edgeloop detector: it needs '{METADATA_KEY}' metadata with "
            f"class_names and a fixed (batch, 3, H, W) input, got {shape}"
        )
    spec = PreprocessSpec.yolo((int(shape[2]), int(shape[3])))
    return LoadedDetector(session, spec, tuple(meta["class_names"]))


def evaluation_frames(
    config: SceneConfig, count: int, *, spacing: int = 37
) -> Iterator[tuple[np.ndarray, GroundTruth]]:
    """``count`` frames of the scene ``config``, ``spacing`` frames apart (varied scenes)."""
    camera = SyntheticCamera(config)
    for i in range(count):
        yield camera.frame(i * spacing)


def evaluate_detector(
    detector: LoadedDetector,
    config: SceneConfig,
    count: int,
    *,
    batch: int = 8,
) -> tuple[AccuracyReport, list[Detections], list[GroundTruth]]:
    """AP at IoU 0.5 of ``detector`` on ``count`` frames of the synthetic scene ``config``."""
    predictions: list[Detections] = []
    truths: list[GroundTruth] = []
    pending: list[np.ndarray] = []

    def flush() -> None:
        found, _ = detector.detect(pending, score_threshold=EVAL_SCORE_THRESHOLD)
        predictions.extend(found)
        pending.clear()

    for frame, truth in evaluation_frames(config, count):
        pending.append(frame)
        truths.append(truth)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    report = evaluate(predictions, truths, len(detector.class_names))
    return report, predictions, truths


def latency_ms(detector: LoadedDetector, *, runs: int = 50, warmup: int = 5) -> float:
    """Median wall time of one batch-1 inference, in milliseconds."""
    batch = np.random.default_rng(0).random(detector.spec.batch_shape(1), dtype=np.float32)
    for _ in range(warmup):
        detector.infer(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector.infer(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)
