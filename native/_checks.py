"""Cheap re-checks of the kernel contract, shared by the Python implementations (numba, numpy).

The ``core`` wrappers validate first and raise errors that name the fix; these only make sure a
direct caller of a kernel gets a ``ValueError`` instead of a wrong answer or a crash. The Cython
module does the same checks at C level.
"""

from __future__ import annotations

import numpy as np


def image(src: np.ndarray) -> None:
    """HxWx3 uint8, the 3 channels of a pixel adjacent, rows forward and not overlapping."""
    if src.dtype != np.uint8 or src.ndim != 3 or src.shape[2] != 3:
        raise ValueError("src must be an HxWx3 uint8 array")
    if src.strides[2] != 1 or src.strides[1] != 3:
        raise ValueError("src must have the 3 channels of each pixel adjacent (strides (*, 3, 1))")
    if src.shape[0] < 1 or src.shape[1] < 1 or src.strides[0] < 3 * src.shape[1]:
        raise ValueError("src must be non-empty with rows at least 3*W bytes apart, forward")


def planes(dst: np.ndarray, region: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """3xOHxOW float32/float16 C-contiguous ``dst`` and a region inside it, as ints."""
    if dst.ndim != 3 or dst.shape[0] != 3 or dst.dtype not in (np.float32, np.float16):
        raise ValueError("dst must be a 3xOHxOW float32 or float16 array")
    if not dst.flags.c_contiguous or not dst.flags.writeable:
        raise ValueError("dst must be C-contiguous and writeable")
    x0, y0, width, height = (int(v) for v in region)
    if x0 < 0 or y0 < 0 or width < 1 or height < 1:
        raise ValueError(f"region {tuple(region)} is empty or starts outside dst")
    if x0 + width > dst.shape[2] or y0 + height > dst.shape[1]:
        raise ValueError(f"region {tuple(region)} does not fit dst of shape {dst.shape}")
    return x0, y0, width, height


def detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float,
    top_k: int,
) -> None:
    """Nx4 float32 boxes, N float32 scores, N int64 classes or None, sane thresholds."""
    if boxes.dtype != np.float32 or boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError("boxes must be an Nx4 float32 array")
    if scores.dtype != np.float32 or scores.shape != (boxes.shape[0],):
        raise ValueError("scores must hold one float32 per box")
    if classes is not None and (classes.dtype != np.int64 or classes.shape != scores.shape):
        raise ValueError("classes must hold one int64 per box")
    if not 0.0 <= iou_threshold <= 1.0 or top_k < 0:
        raise ValueError("iou_threshold must be in [0, 1] and top_k >= 0")


def cells_out(src: np.ndarray, factor: int, out: np.ndarray) -> None:
    """A factor in [1, 256] and a uint8 ``(H // factor, W // factor, 3)`` C-contiguous ``out``."""
    image(src)
    if not 1 <= factor <= 256:
        raise ValueError("factor must be in [1, 256]")
    expected = (src.shape[0] // factor, src.shape[1] // factor, 3)
    if out.dtype != np.uint8 or out.shape != expected or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint8 array of shape {expected}")


def grids(prev: np.ndarray, cur: np.ndarray) -> None:
    """Two uint8 ``(rows, cols, channels)`` grids of the same shape."""
    if prev.dtype != np.uint8 or cur.dtype != np.uint8 or prev.ndim != 3:
        raise ValueError("prev and cur must be 3-D uint8 arrays (rows, cols, channels)")
    if prev.shape != cur.shape:
        raise ValueError(f"prev {prev.shape} and cur {cur.shape} differ in shape")


def wrapped_sum(base: np.ndarray, level: int, noise: np.ndarray, out: np.ndarray) -> None:
    """Three HxWx3 uint8 images of one size (``out`` writeable, overlapping neither other) and a
    level in [0, 255]."""
    for array in (base, noise, out):
        image(array)
    if noise.shape != base.shape or out.shape != base.shape:
        raise ValueError("base, noise and out must be HxWx3 images of one size")
    if not 0 <= level <= 255:
        raise ValueError("level must be in [0, 255]")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    if np.may_share_memory(out, base) or np.may_share_memory(out, noise):
        raise ValueError("out must not overlap base or noise")


def painted(out: np.ndarray, mask: np.ndarray, colour: np.ndarray, noise: np.ndarray) -> None:
    """HxWx3 uint8 ``out`` (writeable, not overlapping) and ``noise``, HxW bool ``mask``, and
    3 uint8 ``colour`` values."""
    image(out)
    image(noise)
    if out.shape != noise.shape or mask.shape != out.shape[:2] or mask.dtype != np.bool_:
        raise ValueError("out and noise must be HxWx3 and mask HxW bool, all of one size")
    if colour.dtype != np.uint8 or colour.shape != (3,):
        raise ValueError("colour must be 3 uint8 values")
    if not out.flags.writeable or np.may_share_memory(out, noise):
        raise ValueError("out must be writeable and not overlap noise")
