"""The kernel contract of :mod:`native.kernels` in Numba, compiled (and cached) at start-up.

Each kernel is a private ``@njit(cache=True, nogil=True)`` function; the public functions are
thin: they re-check their arguments and normalise them to *one* set of Numba types -- pixels as
a read-only 1-D byte view plus a row stride (so a crop, a full frame, a read-only ring slot all
look the same), output planes as float32 or as the uint16 bits of float16, plain int/float
scalars. :func:`warm_up` compiles exactly those signatures on tiny inputs, and
:func:`native.kernels.load_implementation` calls it, so no frame ever waits for the compiler.
Nothing here changes Numba's global configuration.

Numba has no float16 on the CPU, so float16 planes are written as their bits, rounded to nearest
even by :func:`_half_bits` from each float32 result, the same rounding as the C kernels and NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from native import _checks
from native.kernels import AREA, BILINEAR

try:
    from numba import njit
except ImportError as exc:
    raise ImportError(
        "native.numba_kernels needs numba: pip install 'edgeloop[numba]' "
        "(or set EDGELOOP_KERNELS=cython or numpy)"
    ) from exc

_F = TypeVar("_F", bound=Callable[..., Any])


def _kernel(fn: _F) -> _F:
    """Compile ``fn`` lazily with the one set of options every kernel here uses."""
    return cast(_F, njit(cache=True, nogil=True)(fn))


# -- preprocess ------------------------------------------------------------------------------


@_kernel
def _half_bits(bits: int) -> int:
    """IEEE binary16 bits of the float32 with bit pattern ``bits``, round to nearest even."""
    sign = (bits >> 16) & 0x8000
    mag = bits & 0x7FFFFFFF
    if mag >= 0x7F800000:
        return sign | 0x7C00 | (0x200 if mag > 0x7F800000 else 0)
    if mag >= 0x477FF000:  # rounds to infinity
        return sign | 0x7C00
    if mag < 0x38800000:  # a half subnormal or zero
        shift = 126 - (mag >> 23)
        if shift > 24:
            return sign
        mantissa = (mag & 0x7FFFFF) | 0x800000
        q = mantissa >> shift
        rest = mantissa & ((1 << shift) - 1)
        halfway = 1 << (shift - 1)
        if rest > halfway or (rest == halfway and (q & 1) == 1):
            q += 1
        return sign | q
    rounded = mag + 0xFFF + ((mag >> 13) & 1)
    return sign | ((rounded - 0x38000000) >> 13)


@_kernel
def _linear_tap(src_len: int, dst_len: int, d: int) -> tuple[int, float]:
    """Source index and weight of the next one for output coordinate ``d`` (OpenCV centres)."""
    pos = (d + 0.5) * src_len / dst_len - 0.5
    first = int(np.floor(pos))
    frac = pos - first
    if first < 0:
        first, frac = 0, 0.0
    if first >= src_len - 1:
        first, frac = src_len - 1, 0.0
    return first, frac


@_kernel
def _bilinear_row(  # noqa: PLR0917 - numba kernels and the contract take positional arguments
    pixels: np.ndarray,
    stride: int,
    row0: int,
    row1: int,
    fy: float,
    left: np.ndarray,
    right: np.ndarray,
    fx: np.ndarray,
    consts: np.ndarray,
    swap: bool,
    out: np.ndarray,
) -> None:
    """One output row of normalised bilinear samples into ``out`` (3 x w, float32)."""
    base0 = row0 * stride
    base1 = row1 * stride
    for plane in range(3):
        channel = 2 - plane if swap else plane
        scale = consts[0, plane]
        bias = consts[1, plane]
        for x in range(out.shape[1]):
            a = 3 * left[x] + channel
            b = 3 * right[x] + channel
            f = fx[x]
            top = np.float32(pixels[base0 + a]) + f * (
                np.float32(pixels[base0 + b]) - np.float32(pixels[base0 + a])
            )
            bottom = np.float32(pixels[base1 + a]) + f * (
                np.float32(pixels[base1 + b]) - np.float32(pixels[base1 + a])
            )
            out[plane, x] = (top + fy * (bottom - top)) * scale + bias


@_kernel
def _area_taps(src_len: int, dst_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: first source index, tap count; and the overlap weights, flat."""
    start = np.empty(dst_len, np.int64)
    count = np.empty(dst_len, np.int64)
    weight = np.empty(src_len + 2 * dst_len, np.float32)
    norm = dst_len / src_len
    k = 0
    for d in range(dst_len):
        lo = d * src_len / dst_len
        hi = (d + 1) * src_len / dst_len
        first = int(np.floor(lo))
        last = min(int(np.ceil(hi)), src_len)
        start[d] = first
        count[d] = last - first
        for i in range(first, last):
            weight[k] = (min(hi, i + 1.0) - max(lo, float(i))) * norm
            k += 1
    return start, count, weight


@_kernel
def _area_row(  # noqa: PLR0917 - numba kernels and the contract take positional arguments
    pixels: np.ndarray,
    stride: int,
    width: int,
    ystart: int,
    ycount: int,
    yweight: np.ndarray,
    xstart: np.ndarray,
    xcount: np.ndarray,
    xweight: np.ndarray,
    consts: np.ndarray,
    swap: bool,
    acc: np.ndarray,
    out: np.ndarray,
) -> None:
    """One output row of normalised box-filter means: rows summed into ``acc``, then columns."""
    n = 3 * width
    base = ystart * stride
    for i in range(n):
        acc[i] = yweight[0] * np.float32(pixels[base + i])
    for j in range(1, ycount):
        base = (ystart + j) * stride
        w = yweight[j]
        for i in range(n):
            acc[i] += w * np.float32(pixels[base + i])
    k = 0
    for x in range(out.shape[1]):
        c0 = c1 = c2 = np.float32(0.0)
        for j in range(xcount[x]):
            w = xweight[k + j]
            at = 3 * (xstart[x] + j)
            c0 += w * acc[at]
            c1 += w * acc[at + 1]
            c2 += w * acc[at + 2]
        k += xcount[x]
        first, last = (c2, c0) if swap else (c0, c2)
        out[0, x] = first * consts[0, 0] + consts[1, 0]
        out[1, x] = c1 * consts[0, 1] + consts[1, 1]
        out[2, x] = last * consts[0, 2] + consts[1, 2]


@_kernel
def _store_row(  # noqa: PLR0917 - numba kernels and the contract take positional arguments
    dst32: np.ndarray, dst16: np.ndarray, half: bool, y: int, x0: int, row: np.ndarray
) -> None:
    if half:
        bits = row.view(np.uint32)
        for plane in range(3):
            for x in range(row.shape[1]):
                dst16[plane, y, x0 + x] = _half_bits(bits[plane, x])
    else:
        for plane in range(3):
            for x in range(row.shape[1]):
                dst32[plane, y, x0 + x] = row[plane, x]


@_kernel
def _fill_padding(  # noqa: PLR0917 - numba kernels and the contract take positional arguments
    dst32: np.ndarray,
    dst16: np.ndarray,
    half: bool,
    x0: int,
    y0: int,
    w: int,
    h: int,
    consts: np.ndarray,
) -> None:
    out_h = dst16.shape[1] if half else dst32.shape[1]
    out_w = dst16.shape[2] if half else dst32.shape[2]
    pad_bits = consts[2:3].copy().view(np.uint32)
    for plane in range(3):
        value = consts[2, plane]
        value16 = _half_bits(pad_bits[0, plane])
        for y in range(out_h):
            inside = y0 <= y < y0 + h
            for x in range(out_w):
                if inside and x0 <= x < x0 + w:
                    continue
                if half:
                    dst16[plane, y, x] = value16
                else:
                    dst32[plane, y, x] = value


@_kernel
def _preprocess(  # noqa: PLR0917 - numba kernels and the contract take positional arguments
    pixels: np.ndarray,
    stride: int,
    height: int,
    width: int,
    dst32: np.ndarray,
    dst16: np.ndarray,
    half: bool,
    x0: int,
    y0: int,
    w: int,
    h: int,
    consts: np.ndarray,
    swap: bool,
    interpolation: int,
) -> None:
    _fill_padding(dst32, dst16, half, x0, y0, w, h, consts)
    row = np.empty((3, w), np.float32)
    if interpolation == AREA:
        xstart, xcount, xweight = _area_taps(width, w)
        ystart, ycount, yweight = _area_taps(height, h)
        acc = np.empty(3 * width, np.float32)
        k = 0
        for y in range(h):
            _area_row(
                pixels,
                stride,
                width,
                ystart[y],
                ycount[y],
                yweight[k:],
                xstart,
                xcount,
                xweight,
                consts,
                swap,
                acc,
                row,
            )
            k += ycount[y]
            _store_row(dst32, dst16, half, y0 + y, x0, row)
        return
    left = np.empty(w, np.int64)
    right = np.empty(w, np.int64)
    fx = np.empty(w, np.float32)
    for x in range(w):
        first, frac = _linear_tap(width, w, x)
        left[x] = first
        right[x] = min(first + 1, width - 1)
        fx[x] = frac
    for y in range(h):
        first, frac = _linear_tap(height, h, y)
        _bilinear_row(
            pixels,
            stride,
            first,
            min(first + 1, height - 1),
            np.float32(frac),
            left,
            right,
            fx,
            consts,
            swap,
            row,
        )
        _store_row(dst32, dst16, half, y0 + y, x0, row)


def _pixels(src: np.ndarray) -> tuple[np.ndarray, int]:
    """A read-only 1-D byte view from the first pixel to the last, and the row stride."""
    _checks.image(src)
    stride = int(src.strides[0])
    length = (src.shape[0] - 1) * stride + 3 * src.shape[1]
    flat = np.lib.stride_tricks.as_strided(src, shape=(length,), strides=(1,), writeable=False)
    return flat, stride


_NO_F32 = np.empty((0, 0, 0), np.float32)
_NO_F16 = np.empty((0, 0, 0), np.uint16)


def preprocess_into(  # noqa: PLR0917 - numba kernels and the contract take positional arguments
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
    pixels, stride = _pixels(src)
    x0, y0, w, h = _checks.planes(dst, region)
    if interpolation not in (BILINEAR, AREA):
        raise ValueError(f"unknown interpolation {interpolation}")
    consts = np.stack([scale, bias, pad]).astype(np.float32)
    if consts.shape != (3, 3):
        raise ValueError("scale, bias and pad must each hold 3 values")
    half = dst.dtype == np.float16
    dst32 = _NO_F32 if half else dst
    dst16 = dst.view(np.uint16) if half else _NO_F16
    height, width = src.shape[:2]
    _preprocess(
        pixels,
        stride,
        height,
        width,
        dst32,
        dst16,
        bool(half),
        x0,
        y0,
        w,
        h,
        consts,
        bool(swap_rb),
        int(interpolation),
    )


# -- NMS -------------------------------------------------------------------------------------


@_kernel
def _nms(  # noqa: PLR0917 - numba kernels and the contract take positional arguments
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    has_classes: bool,
    iou_threshold: float,
    score_threshold: float,
    top_k: int,
    keep: np.ndarray,
) -> int:
    n = scores.shape[0]
    candidates = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        s = np.float64(scores[i])
        if not (s >= score_threshold) or not np.isfinite(s):
            continue
        if not np.all(np.isfinite(boxes[i])):
            continue
        candidates[m] = i
        m += 1
    candidates = candidates[:m]
    order = candidates[np.argsort(-scores[candidates], kind="mergesort")]
    kept_box = np.empty((min(m, top_k), 5), np.float64)
    kept_cls = np.empty(min(m, top_k), np.int64)
    count = 0
    for i in order:
        if count >= top_k:
            break
        x1 = np.float64(boxes[i, 0])
        y1 = np.float64(boxes[i, 1])
        x2 = np.float64(boxes[i, 2])
        y2 = np.float64(boxes[i, 3])
        area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        label = classes[i] if has_classes else 0
        suppressed = False
        for j in range(count):
            if kept_cls[j] != label:
                continue
            iw = min(kept_box[j, 2], x2) - max(kept_box[j, 0], x1)
            ih = min(kept_box[j, 3], y2) - max(kept_box[j, 1], y1)
            if iw <= 0.0 or ih <= 0.0:
                continue
            inter = iw * ih
            union = (kept_box[j, 4] + area) - inter
            if union > 0.0 and inter / union > iou_threshold:
                suppressed = True
                break
        if suppressed:
            continue
        kept_box[count, 0] = x1
        kept_box[count, 1] = y1
        kept_box[count, 2] = x2
        kept_box[count, 3] = y2
        kept_box[count, 4] = area
        kept_cls[count] = label
        keep[count] = i
        count += 1
    return count


_NO_CLASSES = np.zeros(0, np.int64)


def _readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view, so Numba sees one array type whatever the caller's flags."""
    view: np.ndarray = array.view()
    view.flags.writeable = False
    return view


def nms(  # noqa: PLR0917 - numba kernels and the contract take positional arguments
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float,
    score_threshold: float,
    top_k: int,
) -> npt.NDArray[np.int64]:
    """Kept indices (int64) of greedy class-aware NMS, by descending score (ties: lower index)."""
    _checks.detections(boxes, scores, classes, iou_threshold, top_k)
    keep = np.empty(max(1, min(len(scores), top_k)), np.int64)
    labels = _NO_CLASSES if classes is None else np.ascontiguousarray(classes)
    count = _nms(
        _readonly(np.ascontiguousarray(boxes)),
        _readonly(np.ascontiguousarray(scores)),
        _readonly(labels),
        classes is not None,
        float(iou_threshold),
        float(score_threshold),
        int(top_k),
        keep,
    )
    kept: npt.NDArray[np.int64] = keep[:count]
    return kept


# -- motion ----------------------------------------------------------------------------------


@_kernel
def _motion_cells(pixels: np.ndarray, stride: int, factor: int, out: np.ndarray) -> None:
    rows, cols = out.shape[0], out.shape[1]
    n = cols * factor * 3
    colsum = np.empty(n, np.uint32)
    cells = factor * factor
    for gy in range(rows):
        colsum[:] = 0
        for r in range(factor):
            base = (gy * factor + r) * stride
            for x in range(n):
                colsum[x] += np.uint32(pixels[base + x])
        for gx in range(cols):
            s0 = s1 = s2 = 0
            for i in range(gx * factor * 3, (gx + 1) * factor * 3, 3):
                s0 += colsum[i]
                s1 += colsum[i + 1]
                s2 += colsum[i + 2]
            out[gy, gx, 0] = s0 // cells
            out[gy, gx, 1] = s1 // cells
            out[gy, gx, 2] = s2 // cells


def motion_cells(src: np.ndarray, factor: int, out: np.ndarray) -> None:
    """Block mean of each channel of ``src`` over ``factor`` x ``factor`` blocks into ``out``."""
    _checks.cells_out(src, factor, out)
    pixels, stride = _pixels(src)
    _motion_cells(pixels, stride, int(factor), out)


@_kernel
def _motion_diff(
    prev: np.ndarray, cur: np.ndarray, threshold: int
) -> tuple[int, int, int, int, int]:
    count = 0
    x0, y0 = prev.shape[1], prev.shape[0]
    x1, y1 = 0, 0
    for y in range(prev.shape[0]):
        for x in range(prev.shape[1]):
            moved = False
            for k in range(prev.shape[2]):
                if abs(np.int64(cur[y, x, k]) - np.int64(prev[y, x, k])) > threshold:
                    moved = True
            if moved:
                count += 1
                x0 = min(x0, x)
                y0 = min(y0, y)
                x1 = max(x1, x + 1)
                y1 = max(y1, y + 1)
    if count == 0:
        return 0, 0, 0, 0, 0
    return count, x0, y0, x1, y1


def motion_diff(
    prev: np.ndarray, cur: np.ndarray, threshold: int
) -> tuple[int, int, int, int, int]:
    """``(changed, x0, y0, x1, y1)``: cells where any channel moved by more than ``threshold``,
    and their box."""
    _checks.grids(prev, cur)
    result = _motion_diff(
        _readonly(np.ascontiguousarray(prev)), _readonly(np.ascontiguousarray(cur)), int(threshold)
    )
    count, x0, y0, x1, y1 = (int(v) for v in result)
    return count, x0, y0, x1, y1


@_kernel
def _add_wrapped(base: np.ndarray, level: int, noise: np.ndarray, out: np.ndarray) -> None:
    lvl = np.uint8(level)
    for y in range(base.shape[0]):
        for x in range(base.shape[1]):
            for c in range(3):
                out[y, x, c] = base[y, x, c] + lvl + noise[y, x, c]


def add_wrapped(base: np.ndarray, level: int, noise: np.ndarray, out: np.ndarray) -> None:
    """``out = (base + level + noise) mod 256``, byte by byte."""
    _checks.wrapped_sum(base, level, noise, out)
    _add_wrapped(_readonly(base), int(level), _readonly(noise), out)


@_kernel
def _paint_wrapped(
    out: np.ndarray, mask: np.ndarray, colour: np.ndarray, noise: np.ndarray
) -> None:
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            if mask[y, x]:
                for c in range(3):
                    out[y, x, c] = colour[c] + noise[y, x, c]


def paint_wrapped(out: np.ndarray, mask: np.ndarray, colour: np.ndarray, noise: np.ndarray) -> None:
    """``out = (colour + noise) mod 256`` where ``mask`` is set."""
    _checks.painted(out, mask, colour, noise)
    _paint_wrapped(out, _readonly(mask), _readonly(colour), _readonly(noise))


# -- start-up --------------------------------------------------------------------------------


def warm_up() -> None:
    """Compile (or load from the cache) every signature the public functions use."""
    src = np.zeros((4, 5, 3), np.uint8)
    consts = np.ones(3, np.float32)
    for dtype in (np.float32, np.float16):
        for interpolation in (BILINEAR, AREA):
            dst = np.empty((3, 4, 4), dtype)
            preprocess_into(src, dst, (0, 1, 4, 2), consts, consts, consts, True, interpolation)
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    nms(boxes, scores, None, 0.5, 0.1, 10)
    nms(boxes, scores, np.zeros(2, np.int64), 0.5, 0.1, 10)
    cells = np.empty((2, 2, 3), np.uint8)
    motion_cells(src, 2, cells)
    motion_diff(cells, cells, 10)
    add_wrapped(src, 1, src, np.empty_like(src))
    paint_wrapped(np.empty_like(src), np.ones(src.shape[:2], bool), np.ones(3, np.uint8), src)
