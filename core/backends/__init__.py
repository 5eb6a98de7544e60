"""Inference backends: one small interface over ONNX Runtime and TensorRT.

>>> import numpy as np
>>> from core.backends import open_backend
>>> from core.preprocess import PreprocessSpec, preprocess_into
>>> from core.sample_media import scene_image
>>> backend = open_backend("classifier", "onnxruntime", threads=1, batch_size=2)
>>> spec = backend.preprocess_spec(PreprocessSpec.imagenet())   # size and dtype from the model
>>> batch = backend.input_buffer(2)                             # the session's own input memory
>>> for i in range(2):
...     _ = preprocess_into(scene_image(120, 160, seed=i), batch[i], spec)
>>> (logits,) = backend.infer(2)                                # views of preallocated outputs
>>> logits.shape, backend.describe().provider
((2, 1000), 'CPUExecutionProvider')

``open_backend`` takes a model path (or a reference model's name, see :mod:`core.models`) and
a backend name -- ``auto`` asks :mod:`core.device` -- and returns a loaded, warmed-up
:class:`Backend`: ``input_buffer(n, slot=0)``, ``infer(n, slot=0)``, ``describe()``,
``timings``. See
:mod:`core.backends.base` for the contract, :mod:`core.backends.onnxruntime` and
:mod:`core.backends.tensorrt` for each runtime.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.backends.base import (
    PRECISIONS,
    Backend,
    BackendInfo,
    BatchPlan,
    LoadTimings,
    Outputs,
)
from core.backends.tensor_spec import TensorSpec
from core.device import DeviceProbe, choose_backend, probe
from core.models import reference_model_path

__all__ = [
    "PRECISIONS",
    "Backend",
    "BackendInfo",
    "BatchPlan",
    "LoadTimings",
    "Outputs",
    "TensorSpec",
    "open_backend",
    "resolve_model",
]


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """An existing path as given, else a reference model's path by name (``"classifier"``)."""
    path = Path(model)
    if path.exists() or isinstance(model, os.PathLike) or path.suffix or len(path.parts) > 1:
        return path  # a missing file is reported by the backend, as such
    return reference_model_path(str(model))


def open_backend(
    model: str | os.PathLike[str],
    backend: str = "auto",
    *,
    threads: int | None = None,
    precision: str = "fp32",
    batch_size: int = 1,
    input_size: tuple[int, int] | int | None = None,
    warmup_runs: int = 3,
    input_slots: int = 1,
    spinning: bool = True,
    device: DeviceProbe | None = None,
    **options: Any,
) -> Backend:
    """Load ``model`` on ``backend`` (``auto``, ``onnxruntime`` or ``tensorrt``), warmed up.

    ``threads`` sets ONNX Runtime's intra-op threads (TensorRT ignores it); ``input_size``
    (height, width) is for models whose input size is dynamic (default 640); ``input_slots``
    sets of input and output buffers let a pipeline fill one while another runs
    (``input_buffer(n, slot)``, ``infer(n, slot)``); ``spinning=False`` keeps ONNX Runtime's
    idle intra-op threads from spinning (TensorRT ignores it, as it does ``threads``);
    ``options`` go to the backend's constructor (``providers``, ``dla_core``,
    ``calibration_frames``...). Raises :class:`~core.errors.BackendUnavailableError` (one
    line: what is missing) when the backend cannot run here, :class:`~core.errors.ModelError`
    for a model it cannot use.
    """
    choice = choose_backend(backend, device if device is not None else probe())
    path = resolve_model(model)
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "precision": precision,
        "input_size": input_size,
        "warmup_runs": warmup_runs,
        "input_slots": input_slots,
    }
    if choice.backend == "tensorrt":
        from core.backends.tensorrt import TensorRTBackend  # noqa: PLC0415 - optional stack

        return TensorRTBackend(path, **common, **options)
    from core.backends.onnxruntime import OnnxRuntimeBackend  # noqa: PLC0415

    options.setdefault("providers", choice.providers)
    return OnnxRuntimeBackend(path, threads=threads, spinning=spinning, **common, **options)
