"""JPEG for the edge runtime: frames and crops to JPEG bytes and back, through libjpeg-turbo.

The ``compress`` stage and everything else in edgeloop that touches JPEG goes through here.
The work is done by :mod:`native._jpeg`, which binds libjpeg-turbo's TurboJPEG C API directly
(why not PyTurboJPEG: see that module's docstring). This layer adds what a caller wants:

* **Names, not constants.** ``subsampling="420"``, ``pixel_format="bgr"``, ``scale=0.25``; bad
  values raise :class:`~core.errors.JpegError` (a ``ValueError``) listing the allowed ones.
* **One codec per thread.** TurboJPEG handles are not thread-safe, and the GIL is released for the
  whole C call, so each thread gets its own cached encoder and decoder: two threads encoding
  use two cores, and steady-state encoding allocates nothing but the returned ``bytes``.
* **No copies.** Images may be views with padded rows (a crop of a ring slot is a slice, and its
  row stride goes to libjpeg-turbo as the pitch); :func:`decode_into` writes into a buffer the
  caller owns (a ring slot, or a view into a bigger array).
* **Errors from :mod:`core.errors`.** A frame with the wrong dtype, shape or layout raises
  :class:`~core.errors.FrameError`; bytes that are not a complete, valid JPEG raise
  :class:`~core.errors.CorruptJpegError` whose message names the cause ("truncated JPEG: ...").
  ``strict=False`` turns libjpeg's recoverable warnings (a truncated stream) into a partial image
  (the missing part grey) instead.

Defaults: the accurate integer DCT both ways and smooth chroma upsampling, as libjpeg's own
tools, OpenCV, Pillow and simplejpeg use. (TurboJPEG's C API on its own picks the *fast* DCT when
compressing below quality 96, and so does ``tjbench`` unless given ``-accuratedct``, which
``bench/micro/jpeg.py`` passes so that it compares like with like.) ``fast_dct=True`` trades a
little quality for speed.

>>> from core.sample_media import scene_image
>>> image = scene_image(120, 160)
>>> data = encode(image, quality=90)
>>> read_header(data)
JpegHeader(width=160, height=120, subsampling='420', colorspace='ycbcr')
>>> decode(data, scale=0.5).shape
(60, 80, 3)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from core.errors import CorruptJpegError, FrameError, JpegError, NativeBuildError

try:
    from native import _jpeg
except ImportError as _exc:  # pragma: no cover - depends on the build
    raise NativeBuildError(
        "native._jpeg is not built: install libturbojpeg0-dev, then run `make native` "
        "(or `EDGELOOP_BUILD_ONLY=_jpeg python setup.py build_ext --inplace`)"
    ) from _exc

if TYPE_CHECKING:
    from typing import TypeAlias

    from typing_extensions import Buffer

    # Bytes-like: bytes, bytearray, memoryview, mmap, a uint8 array (NumPy's stubs give ndarray
    # ``__buffer__`` only from Python 3.12 on, hence the union).
    BytesLike: TypeAlias = Buffer | npt.NDArray[np.uint8]

__all__ = [
    "JpegHeader",
    "PixelFormat",
    "Subsampling",
    "crop_view",
    "decode",
    "decode_into",
    "decoded_shape",
    "encode",
    "encode_crop",
    "encode_into",
    "max_encoded_size",
    "read_header",
]

U8Image = npt.NDArray[np.uint8]
Subsampling = Literal["444", "422", "420", "440", "411", "gray"]
PixelFormat = Literal["bgr", "rgb", "gray"]
_Out = TypeVar("_Out", bound=npt.NDArray[np.uint8])

_SUBSAMPLING: dict[str, int] = {
    "444": _jpeg.SAMP_444,
    "422": _jpeg.SAMP_422,
    "420": _jpeg.SAMP_420,
    "440": _jpeg.SAMP_440,
    "411": _jpeg.SAMP_411,
    "gray": _jpeg.SAMP_GRAY,
}
_SUBSAMPLING_NAMES: dict[int, str] = {code: name for name, code in _SUBSAMPLING.items()}
_PIXEL_FORMAT: dict[str, int] = {"bgr": _jpeg.PF_BGR, "rgb": _jpeg.PF_RGB, "gray": _jpeg.PF_GRAY}
_COLORSPACE_NAMES: dict[int, str] = {
    _jpeg.CS_YCbCr: "ycbcr",
    _jpeg.CS_GRAY: "gray",
    _jpeg.CS_RGB: "rgb",
    _jpeg.CS_CMYK: "cmyk",
    _jpeg.CS_YCCK: "ycck",
}
# DCT-domain scaling: libjpeg-turbo decodes straight to these sizes, SIMD-accelerated.
_SCALES: dict[float, tuple[int, int]] = {1.0: (1, 1), 0.5: (1, 2), 0.25: (1, 4), 0.125: (1, 8)}


class JpegHeader(NamedTuple):
    """What a JPEG says about itself before decoding: size, chroma subsampling, colourspace."""

    width: int
    height: int
    subsampling: str
    """One of the :data:`Subsampling` names, or ``"unknown"`` (libjpeg-turbo 3.x only)."""
    colorspace: str
    """``"ycbcr"``, ``"gray"``, ``"rgb"``, ``"cmyk"`` or ``"ycck"``."""


class _Codecs(threading.local):
    """This thread's encoder and decoder (created on the thread's first JPEG call)."""

    def __init__(self) -> None:
        self.encoder = _jpeg.Encoder()
        self.decoder = _jpeg.Decoder()


_codecs = _Codecs()


@contextmanager
def _native_errors() -> Iterator[None]:
    """Turn :mod:`native._jpeg`'s exceptions into :mod:`core.errors` ones, naming the cause."""
    try:
        yield
    except _jpeg.LayoutError as exc:
        raise FrameError(str(exc)) from exc
    except _jpeg.OutputTooSmallError as exc:
        raise JpegError(str(exc)) from exc
    except _jpeg.TurboJpegError as exc:
        if exc.operation == "encode":
            raise JpegError(f"libjpeg-turbo could not encode: {exc}") from exc
        raise CorruptJpegError(_corruption_message(str(exc), exc.is_warning)) from exc


def _corruption_message(detail: str, is_warning: bool) -> str:
    if detail.startswith("empty input"):
        return "empty JPEG data (0 bytes)"
    if detail.startswith("Not a JPEG file"):
        return f"not a JPEG: {detail}"
    if detail.startswith(("Premature end", "no image before the end")):
        hint = " (decode with strict=False for the partial image)" if is_warning else ""
        return f"truncated JPEG: {detail}{hint}"
    hint = " (decode with strict=False to accept it)" if is_warning else ""
    return f"corrupt JPEG: {detail}{hint}"


def _choice(value: object, table: dict[str, int], what: str) -> int:
    if isinstance(value, str) and value in table:
        return table[value]
    allowed = ", ".join(repr(name) for name in table)
    raise JpegError(f"unknown {what} {value!r}; use one of {allowed}")


def _encode_settings(
    image: npt.NDArray[Any], quality: int, subsampling: str, pixel_format: str, fast_dct: bool
) -> tuple[int, int, int, int]:
    """``(quality, subsampling, pixel_format, flags)`` for :mod:`native._jpeg`, checked.

    A one-channel image (``H x W`` or ``H x W x 1``) is grey whatever ``pixel_format`` says and
    always makes a greyscale JPEG: chroma subsampling has nothing to apply to.
    """
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer):
        raise JpegError(f"quality must be an integer in 1..100, got {quality!r}")
    if not 1 <= quality <= 100:
        raise JpegError(f"quality must be an integer in 1..100, got {quality!r}")
    quality = int(quality)
    samp = _choice(subsampling, _SUBSAMPLING, "subsampling")
    pf = _choice(pixel_format, _PIXEL_FORMAT, "pixel_format")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1) or pf == _jpeg.PF_GRAY:
        pf, samp = _jpeg.PF_GRAY, _jpeg.SAMP_GRAY
    return quality, samp, pf, _dct_flag(fast_dct)


def _dct_flag(fast_dct: bool) -> int:
    """Always explicit: TurboJPEG 2.x compresses with the fast DCT below quality 96 otherwise."""
    return _jpeg.FLAG_FASTDCT if fast_dct else _jpeg.FLAG_ACCURATEDCT


def _as_array(image: object) -> npt.NDArray[Any]:
    """``image`` itself when it is an array (never copied), else ``np.asarray(image)``."""
    return image if isinstance(image, np.ndarray) else np.asarray(image)


def encode(
    image: U8Image,
    *,
    quality: int = 85,
    subsampling: Subsampling = "420",
    pixel_format: PixelFormat = "bgr",
    fast_dct: bool = False,
) -> bytes:
    """Compress ``image`` to JPEG bytes.

    ``image``: ``H x W x 3`` uint8 in ``pixel_format`` order (``"bgr"``, OpenCV's, or ``"rgb"``),
    or ``H x W`` / ``H x W x 1`` grey. Rows may be padded -- any view whose pixels are packed,
    such as ``frame[y0:y1, x0:x1]`` -- and are read in place. ``quality``: 1..100.
    ``subsampling``: chroma subsampling, ``"420"`` (the usual), ``"422"``, ``"444"`` (sharpest
    colour edges), ``"440"``, ``"411"`` or ``"gray"`` (a greyscale JPEG from a colour image).
    ``fast_dct``: libjpeg-turbo's faster, slightly less accurate forward DCT.

    >>> data = encode(np.full((16, 16, 3), 128, np.uint8))
    >>> data[:2], data[-2:]
    (b'\\xff\\xd8', b'\\xff\\xd9')
    """
    array = _as_array(image)
    q, samp, pf, flags = _encode_settings(array, quality, subsampling, pixel_format, fast_dct)
    with _native_errors():
        return _codecs.encoder.encode(array, q, samp, pf, flags)


def encode_into(
    image: U8Image,
    out: BytesLike,
    *,
    quality: int = 85,
    subsampling: Subsampling = "420",
    pixel_format: PixelFormat = "bgr",
    fast_dct: bool = False,
) -> int:
    """Compress ``image`` into the writable, contiguous buffer ``out``; return the JPEG's length.

    An ``out`` of :func:`max_encoded_size` bytes is always large enough and is written directly;
    a smaller one gets a copy when the JPEG fits, and :class:`~core.errors.JpegError` when not.
    Same arguments as :func:`encode`.
    """
    array = _as_array(image)
    q, samp, pf, flags = _encode_settings(array, quality, subsampling, pixel_format, fast_dct)
    with _native_errors():
        return _codecs.encoder.encode_into(array, out, q, samp, pf, flags)


def crop_view(frame: U8Image, box: Sequence[float]) -> U8Image:
    """The view of ``frame`` inside ``box`` = ``(x0, y0, x1, y1)`` (pixels, half-open, as
    detections give them): fractional edges round outwards, edges outside the frame are clipped.
    No pixel is copied.

    >>> crop_view(np.zeros((100, 200, 3), np.uint8), (10.5, -5, 50, 20.2)).shape
    (21, 40, 3)
    """
    if len(box) != 4:
        raise FrameError(f"box must be (x0, y0, x1, y1), got {box!r}")
    if getattr(frame, "ndim", 0) not in (2, 3):
        raise FrameError(f"frame must be an H x W x C or H x W array, got {type(frame).__name__}")
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise FrameError(f"box must be finite, got {box!r}")
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if right <= left or bottom <= top:
        raise FrameError(f"box {tuple(box)!r} leaves nothing of a {width} x {height} frame")
    return frame[top:bottom, left:right]


def encode_crop(
    frame: U8Image,
    box: Sequence[float],
    *,
    quality: int = 85,
    subsampling: Subsampling = "420",
    pixel_format: PixelFormat = "bgr",
    fast_dct: bool = False,
) -> bytes:
    """Compress the part of ``frame`` inside ``box`` (see :func:`crop_view`) without copying it:
    the crop is a view, and libjpeg-turbo reads its rows in place through the frame's row stride.

    >>> frame = np.zeros((100, 200, 3), np.uint8)
    >>> read_header(encode_crop(frame, (10, 20, 74, 52)))[:2]
    (64, 32)
    """
    return encode(
        crop_view(frame, box),
        quality=quality,
        subsampling=subsampling,
        pixel_format=pixel_format,
        fast_dct=fast_dct,
    )


def max_encoded_size(width: int, height: int, subsampling: Subsampling = "420") -> int:
    """The most bytes a ``width`` x ``height`` JPEG can take (libjpeg-turbo's ``tjBufSize``):
    the size of an :func:`encode_into` buffer that never needs a copy."""
    samp = _choice(subsampling, _SUBSAMPLING, "subsampling")
    if width < 1 or height < 1:
        raise FrameError(f"width and height must be positive, got {width} x {height}")
    return _jpeg.buffer_size(width, height, samp)


def read_header(data: BytesLike) -> JpegHeader:
    """Size, subsampling and colourspace of the JPEG ``data`` (only the headers are parsed)."""
    with _native_errors():
        width, height, samp, cs = _codecs.decoder.header(data)
    return JpegHeader(
        width,
        height,
        _SUBSAMPLING_NAMES.get(samp, "unknown"),
        _COLORSPACE_NAMES.get(cs, "unknown"),
    )


def _decode_settings(
    scale: float, pixel_format: str, fast_dct: bool, fast_upsample: bool
) -> tuple[tuple[int, int], int, int]:
    try:
        factor = _SCALES[scale]
    except (KeyError, TypeError):
        allowed = ", ".join(str(s) for s in _SCALES)
        raise JpegError(
            f"scale {scale!r} is not one libjpeg-turbo decodes to; use {allowed}"
        ) from None
    pf = _choice(pixel_format, _PIXEL_FORMAT, "pixel_format")
    flags = _dct_flag(fast_dct) | (_jpeg.FLAG_FASTUPSAMPLE if fast_upsample else 0)
    return factor, pf, flags


def decoded_shape(
    data: BytesLike, *, scale: float = 1.0, pixel_format: PixelFormat = "bgr"
) -> tuple[int, ...]:
    """The shape :func:`decode` returns for these arguments (to preallocate a ``decode_into`` out).

    >>> decoded_shape(encode(np.zeros((100, 150), np.uint8)), scale=0.25, pixel_format="gray")
    (25, 38)
    """
    factor, pf, _ = _decode_settings(scale, pixel_format, False, False)
    with _native_errors():
        height, width = _codecs.decoder.scaled_size(data, factor)
    return (height, width) if pf == _jpeg.PF_GRAY else (height, width, 3)


def decode(
    data: BytesLike,
    *,
    scale: float = 1.0,
    pixel_format: PixelFormat = "bgr",
    strict: bool = True,
    fast_dct: bool = False,
    fast_upsample: bool = False,
) -> U8Image:
    """Decode JPEG ``data`` into a new uint8 array: ``H x W x 3`` (``"bgr"``/``"rgb"``) or
    ``H x W`` (``"gray"``).

    ``scale``: 1.0, 0.5, 0.25 or 0.125, applied inside the inverse DCT (far cheaper than decoding
    full size and resizing); sizes round up (``ceil(W * scale)``). ``strict``: a truncated or
    damaged stream raises :class:`~core.errors.CorruptJpegError`; with ``strict=False`` it gives
    what could be decoded (the rest grey). ``fast_dct``/``fast_upsample``: libjpeg-turbo's faster,
    slightly less accurate inverse DCT and chroma upsampling.
    """
    factor, pf, flags = _decode_settings(scale, pixel_format, fast_dct, fast_upsample)
    with _native_errors():
        return _codecs.decoder.decode(data, factor, pf, flags, strict)


def decode_into(
    data: BytesLike,
    out: _Out,
    *,
    scale: float = 1.0,
    pixel_format: PixelFormat = "bgr",
    strict: bool = True,
    fast_dct: bool = False,
    fast_upsample: bool = False,
) -> _Out:
    """Decode JPEG ``data`` into ``out`` and return ``out``.

    ``out``: a writable uint8 array of exactly :func:`decoded_shape`; its rows may be padded, so a
    ring slot or a view into a bigger array works (``big[10:10 + h, 20:20 + w]``). A wrong shape,
    dtype or layout raises :class:`~core.errors.FrameError` before anything is written. Other
    arguments as for :func:`decode`.
    """
    factor, pf, flags = _decode_settings(scale, pixel_format, fast_dct, fast_upsample)
    with _native_errors():
        return _codecs.decoder.decode_into(data, out, factor, pf, flags, strict)
