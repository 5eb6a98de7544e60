"""GPU fixtures: each says, when it skips, exactly what this machine lacks.

``ort_cuda``: onnxruntime-gpu's CUDA execution provider and a GPU (CuPy, PyTorch or
cuda-python are not needed). ``tensorrt_stack``: a GPU, the ``tensorrt`` module and ``pycuda``.
A GPU machine with onnxruntime-gpu but no TensorRT runs the first group and skips the second.
``real_nvml``: the real ``pynvml`` (nvidia-ml-py), initialised, with a driver that reports at
least one GPU -- no stand-in: what the tests compare our readings with is NVML's own answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from core.device import DeviceProbe, probe, tensorrt_missing
from core.models.classifier import classifier_path
from tests.onnx_models import conv_model

CUDA = "CUDAExecutionProvider"


@pytest.fixture(scope="session")
def device() -> DeviceProbe:
    return probe()


@pytest.fixture(scope="session")
def ort_cuda(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The CUDA provider is offered *and* starts (CUDA and cuDNN libraries found): a session
    that silently fell back to the CPU would make every comparison below vacuous."""
    if CUDA not in ort.get_available_providers():
        pytest.skip(
            f"onnxruntime {ort.__version__} offers {ort.get_available_providers()}, not {CUDA} "
            "(pip install onnxruntime-gpu)"
        )
    path = conv_model(tmp_path_factory.mktemp("cuda") / "probe.onnx")
    session = ort.InferenceSession(str(path), providers=[CUDA, "CPUExecutionProvider"])
    if CUDA not in session.get_providers():
        pytest.skip(f"{CUDA} is offered but did not start (no GPU, or CUDA/cuDNN libraries)")


@pytest.fixture(scope="session")
def tensorrt_stack(device: DeviceProbe) -> None:
    missing = tensorrt_missing(device)
    if missing:
        pytest.skip("tensorrt backend cannot run here: " + "; ".join(missing))


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return classifier_path(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def real_nvml() -> Iterator[Any]:
    """The real ``pynvml`` module with NVML initialised (shut down after the session)."""
    try:
        import pynvml
    except ImportError as exc:
        pytest.skip(f"pynvml is not installed ({exc}; pip install nvidia-ml-py)")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded...: no driver here
        pytest.skip(f"nvmlInit failed ({type(exc).__name__}: {exc}): no NVIDIA driver here")
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            pytest.skip("NVML answers but reports 0 GPUs")
        yield pynvml
    finally:
        pynvml.nvmlShutdown()
