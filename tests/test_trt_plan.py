"""core.backends.trt_plan: engine cache keys, profiles, buffer plans and calibration inputs --
the TensorRT backend's decisions, tested without TensorRT. And the import guard."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from core import jpeg
from core.backends import TensorSpec
from core.backends.trt_plan import (
    EngineKey,
    calibration_batches,
    calibration_digest,
    calibration_files,
    engine_path,
    load_cached_engine,
    load_calibration_frame,
    plan_buffers,
    profile_shapes,
    store_engine,
)
from core.errors import BackendUnavailableError, ConfigError
from tests.sample_videos import claiming_size

KEY = EngineKey(
    model_sha256="ab" * 32,
    tensorrt_version="10.3.0",
    gpu_name="Orin (nvgpu)",
    precision="fp16",
    profile="images:1x3x224x224,8x3x224x224,8x3x224x224",
)
DYNAMIC = TensorSpec("images", ("batch", 3, "h", "w"), "float32")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_sha256", "cd" * 32),
        ("tensorrt_version", "10.4.0"),
        ("gpu_name", "NVIDIA A100"),
        ("precision", "int8"),
        ("profile", "images:1x3x224x224,1x3x224x224,8x3x224x224"),
        ("dla_core", 0),
        ("calibration", "ef" * 32),
    ],
)
def test_every_key_part_changes_the_digest_and_file(field: str, value: object) -> None:
    other = dataclasses.replace(KEY, **{field: value})
    assert other.digest() != KEY.digest()
    assert other.filename("yolo") != KEY.filename("yolo")


def test_the_same_key_gives_the_same_file() -> None:
    again = EngineKey(**KEY.as_dict())
    assert again.digest() == KEY.digest()
    name = KEY.filename("detector-s")
    assert name.startswith("detector-s.fp16.") and name.endswith(".engine")


def test_cached_engine_is_reused_only_with_its_exact_key(tmp_path: Path) -> None:
    path = engine_path(tmp_path, "m", KEY)
    assert load_cached_engine(path, KEY) is None  # nothing cached yet
    store_engine(path, KEY, b"serialized engine")
    assert load_cached_engine(path, KEY) == b"serialized engine"
    assert load_cached_engine(path, dataclasses.replace(KEY, gpu_name="other")) is None
    path.write_bytes(b"")
    assert load_cached_engine(path, KEY) is None  # an empty file is never trusted
    assert not list(tmp_path.glob("*.tmp"))


def test_profile_for_a_dynamic_batch() -> None:
    p = profile_shapes(DYNAMIC, batch_size=8, input_size=(640, 640))
    assert (p.min, p.opt, p.max) == ((1, 3, 640, 640), (8, 3, 640, 640), (8, 3, 640, 640))
    p = profile_shapes(DYNAMIC, batch_size=8, input_size=(192, 320), opt_batch=2)
    assert p.opt == (2, 3, 192, 320)
    with pytest.raises(ConfigError, match="opt_batch"):
        profile_shapes(DYNAMIC, batch_size=4, input_size=(64, 64), opt_batch=5)
    with pytest.raises(ConfigError):
        profile_shapes(DYNAMIC, batch_size=0, input_size=(64, 64))


def test_profile_for_a_fixed_batch_is_the_model_batch() -> None:
    fixed = TensorSpec("x", (4, 3, 224, 224), "float32")
    p = profile_shapes(fixed, batch_size=10, input_size=(224, 224))
    assert p.min == p.opt == p.max == (4, 3, 224, 224)


def test_buffer_plan() -> None:
    tensors = [
        ("images", True, (4, 3, 192, 320), "float16"),
        ("detections", False, (4, 1260, 8), "float32"),
    ]
    images, dets = plan_buffers(tensors, rows=8, unified=True)
    assert images.shape == (8, 3, 192, 320) and images.is_input and images.mapped
    assert images.nbytes == 8 * 3 * 192 * 320 * 2 and images.row_bytes == 3 * 192 * 320 * 2
    assert dets.shape == (8, 1260, 8) and dets.nbytes == 8 * 1260 * 8 * 4 and not dets.is_input
    assert not plan_buffers(tensors, rows=4, unified=False)[0].mapped


def test_buffer_plan_refuses_unknown_dims_and_input_counts() -> None:
    with pytest.raises(ConfigError, match="'boxes' has shape \\[1, -1, 4\\]"):
        plan_buffers(
            [("x", True, (1, 3, 8, 8), "float32"), ("boxes", False, (1, -1, 4), "float32")],
            rows=1,
            unified=False,
        )
    with pytest.raises(ConfigError, match="exactly one input"):
        plan_buffers([("y", False, (1, 4), "float32")], rows=1, unified=False)


def test_calibration_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        calibration_files(tmp_path / "none")
    with pytest.raises(ConfigError, match="no calibration frames"):
        calibration_files(tmp_path)
    for i in range(3):
        np.save(tmp_path / f"frame{i}.npy", np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    files = calibration_files(tmp_path)
    assert [f.name for f in files] == ["frame0.npy", "frame1.npy", "frame2.npy"]
    before = calibration_digest(files)
    np.save(tmp_path / "frame2.npy", np.full((8, 8, 3), 9, np.uint8))
    assert calibration_digest(files) != before  # new frames: new calibration, new engine
    assert calibration_batches(3, 4) == [[0, 1, 2, 0]]


def test_calibration_frames_are_checked_before_they_are_read(tmp_path: Path) -> None:
    """A calibration frame is checked like a source's: a header claiming more than
    ``max_pixels`` is refused before anything is allocated, a .npy of another shape or dtype
    is refused rather than cast, and a broken file names itself."""
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    good = tmp_path / "good.npy"
    np.save(good, image)
    assert np.array_equal(load_calibration_frame(good), image)
    data = jpeg.encode(image)
    (tmp_path / "good.jpg").write_bytes(data)
    assert load_calibration_frame(tmp_path / "good.jpg").shape == (48, 64, 3)

    (tmp_path / "huge.jpg").write_bytes(claiming_size(data, 30000, 30000))
    with pytest.raises(ConfigError, match=r"huge.jpg: 30000x30000 is over max_pixels"):
        load_calibration_frame(tmp_path / "huge.jpg")
    with pytest.raises(ConfigError, match=r"good.npy: 64x48 is over max_pixels \(1,000\)"):
        load_calibration_frame(good, max_pixels=1000)
    np.save(tmp_path / "float.npy", image.astype(np.float32))
    with pytest.raises(ConfigError, match=r"float.npy: .*HxWx3 uint8.*float32"):
        load_calibration_frame(tmp_path / "float.npy")
    np.save(tmp_path / "grey.npy", image[..., 0])
    with pytest.raises(ConfigError, match=r"grey.npy: .*got shape \(48, 64\)"):
        load_calibration_frame(tmp_path / "grey.npy")
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match=r"cut.jpg: "):
        load_calibration_frame(tmp_path / "cut.jpg")
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(ConfigError, match=r"text.npy: "):
        load_calibration_frame(tmp_path / "text.npy")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt installed")
def test_tensorrt_backend_without_tensorrt_is_one_line(tmp_path: Path) -> None:
    from core.backends.tensorrt import TensorRTBackend

    with pytest.raises(BackendUnavailableError) as info:
        TensorRTBackend(tmp_path / "m.onnx")
    message = str(info.value)
    assert "\n" not in message and "tensorrt module is not installed" in message
