"""How edgeloop opens ONNX Runtime: the guarded import and the session options every session
uses.

One home for both, below :mod:`core.backends.onnxruntime` (the backend) and
:mod:`core.models.detector` (evaluating the reference detectors), so the backend, the model
card's figures and bench's bare session run the same graph optimisations, and the model
catalogue needs nothing from the backends package (which resolves model names through it).
Importing this module does not import ``onnxruntime``; :func:`import_onnxruntime` does.
"""

from __future__ import annotations

from typing import Any

from core.errors import BackendUnavailableError, ConfigError


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a one-line :class:`BackendUnavailableError`."""
    try:
        import onnxruntime  # noqa: PLC0415 - optional at import time of core
    except ImportError as exc:
        raise BackendUnavailableError(
            f"onnxruntime is not installed ({exc}): pip install onnxruntime "
            "(or onnxruntime-gpu for CUDA and TensorRT execution providers)"
        ) from exc
    return onnxruntime


def session_options(
    threads: int | None = None, inter_op_threads: int | None = None, *, spinning: bool = True
) -> Any:
    """The ``SessionOptions`` the ONNX Runtime backend uses (bench gives the same to a bare
    session); :class:`~core.errors.ConfigError` for a thread count below 1.

    ``spinning=False`` stops the intra-op threads from spinning while they wait for work
    (``session.intra_op.allow_spinning``): a spinning thread holds a core the pipeline's other
    stages need; a lone inference benchmark is a little faster with it."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    for name, value in (("threads", threads), ("inter_op_threads", inter_op_threads)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1 (or None for the default), got {value}")
    if threads is not None:
        options.intra_op_num_threads = threads
    if inter_op_threads is not None:
        options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
