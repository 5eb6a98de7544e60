"""Every preprocess implementation against the float64 reference in ``tests/reference.py``.

Errors are measured in the pixel domain -- grey levels 0..255, before mean and std, i.e.
``(out - channel_bias) / channel_scale`` -- so one bound fits every normalisation:

* ``CONTRACT_TOL`` = 1.0 grey level (1/255 of the 0..1 range): what the contract promises, and
  what any future implementation (fixed point, say) must meet;
* ``FLOAT32_TOL`` = 0.01: what the float32 implementations reach (weights in double, float32
  sums; the worst seen is ~1e-4). A wrong tap, a half-pixel shift or a swapped channel is many
  grey levels off, so this catches real bugs the contract bound could hide;
* float16 outputs: ``FLOAT32_TOL`` plus half a float16 ulp of the output value, their rounding.

Padding is exact: every pad element equals the spec's normalised pad in the output dtype.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, FrameError, KernelSelectionError
from core.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessSpec,
    preprocess_batch,
    preprocess_into,
)
from core.sample_media import scene_image
from native import kernels
from tests import reference
from tests.kernel_params import each_impl
from tests.required_tools import require_module

CONTRACT_TOL = 1.0
FLOAT32_TOL = 0.01


def expected(frame: np.ndarray, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """The exact (float64) output for ``spec``, from its public fields only, and the region."""
    region, _ = spec.layout(frame.shape[0], frame.shape[1])
    std = np.asarray(spec.std, np.float64)
    scale = spec.scale / std
    bias = -np.asarray(spec.mean, np.float64) / std
    pad = np.asarray(spec.pad_value, np.float64) * scale + bias
    interpolation = "bilinear" if spec.interpolation == "auto" else spec.interpolation
    swap = spec.input_order != spec.output_order
    return reference.preprocess(frame, spec.size, region, scale, bias, pad, swap, interpolation)


def pixel_error(
    out: np.ndarray, want: np.ndarray, inside: np.ndarray, spec: PreprocessSpec
) -> float:
    """Largest error in the image region, in grey levels, less float16 rounding if any."""
    scale = np.abs(spec.channel_scale.astype(np.float64))[:, None]
    got = out.astype(np.float64)[:, inside]
    exact = want[:, inside]
    rounding = 0.0
    if out.dtype == np.float16:
        rounding = np.spacing(np.abs(out[:, inside]).astype(np.float16)).astype(np.float64) / 2
    return float(np.max((np.abs(got - exact) - rounding) / scale, initial=0.0))


def check(out: np.ndarray, frame: np.ndarray, spec: PreprocessSpec) -> None:
    want, inside = expected(frame, spec)
    error = pixel_error(out, want, inside, spec)
    assert error <= CONTRACT_TOL
    assert error <= FLOAT32_TOL, f"{error:.4f} grey levels off the exact resize"
    pad = spec.normalised_pad.astype(out.dtype)
    for plane in range(3):
        assert np.array_equal(out[plane][~inside], np.full((~inside).sum(), pad[plane]))


def run(frame: np.ndarray, spec: PreprocessSpec, impl: str) -> np.ndarray:
    fill = np.nan if spec.numpy_dtype.kind == "f" else 7  # what the kernel must overwrite
    out = np.full(spec.batch_shape(1)[1:], fill, dtype=spec.numpy_dtype)
    preprocess_into(frame, out, spec, impl=impl)
    return out


RESIZE_CASES = {
    "down-odd": ((37, 53), dict(size=(24, 40))),
    "down-imagenet": ((61, 83), dict(size=(20, 20), mean=IMAGENET_MEAN, std=IMAGENET_STD)),
    "up": ((20, 30), dict(size=(45, 61), input_order="RGB")),
    "up-down": ((30, 12), dict(size=(11, 35), output_order="BGR")),
    "area": ((61, 47), dict(size=(16, 13), interpolation="area")),
    "area-x4": ((64, 96), dict(size=(16, 24), interpolation="area")),
    "area-up-down": ((30, 40), dict(size=(50, 15), interpolation="area")),
    "one-pixel": ((1, 1), dict(size=(5, 7))),
    "one-row": ((1, 9), dict(size=(3, 4))),
    "one-column": ((9, 1), dict(size=(4, 3), interpolation="area")),
    "letterbox-wide": ((48, 80), dict(size=(64, 64), mode="letterbox")),
    "letterbox-tall": ((80, 47), dict(size=(32, 40), mode="letterbox", pad_value=(0, 128, 255))),
    "letterbox-area": ((90, 160), dict(size=(40, 40), mode="letterbox", interpolation="area")),
}


@each_impl
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", list(RESIZE_CASES), ids=list(RESIZE_CASES))
def test_matches_reference(impl: str, dtype: str, case: str) -> None:
    (height, width), options = RESIZE_CASES[case]
    spec = PreprocessSpec(dtype=dtype, **options)  # type: ignore[arg-type]
    frame = scene_image(max(height, 8), max(width, 8), seed=3)[:height, :width]
    check(run(frame, spec, impl), frame, spec)


@each_impl
def test_letterbox_geometry(impl: str) -> None:
    spec = PreprocessSpec.yolo((64, 64))
    frame = scene_image(48, 80)
    (x0, y0, w, h), transform = spec.layout(48, 80)
    assert (x0, y0, w, h) == (0, 13, 64, 38)  # r = 0.8: 64 x round(38.4), centred
    assert (transform.pad_x, transform.pad_y) == (0, 13)
    out = run(frame, spec, impl)
    pad = spec.normalised_pad[0]  # 114 normalised as a pixel of 114 is: 114 * float32(1/255)
    assert pad == np.float32(114) * np.float32(1 / 255)
    assert np.all(out[:, :13] == pad)
    assert np.all(out[:, 13 + 38 :] == pad)
    check(out, frame, spec)


@each_impl
def test_crop_with_padded_rows_needs_no_copy(impl: str) -> None:
    big = scene_image(90, 120, seed=5)
    crop = big[7:70, 11:100]  # rows 360 bytes apart, 267 used
    assert not crop.flags.c_contiguous
    spec = PreprocessSpec.yolo((48, 48), dtype="float16")
    out = run(crop, spec, impl)
    assert np.array_equal(out, run(np.ascontiguousarray(crop), spec, impl))
    check(out, crop, spec)


@each_impl
def test_read_only_frame(impl: str) -> None:
    frame = scene_image(40, 50)
    frame.flags.writeable = False
    spec = PreprocessSpec((16, 16))
    check(run(frame, spec, impl), frame, spec)


@each_impl
def test_writes_only_its_slice_of_the_batch(impl: str) -> None:
    spec = PreprocessSpec.yolo((24, 32))
    batch = np.full(spec.batch_shape(3), 7.5, np.float32)
    preprocess_into(scene_image(50, 30), batch[1], spec, impl=impl)
    assert np.all(batch[0] == 7.5)
    assert np.all(batch[2] == 7.5)
    assert not np.any(batch[1] == 7.5)


@each_impl
@pytest.mark.parametrize(
    ("input_order", "output_order", "first_plane"),
    [("BGR", "RGB", 30), ("BGR", "BGR", 10), ("RGB", "RGB", 10), ("RGB", "BGR", 30)],
)
def test_channel_order(impl: str, input_order: str, output_order: str, first_plane: int) -> None:
    frame = np.empty((10, 10, 3), np.uint8)
    frame[...] = (10, 20, 30)
    spec = PreprocessSpec(
        (4, 4),
        input_order=input_order,  # type: ignore[arg-type]
        output_order=output_order,  # type: ignore[arg-type]
        scale=1.0,
    )
    out = run(frame, spec, impl)
    assert np.all(out[0] == first_plane)
    assert np.all(out[1] == 20)
    assert np.all(out[2] == 40 - first_plane)


@each_impl
def test_auto_uses_area_from_twice_downscale(impl: str) -> None:
    frame = scene_image(60, 80)
    auto, area = (
        PreprocessSpec((20, 20), interpolation="auto"),
        PreprocessSpec((20, 20), interpolation="area"),
    )
    assert np.array_equal(run(frame, auto, impl), run(frame, area, impl))
    mild_auto = PreprocessSpec((40, 60), interpolation="auto")
    assert np.array_equal(run(frame, mild_auto, impl), run(frame, PreprocessSpec((40, 60)), impl))


@each_impl
@pytest.mark.parametrize("scale", [1000.0, 1e-7, 1 / 255], ids=["overflow", "subnormal", "unit"])
def test_float16_is_float32_rounded_to_nearest_even(impl: str, scale: float) -> None:
    """Down to the bit: the float16 path rounds the float32 result once, like NumPy."""
    frame = scene_image(33, 47)
    consts = np.full(3, scale, np.float32), np.zeros(3, np.float32), np.full(3, 7e4, np.float32)
    out32 = np.empty((3, 20, 24), np.float32)
    out16 = np.empty((3, 20, 24), np.float16)
    fn = kernels.get("preprocess_into", impl)
    for out in (out32, out16):
        fn(frame, out, (2, 1, 20, 17), *consts, True, kernels.BILINEAR)
    with np.errstate(over="ignore"):  # beyond 65504 is infinity, as intended
        want = out32.astype(np.float16)
    assert np.array_equal(out16.view(np.uint16), want.view(np.uint16))


def test_matches_opencv_blob_from_image() -> None:
    """The default spec samples like cv2.dnn.blobFromImage (which rounds to uint8 in between)."""
    cv2 = require_module("cv2")
    frame = scene_image(120, 200)
    spec = PreprocessSpec((56, 72))
    blob = cv2.dnn.blobFromImage(frame, 1 / 255, (72, 56), swapRB=True)[0]
    out = run(frame, spec, kernels.implementation_for("preprocess_into"))
    assert np.max(np.abs(out - blob)) * 255 <= CONTRACT_TOL


def test_transform_maps_boxes_both_ways() -> None:
    spec = PreprocessSpec.yolo((64, 64))
    _, transform = spec.layout(48, 80)  # scale 0.8, 13 rows of padding above
    frame_boxes = np.array([[0, 0, 80, 48], [10.0, 5.5, 20.25, 30]])
    network = transform.to_network(frame_boxes)
    assert np.allclose(network[0], [0, 13, 64, 13 + 38])
    assert np.allclose(transform.to_source(network), frame_boxes)
    clipped = transform.to_source(np.array([[-5, 0, 70, 64]], np.float32))
    assert clipped.dtype == np.float32
    assert np.allclose(clipped, [[0, 0, 80, 48]])  # padding and beyond map to the frame edge


def test_resize_transform_is_a_plain_scale() -> None:
    _, transform = PreprocessSpec((100, 50)).layout(200, 200)
    assert (transform.scale_x, transform.scale_y, transform.pad_x, transform.pad_y) == (
        0.25,
        0.5,
        0,
        0,
    )
    assert transform.src_size == (200, 200)


@each_impl
def test_batch_of_frames_of_different_sizes(impl: str) -> None:
    spec = PreprocessSpec.yolo((32, 32))
    frames = [scene_image(40, 60), scene_image(60, 40, seed=1)]
    batch = np.full(spec.batch_shape(3), -1.0, np.float32)
    transforms = preprocess_batch(frames, batch, spec, impl=impl)
    assert [t.src_size for t in transforms] == [(40, 60), (60, 40)]
    for frame, out in zip(frames, batch, strict=False):
        check(out, frame, spec)
    assert np.all(batch[2] == -1.0)
    with pytest.raises(FrameError, match="do not fit"):
        preprocess_batch(frames * 2, batch, spec, impl=impl)


SPEC = PreprocessSpec((8, 8))
GOOD_FRAME = scene_image(16, 16)
GOOD_OUT = SPEC.empty_batch(1)[0]
BAD_CALLS = {
    "frame-float": (GOOD_FRAME.astype(np.float32), GOOD_OUT, "uint8"),
    "frame-bgra": (np.zeros((16, 16, 4), np.uint8), GOOD_OUT, "three colour channels"),
    "frame-grey": (np.zeros((16, 16), np.uint8), GOOD_OUT, "three colour channels"),
    "frame-empty": (np.zeros((0, 16, 3), np.uint8), GOOD_OUT, "empty"),
    "frame-channel-stride": (np.zeros((16, 16, 4), np.uint8)[..., :3], GOOD_OUT, "packed"),
    "frame-flipped": (GOOD_FRAME[::-1], GOOD_OUT, "ascontiguousarray"),
    "frame-list": (GOOD_FRAME.tolist(), GOOD_OUT, "NumPy array"),
    "out-shape": (GOOD_FRAME, np.zeros((3, 8, 9), np.float32), r"shape \(3, 8, 8\)"),
    "out-batch": (GOOD_FRAME, SPEC.empty_batch(1), "batch"),
    "out-dtype": (GOOD_FRAME, np.zeros((3, 8, 8), np.float64), "float32"),
    "out-strided": (GOOD_FRAME, np.zeros((3, 8, 16), np.float32)[..., ::2], "C-contiguous"),
    "out-transposed": (GOOD_FRAME, np.zeros((8, 8, 3), np.float32).transpose(2, 0, 1), "C-cont"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS), ids=list(BAD_CALLS))
def test_bad_input_raises_frame_error(case: str) -> None:
    frame, out, message = BAD_CALLS[case]
    with pytest.raises(FrameError, match=message):
        preprocess_into(frame, out, SPEC)  # type: ignore[arg-type]


def test_read_only_output_is_refused() -> None:
    out = SPEC.empty_batch(1)[0]
    out.flags.writeable = False
    with pytest.raises(FrameError, match="writeable"):
        preprocess_into(GOOD_FRAME, out, SPEC)


def test_an_int_size_means_a_square() -> None:
    assert PreprocessSpec(size=32).size == (32, 32)
    assert PreprocessSpec.yolo(320).size == (320, 320)


@pytest.mark.parametrize(
    "options",
    [
        dict(size=(0, 8)),
        dict(size=(8,)),
        dict(size=-3),
        dict(size=2.5),
        dict(size=(8, 8), mode="stretch"),
        dict(size=(8, 8), interpolation="cubic"),
        dict(size=(8, 8), std=(1, 0, 1)),
        dict(size=(8, 8), mean=(1, 2)),
        dict(size=(8, 8), scale=float("nan")),
        dict(size=(8, 8), dtype="float64"),
    ],
)
def test_bad_spec_raises_config_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PreprocessSpec(**options)  # type: ignore[arg-type]


def test_unknown_implementation_is_refused() -> None:
    with pytest.raises(KernelSelectionError, match="unknown kernel implementation"):
        preprocess_into(GOOD_FRAME, GOOD_OUT, SPEC, impl="fortran")


@each_impl
@pytest.mark.parametrize(
    ("region", "shape"),
    [((0, 0, 9, 8), (3, 8, 8)), ((-1, 0, 4, 4), (3, 8, 8)), ((0, 0, 0, 4), (3, 8, 8))],
)
def test_kernel_rechecks_region(impl: str, region: tuple[int, ...], shape: tuple[int, ...]) -> None:
    """Called directly, a kernel raises ValueError instead of writing out of bounds."""
    one = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="region"):
        kernels.get("preprocess_into", impl)(
            GOOD_FRAME, np.zeros(shape, np.float32), region, one, one, one, False, 0
        )


@each_impl
@pytest.mark.parametrize("case", ["down-odd", "up", "letterbox-tall"])
def test_uint8_is_the_float_result_rounded_to_whole_levels(impl: str, case: str) -> None:
    """A uint8 input (TF exports) gets the pixels the float32 path computes, rounded; its
    padding keeps its value."""
    (height, width), options = RESIZE_CASES[case]
    frame = scene_image(max(height, 8), max(width, 8), seed=3)[:height, :width]
    as_float = run(frame, PreprocessSpec(scale=1.0, **options), impl)  # type: ignore[arg-type]
    spec = PreprocessSpec(scale=1.0, dtype="uint8", **options)  # type: ignore[arg-type]
    out = run(frame, spec, impl)
    assert out.dtype == np.uint8
    assert np.array_equal(out, np.clip(np.rint(as_float), 0, 255).astype(np.uint8))


def test_uint8_refuses_normalisation() -> None:
    with pytest.raises(ConfigError, match=r"a uint8 input takes pixels as they are.*scale 0.0039"):
        PreprocessSpec(8, dtype="uint8")
    with pytest.raises(ConfigError, match="mean"):
        PreprocessSpec.imagenet(8, scale=1.0, dtype="uint8")
