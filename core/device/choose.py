"""Which backend runs here: TensorRT where a GPU and TensorRT (with pycuda) are usable, else
ONNX Runtime with its best execution provider, else ONNX Runtime on the CPU.

An explicit ``--backend`` that cannot run is an error whose one line names everything missing,
so the user fixes it in one go rather than one message at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.device.probe import DeviceProbe
from core.errors import BackendUnavailableError

BACKENDS = ("auto", "onnxruntime", "tensorrt")
ORT_CPU = "CPUExecutionProvider"
ORT_CUDA = "CUDAExecutionProvider"
ORT_TENSORRT = "TensorrtExecutionProvider"


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    """``onnxruntime`` or ``tensorrt``."""
    providers: tuple[str, ...]
    """ONNX Runtime execution providers in order of preference (empty for tensorrt)."""
    reason: str

    def __str__(self) -> str:
        where = f" on {self.providers[0]}" if self.providers else ""
        return f"{self.backend}{where} ({self.reason})"


def ort_providers(probe: DeviceProbe) -> tuple[str, ...]:
    """ONNX Runtime's providers worth using here, best first; GPU ones only with a GPU (and
    its TensorRT provider only where TensorRT itself is installed)."""
    available = probe.runtimes.ort_providers
    chain = []
    if probe.has_gpu:
        if ORT_TENSORRT in available and probe.runtimes.tensorrt is not None:
            chain.append(ORT_TENSORRT)
        if ORT_CUDA in available:
            chain.append(ORT_CUDA)
    chain.append(ORT_CPU)
    return tuple(chain)


def tensorrt_missing(probe: DeviceProbe) -> list[str]:
    """What the tensorrt backend lacks here, as phrases (empty when it can run)."""
    missing = []
    if not probe.has_gpu:
        missing.append(probe.gpu_summary())
    if probe.runtimes.tensorrt is None:
        missing.append(
            "the tensorrt module is not installed (pip install tensorrt; JetPack ships it)"
        )
    if probe.runtimes.pycuda is None:
        missing.append("pycuda is not installed (pip install pycuda)")
    return missing


def _onnxruntime(probe: DeviceProbe, why: str) -> BackendChoice:
    if probe.runtimes.onnxruntime is None:
        raise BackendUnavailableError(
            "onnxruntime backend cannot run here: onnxruntime is not installed "
            "(pip install onnxruntime, or onnxruntime-gpu for CUDA)"
        )
    providers = ort_providers(probe)
    return BackendChoice("onnxruntime", providers, why)


def choose_backend(requested: str, probe: DeviceProbe) -> BackendChoice:
    """The backend for ``requested`` (``auto``, ``onnxruntime``, ``tensorrt``) on ``probe``.

    Raises :class:`BackendUnavailableError` (one line naming what is missing) when the
    requested backend cannot run here, ``ValueError`` for an unknown name.
    """
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; choose from {', '.join(BACKENDS)}")
    missing = tensorrt_missing(probe)
    if requested == "tensorrt":
        if missing:
            raise BackendUnavailableError(
                "tensorrt backend requested but it cannot run here: " + "; ".join(missing)
            )
        return BackendChoice("tensorrt", (), f"requested, on {probe.gpus[0].name}")
    if requested == "onnxruntime":
        return _onnxruntime(probe, "requested")
    if not missing:
        return BackendChoice("tensorrt", (), f"{probe.gpus[0].name} with TensorRT")
    providers = ort_providers(probe)
    if providers[0] != ORT_CPU:
        why = f"{probe.gpus[0].name}; tensorrt backend unusable: " + "; ".join(missing)
    elif probe.has_gpu:
        gpu = probe.gpus[0].name
        why = f"{gpu}, but onnxruntime has no GPU provider (pip install onnxruntime-gpu)"
    else:
        why = probe.gpu_summary()
    return _onnxruntime(probe, why)
