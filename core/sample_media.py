"""Deterministic, realistic-looking test images, generated rather than downloaded.

The one helper for sample media shared by the tests and ``bench``: smooth gradients (sky, light
falloff), hard edges (shapes, a horizon), fine texture (a tiled pattern and blurred noise) and mild
sensor noise. Flat or pure-noise images give misleading JPEG and resize figures; this does not.
The synthetic *camera* (:mod:`core.synthetic`: moving objects with ground truth) draws its
objects over :func:`scene_image` backgrounds rendered without the static shapes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U8Image = npt.NDArray[np.uint8]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Value noise: random values on a coarse grid, bilinearly upsampled (soft texture)."""
    gh, gw = height // cell + 2, width // cell + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    ys = np.arange(height, dtype=np.float32) / cell
    xs = np.arange(width, dtype=np.float32) / cell
    y0 = ys.astype(np.int64)
    x0 = xs.astype(np.int64)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    out: np.ndarray = top * (1 - fy) + bottom * fy
    return out


def scene_image(
    height: int = 1080, width: int = 1920, seed: int = 0, *, shapes: int = 12
) -> U8Image:
    """A BGR uint8 scene of ``height`` x ``width``: sky, ground, shapes, texture, mild noise.

    ``shapes`` static boxes and discs give hard edges; the synthetic camera asks for none, so
    that nothing in its background looks like one of its object classes.

    >>> img = scene_image(120, 160, seed=1)
    >>> img.shape, img.dtype.name
    ((120, 160, 3), 'uint8')
    >>> bool((scene_image(120, 160, seed=1) == img).all())
    True
    >>> 20 < float(img.std()) < 90
    True
    """
    if height < 8 or width < 8:
        raise ValueError(f"scene_image needs at least 8x8 pixels, got {height}x{width}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    v = yy / height
    u = xx / width
    horizon = 0.45 + 0.05 * np.sin(u * 6.0 + seed)
    sky = v < horizon
    img = np.empty((height, width, 3), dtype=np.float32)
    # Sky: vertical gradient with a soft sun glow.
    glow = np.exp(-(((u - 0.75) ** 2) + ((v - 0.15) ** 2)) * 30.0)
    img[..., 0] = np.where(sky, 200 - 80 * v + 40 * glow, 0)
    img[..., 1] = np.where(sky, 150 - 40 * v + 60 * glow, 0)
    img[..., 2] = np.where(sky, 90 + 30 * v + 90 * glow, 0)
    # Ground: textured, with a tiled pattern (pavement) and a light falloff.
    texture = _smooth_noise(rng, height, width, max(4, width // 160))
    tiles = ((np.floor(xx / max(8, width // 48)) + np.floor(yy / max(8, height // 27))) % 2) * 18
    ground = 70 + 60 * texture + tiles - 30 * (v - horizon)
    img[..., 0] = np.where(sky, img[..., 0], ground * 0.8)
    img[..., 1] = np.where(sky, img[..., 1], ground * 0.95)
    img[..., 2] = np.where(sky, img[..., 2], ground * 0.9)
    # Shapes with hard edges: boxes (buildings, vehicles) and discs.
    for _ in range(shapes):
        cx, cy = rng.uniform(0, width), rng.uniform(height * 0.3, height)
        w, h = rng.uniform(0.03, 0.15) * width, rng.uniform(0.03, 0.2) * height
        colour = rng.uniform(20, 235, size=3)
        if rng.random() < 0.5:
            mask = (np.abs(xx - cx) < w / 2) & (np.abs(yy - cy) < h / 2)
        else:
            mask = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 < 1
        shade = 0.85 + 0.3 * (yy - cy) / max(h, 1.0)
        for c in range(3):
            img[..., c] = np.where(mask, colour[c] * shade, img[..., c])
    # Mild sensor noise.
    img += rng.normal(0.0, 2.5, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
