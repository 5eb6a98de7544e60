"""The synthetic camera: deterministic random access, ground truth that matches the pixels,
quiet scenes, rendering into ring-slot-like strided buffers, and config validation."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, FrameError
from core.synthetic import (
    CLASS_COLOURS,
    CLASS_NAMES,
    COLOUR_JITTER,
    QUIET_CYCLE_S,
    RING_INNER,
    SceneConfig,
    SyntheticCamera,
)

SMALL = SceneConfig(width=320, height=180, seed=5)


@pytest.fixture(scope="module")
def camera() -> SyntheticCamera:
    return SyntheticCamera(SMALL)


def test_same_index_same_bytes_across_instances(camera: SyntheticCamera) -> None:
    first, truth = camera.frame(123)
    again, truth_again = camera.frame(123)
    other, truth_other = SyntheticCamera(SMALL).frame(123)
    assert first.tobytes() == again.tobytes() == other.tobytes()
    for a, b in ((truth, truth_again), (truth, truth_other)):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_seeds_and_indices_differ(camera: SyntheticCamera) -> None:
    frame, _ = camera.frame(10)
    assert not np.array_equal(frame, camera.frame(11)[0])  # noise alone differs frame to frame
    reseeded = SyntheticCamera(SceneConfig(width=320, height=180, seed=6))
    assert np.abs(frame.astype(int) - reseeded.frame(10)[0]).mean() > 5


def test_random_access_equals_sequential() -> None:
    sequential = SyntheticCamera(SMALL)
    shuffled = SyntheticCamera(SMALL)
    indices = list(range(0, 3000, 61))
    frames = {i: sequential.frame(i) for i in indices}
    for i in np.random.default_rng(0).permutation(indices):
        frame, truth = shuffled.frame(int(i))
        np.testing.assert_array_equal(frame, frames[int(i)][0])
        np.testing.assert_array_equal(truth.boxes, frames[int(i)][1].boxes)


def test_ground_truth_types_and_clipping(camera: SyntheticCamera) -> None:
    truncated = occluded = 0
    for i in range(0, 6000, 23):
        truth = camera.render_into(i, np.empty((180, 320, 3), np.uint8))
        k = len(truth.classes)
        assert truth.boxes.dtype == np.float32 and truth.boxes.shape == (k, 4)
        assert truth.classes.dtype == np.int64 and truth.occluded.dtype == np.float32
        assert ((truth.classes >= 0) & (truth.classes < len(CLASS_NAMES))).all()
        assert ((truth.occluded >= 0) & (truth.occluded <= 1)).all()
        x1, y1, x2, y2 = truth.boxes.T
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 320).all() and (y2 <= 180).all()
        assert (x2 - x1 >= 1).all() and (y2 - y1 >= 1).all()
        edge = (x1 == 0) | (y1 == 0) | (x2 == 320) | (y2 == 180)
        truncated += int(edge.sum())
        occluded += int(((truth.occluded > 0.2) & ~edge).sum())
        assert camera.has_objects(i) == (k > 0)
    assert truncated > 10  # objects enter and leave at the edges...
    assert occluded > 3  # ... and hide each other


# Fraction of its square box each shape covers (circle pi/4, triangle 1/2, cross 20/36, ...).
COVERAGE = (np.pi / 4, 1.0, 0.5, 20 / 36, np.pi / 4 * (1 - RING_INNER**2))


def test_ground_truth_matches_pixels() -> None:
    """Inside each fully visible box, the pixels of the object's class colour cover the shape."""
    camera = SyntheticCamera(SceneConfig(width=640, height=360, seed=2))
    colours = np.array(CLASS_COLOURS, np.int64)
    checked = 0
    for i in range(0, 9000, 97):
        frame, truth = camera.frame(i)
        level = camera.brightness(i)
        for box, cls, hidden in zip(truth.boxes, truth.classes, truth.occluded, strict=True):
            x1, y1, x2, y2 = np.round(box).astype(int)
            if hidden > 0.01 or min(x2 - x1, y2 - y1) < 24:
                continue
            patch = frame[y1:y2, x1:x2].astype(np.int64) - level
            distance = np.abs(patch[..., None, :] - colours).max(-1)  # (h, w, classes)
            ours = distance[..., cls] <= COLOUR_JITTER + 8  # jitter plus noise (3 sigma = 6)
            nearest = distance.argmin(-1) == cls
            assert abs((ours & nearest).mean() - COVERAGE[cls]) < 0.08, (i, CLASS_NAMES[cls])
            checked += 1
    assert checked > 20


def test_quiet_scene_fraction_and_episodes() -> None:
    camera = SyntheticCamera(SceneConfig(width=64, height=36, quiet_fraction=0.25, seed=3))
    frames = int(10 * QUIET_CYCLE_S * 30)  # ten cycles at 30 fps
    present = np.array([camera.has_objects(i) for i in range(frames)])
    assert abs(present.mean() - 0.25) < 0.02
    episodes = int((np.diff(present.astype(int)) == 1).sum()) + int(present[0])
    assert 8 <= episodes <= 11  # one contiguous episode per cycle, not flicker
    for i in range(0, frames, 97):
        truth = camera.render_into(i, np.empty((36, 64, 3), np.uint8))
        assert (len(truth.classes) > 0) == present[i]


@pytest.mark.parametrize(("fraction", "expected"), [(0.0, False), (1.0, True)])
def test_quiet_scene_extremes(fraction: float, expected: bool) -> None:
    camera = SyntheticCamera(SceneConfig(width=64, height=36, quiet_fraction=fraction))
    assert {camera.has_objects(i) for i in range(0, 3000, 7)} == {expected}


def test_render_into_strided_view_of_bigger_buffer(camera: SyntheticCamera) -> None:
    big = np.full((200, 400, 3), 7, np.uint8)
    view = big[10:190, 30:350]  # rows 1200 bytes apart, 960 used: a padded ring slot
    assert view.strides[0] > 3 * view.shape[1]
    truth = camera.render_into(77, view)
    frame, expected = camera.frame(77)
    np.testing.assert_array_equal(view, frame)
    np.testing.assert_array_equal(truth.boxes, expected.boxes)
    untouched = big.copy()
    untouched[10:190, 30:350] = 7
    assert (untouched == 7).all()


def test_capture_time_and_brightness_drift(camera: SyntheticCamera) -> None:
    assert camera.capture_ns(0) == 0
    assert camera.capture_ns(45) == 1_500_000_000
    assert SyntheticCamera(SceneConfig(width=32, height=32, fps=25)).capture_ns(1) == 40_000_000
    levels = [camera.brightness(i) for i in range(0, 9000, 30)]
    assert max(abs(v) for v in levels) <= round(SMALL.lighting_drift * 127)
    assert max(levels) - min(levels) > 10  # it does drift
    assert np.abs(np.diff(levels)).max() <= 6  # slowly: a few grey levels a second (0.2 a frame)


def test_any_resolution_same_scene() -> None:
    """Geometry is in frame units: the same seed shows the same objects at any size."""
    small = SyntheticCamera(SceneConfig(width=320, height=180, seed=4)).frame(300)[1]
    large = SyntheticCamera(SceneConfig(width=1280, height=720, seed=4)).frame(300)[1]
    np.testing.assert_array_equal(small.classes, large.classes)
    np.testing.assert_allclose(small.boxes * 4, large.boxes, atol=0.01)


@pytest.mark.parametrize(
    "change",
    [
        {"width": 0},
        {"height": 10},
        {"width": 640.0},
        {"fps": 0},
        {"seed": -1},
        {"max_objects": 65},
        {"quiet_fraction": 1.5},
        {"noise_sigma": -1},
        {"noise_sigma": float("nan")},
        {"lighting_drift": 0.5},
        {"min_size": 0.3, "max_size": 0.2},
        {"max_size": 2.0},
    ],
)
def test_bad_config_errors(change: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        SceneConfig(**change)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert next(iter(change)) in str(info.value) or "min_size" in str(info.value)


def test_bad_buffers_and_indices(camera: SyntheticCamera) -> None:
    with pytest.raises(FrameError, match="180x320x3"):
        camera.render_into(0, np.empty((180, 321, 3), np.uint8))
    with pytest.raises(FrameError, match="uint8"):
        camera.render_into(0, np.empty((180, 320, 3), np.float32))
    readonly = np.empty((180, 320, 3), np.uint8)
    readonly.flags.writeable = False
    with pytest.raises(FrameError, match="writeable"):
        camera.render_into(0, readonly)
    with pytest.raises(FrameError, match="non-negative"):
        camera.frame(-1)


def test_empty_scene() -> None:
    camera = SyntheticCamera(SceneConfig(width=64, height=48, max_objects=0))
    frame, truth = camera.frame(5)
    assert truth.boxes.shape == (0, 4) and not camera.has_objects(5)
    assert frame.min() >= SceneConfig().margin - 6  # no saturation tricks: margins hold
