"""core.jpeg against real JPEG bytes: round trips, crops, scaling, buffers, errors, threads.

Cross-checks use OpenCV and Pillow (each with its own libjpeg-turbo) as independent decoders.
No timing here: that the GIL is released (two threads, two cores) is measured in
``bench/micro/jpeg.py``.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pytest

from core import jpeg
from core.errors import CorruptJpegError, FrameError, JpegError
from core.sample_media import scene_image
from tests.required_tools import require_module

U8 = npt.NDArray[np.uint8]


def psnr(a: U8, b: U8) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


@pytest.fixture(scope="module")
def scene() -> U8:
    return scene_image(240, 320, seed=3)


@pytest.fixture(scope="module")
def data(scene: U8) -> bytes:
    return jpeg.encode(scene, quality=85)


# --- encoding -----------------------------------------------------------------------------------


def test_round_trip_quality(scene: U8, data: bytes) -> None:
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    decoded = jpeg.decode(data)
    assert decoded.shape == scene.shape and decoded.dtype == np.uint8
    assert psnr(decoded, scene) > 30.0
    assert psnr(jpeg.decode(jpeg.encode(scene, quality=98)), scene) > psnr(decoded, scene)


def test_size_grows_with_quality(scene: U8) -> None:
    sizes = [len(jpeg.encode(scene, quality=q)) for q in (10, 30, 50, 70, 85, 95, 100)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


@pytest.mark.parametrize("subsampling", ["444", "422", "420", "440", "411", "gray"])
def test_subsampling_is_recorded_in_header(scene: U8, subsampling: jpeg.Subsampling) -> None:
    header = jpeg.read_header(jpeg.encode(scene, subsampling=subsampling))
    assert header == jpeg.JpegHeader(
        320, 240, subsampling, "gray" if subsampling == "gray" else "ycbcr"
    )


def test_444_keeps_more_colour_than_420(scene: U8) -> None:
    full = psnr(jpeg.decode(jpeg.encode(scene, quality=90, subsampling="444")), scene)
    sub = psnr(jpeg.decode(jpeg.encode(scene, quality=90, subsampling="420")), scene)
    assert full > sub


def test_rgb_and_bgr_orders_agree(scene: U8, data: bytes) -> None:
    rgb = np.ascontiguousarray(scene[..., ::-1])
    assert jpeg.encode(rgb, pixel_format="rgb") == data
    np.testing.assert_array_equal(
        jpeg.decode(data, pixel_format="rgb"), jpeg.decode(data)[..., ::-1]
    )


def test_grey_images(scene: U8) -> None:
    grey = np.ascontiguousarray(scene[..., 1])
    data = jpeg.encode(grey)
    assert jpeg.read_header(data).colorspace == "gray"
    assert jpeg.read_header(data).subsampling == "gray"
    assert jpeg.encode(grey[..., None]) == data  # H x W x 1 is grey too
    decoded = jpeg.decode(data, pixel_format="gray")
    assert decoded.shape == grey.shape
    assert psnr(decoded, grey) > 30.0
    as_bgr = jpeg.decode(data)
    assert as_bgr.shape == (*grey.shape, 3)
    np.testing.assert_array_equal(as_bgr[..., 0], decoded)
    np.testing.assert_array_equal(as_bgr[..., 2], decoded)


def test_colour_image_to_greyscale_jpeg(scene: U8) -> None:
    data = jpeg.encode(scene, subsampling="gray")
    assert jpeg.read_header(data).colorspace == "gray"


def test_fast_dct_changes_output_slightly(scene: U8, data: bytes) -> None:
    fast = jpeg.encode(scene, fast_dct=True)
    assert fast != data
    assert psnr(jpeg.decode(fast), scene) > 30.0


# --- crops --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "box", [(0, 0, 320, 240), (17, 9, 211, 130), (1, 1, 2, 2), (300, 3, 320, 4)]
)
def test_crop_of_strided_view_equals_copied_crop(scene: U8, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    view = scene[y0:y1, x0:x1]
    assert np.shares_memory(view, scene)
    copied = np.ascontiguousarray(view)
    expected = jpeg.encode(copied)
    assert jpeg.encode(view) == expected
    assert jpeg.encode_crop(scene, box) == expected
    assert jpeg.read_header(expected)[:2] == (x1 - x0, y1 - y0)


def test_crop_of_padded_ring_like_slot(scene: U8) -> None:
    # A slot whose rows are padded to 64-byte multiples, as a ring may lay them out.
    slot = np.zeros((240, 1024), np.uint8)
    frame = slot[:, : 320 * 3].reshape(240, 320, 3)
    frame[...] = scene
    assert not frame.flags.c_contiguous
    assert jpeg.encode(frame) == jpeg.encode(scene)


def test_crop_view_rounds_outwards_and_clips() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    view = jpeg.crop_view(frame, (10.5, -5.0, 50.0, 20.2))
    assert view.shape == (21, 40, 3)
    assert np.shares_memory(view, frame)
    assert jpeg.crop_view(frame, (150, 90, 400, 300)).shape == (10, 50, 3)


@pytest.mark.parametrize(
    "box", [(50, 50, 50, 60), (300, 0, 400, 10), (0, 0, 10), (0, 0, float("nan"), 5)]
)
def test_crop_outside_or_malformed_box(box: tuple[float, ...]) -> None:
    with pytest.raises(FrameError):
        jpeg.encode_crop(np.zeros((100, 200, 3), np.uint8), box)


# --- decoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "tolerance"), [(0.5, 1.5), (0.25, 1.5), (0.125, 1.5)])
def test_dct_scaling_is_close_to_downscaled_full_decode(
    data: bytes, scale: float, tolerance: float
) -> None:
    cv2 = require_module("cv2")
    small = jpeg.decode(data, scale=scale)
    assert small.shape == (int(np.ceil(240 * scale)), int(np.ceil(320 * scale)), 3)
    assert jpeg.decoded_shape(data, scale=scale) == small.shape
    full = jpeg.decode(data)
    reference = cv2.resize(full, small.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.mean(np.abs(small.astype(np.float64) - reference)) < tolerance


def test_scaled_size_rounds_up() -> None:
    data = jpeg.encode(np.zeros((101, 203, 3), np.uint8))
    assert jpeg.decode(data, scale=0.25).shape == (26, 51, 3)
    assert jpeg.decoded_shape(data, scale=0.125, pixel_format="gray") == (13, 26)


def test_decode_into_preallocated(data: bytes) -> None:
    expected = jpeg.decode(data)
    out = np.empty_like(expected)
    assert jpeg.decode_into(data, out) is out
    np.testing.assert_array_equal(out, expected)


def test_decode_into_view_of_bigger_buffer(data: bytes) -> None:
    expected = jpeg.decode(data, scale=0.5)
    big = np.zeros((200, 300, 3), np.uint8)
    view = big[10:130, 20:180]
    jpeg.decode_into(data, view, scale=0.5)
    np.testing.assert_array_equal(view, expected)
    big[10:130, 20:180] = 0
    assert not big.any()  # nothing written outside the view


def test_decode_into_grey_accepts_2d_and_hw1(data: bytes) -> None:
    expected = jpeg.decode(data, pixel_format="gray")
    out2 = np.empty((240, 320), np.uint8)
    out3 = np.empty((240, 320, 1), np.uint8)
    jpeg.decode_into(data, out2, pixel_format="gray")
    jpeg.decode_into(data, out3, pixel_format="gray")
    np.testing.assert_array_equal(out2, expected)
    np.testing.assert_array_equal(out3[..., 0], expected)


@pytest.mark.parametrize(
    "out",
    [
        np.empty((240, 320, 3), np.float32),
        np.empty((120, 160, 3), np.uint8),
        np.empty((240, 320, 4), np.uint8),
        np.empty((240, 320), np.uint8),
        np.empty((240, 640, 3), np.uint8)[:, ::2],
        np.empty((3, 240, 320), np.uint8).transpose(1, 2, 0),
    ],
    ids=["float32", "wrong-size", "4-channels", "2d-for-bgr", "x-step", "planar"],
)
def test_decode_into_rejects_bad_out(data: bytes, out: U8) -> None:
    before = out.copy()
    with pytest.raises(FrameError):
        jpeg.decode_into(data, out)
    np.testing.assert_array_equal(out, before)


def test_decode_into_rejects_read_only(data: bytes) -> None:
    out = np.empty((240, 320, 3), np.uint8)
    out.flags.writeable = False
    with pytest.raises(FrameError, match="writable"):
        jpeg.decode_into(data, out)


def test_decode_accepts_any_bytes_like(data: bytes) -> None:
    expected = jpeg.decode(data)
    for source in (bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        np.testing.assert_array_equal(jpeg.decode(source), expected)


def test_other_decoders_read_our_bytes_identically(data: bytes) -> None:
    cv2 = require_module("cv2")
    image_module = require_module("PIL.Image")
    ours = jpeg.decode(data).astype(np.int16)
    theirs = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(theirs.astype(np.int16) - ours).max() <= 1
    pil = np.asarray(image_module.open(io.BytesIO(data)).convert("RGB"))[..., ::-1]
    assert np.abs(pil.astype(np.int16) - ours).max() <= 1


def test_we_read_other_encoders_bytes(scene: U8) -> None:
    cv2 = require_module("cv2")
    ok, encoded = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    np.testing.assert_array_equal(jpeg.decode(encoded), cv2.imdecode(encoded, cv2.IMREAD_COLOR))


# --- corrupt input ------------------------------------------------------------------------------


def test_truncated_jpeg(data: bytes) -> None:
    half = data[: len(data) // 2]
    with pytest.raises(CorruptJpegError, match=r"^truncated JPEG: Premature end of JPEG file"):
        jpeg.decode(half)
    partial = jpeg.decode(half, strict=False)
    full = jpeg.decode(data)
    assert partial.shape == full.shape
    np.testing.assert_array_equal(partial[:40], full[:40])  # top decoded
    assert (partial[-8:] == 128).all()  # the missing bottom is grey


@pytest.mark.parametrize("length", [1, 2, 20, 200])
def test_truncated_inside_headers(data: bytes, length: int) -> None:
    with pytest.raises(CorruptJpegError):
        jpeg.decode(data[:length])
    with pytest.raises(CorruptJpegError):
        jpeg.read_header(data[:length])


def test_garbage_and_empty() -> None:
    garbage = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    with pytest.raises(CorruptJpegError, match=r"^not a JPEG"):
        jpeg.decode(garbage)
    with pytest.raises(CorruptJpegError):
        jpeg.decode(b"\xff\xd8" + garbage)
    with pytest.raises(CorruptJpegError, match=r"^empty JPEG data"):
        jpeg.decode(b"")
    with pytest.raises(CorruptJpegError, match=r"^empty JPEG data"):
        jpeg.read_header(b"")


def test_corrupt_entropy_data(data: bytes) -> None:
    damaged = bytearray(data)
    damaged[len(data) * 2 // 5 : len(data) * 2 // 5 + 2] = b"\xff\xd9"  # an EOI mid-scan
    with pytest.raises(CorruptJpegError, match=r"^corrupt JPEG: Corrupt JPEG data"):
        jpeg.decode(bytes(damaged))
    assert jpeg.decode(bytes(damaged), strict=False).shape == (240, 320, 3)
    with pytest.raises(CorruptJpegError, match=r"^corrupt JPEG: Unsupported marker"):
        jpeg.decode(b"\xff\xd8\xff\x3f" + bytes(100))


def test_bad_data_does_not_poison_the_next_call(data: bytes) -> None:
    # libjpeg-turbo 2.1 leaves a handle mid-header after a failed tjDecompressHeader3.
    expected = jpeg.decode(data)
    for bad in (b"\xff\xd8\xff\x3f" + bytes(100), data[:300], data[: len(data) // 2]):
        with pytest.raises(CorruptJpegError):
            jpeg.read_header(bad) if len(bad) < 400 else jpeg.decode(bad)
        assert jpeg.read_header(data).width == 320
        np.testing.assert_array_equal(jpeg.decode(data), expected)


def test_any_damage_is_an_error_never_a_crash(data: bytes) -> None:
    rng = np.random.default_rng(1)
    expected = jpeg.decode(data)
    outcomes = set()
    for trial in range(60):
        damaged = bytearray(data[: int(rng.integers(1, len(data) + 1))] if trial % 2 else data)
        for _ in range(int(rng.integers(1, 8))):
            damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
        for strict in (True, False):
            try:
                jpeg.decode(bytes(damaged), strict=strict)
                outcomes.add("decoded")
            except CorruptJpegError:
                outcomes.add("corrupt")
        np.testing.assert_array_equal(jpeg.decode(data), expected)
    assert outcomes == {"decoded", "corrupt"}


def test_errors_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError):
        jpeg.decode(data[:10])
    with pytest.raises(ValueError):
        jpeg.encode(np.zeros((4, 4, 3), np.float32))


def test_non_bytes_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        jpeg.decode("not bytes")  # type: ignore[arg-type]


# --- bad frames and settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((8, 8, 3), np.float32), "uint8, got float32"),
        (np.zeros((8, 8, 3), np.int16), "uint8, got int16"),
        (np.zeros((8, 8, 4), np.uint8), r"H x W x 3"),
        (np.zeros((8, 8, 2), np.uint8), r"H x W x 3"),
        (np.zeros(64, np.uint8), r"H x W x 3"),
        (np.zeros((0, 8, 3), np.uint8), "1..65535"),
        (np.zeros((8, 16, 3), np.uint8)[:, ::2], "packed"),
        (np.zeros((8, 8, 3), np.uint8)[::-1], "rows"),
        (np.zeros((3, 8, 8), np.uint8).transpose(1, 2, 0), "adjacent"),
    ],
    ids=[
        "float32",
        "int16",
        "4-channels",
        "2-channels",
        "1d",
        "empty",
        "x-step",
        "flipped",
        "planar",
    ],
)
def test_bad_frames(image: U8, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        jpeg.encode(image)


@pytest.mark.parametrize("quality", [0, 101, -5, 85.0, True])
def test_bad_quality(scene: U8, quality: int) -> None:
    with pytest.raises(JpegError, match=r"1\.\.100"):
        jpeg.encode(scene, quality=quality)


def test_bad_names(scene: U8, data: bytes) -> None:
    with pytest.raises(JpegError, match="'444', '422', '420'"):
        jpeg.encode(scene, subsampling="4:2:0")  # type: ignore[arg-type]
    with pytest.raises(JpegError, match="'bgr', 'rgb', 'gray'"):
        jpeg.encode(scene, pixel_format="bgra")  # type: ignore[arg-type]
    with pytest.raises(JpegError, match=r"0\.5, 0\.25"):
        jpeg.decode(data, scale=0.3)
    with pytest.raises(JpegError, match="pixel_format"):
        jpeg.decode(data, pixel_format="yuv")  # type: ignore[arg-type]


# --- encode_into --------------------------------------------------------------------------------


def test_encode_into(scene: U8, data: bytes) -> None:
    roomy = bytearray(jpeg.max_encoded_size(320, 240))
    n = jpeg.encode_into(scene, roomy)
    assert bytes(roomy[:n]) == data
    exact = np.zeros(len(data), np.uint8)  # smaller than max_encoded_size: copied in
    assert jpeg.encode_into(scene, exact) == len(data)
    assert exact.tobytes() == data
    with pytest.raises(JpegError, match=f"needs {len(data)}"):
        jpeg.encode_into(scene, bytearray(100))
    with pytest.raises(FrameError, match="writable"):
        jpeg.encode_into(scene, bytes(len(data)))


# --- threads ------------------------------------------------------------------------------------


def test_threads_encode_like_one_thread() -> None:
    images = [scene_image(120, 160, seed=s) for s in range(6)]
    expected = [jpeg.encode(im, quality=80) for im in images]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(3):
            got = list(pool.map(lambda im: jpeg.encode(im, quality=80), images))
            assert got == expected
            decoded = list(pool.map(jpeg.decode, got))
            for a, b in zip(decoded, expected, strict=True):
                np.testing.assert_array_equal(a, jpeg.decode(b))


def test_each_thread_has_its_own_codec() -> None:
    seen: list[object] = []

    def grab() -> None:
        jpeg.encode(np.zeros((8, 8, 3), np.uint8))
        seen.append(jpeg._codecs.encoder)

    threads = [threading.Thread(target=grab) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grab()
    assert len({id(e) for e in seen}) == 3


def test_sharing_one_native_encoder_across_threads_raises_instead_of_crashing() -> None:
    from native import _jpeg

    shared = _jpeg.Encoder()
    big = scene_image(720, 1280)
    expected = shared.encode(big)
    done = threading.Event()
    refused: list[RuntimeError] = []
    results: list[bytes] = []

    def hog() -> None:  # keeps the handle busy inside libjpeg-turbo, GIL released
        while not done.is_set():
            try:
                results.append(shared.encode(big))
            except RuntimeError:  # the main thread got in first this time
                continue

    worker = threading.Thread(target=hog)
    worker.start()
    try:
        small = np.zeros((8, 8, 3), np.uint8)
        for _ in range(100_000):
            try:
                shared.encode(small)
            except RuntimeError as exc:
                refused.append(exc)
                break
    finally:
        done.set()
        worker.join()
    assert refused and "another thread" in str(refused[0])
    assert results and all(r == expected for r in results)


def test_native_decoder_keeps_the_warning_when_not_strict(data: bytes) -> None:
    from native import _jpeg

    decoder = _jpeg.Decoder()
    decoder.decode(data[: len(data) // 2], strict=False)
    assert decoder.last_warning == "Premature end of JPEG file"
    decoder.decode(data)
    assert decoder.last_warning is None
