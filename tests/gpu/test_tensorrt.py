"""The TensorRT backend on a real GPU: engine build, parity with ONNX Runtime, the engine
cache (reuse, and a rebuild when the precision changes), fixed batches, int8 calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.backends.onnxruntime import OnnxRuntimeBackend
from core.preprocess import PreprocessSpec, preprocess_into
from core.sample_media import scene_image
from tests.onnx_models import conv_model, random_images

pytestmark = pytest.mark.usefixtures("tensorrt_stack")
CPU = ["CPUExecutionProvider"]
TOLERANCE = {"fp32": 0.05, "fp16": 0.3}
"""Absolute, on the classifier's logits (standard deviation ~1.4)."""


def _images(backend: object, n: int) -> None:
    spec = backend.preprocess_spec(PreprocessSpec.imagenet())  # type: ignore[attr-defined]
    buffer = backend.input_buffer(n)  # type: ignore[attr-defined]
    for i in range(n):
        preprocess_into(scene_image(240, 320, seed=i), buffer[i], spec)


@pytest.fixture(scope="module")
def reference(classifier: Path) -> np.ndarray:
    ort_backend = OnnxRuntimeBackend(classifier, providers=CPU, batch_size=4)
    _images(ort_backend, 4)
    return ort_backend.infer(4)[0].copy()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime_and_is_cached(
    classifier: Path, reference: np.ndarray, tmp_path: Path, precision: str
) -> None:
    from core.backends.tensorrt import TensorRTBackend

    first = TensorRTBackend(classifier, batch_size=4, precision=precision, cache_folder=tmp_path)
    assert first.engine_cached is False and first.timings.engine_build_s is not None
    _images(first, 4)
    (logits,) = first.infer(4)
    np.testing.assert_allclose(logits, reference, atol=TOLERANCE[precision], rtol=0)
    info = first.describe()
    assert info.name == "tensorrt" and info.precision == precision
    assert info.input_shape == (4, 3, 224, 224)
    kept = logits.copy()
    first.close()

    again = TensorRTBackend(classifier, batch_size=4, precision=precision, cache_folder=tmp_path)
    assert again.engine_cached is True and again.timings.engine_build_s is None
    assert again.engine_file == first.engine_file
    _images(again, 4)
    np.testing.assert_array_equal(again.infer(4)[0], kept)
    (one,) = again.infer(1)
    np.testing.assert_allclose(one, reference[:1], atol=TOLERANCE[precision], rtol=0)
    again.close()


def test_another_precision_builds_another_engine(classifier: Path, tmp_path: Path) -> None:
    from core.backends.tensorrt import TensorRTBackend

    a = TensorRTBackend(classifier, precision="fp32", cache_folder=tmp_path)
    b = TensorRTBackend(classifier, precision="fp16", cache_folder=tmp_path)
    assert a.engine_file != b.engine_file and not b.engine_cached
    assert len(list(tmp_path.glob("*.engine"))) == 2


def test_fixed_batch_is_split(tmp_path: Path) -> None:
    from core.backends.tensorrt import TensorRTBackend

    path = conv_model(tmp_path / "fixed2.onnx", (2, 3, 32, 32))
    images = random_images((5, 3, 32, 32))
    ort_backend = OnnxRuntimeBackend(path, providers=CPU, batch_size=5)
    trt_backend = TensorRTBackend(path, batch_size=5, cache_folder=tmp_path)
    for backend in (ort_backend, trt_backend):
        backend.input_buffer()[:] = images
    for got, expected in zip(trt_backend.infer(5), ort_backend.infer(5), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-3, rtol=1e-3)


def test_int8_calibrates_from_sample_frames(classifier: Path, tmp_path: Path) -> None:
    from core.backends.tensorrt import TensorRTBackend

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(16):
        np.save(frames / f"{i:03d}.npy", scene_image(240, 320, seed=100 + i))
    backend = TensorRTBackend(
        classifier,
        batch_size=4,
        precision="int8",
        calibration_frames=frames,
        calibration_spec=PreprocessSpec.imagenet(),
        cache_folder=tmp_path,
    )
    _images(backend, 4)
    (logits,) = backend.infer(4)
    assert np.isfinite(logits).all() and logits.shape == (4, 1000)
    assert list(tmp_path.glob("*.calibration"))


def test_input_slots_keep_their_own_inputs_and_outputs(tmp_path: Path) -> None:
    from core.backends.tensorrt import TensorRTBackend

    path = conv_model(tmp_path / "conv.onnx")
    images = random_images((2, 3, 3, 32, 32), seed=5)
    ort_backend = OnnxRuntimeBackend(path, providers=CPU, batch_size=3)
    trt_backend = TensorRTBackend(path, batch_size=3, cache_folder=tmp_path, input_slots=2)
    assert trt_backend.describe().input_slots == 2
    for slot in range(2):
        trt_backend.input_buffer(3, slot=slot)[:] = images[slot]
    results = [tuple(o.copy() for o in trt_backend.infer(3, slot=s)) for s in (1, 0)]
    for got, slot in zip(results, (1, 0), strict=True):
        ort_backend.input_buffer(3)[:] = images[slot]
        for a, b in zip(got, ort_backend.infer(3), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3, rtol=1e-3)
    # slot 0's outputs were not touched by running slot 1 again
    kept = trt_backend.infer(3, slot=0)[1].copy()
    trt_backend.infer(3, slot=1)
    np.testing.assert_array_equal(trt_backend.infer(3, slot=0)[1], kept)
