"""ONNX Runtime's CUDA execution provider through the backend: same results as the CPU
provider (within TF32/cuDNN tolerance), same zero-copy, allocation-free contract."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from core.backends import open_backend
from core.backends.onnxruntime import OnnxRuntimeBackend
from core.device import DeviceProbe
from core.preprocess import PreprocessSpec, preprocess_into
from core.sample_media import scene_image
from tests.onnx_models import conv_model, random_images

pytestmark = pytest.mark.usefixtures("ort_cuda")
CPU = ["CPUExecutionProvider"]
GPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]
LOGIT_TOLERANCE = 0.05
"""Absolute, on logits of standard deviation ~1.4: TF32 convolutions round at ~1e-3 each."""


def _fill(backend: OnnxRuntimeBackend, seed: int = 0) -> None:
    spec = backend.preprocess_spec(PreprocessSpec.imagenet())
    for i, image in enumerate(backend.input_buffer()):
        preprocess_into(scene_image(240, 320, seed=seed + i), image, spec)


def test_cuda_matches_cpu_on_the_classifier(classifier: Path) -> None:
    cpu = OnnxRuntimeBackend(classifier, providers=CPU, batch_size=4, threads=2)
    gpu = OnnxRuntimeBackend(classifier, providers=GPU, batch_size=4)
    assert gpu.describe().provider == "CUDAExecutionProvider"
    for backend in (cpu, gpu):
        _fill(backend)
    for n in (1, 4):
        (expected,) = cpu.infer(n)
        (got,) = gpu.infer(n)
        np.testing.assert_allclose(got, expected, atol=LOGIT_TOLERANCE, rtol=0)


def test_cuda_fixed_batch_split_and_two_outputs(tmp_path: Path) -> None:
    path = conv_model(tmp_path / "fixed2.onnx", (2, 3, 32, 32))
    images = random_images((5, 3, 32, 32))
    results = []
    for providers in (CPU, GPU):
        backend = OnnxRuntimeBackend(path, providers=providers, batch_size=5)
        backend.input_buffer()[:] = images
        results.append([o.copy() for o in backend.infer(5)])
    for got, expected in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-3, rtol=1e-3)


def test_cuda_steady_state_allocates_no_python_memory(classifier: Path) -> None:
    backend = OnnxRuntimeBackend(classifier, providers=GPU, batch_size=2)
    tracemalloc.start()
    try:
        for _ in range(20):
            backend.infer(2)
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(50):
            backend.infer(2)
            backend.infer(1)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 256


def test_auto_uses_the_gpu(classifier: Path, device: DeviceProbe) -> None:
    if not device.has_gpu:
        pytest.skip(f"the probe finds no GPU here: {device.gpu_summary()}")
    backend = open_backend(classifier, "auto", warmup_runs=1, device=device)
    info = backend.describe()
    assert info.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") or (
        info.name == "tensorrt"
    )
    assert backend.timings.first_inference_s > 0
