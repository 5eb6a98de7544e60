"""Type stubs for :mod:`native._jpeg` (libjpeg-turbo's TurboJPEG API, bound in Cython)."""

from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

# NumPy's stubs give ndarray ``__buffer__`` only for Python >= 3.12, so name arrays explicitly.
_BufferLike: TypeAlias = Buffer | npt.NDArray[Any]
_Out = TypeVar("_Out", bound=_BufferLike)

SAMP_444: int
SAMP_422: int
SAMP_420: int
SAMP_GRAY: int
SAMP_440: int
SAMP_411: int

PF_RGB: int
PF_BGR: int
PF_GRAY: int

CS_RGB: int
CS_YCbCr: int
CS_GRAY: int
CS_CMYK: int
CS_YCCK: int

FLAG_FASTDCT: int
FLAG_ACCURATEDCT: int
FLAG_FASTUPSAMPLE: int
FLAG_PROGRESSIVE: int

SCALING_FACTORS: tuple[tuple[int, int], ...]

class TurboJpegError(ValueError):
    operation: str
    is_warning: bool
    def __init__(self, message: str, operation: str, is_warning: bool) -> None: ...

class LayoutError(ValueError): ...

class OutputTooSmallError(ValueError):
    needed: int
    def __init__(self, message: str, needed: int) -> None: ...

def buffer_size(width: int, height: int, subsampling: int) -> int: ...

class Encoder:
    def __init__(self) -> None: ...
    def encode(
        self,
        image: _BufferLike,
        quality: int = 85,
        subsampling: int = ...,
        pixel_format: int = ...,
        flags: int = 0,
    ) -> bytes: ...
    def encode_into(
        self,
        image: _BufferLike,
        out: _BufferLike,
        quality: int = 85,
        subsampling: int = ...,
        pixel_format: int = ...,
        flags: int = 0,
    ) -> int: ...

class Decoder:
    @property
    def last_warning(self) -> str | None: ...
    def __init__(self) -> None: ...
    def header(self, jpeg: _BufferLike) -> tuple[int, int, int, int]: ...
    def scaled_size(
        self, jpeg: _BufferLike, scale: tuple[int, int] = (1, 1)
    ) -> tuple[int, int]: ...
    def decode(
        self,
        jpeg: _BufferLike,
        scale: tuple[int, int] = (1, 1),
        pixel_format: int = ...,
        flags: int = 0,
        strict: bool = True,
    ) -> npt.NDArray[np.uint8]: ...
    def decode_into(
        self,
        jpeg: _BufferLike,
        out: _Out,
        scale: tuple[int, int] = (1, 1),
        pixel_format: int = ...,
        flags: int = 0,
        strict: bool = True,
    ) -> _Out: ...
