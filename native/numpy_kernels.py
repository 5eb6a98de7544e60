"""The kernel contract of :mod:`native.kernels` in vectorised NumPy: always available, slowest.

No per-pixel Python: bilinear gathers the four taps of every output pixel with fancy indexing
and blends them in float32; area sums, per axis, K gathered row (column) blocks weighted by
their overlap with each box; NMS loops in Python
over the boxes it *keeps* only, suppressing the rest in one vectorised step each; motion is
integer array arithmetic. Inputs are re-checked cheaply; the ``core`` wrappers give the real
error messages.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from native import _checks
from native.kernels import AREA, BILINEAR


def _linear_axis(src_len: int, dst_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both tap indices and the second tap's weight for every output coordinate."""
    pos = (np.arange(dst_len, dtype=np.float64) + 0.5) * (src_len / dst_len) - 0.5
    first = np.floor(pos)
    frac = pos - first
    first = first.astype(np.intp)
    before = first < 0
    after = first >= src_len - 1
    first[before] = 0
    first[after] = src_len - 1
    frac[before | after] = 0.0
    second = np.minimum(first + 1, src_len - 1)
    return first, second, frac.astype(np.float32)


def _resize_bilinear(src: np.ndarray, height: int, width: int) -> np.ndarray:
    y0, y1, fy = _linear_axis(src.shape[0], height)
    x0, x1, fx = _linear_axis(src.shape[1], width)
    fx = fx[None, :, None]
    rows0, rows1 = y0[:, None], y1[:, None]
    tl = src[rows0, x0].astype(np.float32)
    tr = src[rows0, x1].astype(np.float32)
    top = tl + fx * (tr - tl)
    bl = src[rows1, x0].astype(np.float32)
    br = src[rows1, x1].astype(np.float32)
    bottom = bl + fx * (br - bl)
    out: np.ndarray = top + fy[:, None, None] * (bottom - top)
    return out


def _box_taps(src_len: int, dst_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-filter taps as a dense ``dst_len x K`` table: source indices and weights (weight 0
    pads the rows of outputs with fewer than K taps)."""
    edges = np.arange(dst_len + 1, dtype=np.float64) * (src_len / dst_len)
    first = np.floor(edges[:-1]).astype(np.intp)
    count = np.minimum(np.ceil(edges[1:]).astype(np.intp), src_len) - first
    index = first[:, None] + np.arange(count.max())
    overlap = np.minimum(edges[1:, None], index + 1.0) - np.maximum(edges[:-1, None], index)
    weight = np.where(index < (first + count)[:, None], overlap * (dst_len / src_len), 0.0)
    return np.minimum(index, src_len - 1), weight.astype(np.float32)


def _resize_area(src: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rows first (a weighted sum of K gathered row blocks), then columns the same way."""
    rows, row_weight = _box_taps(src.shape[0], height)
    columns = np.zeros((height, src.shape[1], 3), np.float32)
    for k in range(rows.shape[1]):
        columns += row_weight[:, k, None, None] * src[rows[:, k]]
    cols, col_weight = _box_taps(src.shape[1], width)
    out = np.zeros((height, width, 3), np.float32)
    for k in range(cols.shape[1]):
        out += col_weight[None, :, k, None] * columns[:, cols[:, k]]
    return out


def preprocess_into(  # noqa: PLR0917 - the contract's positional signature
    src: np.ndarray,
    dst: np.ndarray,
    region: tuple[int, int, int, int],
    scale: np.ndarray,
    bias: np.ndarray,
    pad: np.ndarray,
    swap_rb: bool,
    interpolation: int,
) -> None:
    """Resize ``src`` into ``region`` of ``dst`` (3xOHxOW), normalise, pad the rest."""
    _checks.image(src)
    x0, y0, width, height = _checks.planes(dst, region)
    if interpolation == BILINEAR:
        pixels = _resize_bilinear(src, height, width)
    elif interpolation == AREA:
        pixels = _resize_area(src, height, width)
    else:
        raise ValueError(f"unknown interpolation {interpolation}")
    scale32 = np.asarray(scale, dtype=np.float32)
    bias32 = np.asarray(bias, dtype=np.float32)
    pad32 = np.asarray(pad, dtype=np.float32)
    for plane in range(3):
        channel = 2 - plane if swap_rb else plane
        out = dst[plane]
        normalised = pixels[..., channel] * scale32[plane] + bias32[plane]
        with np.errstate(over="ignore"):  # float16: beyond 65504 is infinity, as in C
            out[:y0] = pad32[plane]
            out[y0 + height :] = pad32[plane]
            out[y0 : y0 + height, :x0] = pad32[plane]
            out[y0 : y0 + height, x0 + width :] = pad32[plane]
            out[y0 : y0 + height, x0 : x0 + width] = normalised


def nms(  # noqa: PLR0917 - the contract's positional signature
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float,
    score_threshold: float,
    top_k: int,
) -> npt.NDArray[np.int64]:
    """Kept indices (int64) of greedy class-aware NMS, by descending score (ties: lower index)."""
    _checks.detections(boxes, scores, classes, iou_threshold, top_k)
    score64 = scores.astype(np.float64)
    usable = np.isfinite(score64) & (score64 >= score_threshold) & np.isfinite(boxes).all(axis=1)
    candidates = np.flatnonzero(usable)
    # A stable sort of the negated scores keeps equal scores in index order.
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    coords = boxes[order].astype(np.float64)
    x1, y1, x2, y2 = coords.T
    area = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    labels = np.zeros(order.size, np.int64) if classes is None else classes[order]
    alive = np.ones(order.size, dtype=bool)
    kept: list[int] = []
    for i in range(order.size):
        if len(kept) >= top_k:
            break
        if not alive[i]:
            continue
        kept.append(int(order[i]))
        rest = slice(i + 1, None)
        iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
        union = (area[i] + area[rest]) - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)
        alive[rest] &= ~((iou > iou_threshold) & (labels[rest] == labels[i]))
    return np.asarray(kept, dtype=np.int64)


def motion_cells(src: np.ndarray, factor: int, out: np.ndarray) -> None:
    """Block mean of each channel of ``src`` over ``factor`` x ``factor`` blocks into ``out``."""
    _checks.cells_out(src, factor, out)
    rows, cols = out.shape[:2]
    if rows == 0 or cols == 0:
        return
    pixels = src[: rows * factor, : cols * factor]
    # Rows of each block first (contiguous runs), then its columns: far faster than one
    # sum over both axes of the 5-D view.
    block_rows = pixels.reshape(rows, factor, cols * factor * 3)
    columns = np.add.reduce(block_rows, axis=1, dtype=np.uint32)
    sums = columns.reshape(rows, cols, factor, 3).sum(axis=2, dtype=np.uint32)
    out[...] = sums // (factor * factor)


def motion_diff(
    prev: np.ndarray, cur: np.ndarray, threshold: int
) -> tuple[int, int, int, int, int]:
    """``(changed, x0, y0, x1, y1)``: cells where any channel moved by more than ``threshold``,
    and their box."""
    _checks.grids(prev, cur)
    moved = np.abs(cur.astype(np.int16) - prev.astype(np.int16)) > threshold
    changed: np.ndarray = np.any(moved, axis=2)
    count = int(np.count_nonzero(changed))
    if count == 0:
        return (0, 0, 0, 0, 0)
    rows = np.flatnonzero(changed.any(axis=1))
    cols = np.flatnonzero(changed.any(axis=0))
    return (count, int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def add_wrapped(base: np.ndarray, level: int, noise: np.ndarray, out: np.ndarray) -> None:
    """``out = (base + level + noise) mod 256``, byte by byte."""
    _checks.wrapped_sum(base, level, noise, out)
    np.add(base, np.uint8(level), out=out)
    np.add(out, noise, out=out)


def paint_wrapped(out: np.ndarray, mask: np.ndarray, colour: np.ndarray, noise: np.ndarray) -> None:
    """``out = (colour + noise) mod 256`` where ``mask`` is set."""
    _checks.painted(out, mask, colour, noise)
    np.copyto(out, noise + colour, where=mask[..., None])
