"""The synthetic camera's pixel kernels (``add_wrapped``, ``paint_wrapped``) in every
implementation against plain modular arithmetic: 8-bit wrapping adds, so results must be
*equal*; and the camera draws the same frame whichever implementation runs it."""

from __future__ import annotations

import numpy as np
import pytest

import core._native
from core.synthetic import SceneConfig, SyntheticCamera
from native import kernels
from tests.kernel_params import each_impl


def _images(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """base (contiguous), noise (a window of a bigger field) and out (a padded-row slot)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    field = rng.integers(0, 256, (height + 5, width + 7, 3), dtype=np.uint8)
    slot = np.full((height, width + 3, 3), 9, np.uint8)
    return base, field[3 : 3 + height, 2 : 2 + width], slot[:, :width]


@each_impl
@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 33), (40, 17)])
@pytest.mark.parametrize("level", [0, 1, 200, 255])
def test_add_wrapped_is_the_byte_sum_mod_256(
    impl: str, height: int, width: int, level: int
) -> None:
    base, noise, out = _images(height * width + level, height, width)
    kernels.get("add_wrapped", impl)(base, level, noise, out)
    expected = (base.astype(np.int64) + level + noise.astype(np.int64)) % 256
    assert np.array_equal(out, expected.astype(np.uint8))


@each_impl
def test_paint_wrapped_changes_only_the_masked_pixels(impl: str) -> None:
    _, noise, out = _images(5, 12, 19)
    before = out.copy()
    mask = np.random.default_rng(6).random((12, 19)) < 0.4
    colour = np.array([250, 3, 128], np.uint8)
    kernels.get("paint_wrapped", impl)(out, mask, colour, noise)
    painted = ((colour.astype(np.int64) + noise.astype(np.int64)) % 256).astype(np.uint8)
    assert np.array_equal(out[mask], painted[mask])
    assert np.array_equal(out[~mask], before[~mask])


@each_impl
def test_bad_arguments_are_refused(impl: str) -> None:
    base, noise, out = _images(1, 6, 8)
    add = kernels.get("add_wrapped", impl)
    paint = kernels.get("paint_wrapped", impl)
    with pytest.raises(ValueError, match="level"):
        add(base, 256, noise, out)
    with pytest.raises(ValueError, match="one size"):
        add(base, 1, noise[:5], out)
    with pytest.raises(ValueError, match="overlap"):
        add(base, 1, noise, base)
    mask = np.ones((6, 8), bool)
    with pytest.raises(ValueError, match="one size"):
        paint(out, mask[:5], np.zeros(3, np.uint8), noise)
    with pytest.raises(ValueError, match="overlap"):
        paint(noise, mask, np.zeros(3, np.uint8), noise)
    with pytest.raises(ValueError, match="colour"):
        paint(out, mask, np.zeros(3, np.int64), noise)  # no silent cast


@each_impl
def test_camera_frames_do_not_depend_on_the_implementation(
    impl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    camera = SyntheticCamera(SceneConfig(width=320, height=180, seed=3))
    monkeypatch.setattr(core._native, "_cache", {})
    monkeypatch.setenv(kernels.ENV_VAR, "numpy")
    reference = [camera.frame(i) for i in (0, 41, 977)]
    monkeypatch.setenv(kernels.ENV_VAR, impl)
    for (frame, truth), index in zip(reference, (0, 41, 977), strict=True):
        again, again_truth = camera.frame(index)
        assert np.array_equal(again, frame)
        assert np.array_equal(again_truth.boxes, truth.boxes)
    assert len(reference[1][1].classes) > 0  # objects were drawn, so painting was exercised
