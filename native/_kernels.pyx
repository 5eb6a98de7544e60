"""The C kernels (``native/src/*.c``) behind the contract of :mod:`native.kernels`.

Thin wrappers: typed memoryviews, a cheap re-check of everything the C relies on (the ``core``
wrappers have already given the user a precise error), then the C call without the GIL. Nothing
here allocates per pixel or holds the GIL while pixels are touched.
"""

cimport kernels as lib
from cython cimport view
from libc.stdint cimport int64_t, uint8_t, uint16_t

import numpy as np

BILINEAR = lib.EL_BILINEAR
AREA = lib.EL_AREA


cdef int _check(Py_ssize_t rc, str kernel) except -1:
    if rc == lib.EL_ENOMEM:
        raise MemoryError(f"native._kernels.{kernel}: out of memory for its scratch rows")
    if rc < 0:
        raise ValueError(f"native._kernels.{kernel}: the C kernel rejected its arguments")
    return 0


cdef int _image(const uint8_t[:, :, ::view.contiguous] src, lib.el_image *img) except -1:
    if src.shape[2] != 3 or src.strides[1] != 3:
        raise ValueError("src must be HxWx3 uint8 with the 3 channels of each pixel adjacent")
    if src.shape[0] < 1 or src.shape[1] < 1 or src.strides[0] < 3 * src.shape[1]:
        raise ValueError("src must be non-empty with rows at least 3*W bytes apart")
    img.data = &src[0, 0, 0]
    img.stride = src.strides[0]
    img.height = <int>src.shape[0]
    img.width = <int>src.shape[1]
    return 0


def vector_isa():
    """The vector code path the C kernels take on this CPU (``x86-64-v4``, ``x86-64-v3``...)."""
    return lib.el_vector_isa().decode("ascii")


def preprocess_into(const uint8_t[:, :, ::view.contiguous] src, dst, region, const float[::1] scale,
                    const float[::1] bias, const float[::1] pad, bint swap_rb,
                    int interpolation):
    """Resize ``src`` into ``region`` of ``dst`` (3xOHxOW float32/float16), normalise, pad."""
    cdef lib.el_image img
    cdef lib.el_region rg
    cdef float[:, :, ::1] d32
    cdef uint16_t[:, :, ::1] d16
    cdef void *out
    cdef int dst_type, oh, ow, rc
    _image(src, &img)
    if scale.shape[0] != 3 or bias.shape[0] != 3 or pad.shape[0] != 3:
        raise ValueError("scale, bias and pad must each hold 3 float32 values")
    kind = dst.dtype.char
    if kind == "f":
        d32 = dst
        dst_type = lib.EL_FLOAT32
        shape = (d32.shape[0], d32.shape[1], d32.shape[2])
    elif kind == "e":
        d16 = dst.view(np.uint16)
        dst_type = lib.EL_FLOAT16
        shape = (d16.shape[0], d16.shape[1], d16.shape[2])
    else:
        raise ValueError(f"dst must be float32 or float16, not {dst.dtype}")
    if shape[0] != 3 or shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"dst must be 3xOHxOW, got {shape}")
    oh = shape[1]
    ow = shape[2]
    out = <void *>&d32[0, 0, 0] if dst_type == lib.EL_FLOAT32 else <void *>&d16[0, 0, 0]
    rg.x0, rg.y0, rg.width, rg.height = region
    if (rg.x0 < 0 or rg.y0 < 0 or rg.width < 1 or rg.height < 1
            or rg.x0 + rg.width > ow or rg.y0 + rg.height > oh):
        raise ValueError(f"region {tuple(region)} does not fit a {oh}x{ow} output")
    if interpolation != lib.EL_BILINEAR and interpolation != lib.EL_AREA:
        raise ValueError(f"unknown interpolation {interpolation}")
    with nogil:
        rc = lib.el_preprocess(&img, out, dst_type, oh, ow, rg, &scale[0], &bias[0], &pad[0],
                               swap_rb, interpolation)
    _check(rc, "preprocess_into")


def nms(const float[:, ::1] boxes, const float[::1] scores, classes, double iou_threshold,
        double score_threshold, Py_ssize_t top_k):
    """Kept indices (int64) of greedy class-aware NMS, by descending score."""
    cdef const int64_t[::1] cls
    cdef const int64_t *cls_ptr = NULL
    cdef const float *box_ptr = NULL
    cdef const float *score_ptr = NULL
    cdef int64_t[::1] kept
    cdef Py_ssize_t n = boxes.shape[0], count
    if boxes.shape[1] != 4 or scores.shape[0] != n:
        raise ValueError("boxes must be Nx4 and scores N float32 values")
    if not 0.0 <= iou_threshold <= 1.0 or top_k < 0:
        raise ValueError("iou_threshold must be in [0, 1] and top_k >= 0")
    if classes is not None:
        cls = classes
        if cls.shape[0] != n:
            raise ValueError("classes must hold one int64 per box")
        if n:
            cls_ptr = &cls[0]
    keep = np.empty(max(1, min(n, top_k)), dtype=np.int64)
    kept = keep
    if n:
        box_ptr = &boxes[0, 0]
        score_ptr = &scores[0]
    with nogil:
        count = lib.el_nms(box_ptr, score_ptr, cls_ptr, n, iou_threshold, score_threshold,
                           top_k, &kept[0])
    _check(count, "nms")
    return keep[:count]


def motion_cells(const uint8_t[:, :, ::view.contiguous] src, int factor, uint8_t[:, :, ::1] out):
    """Block mean of each channel of ``src`` over ``factor`` x ``factor`` blocks into ``out``."""
    cdef lib.el_image img
    cdef int rc
    _image(src, &img)
    if factor < 1 or factor > lib.EL_MAX_MOTION_FACTOR:
        raise ValueError("factor must be in [1, 256]")
    if (out.shape[0] != img.height // factor or out.shape[1] != img.width // factor
            or out.shape[2] != 3):
        raise ValueError("out must be (H // factor, W // factor, 3)")
    if out.shape[0] == 0 or out.shape[1] == 0:
        return
    with nogil:
        rc = lib.el_motion_cells(&img, factor, &out[0, 0, 0])
    _check(rc, "motion_cells")


def motion_diff(const uint8_t[:, :, ::1] prev, const uint8_t[:, :, ::1] cur, int threshold):
    """``(changed, x0, y0, x1, y1)``: cells where any channel moved by more than ``threshold``,
    and their box."""
    cdef int box[4]
    cdef int64_t changed
    cdef int h = <int>cur.shape[0], w = <int>cur.shape[1], c = <int>cur.shape[2]
    if prev.shape[0] != h or prev.shape[1] != w or prev.shape[2] != c:
        raise ValueError("prev and cur must have the same shape")
    if h == 0 or w == 0 or c == 0:
        return (0, 0, 0, 0, 0)
    with nogil:
        changed = lib.el_motion_diff(&prev[0, 0, 0], &cur[0, 0, 0], h, w, c, threshold, box)
    _check(changed, "motion_diff")
    return (changed, box[0], box[1], box[2], box[3])


def add_wrapped(const uint8_t[:, :, ::view.contiguous] base, int level,
                const uint8_t[:, :, ::view.contiguous] noise,
                uint8_t[:, :, ::view.contiguous] out):
    """``out = (base + level + noise) mod 256``, byte by byte."""
    cdef lib.el_image b, z
    cdef int rc
    if not 0 <= level <= 255:
        raise ValueError("level must be in [0, 255]")
    _image(base, &b)
    _image(noise, &z)
    if (noise.shape[0] != base.shape[0] or noise.shape[1] != base.shape[1]
            or out.shape[0] != base.shape[0] or out.shape[1] != base.shape[1]
            or out.shape[2] != 3 or out.strides[1] != 3 or out.strides[0] < 3 * out.shape[1]):
        raise ValueError("base, noise and out must be HxWx3 images of one size")
    if np.may_share_memory(out, base) or np.may_share_memory(out, noise):
        raise ValueError("out must not overlap base or noise")
    with nogil:
        rc = lib.el_add_wrapped(&b, <uint8_t>level, &z, &out[0, 0, 0], out.strides[0])
    _check(rc, "add_wrapped")


def paint_wrapped(uint8_t[:, :, ::view.contiguous] out, mask, colour,
                  const uint8_t[:, :, ::view.contiguous] noise):
    """``out = (colour + noise) mod 256`` where ``mask`` is set."""
    cdef lib.el_image z
    cdef const uint8_t[:, ::view.contiguous] m
    cdef const uint8_t[::1] c
    cdef int rc
    if mask.dtype != np.bool_ or colour.dtype != np.uint8:
        raise ValueError("mask must be a bool array and colour 3 uint8 values")
    m = mask.view(np.uint8)
    c = colour
    _image(noise, &z)
    if (out.shape[0] != noise.shape[0] or out.shape[1] != noise.shape[1] or out.shape[2] != 3
            or out.strides[1] != 3 or out.strides[0] < 3 * out.shape[1]
            or m.shape[0] != noise.shape[0] or m.shape[1] != noise.shape[1]):
        raise ValueError("out and noise must be HxWx3 and mask HxW, all of one size")
    if c.shape[0] != 3:
        raise ValueError("colour must hold 3 values")
    if np.may_share_memory(out, noise):
        raise ValueError("out must not overlap noise")
    with nogil:
        rc = lib.el_paint_wrapped(&out[0, 0, 0], out.strides[0], &z, &m[0, 0], m.strides[0],
                                  &c[0])
    _check(rc, "paint_wrapped")
