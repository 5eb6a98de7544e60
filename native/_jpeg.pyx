"""JPEG encode/decode through libjpeg-turbo's TurboJPEG C API, bound directly in Cython.

Why not wrap PyTurboJPEG: only its 1.x runs on the libjpeg-turbo 2.1 that Debian 12, Ubuntu
22.04 and JetPack 6 ship, and that ctypes wrapper copies crops, allocates every output, makes a
handle per call and reports a truncated stream as a warning
(docs/decisions/0019-own-libjpeg-turbo-binding.md). edgeloop needs: a crop of a ring slot
encoded in place (its row stride goes to libjpeg-turbo as ``pitch``: no copy); decoding into a
slot or any padded view; one long-lived handle and output buffer per thread, with the GIL
released for the whole C call so two encoder threads use two cores; and typed errors that tell
a truncated stream (a libjpeg warning) from a fatal one. So this module binds the TurboJPEG 2.x
functions -- present in 2.1 and still exported, unchanged, by 3.x -- and PyTurboJPEG (pinned
``>=1.7,<2``) stays a comparator in ``bench``.

Contract: ``Encoder`` and ``Decoder`` each own one handle (TurboJPEG handles are not thread-safe;
using one object from two threads at once raises ``RuntimeError`` instead of crashing). Every
buffer is checked -- dtype, shape, strides, size -- before its pointer reaches C; the C call runs
under ``with nogil:`` and the GIL is taken back only to raise. ``flags=0`` means TurboJPEG's
own defaults, which for *compression* below quality 96 is the fast DCT (``tjCompress2`` picks
``JDCT_FASTEST`` unless given ``FLAG_ACCURATEDCT``); decompression defaults to the accurate one.
``core.jpeg`` is the friendly, documented layer on top: nothing else should import this module.
"""

from cpython.buffer cimport (
    PyBUF_RECORDS,
    PyBUF_RECORDS_RO,
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from libc.limits cimport INT_MAX
from libc.string cimport memcpy

cimport turbojpeg as tj

import numpy as np

SAMP_444 = tj.TJSAMP_444
SAMP_422 = tj.TJSAMP_422
SAMP_420 = tj.TJSAMP_420
SAMP_GRAY = tj.TJSAMP_GRAY
SAMP_440 = tj.TJSAMP_440
SAMP_411 = tj.TJSAMP_411

PF_RGB = tj.TJPF_RGB
PF_BGR = tj.TJPF_BGR
PF_GRAY = tj.TJPF_GRAY

CS_RGB = tj.TJCS_RGB
CS_YCbCr = tj.TJCS_YCbCr
CS_GRAY = tj.TJCS_GRAY
CS_CMYK = tj.TJCS_CMYK
CS_YCCK = tj.TJCS_YCCK

FLAG_FASTDCT = tj.TJFLAG_FASTDCT
FLAG_ACCURATEDCT = tj.TJFLAG_ACCURATEDCT
FLAG_FASTUPSAMPLE = tj.TJFLAG_FASTUPSAMPLE
FLAG_PROGRESSIVE = tj.TJFLAG_PROGRESSIVE

# The flags a caller may pass; the others (NOREALLOC, STOPONWARNING...) are this module's business.
cdef int _USER_FLAGS = (
    tj.TJFLAG_FASTDCT | tj.TJFLAG_ACCURATEDCT | tj.TJFLAG_FASTUPSAMPLE | tj.TJFLAG_PROGRESSIVE
)
_SUBSAMPLINGS = (SAMP_444, SAMP_422, SAMP_420, SAMP_GRAY, SAMP_440, SAMP_411)
_PIXEL_FORMATS = (PF_RGB, PF_BGR, PF_GRAY)
# What NumPy calls the buffer formats a caller is likely to pass by mistake.
_FORMAT_NAMES = {
    "b": "int8", "?": "bool", "h": "int16", "H": "uint16", "i": "int32", "I": "uint32",
    "l": "int64", "L": "uint64", "q": "int64", "Q": "uint64", "e": "float16", "f": "float32",
    "d": "float64",
}


def _scaling_factors():
    cdef int count = 0
    cdef tj.tjscalingfactor *factors = tj.tjGetScalingFactors(&count)
    if factors == NULL:
        raise ImportError("libjpeg-turbo returned no scaling factors (tjGetScalingFactors)")
    return tuple(sorted(((factors[i].num, factors[i].denom) for i in range(count)),
                        key=lambda f: f[0] / f[1], reverse=True))


SCALING_FACTORS = _scaling_factors()


class TurboJpegError(ValueError):
    """libjpeg-turbo refused the data; ``is_warning`` is True for a recoverable problem
    (typically a truncated stream), False for a fatal one (not a JPEG, corrupt headers...)."""

    def __init__(self, message, operation, is_warning):
        super().__init__(message)
        self.operation = operation
        self.is_warning = is_warning


class LayoutError(ValueError):
    """An image or output buffer has the wrong dtype, shape, strides, or is read-only."""


class OutputTooSmallError(ValueError):
    """``encode_into``'s output buffer cannot hold the JPEG; ``needed`` is its size in bytes."""

    def __init__(self, message, needed):
        super().__init__(message)
        self.needed = needed


cdef struct _Image:
    unsigned char *data
    int width
    int height
    int pitch
    int pixel_format


cdef str _error_text(tj.tjhandle handle):
    cdef char *text = tj.tjGetErrorStr2(handle)
    if text == NULL:
        return "unknown libjpeg-turbo error"
    return (<bytes>text).decode("utf-8", "replace")


cdef int _check_subsampling(int subsampling) except -1:
    if subsampling not in _SUBSAMPLINGS:
        raise ValueError(f"unknown subsampling {subsampling}; use one of the SAMP_* constants")
    return 0


cdef int _check_format_and_flags(int pixel_format, int flags) except -1:
    if pixel_format not in _PIXEL_FORMATS:
        raise ValueError(f"unsupported pixel format {pixel_format}; use PF_RGB, PF_BGR or PF_GRAY")
    if flags & ~_USER_FLAGS:
        raise ValueError(f"flags {flags:#x} include flags this module manages itself")
    return 0


cdef str _format_name(Py_buffer *view):
    if view.format == NULL:
        return "uint8"
    fmt = (<bytes>view.format).decode("ascii", "replace").lstrip("@=<>!")
    if fmt == "B":
        return "uint8"
    return _FORMAT_NAMES.get(fmt, f"buffer format {fmt!r}")


cdef str _layout(Py_buffer *view):
    """``shape (...), strides (...)`` of ``view``, for error messages."""
    shape = tuple(view.shape[i] for i in range(view.ndim))
    strides = tuple(view.strides[i] for i in range(view.ndim))
    return f"shape {shape}, strides {strides}"


cdef int _image_from(Py_buffer *view, int pixel_format, str what, _Image *img) except -1:
    """Check ``view`` is a packed ``H x W x C`` (or ``H x W`` grey) uint8 image; fill ``img``."""
    cdef int channels = tj.tjPixelSize[pixel_format]
    cdef Py_ssize_t height, width, pitch
    if view.itemsize != 1 or _format_name(view) != "uint8":
        raise LayoutError(f"{what} must be uint8, got {_format_name(view)} ({_layout(view)})")
    if view.suboffsets != NULL:
        raise LayoutError(f"{what} is an indirect (PIL-style) buffer; pass a NumPy array")
    if not (
        (view.ndim == 3 and view.shape[2] == channels) or (view.ndim == 2 and channels == 1)
    ):
        want = "H x W (or H x W x 1)" if channels == 1 else f"H x W x {channels}"
        raise LayoutError(f"{what} must be {want} for this pixel format, got {_layout(view)}")
    height = view.shape[0]
    width = view.shape[1]
    if height < 1 or width < 1 or height > 65535 or width > 65535:
        raise LayoutError(f"{what} must be 1..65535 pixels each way, got {_layout(view)}")
    if view.ndim == 3 and channels > 1 and view.strides[2] != 1:
        raise LayoutError(f"{what}'s channels must be adjacent bytes, got {_layout(view)}")
    if width > 1 and view.strides[1] != channels:
        raise LayoutError(
            f"{what}'s pixels must be packed ({channels} bytes apart), got {_layout(view)}; "
            "a crop of rows and columns is fine, a step in x is not"
        )
    pitch = view.strides[0] if height > 1 else width * channels
    if pitch < width * channels or pitch > INT_MAX:
        raise LayoutError(
            f"{what}'s rows must be at least {width * channels} bytes apart, top to bottom, "
            f"got {_layout(view)}"
        )
    img.data = <unsigned char *>view.buf
    img.width = <int>width
    img.height = <int>height
    img.pitch = <int>pitch
    img.pixel_format = pixel_format
    return 0


cdef int _get_jpeg(object jpeg, Py_buffer *view) except -1:
    """Acquire ``jpeg`` as contiguous bytes (the caller releases it)."""
    try:
        PyObject_GetBuffer(jpeg, view, PyBUF_SIMPLE)
    except (TypeError, BufferError, ValueError) as exc:
        raise TypeError(
            f"JPEG data must be a contiguous bytes-like object, got {type(jpeg).__name__}"
        ) from exc
    return 0


def buffer_size(int width, int height, int subsampling):
    """The most bytes a ``width`` x ``height`` JPEG can take (``tjBufSize``): an ``encode_into``
    output of this size is always large enough, and is written without a copy."""
    _check_subsampling(subsampling)
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive, got {width} x {height}")
    return tj.tjBufSize(width, height, subsampling)


cdef class Encoder:
    """One TurboJPEG compressor and a reusable ``tjBufSize`` output buffer (one per thread).

    Steady-state ``encode`` allocates nothing but the returned ``bytes``.
    """

    cdef tj.tjhandle _handle
    cdef unsigned char *_buf
    cdef size_t _capacity
    cdef bint _busy

    def __cinit__(self):
        self._handle = tj.tjInitCompress()
        if self._handle == NULL:
            raise MemoryError(f"tjInitCompress failed: {_error_text(NULL)}")

    def __dealloc__(self):
        if self._buf != NULL:
            PyMem_RawFree(self._buf)
        if self._handle != NULL:
            tj.tjDestroy(self._handle)

    cdef int _enter(self) except -1:
        if self._busy:
            raise RuntimeError(
                "this Encoder is in use by another thread; TurboJPEG handles are not "
                "thread-safe, give each thread its own Encoder"
            )
        if self._handle == NULL:
            self._handle = tj.tjInitCompress()
            if self._handle == NULL:
                raise MemoryError(f"tjInitCompress failed: {_error_text(NULL)}")
        self._busy = True
        return 0

    cdef object _failure(self):
        """The error libjpeg-turbo just reported, after replacing the handle with a fresh one
        (as ``Decoder`` must; see there), so that one failure never poisons the next call."""
        exc = TurboJpegError(
            _error_text(self._handle), "encode",
            tj.tjGetErrorCode(self._handle) == tj.TJERR_WARNING,
        )
        tj.tjDestroy(self._handle)
        self._handle = tj.tjInitCompress()  # NULL on failure: _enter retries
        return exc

    cdef int _reserve(self, size_t needed) except -1:
        if needed <= self._capacity:
            return 0
        if self._buf != NULL:
            PyMem_RawFree(self._buf)
            self._capacity = 0
        self._buf = <unsigned char *>PyMem_RawMalloc(needed)
        if self._buf == NULL:
            raise MemoryError(f"cannot allocate a {needed}-byte JPEG buffer")
        self._capacity = needed
        return 0

    cdef unsigned char *_compress(self, object image, int quality, int subsampling,
                                  int pixel_format, int flags, unsigned char *dst,
                                  size_t dst_capacity, unsigned long *size) except NULL:
        """Compress ``image``; return where the ``*size`` JPEG bytes are: ``dst`` when it holds
        ``tjBufSize`` bytes (no copy), else the internal buffer."""
        cdef Py_buffer view
        cdef _Image img
        cdef int ret
        cdef unsigned long needed
        cdef unsigned char *out
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be 1..100, got {quality}")
        _check_subsampling(subsampling)
        _check_format_and_flags(pixel_format, flags)
        if pixel_format == tj.TJPF_GRAY and subsampling != tj.TJSAMP_GRAY:
            raise ValueError("a grey image can only make a greyscale JPEG (SAMP_GRAY)")
        PyObject_GetBuffer(image, &view, PyBUF_RECORDS_RO)
        try:
            _image_from(&view, pixel_format, "image", &img)
            needed = tj.tjBufSize(img.width, img.height, subsampling)
            if dst != NULL and dst_capacity >= needed:
                out = dst
            else:
                self._reserve(needed)
                out = self._buf
            with nogil:
                ret = tj.tjCompress2(
                    self._handle, img.data, img.width, img.pitch, img.height, img.pixel_format,
                    &out, size, subsampling, quality, flags | tj.TJFLAG_NOREALLOC,
                )
            if ret != 0:
                raise self._failure()
        finally:
            PyBuffer_Release(&view)
        return out

    def encode(self, image, int quality=85, int subsampling=SAMP_420, int pixel_format=PF_BGR,
               int flags=0):
        """Compress ``image`` (``H x W x 3`` BGR/RGB or ``H x W`` grey uint8; rows may be
        padded, as in a crop of a bigger frame) and return the JPEG bytes."""
        cdef unsigned long size = 0
        cdef unsigned char *data
        self._enter()
        try:
            data = self._compress(image, quality, subsampling, pixel_format, flags, NULL, 0, &size)
            return PyBytes_FromStringAndSize(<char *>data, size)
        finally:
            self._busy = False

    def encode_into(self, image, out, int quality=85, int subsampling=SAMP_420,
                    int pixel_format=PF_BGR, int flags=0):
        """Compress ``image`` into the writable bytes-like ``out``; return the JPEG's length.

        With ``len(out) >= buffer_size(...)`` libjpeg-turbo writes straight into ``out``;
        otherwise the JPEG is copied in if it fits, and ``OutputTooSmallError`` says how many
        bytes it needed if not.
        """
        cdef Py_buffer dst
        cdef unsigned long size = 0
        cdef unsigned char *data
        try:
            PyObject_GetBuffer(out, &dst, PyBUF_SIMPLE | PyBUF_WRITABLE)
        except (TypeError, BufferError, ValueError) as exc:
            raise LayoutError(
                f"out must be a writable, contiguous bytes-like object, got {type(out).__name__}"
            ) from exc
        try:
            self._enter()
            try:
                data = self._compress(image, quality, subsampling, pixel_format, flags,
                                      <unsigned char *>dst.buf, <size_t>dst.len, &size)
                if data != <unsigned char *>dst.buf:
                    if size > <size_t>dst.len:
                        raise OutputTooSmallError(
                            f"out holds {dst.len} bytes but the JPEG needs {size}; "
                            "buffer_size(width, height, subsampling) bytes always suffice",
                            size,
                        )
                    with nogil:
                        memcpy(dst.buf, data, size)
            finally:
                self._busy = False
        finally:
            PyBuffer_Release(&dst)
        return size


cdef inline int _scaled(int dimension, int num, int denom) noexcept:
    return (dimension * num + denom - 1) // denom


cdef tuple _check_scale(object scale):
    try:
        num, denom = scale
        factor = (int(num), int(denom))
    except (TypeError, ValueError):
        factor = None
    if factor not in SCALING_FACTORS:
        allowed = ", ".join(f"{n}/{d}" for n, d in SCALING_FACTORS)
        raise ValueError(f"scale {scale!r} is not a libjpeg-turbo scaling factor; use {allowed}")
    return factor


cdef class Decoder:
    """One TurboJPEG decompressor (one per thread).

    ``strict=True`` (the default) treats libjpeg warnings -- a truncated stream, corrupt entropy
    data -- as errors and stops at the first one; ``strict=False`` returns what was decoded (the
    rest grey) and leaves the warning in ``last_warning``.
    """

    cdef tj.tjhandle _handle
    cdef bint _busy
    cdef readonly object last_warning

    def __cinit__(self):
        self._handle = tj.tjInitDecompress()
        if self._handle == NULL:
            raise MemoryError(f"tjInitDecompress failed: {_error_text(NULL)}")
        self.last_warning = None

    def __dealloc__(self):
        if self._handle != NULL:
            tj.tjDestroy(self._handle)

    cdef int _enter(self) except -1:
        if self._busy:
            raise RuntimeError(
                "this Decoder is in use by another thread; TurboJPEG handles are not "
                "thread-safe, give each thread its own Decoder"
            )
        if self._handle == NULL:
            self._handle = tj.tjInitDecompress()
            if self._handle == NULL:
                raise MemoryError(f"tjInitDecompress failed: {_error_text(NULL)}")
        self._busy = True
        return 0

    cdef object _failure(self, str operation):
        """The error libjpeg-turbo just reported, after replacing the handle with a fresh one.

        libjpeg-turbo 2.1's ``tjDecompressHeader3`` leaves the decompressor mid-header when it
        fails, and the next call on that handle then fails too ("Unsupported marker type"); a
        new handle costs microseconds and is only needed after bad data.
        """
        exc = TurboJpegError(
            _error_text(self._handle), operation,
            tj.tjGetErrorCode(self._handle) == tj.TJERR_WARNING,
        )
        tj.tjDestroy(self._handle)
        self._handle = tj.tjInitDecompress()  # NULL on failure: _enter retries
        return exc

    cdef int _header(self, Py_buffer *src, int *width, int *height, int *subsampling,
                     int *colorspace) except -1:
        cdef int ret
        if src.len == 0:
            raise TurboJpegError("empty input (0 bytes)", "header", False)
        with nogil:
            ret = tj.tjDecompressHeader3(
                self._handle, <const unsigned char *>src.buf, <unsigned long>src.len,
                width, height, subsampling, colorspace,
            )
        if ret != 0:
            raise self._failure("header")
        if width[0] <= 0 or height[0] <= 0:
            # libjpeg-turbo 2.1 reports a stream that ends inside the headers as "tables only".
            raise TurboJpegError(
                "no image before the end of the data (truncated headers, or tables only)",
                "header", False,
            )
        return 0

    def header(self, jpeg):
        """``(width, height, subsampling, colorspace)`` of ``jpeg`` (SAMP_* and CS_* values;
        libjpeg-turbo 3.x reports subsampling -1 for layouts it has no name for)."""
        cdef Py_buffer src
        cdef int width = 0, height = 0, subsampling = 0, colorspace = 0
        _get_jpeg(jpeg, &src)
        try:
            self._enter()
            try:
                self._header(&src, &width, &height, &subsampling, &colorspace)
            finally:
                self._busy = False
        finally:
            PyBuffer_Release(&src)
        return width, height, subsampling, colorspace

    def scaled_size(self, jpeg, scale=(1, 1)):
        """``(height, width)`` that ``decode(jpeg, scale)`` returns."""
        width, height, _, _ = self.header(jpeg)
        num, denom = _check_scale(scale)
        return _scaled(height, num, denom), _scaled(width, num, denom)

    cdef object _decode(self, Py_buffer *src, object out, object scale, int pixel_format,
                        int flags, bint strict):
        """Decode ``src`` into ``out`` (None: a new array of the scaled size); return it."""
        cdef int width = 0, height = 0, subsampling = 0, colorspace = 0
        cdef int num, denom, ret, out_w, out_h
        cdef Py_buffer dst
        cdef _Image img
        _check_format_and_flags(pixel_format, flags)
        num, denom = _check_scale(scale)
        self.last_warning = None
        self._header(src, &width, &height, &subsampling, &colorspace)
        out_h = _scaled(height, num, denom)
        out_w = _scaled(width, num, denom)
        if out is None:
            if pixel_format == tj.TJPF_GRAY:
                out = np.empty((out_h, out_w), dtype=np.uint8)
            else:
                out = np.empty((out_h, out_w, 3), dtype=np.uint8)
        try:
            PyObject_GetBuffer(out, &dst, PyBUF_RECORDS)
        except (BufferError, ValueError) as exc:
            raise LayoutError(f"out must be a writable uint8 array: {exc}") from exc
        try:
            _image_from(&dst, pixel_format, "out", &img)
            if img.width != out_w or img.height != out_h:
                raise LayoutError(
                    f"out is {img.height} x {img.width} pixels but this JPEG decodes to "
                    f"{out_h} x {out_w} at scale {num}/{denom}"
                )
            if strict:
                flags |= tj.TJFLAG_STOPONWARNING
            with nogil:
                ret = tj.tjDecompress2(
                    self._handle, <const unsigned char *>src.buf, <unsigned long>src.len,
                    img.data, img.width, img.pitch, img.height, img.pixel_format, flags,
                )
            if ret != 0:
                exc = self._failure("decode")
                if strict or not exc.is_warning:
                    raise exc
                self.last_warning = str(exc)
        finally:
            PyBuffer_Release(&dst)
        return out

    def decode(self, jpeg, scale=(1, 1), int pixel_format=PF_BGR, int flags=0,
               bint strict=True):
        """Decode ``jpeg`` into a new ``H x W x 3`` (BGR/RGB) or ``H x W`` (grey) uint8 array,
        scaled in the DCT domain by ``scale`` (one of ``SCALING_FACTORS``, e.g. ``(1, 2)``)."""
        return self._run(jpeg, None, scale, pixel_format, flags, strict)

    def decode_into(self, jpeg, out, scale=(1, 1), int pixel_format=PF_BGR, int flags=0,
                    bint strict=True):
        """Decode ``jpeg`` into ``out``, a writable uint8 array of exactly the scaled size whose
        rows may be padded (a view into a bigger buffer or a ring slot); return ``out``."""
        return self._run(jpeg, out, scale, pixel_format, flags, strict)

    cdef object _run(self, object jpeg, object out, object scale, int pixel_format, int flags,
                     bint strict):
        cdef Py_buffer src
        _get_jpeg(jpeg, &src)
        try:
            self._enter()
            try:
                result = self._decode(&src, out, scale, pixel_format, flags, strict)
            finally:
                self._busy = False
        finally:
            PyBuffer_Release(&src)
        return result

