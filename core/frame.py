"""A frame as stages see it: a NumPy view of pixels plus the metadata that travels with it.

Frames taken from a :class:`core.ring.FrameRing` are *views* of a shared-memory slot: no pixel
is copied. Release a frame (``with frame:`` or ``frame.release()``) as soon as the stage is done
with the pixels; after that the slot may be overwritten and the view must not be read.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

MAX_PIXELS = 8192 * 8192
"""The largest frame (width x height) edgeloop opens unless told otherwise: the sources'
``max_pixels`` default and the TensorRT calibration frames' limit. An 8K camera (7680 x 4320)
fits with room; a header claiming more is refused before any memory is reserved for it."""


class FrameMeta(NamedTuple):
    """What travels with the pixels.

    ``seq`` is the ring's publication number (1, 2, ...: gaps mean drops), ``capture_ns`` the
    source's timestamp (``time.monotonic_ns`` unless the source says otherwise) and
    ``publish_ns`` when the producer handed the frame over (CLOCK_MONOTONIC, comparable across
    processes on one machine). ``taken_ns`` is when this consumer took it from the ring
    (``taken_ns - publish_ns`` is the handoff, without Python overhead). A NamedTuple because
    one is built per frame: it is cheap.
    """

    seq: int
    stream_id: int
    capture_ns: int
    publish_ns: int
    flags: int = 0
    slot: int = -1
    taken_ns: int = 0


class Frame:
    """Pixels (a NumPy view) and :class:`FrameMeta`; a context manager that releases the slot."""

    __slots__ = ("_release", "data", "meta")

    def __init__(
        self,
        data: npt.NDArray[np.generic],
        meta: FrameMeta,
        release: Callable[[Frame], None] | None = None,
    ) -> None:
        self.data = data
        self.meta = meta
        self._release = release

    @property
    def released(self) -> bool:
        return self._release is None

    def release(self) -> None:
        """Give the slot back (idempotent). The view must not be used afterwards."""
        release, self._release = self._release, None
        if release is not None:
            release(self)

    def __enter__(self) -> Frame:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"Frame(seq={m.seq}, stream={m.stream_id}, shape={self.data.shape}, "
            f"dtype={self.data.dtype}, slot={m.slot})"
        )
