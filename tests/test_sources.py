"""Sources without video decoding: config and factory, the synthetic camera, image folders, and
the V4L2 source's error when the device does not exist (CI has no camera)."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core import jpeg
from core.config import from_mapping, load
from core.errors import ConfigError, FrameError, SourceError, SourceFrameError
from core.sources import Source, SourceConfig, open_source
from core.sources.images import ImageDirSource
from core.sources.synthetic import SyntheticSource
from core.sources.v4l2 import V4L2Source, device_path
from core.synthetic import SceneConfig, SyntheticCamera
from tests.required_tools import require_module
from tests.sample_videos import HEIGHT, WIDTH, claiming_size, frames, padded

# -- config and factory ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Pipeline:
    sources: tuple[SourceConfig, ...] = (SourceConfig(),)


def test_defaults_are_one_synthetic_1080p_stream() -> None:
    config = SourceConfig()
    assert (config.kind, config.width, config.height, config.uri) == ("synthetic", 1920, 1080, None)
    assert isinstance(open_source(config, 0), SyntheticSource)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sources": [{"timeout_s": 0}]}, r"^sources\[0\]\.timeout_s: must be > 0"),
        ({"sources": [{}, {"kind": "file"}]}, r"^sources\[1\]\.uri: a 'file' source needs one"),
        ({"sources": [{"kind": "camera"}]}, r"^sources\[0\]\.kind: must be one of 'synthetic'"),
        ({"sources": [{"url": "x"}]}, r"^sources\[0\]\.url: unknown key"),
        ({"sources": [{"decode_threads": 99}]}, r"^sources\[0\]\.decode_threads: must be between"),
        ({"sources": [{"reconnect_attempts": -2}]}, r"reconnect_attempts: must be >= -1"),
    ],
)
def test_config_errors_point_at_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(_Pipeline, data)


def test_config_checks_apply_when_built_in_code_too() -> None:
    with pytest.raises(ConfigError, match="start_index: must be >= 0"):
        SourceConfig(start_index=-1)
    with pytest.raises(ConfigError, match="uri: a 'rtsp' source needs one"):
        SourceConfig(kind="rtsp")


def test_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - kind: images\n    uri: frames/\n    loop: true\n")
    config = load(_Pipeline, path)
    assert config.sources == (SourceConfig(kind="images", uri="frames/", loop=True),)


@pytest.mark.parametrize(
    ("kind", "uri", "message"),
    [
        ("rtsp", "/videos/a.mp4", r"uri: '/videos/a.mp4' is not a stream URL"),
        ("v4l2", "video0", r"uri: 'video0' is not a V4L2 device"),
    ],
)
def test_factory_rejects_a_uri_of_the_wrong_kind(kind: str, uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_source(SourceConfig(kind=kind, uri=uri), 0)  # type: ignore[arg-type]


# -- synthetic ------------------------------------------------------------------------------

SMALL = SourceConfig(width=WIDTH, height=HEIGHT, seed=3)


def test_synthetic_renders_into_a_padded_slot_with_ground_truth() -> None:
    camera = SyntheticCamera(SceneConfig(width=WIDTH, height=HEIGHT, seed=3))
    with open_source(SMALL, stream_id=4) as source:
        assert source.open() == (HEIGHT, WIDTH)
        assert source.name == "synthetic:4" and source.has_ground_truth()
        assert source.nominal_fps == 30.0
        out = padded(HEIGHT, WIDTH)
        for index in range(3):
            frame = source.read_into(out)
            assert frame is not None and frame.index == index and frame.truth is not None
            expected, truth = camera.frame(index)
            assert np.array_equal(out, expected)
            assert np.array_equal(frame.truth.boxes, truth.boxes)


def test_synthetic_start_index_and_monotonic_capture_time() -> None:
    source = open_source(SourceConfig(width=64, height=48, start_index=1000), 0)
    out = np.empty((*source.open(), 3), np.uint8)
    first, second = source.read_into(out), source.read_into(out)
    assert first is not None and second is not None
    assert (first.index, second.index) == (1000, 1001)
    assert second.capture_ns >= first.capture_ns > 0


def test_read_before_open_and_a_wrong_buffer_are_the_callers_bug() -> None:
    source = open_source(SourceConfig(width=64, height=48), 0)
    with pytest.raises(SourceError, match="before open"):
        source.read_into(np.empty((48, 64, 3), np.uint8))
    source.open()
    with pytest.raises(FrameError, match="out is 64x32, the stream is 64x48"):
        source.read_into(np.empty((32, 64, 3), np.uint8))


# -- image directory ------------------------------------------------------------------------


def _image_dir(tmp_path: Path, count: int = 4) -> tuple[Path, list[np.ndarray]]:
    """JPEGs named f1.jpg .. fN.jpg (so plain sorting would put f10 before f2)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    images = list(frames(count))
    for i, image in enumerate(images, start=1):
        (folder / f"f{i}.jpg").write_bytes(jpeg.encode(image, quality=95))
    (folder / "notes.txt").write_text("not an image")
    return folder, images


def _images(folder: Path, **settings: object) -> Source:
    source = open_source(SourceConfig(kind="images", uri=str(folder), **settings), 0)  # type: ignore[arg-type]
    source.open()
    return source


def test_images_decode_in_natural_order_straight_into_the_slot(tmp_path: Path) -> None:
    folder, _ = _image_dir(tmp_path, 11)
    source = _images(folder)
    assert isinstance(source, ImageDirSource)
    assert [p.name for p in source.files][:3] == ["f1.jpg", "f2.jpg", "f3.jpg"]
    assert source.files[-1].name == "f11.jpg"
    out = padded(HEIGHT, WIDTH)
    frame = source.read_into(out)
    assert frame is not None and frame.index == 0 and frame.truth is None
    assert np.array_equal(out, jpeg.decode((folder / "f1.jpg").read_bytes()))


def test_images_end_or_loop(tmp_path: Path) -> None:
    folder, _ = _image_dir(tmp_path, 3)
    out = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    once = _images(folder, start_index=1)
    assert [f.index for f in iter(lambda: once.read_into(out), None)] == [1, 2]
    looping = _images(folder, loop=True)
    indices = [looping.read_into(out) for _ in range(7)]
    assert [f.index for f in indices if f is not None] == list(range(7))
    assert np.array_equal(out, jpeg.decode((folder / "f1.jpg").read_bytes()))  # 6 % 3 == 0


def test_png_images_are_read_too(tmp_path: Path) -> None:
    cv2 = require_module("cv2")
    folder = tmp_path / "png"
    folder.mkdir()
    image = next(frames(1))
    assert cv2.imwrite(str(folder / "0.png"), image)
    out = padded(HEIGHT, WIDTH)
    assert _images(folder).read_into(out) is not None
    assert np.array_equal(out, image)  # PNG is lossless


def test_wrong_size_and_corrupt_images_are_reported_and_skipped(tmp_path: Path) -> None:
    folder, _ = _image_dir(tmp_path, 4)
    small = jpeg.encode(np.zeros((HEIGHT // 2, WIDTH, 3), np.uint8))
    (folder / "f2.jpg").write_bytes(small)
    data = (folder / "f3.jpg").read_bytes()
    (folder / "f3.jpg").write_bytes(data[: len(data) // 2])
    source = _images(folder)
    out = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    assert source.read_into(out) is not None
    with pytest.raises(SourceFrameError, match=r"f2\.jpg is 320x96, the stream is 320x192"):
        source.read_into(out)
    with pytest.raises(SourceFrameError, match=r"f3\.jpg: truncated JPEG"):
        source.read_into(out)
    frame = source.read_into(out)  # and it goes on
    assert frame is not None and frame.index == 3
    assert np.array_equal(out, jpeg.decode((folder / "f4.jpg").read_bytes()))
    assert source.read_into(out) is None


@pytest.mark.parametrize("setup", ["missing", "empty", "corrupt-first"])
def test_images_that_cannot_open_say_why(tmp_path: Path, setup: str) -> None:
    folder = tmp_path / "frames"
    if setup != "missing":
        folder.mkdir()
    if setup == "corrupt-first":
        (folder / "a.jpg").write_bytes(b"\xff\xd8 not really")
    message = {
        "missing": "is not a directory",
        "empty": r"no \.jpg, \.jpeg or \.png file",
        "corrupt-first": r"the first image a\.jpg: (corrupt|truncated|not a) JPEG",
    }[setup]
    with pytest.raises(SourceError, match=message):
        _images(folder)


def test_a_first_image_too_large_to_ring_is_refused_before_anything_is_reserved(
    tmp_path: Path,
) -> None:
    """A hostile or damaged header (30000 x 30000: 21.6 GB for an 8-slot ring) is refused when
    the source opens, naming ``max_pixels``; a real large frame passes once it is raised."""
    folder = tmp_path / "frames"
    folder.mkdir()
    small = jpeg.encode(np.zeros((48, 64, 3), np.uint8))
    (folder / "a.jpg").write_bytes(claiming_size(small, 30000, 30000))
    with pytest.raises(SourceError, match=r"30000x30000 \(900 MP\), over max_pixels"):
        _images(folder)
    (folder / "a.jpg").write_bytes(small)
    with pytest.raises(SourceError, match="max_pixels"):
        _images(folder, max_pixels=1024)  # 64 x 48 = 3072 pixels
    source = open_source(SourceConfig(kind="images", uri=str(folder), max_pixels=4096), 0)
    assert source.open() == (48, 64)


# -- V4L2 -----------------------------------------------------------------------------------


def test_v4l2_device_names() -> None:
    assert device_path("3") == "/dev/video3"
    assert device_path("/dev/video12") == "/dev/video12"


def test_v4l2_missing_device_is_a_clear_error() -> None:
    source = open_source(SourceConfig(kind="v4l2", uri="/dev/video97"), 0)
    assert isinstance(source, V4L2Source) and source.name == "v4l2:/dev/video97"
    with pytest.raises(SourceError, match=r"v4l2:/dev/video97: no such device") as caught:
        source.open()
    assert caught.value.errno == errno.ENOENT and caught.value.filename == "/dev/video97"
    source.close()
