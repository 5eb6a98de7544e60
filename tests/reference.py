"""Plain references for the native kernels, written from the definitions and nothing else.

Slow on purpose and independent of every implementation in ``native/``: resizing is a product of
two dense float64 interpolation matrices (one per axis, each row of a matrix saying how much of
each source pixel an output pixel takes), NMS and the motion score are loops over boxes and
cells. The equivalence tests compare every implementation that loads with these.
"""

from __future__ import annotations

import math

import numpy as np


def bilinear_weights(src_len: int, dst_len: int) -> np.ndarray:
    """``dst_len x src_len`` matrix of OpenCV-style bilinear weights (half-pixel centres).

    Output pixel ``d`` samples the source at ``(d + 0.5) * src_len / dst_len - 0.5``, clamped
    to ``[0, src_len - 1]``, and splits its weight between the two pixels around that point.
    """
    m = np.zeros((dst_len, src_len))
    for d in range(dst_len):
        pos = (d + 0.5) * src_len / dst_len - 0.5
        pos = min(max(pos, 0.0), src_len - 1.0)
        left = math.floor(pos)
        frac = pos - left
        m[d, left] += 1.0 - frac
        m[d, min(left + 1, src_len - 1)] += frac
    return m


def area_weights(src_len: int, dst_len: int) -> np.ndarray:
    """``dst_len x src_len`` box-filter weights: the overlap of ``[d, d+1) * src_len/dst_len``
    with each source pixel ``[i, i+1)``, divided by the box length."""
    m = np.zeros((dst_len, src_len))
    box = src_len / dst_len
    for d in range(dst_len):
        lo, hi = d * box, (d + 1) * box
        for i in range(src_len):
            m[d, i] = max(0.0, min(hi, i + 1) - max(lo, i)) / box
    return m


def resize(src: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """``src`` (HxWx3 uint8) resized to ``height x width x 3`` float64 pixel values."""
    weights = {"bilinear": bilinear_weights, "area": area_weights}[interpolation]
    rows = weights(src.shape[0], height)
    cols = weights(src.shape[1], width)
    out = np.empty((height, width, 3))
    for c in range(3):
        out[..., c] = rows @ src[..., c].astype(np.float64) @ cols.T
    return out


def preprocess(  # noqa: PLR0917 - mirrors the kernel contract
    src: np.ndarray,
    out_size: tuple[int, int],
    region: tuple[int, int, int, int],
    scale: np.ndarray,
    bias: np.ndarray,
    pad: np.ndarray,
    swap_rb: bool,
    interpolation: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The expected ``3 x OH x OW`` float64 output, and the mask of the region (not padding)."""
    x0, y0, w, h = region
    pixels = resize(src, h, w, interpolation)
    if swap_rb:
        pixels = pixels[..., ::-1]
    expected = np.empty((3, *out_size))
    inside = np.zeros(out_size, dtype=bool)
    inside[y0 : y0 + h, x0 : x0 + w] = True
    for plane in range(3):
        expected[plane] = pad[plane]
        expected[plane, y0 : y0 + h, x0 : x0 + w] = pixels[..., plane] * float(
            scale[plane]
        ) + float(bias[plane])
    return expected, inside


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two xyxy boxes; degenerate boxes have no area."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    area_a = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1)
    area_b = max(0.0, bx2 - bx1) * max(0.0, by2 - by1)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (area_a + area_b) - inter
    return inter / union if union > 0.0 else 0.0


def nms(  # noqa: PLR0917 - mirrors the kernel contract
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float,
    score_threshold: float,
    top_k: int,
) -> list[int]:
    """Greedy NMS by the book: best first, keep unless a kept box of its class overlaps it."""
    usable = [
        i
        for i in range(len(scores))
        if math.isfinite(float(scores[i]))
        and float(scores[i]) >= score_threshold
        and all(math.isfinite(float(v)) for v in boxes[i])
    ]
    usable.sort(key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for i in usable:
        if len(kept) == top_k:
            break
        same_class = [k for k in kept if classes is None or classes[k] == classes[i]]
        if all(iou(boxes[k], boxes[i]) <= iou_threshold for k in same_class):
            kept.append(i)
    return kept


def motion_cells(src: np.ndarray, factor: int) -> np.ndarray:
    """Floor of the mean of each channel over each whole ``factor x factor`` block."""
    rows, cols = src.shape[0] // factor, src.shape[1] // factor
    out = np.zeros((rows, cols, 3), dtype=np.uint8)
    for by in range(rows):
        for bx in range(cols):
            for k in range(3):
                total = 0
                for y in range(by * factor, (by + 1) * factor):
                    for x in range(bx * factor, (bx + 1) * factor):
                        total += int(src[y, x, k])
                out[by, bx, k] = total // (factor * factor)
    return out


def motion_diff(prev: np.ndarray, cur: np.ndarray, threshold: int) -> tuple[int, ...]:
    """Changed cells (any channel moved) and their half-open bounding box, visiting each cell."""
    changed = [
        (x, y)
        for y in range(prev.shape[0])
        for x in range(prev.shape[1])
        if any(abs(int(c) - int(p)) > threshold for c, p in zip(cur[y, x], prev[y, x], strict=True))
    ]
    if not changed:
        return (0, 0, 0, 0, 0)
    xs = [x for x, _ in changed]
    ys = [y for _, y in changed]
    return (len(changed), min(xs), min(ys), max(xs) + 1, max(ys) + 1)
