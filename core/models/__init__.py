"""Reference models the project builds or ships itself, by name: ``reference_model_path(name)``.

A name maps to a function that returns the model's path, building or fetching it on first use,
so ``python -m bench`` and the tests run the same networks on every machine with no download.
Any user ONNX file works the same way: the backends take a path (``core.backends``).

>>> "classifier" in REFERENCE_MODELS
True
>>> reference_model_path("detector").name            # trained, committed: see MODEL_CARD.md
'detector-s.onnx'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.errors import ModelNotFoundError


def _classifier() -> Path:
    from core.models.classifier import classifier_path  # noqa: PLC0415 - imports onnx

    return classifier_path()


def _heavy_detector() -> Path:
    from core.models.heavy_detector import heavy_detector_path  # noqa: PLC0415 - imports onnx

    return heavy_detector_path()


def _detector(name: str) -> Callable[[], Path]:
    def resolve() -> Path:
        from core.models.detector import detector_path  # noqa: PLC0415 - keeps import light

        return detector_path(name)

    return resolve


REFERENCE_MODELS: dict[str, Callable[[], Path]] = {
    "classifier": _classifier,
    "detector": _detector("detector-s"),
    "detector-s": _detector("detector-s"),
    "detector-m": _detector("detector-m"),
    "yolov8-heavy": _heavy_detector,
}
"""Name -> a function returning the model file's path (built or cached on first call)."""


def reference_model_path(name: str) -> Path:
    """Path of the reference model ``name``; :class:`ModelNotFoundError` for an unknown name."""
    try:
        resolve = REFERENCE_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(REFERENCE_MODELS))
        raise ModelNotFoundError(f"no reference model named {name!r}; known: {known}") from None
    return resolve()
