"""What the model produces, as metrics: confidence scores per class and frames per batch.

Why batched: a detector gives a few to a hundred detections per frame, and observing each
score into a histogram on the output thread would cost a lock and a bisect per detection on
the per-frame path. Instead the output worker only appends the frame's :class:`Detections`
(a reference, no copy) to a :class:`ScoreBuffer`; the run's monitor drains it a few times a
second and feeds one ``observe_many`` per class. Batch sizes are counted by the batcher (one
list increment per batch) and turned into histogram observations the same way.

=============================================  =========  ===================================
name                                           type       labels / meaning
=============================================  =========  ===================================
``edgeloop_detection_confidence_ratio``        histogram  ``class``, ``model_version``: the
                                                          score of each detection (0..1)
``edgeloop_inference_batch_frames``            histogram  ``model_version``: frames in each
                                                          inference batch
=============================================  =========  ===================================

Labels stay few: at most :data:`MAX_CLASSES` class names per model version get their own
series; the rest are counted under ``class="other"``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from core.detections import Detections
from core.metrics import MetricsRegistry

__all__ = [
    "BATCH_FRAMES_BUCKETS",
    "CONFIDENCE_BUCKETS",
    "MAX_CLASSES",
    "ModelMetrics",
    "ScoreBuffer",
]

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)
"""Score buckets: finer near the top, where a drift in a model's certainty first shows."""

BATCH_FRAMES_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
MAX_CLASSES = 100
"""Class names per model version with their own series (COCO has 80)."""

_BUFFERED_FRAMES = 65536
"""Frames a :class:`ScoreBuffer` holds between drains: minutes of video at any frame rate;
a monitor that stopped draining costs bounded memory (the oldest frames are left out)."""


class ScoreBuffer:
    """Detections waiting for the monitor: appended by the output worker, drained by the
    monitor (``deque`` append and popleft are atomic, so no lock)."""

    def __init__(self, frames: int = _BUFFERED_FRAMES) -> None:
        self._frames: deque[Detections] = deque(maxlen=frames)

    def add(self, detections: Detections | None) -> None:
        """One frame's detections (None or empty: nothing to record)."""
        if detections is not None and len(detections.scores):
            self._frames.append(detections)

    def drain(self) -> list[Detections]:
        out: list[Detections] = []
        frames = self._frames
        while True:
            try:
                out.append(frames.popleft())
            except IndexError:
                return out


class ModelMetrics:
    """Registers the model-output families and feeds them from the monitor thread."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.confidence = registry.histogram(
            "edgeloop_detection_confidence_ratio",
            "Confidence score of each detection, per class and model version",
            ("class", "model_version"),
            buckets=CONFIDENCE_BUCKETS,
        )
        self.batch_frames = registry.histogram(
            "edgeloop_inference_batch_frames",
            "Frames per inference batch",
            ("model_version",),
            buckets=BATCH_FRAMES_BUCKETS,
        )
        self.version = "unknown"
        self._classes: dict[str, set[str]] = {}
        self._sizes_fed: list[int] = []

    def _label(self, name: str) -> str:
        seen = self._classes.setdefault(self.version, set())
        if name in seen:
            return name
        if len(seen) < MAX_CLASSES:
            seen.add(name)
            return name
        return "other"

    def observe_scores(self, frames: Sequence[Detections]) -> None:
        """Every score of ``frames`` into its class's histogram (one ``observe_many`` each)."""
        if not frames:
            return
        classes = np.concatenate([d.classes for d in frames])
        scores = np.concatenate([d.scores for d in frames])
        names = next((d.class_names for d in frames if d.class_names is not None), None)
        order = np.argsort(classes, kind="stable")
        classes, scores = classes[order], scores[order]
        ids, starts = np.unique(classes, return_index=True)
        bounds = [*starts.tolist(), len(classes)]
        for i, class_id in enumerate(ids.tolist()):
            name = names[class_id] if names is not None and class_id < len(names) else str(class_id)
            self.confidence.labels(
                **{"class": self._label(name), "model_version": self.version}
            ).observe_many(scores[bounds[i] : bounds[i + 1]])

    def observe_batch_sizes(self, sizes: Sequence[int]) -> None:
        """``sizes[n]``: batches of ``n`` frames so far (a running count); the change since
        the last call goes into the histogram."""
        fed = self._sizes_fed
        fed.extend([0] * (len(sizes) - len(fed)))
        delta = np.asarray(sizes, dtype=np.int64) - np.asarray(fed[: len(sizes)], dtype=np.int64)
        if delta.sum() <= 0:
            return
        self._sizes_fed = list(sizes)
        frames = np.repeat(np.arange(len(sizes), dtype=np.float64), np.maximum(delta, 0))
        self.batch_frames.labels(model_version=self.version).observe_many(frames)
