"""Every motion implementation against the cell-by-cell reference: integer maths, so the grids,
counts and boxes must be *equal*, not close."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, FrameError
from core.motion import MotionDetector, motion_score
from core.sample_media import scene_image
from native import kernels
from tests import reference
from tests.kernel_params import each_impl


@each_impl
@pytest.mark.parametrize(
    ("height", "width", "factor"),
    [(16, 24, 8), (37, 29, 4), (9, 9, 3), (48, 64, 1), (20, 13, 20), (12, 40, 6)],
)
def test_cell_grid_matches_reference(impl: str, height: int, width: int, factor: int) -> None:
    rng = np.random.default_rng(height * width + factor)
    big = rng.integers(0, 256, (height + 4, width + 9, 3), dtype=np.uint8)
    frame = big[2 : 2 + height, 5 : 5 + width]  # a crop: rows further apart than 3 * width
    out = np.full((height // factor, width // factor, 3), 7, np.uint8)
    kernels.get("motion_cells", impl)(frame, factor, out)
    assert np.array_equal(out, reference.motion_cells(frame, factor))


def test_cells_keep_each_channel_and_the_block_mean_floors() -> None:
    frame = np.full((4, 4, 3), (255, 10, 0), np.uint8)
    frame[0, 0] = (0, 26, 16)  # per channel: 15 x 255 + 0, 15 x 10 + 26, 16 over 16 pixels
    for impl in kernels.available_implementations():
        out = np.empty((1, 1, 3), np.uint8)
        kernels.get("motion_cells", impl)(frame, 4, out)
        assert out[0, 0].tolist() == [239, 11, 1], impl


@each_impl
@pytest.mark.parametrize("threshold", [0, 10, 25, 254])
@pytest.mark.parametrize("channels", [1, 3])
def test_diff_matches_reference(impl: str, threshold: int, channels: int) -> None:
    rng = np.random.default_rng(threshold + channels)
    prev = rng.integers(0, 256, (23, 31, channels), dtype=np.uint8)
    cur = prev.copy()
    changed = rng.random(prev.shape) < 0.05  # single channels of a cell, often
    cur[changed] = rng.integers(0, 256, int(changed.sum()))
    got = kernels.get("motion_diff", impl)(prev, cur, threshold)
    assert tuple(got) == reference.motion_diff(prev, cur, threshold)
    assert tuple(kernels.get("motion_diff", impl)(prev, prev, threshold)) == (0, 0, 0, 0, 0)


@each_impl
def test_diff_box_is_half_open_and_any_channel_counts_once(impl: str) -> None:
    prev = np.zeros((10, 12, 3), np.uint8)
    cur = prev.copy()
    cur[3, 4, 0] = 200  # one channel moved
    cur[7, 9] = 200  # all three: still one cell
    assert tuple(kernels.get("motion_diff", impl)(prev, cur, 25)) == (2, 4, 3, 10, 8)


@each_impl
def test_detector_reports_first_frame_then_changes(impl: str) -> None:
    still = scene_image(100, 130)  # 12 x 16 cells; 4 rows and 2 columns ignored
    moved = still.copy()
    patch = moved[40:56, 24:40]
    patch[...] = np.where(patch > 127, 0, 255)  # every channel moves by at least 128
    detector = MotionDetector(factor=8, threshold=25, impl=impl)
    first = detector.update(still)
    assert (first.changed_fraction, first.box, first.changed_cells) == (1.0, (0, 0, 128, 96), 192)
    nothing = detector.update(still)
    assert (nothing.changed_fraction, nothing.box, nothing.changed_cells) == (0.0, None, 0)
    result = detector.update(moved)
    assert result.box == (24, 40, 40, 56)
    assert result.changed_cells == 4
    assert result.changed_fraction == 4 / 192
    assert motion_score(still, moved, impl=impl) == result


@each_impl
def test_changes_beyond_the_last_whole_block_are_ignored(impl: str) -> None:
    still = np.zeros((21, 21, 3), np.uint8)
    edge = still.copy()
    edge[16:, :] = 255  # rows 16..20: the last 5 rows are not a whole 8x8 block
    edge[:, 16:] = 255
    assert motion_score(still, edge, factor=8, impl=impl).changed_cells == 0


@each_impl
def test_new_size_or_reset_starts_over(impl: str) -> None:
    detector = MotionDetector(factor=4, impl=impl)
    detector.update(np.zeros((16, 16, 3), np.uint8))
    assert detector.update(np.zeros((16, 16, 3), np.uint8)).changed_cells == 0
    assert detector.update(np.zeros((8, 16, 3), np.uint8)).changed_fraction == 1.0
    detector.reset()
    assert detector.update(np.zeros((8, 16, 3), np.uint8)).changed_fraction == 1.0


@each_impl
def test_an_object_as_bright_as_the_background_is_motion(impl: str) -> None:
    """Red over green of the same BT.601 grey (76): a grey gate saw nothing at any threshold."""
    green = np.zeros((32, 32, 3), np.uint8)
    green[...] = (0, 130, 0)  # BGR: grey (150 * 130 + 128) >> 8 = 76
    red = green.copy()
    red[8:24, 8:24] = (0, 0, 255)  # grey (77 * 255 + 128) >> 8 = 77
    result = motion_score(green, red, factor=8, threshold=12, impl=impl)
    assert (result.changed_cells, result.box) == (4, (8, 8, 24, 24))
    assert motion_score(green, red, factor=8, threshold=254, impl=impl).changed_cells == 4
    assert motion_score(green, red, factor=8, threshold=255, impl=impl).changed_cells == 0


@pytest.mark.parametrize(
    "options",
    [
        dict(factor=0),
        dict(factor=257),
        dict(threshold=-1),
        dict(threshold=256),
    ],
)
def test_bad_settings(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        MotionDetector(**options)  # type: ignore[arg-type]


def test_bad_frames() -> None:
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(FrameError, match="no 32x32 block"):
        MotionDetector(factor=32).update(frame)
    with pytest.raises(FrameError, match="differ in size"):
        motion_score(frame, frame[:8])
    with pytest.raises(FrameError, match="uint8"):
        MotionDetector().update(frame.astype(np.float32))
