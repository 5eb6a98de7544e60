"""A directory of JPEG and PNG images as a source: one image per frame, in name order.

Names sort naturally (``frame2.jpg`` before ``frame10.jpg``), so numbered captures play in
order however they were padded. The stream's size is the first image's; every image must have
it. JPEGs decode with libjpeg-turbo straight into the ring slot (:func:`core.jpeg.decode_into`,
no copy); PNGs through OpenCV (or Pillow), then one copy. An image of another size, or one
that does not decode, raises :class:`~core.errors.SourceFrameError` naming the file and the
cause, and the next read moves on to the next image. ``fps`` is the rate the folder claims
(:attr:`ImageDirSource.nominal_fps`); ``start_index`` is the first image's position; ``loop``
starts again at the first image.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from core import jpeg
from core.errors import CorruptJpegError, SourceError, SourceFrameError
from core.sources.base import Source, SourceConfig, SourceFrame
from core.sources.decoders import optional_module

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
"""File name endings (any case) the source reads; other files are left alone."""

_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_INSTALL = "pip install 'edgeloop[video]'"


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing runs of digits as numbers: ``f2`` < ``f10``.

    >>> sorted(["f10.jpg", "f2.jpg", "f1.jpg"], key=natural_key)
    ['f1.jpg', 'f2.jpg', 'f10.jpg']
    """
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    )


def _decode_png(data: bytes) -> np.ndarray:
    """A PNG (or any format the library knows) as HxWx3 BGR; ValueError when it does not decode."""
    cv2 = optional_module("cv2")
    if cv2 is None:
        pil = optional_module("PIL.Image")  # Pillow: the fallback where OpenCV is not installed
        if pil is None:
            raise ValueError(f"PNG needs OpenCV or Pillow: {_INSTALL}")
        try:
            with pil.open(io.BytesIO(data)) as image:
                rgb = np.asarray(image.convert("RGB"))
        except (OSError, SyntaxError) as exc:
            raise ValueError(str(exc)) from exc
        return np.ascontiguousarray(rgb[..., ::-1])
    decoded: Any = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError("OpenCV could not decode it (corrupt or truncated)")
    return np.asarray(decoded)


class ImageDirSource(Source):
    """The JPEG/PNG files directly in ``config.uri`` (not in subdirectories)."""

    def __init__(self, config: SourceConfig, stream_id: int) -> None:
        super().__init__(config, stream_id)
        self.directory = Path(str(config.uri))
        self.files: list[Path] = []

    def open(self) -> tuple[int, int]:
        if not self.directory.is_dir():
            raise SourceError(f"{self.name}: {self.directory} is not a directory")
        try:
            names = [p for p in self.directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot list {self.directory}: {exc}") from exc
        self.files = sorted((p for p in names if p.is_file()), key=lambda p: natural_key(p.name))
        if not self.files:
            raise SourceError(f"{self.name}: no .jpg, .jpeg or .png file in {self.directory}")
        first = self.files[0]
        data = self._read(first)
        try:
            if first.suffix.lower() in _JPEG_SUFFIXES:
                header = jpeg.read_header(data)
                shape = (header.height, header.width)
            else:
                shape = _decode_png(data).shape[:2]
        except (CorruptJpegError, ValueError) as exc:
            raise SourceError(f"{self.name}: the first image {first.name}: {exc}") from exc
        return self._opened(shape)

    @property
    def nominal_fps(self) -> float:
        return self.config.fps

    def _read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SourceFrameError(f"{self.name}: cannot read {path.name}: {exc}") from exc

    def seek(self, index: int) -> bool:
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        self._next_index = int(index)
        return True

    def read_into(self, out: np.ndarray) -> SourceFrame | None:
        self._check_out(out)
        index = self._next_index
        if index >= len(self.files) and not self.config.loop:
            return None
        self._next_index += 1  # a bad image is skipped: the next read takes the next one
        path = self.files[index % len(self.files)]
        data = self._read(path)
        try:
            if path.suffix.lower() in _JPEG_SUFFIXES:
                self._check_size(path, jpeg.read_header(data)[:2])
                jpeg.decode_into(data, out)
            else:
                image = _decode_png(data)
                self._check_size(path, (image.shape[1], image.shape[0]))
                np.copyto(out, image)
        except (CorruptJpegError, ValueError) as exc:
            if isinstance(exc, SourceFrameError):
                raise
            raise SourceFrameError(f"{self.name}: {path.name}: {exc}") from exc
        return SourceFrame(index, time.monotonic_ns())

    def _check_size(self, path: Path, size: tuple[int, int]) -> None:
        assert self._shape is not None
        height, width = self._shape
        if size != (width, height):
            raise SourceFrameError(
                f"{self.name}: {path.name} is {size[0]}x{size[1]}, the stream is "
                f"{width}x{height} (the size of its first image, {self.files[0].name}); skipped"
            )
