"""Motion score: how much of the picture changed since the last frame, and where.

Frames are reduced to a grid of cells -- the mean of each colour channel over a ``factor x
factor`` block -- and a cell *changed* when any of its channels moved by more than
``threshold`` levels. Averaging over a block before comparing makes the score robust to sensor
noise and cheap (a 1080p frame is 240x135 cells at the default factor 8). Per channel, not one
grey level: grey is blind to a change that keeps the brightness -- a red object over green
foliage as bright -- and a gate that misses it loses the frame
(docs/decisions/0004-per-channel-motion-gate.md).
Rows and columns beyond the last whole block are ignored (at most ``factor - 1`` of each, along
the bottom and right edges). Integer arithmetic throughout: every implementation gives the same
result.

Later stages gate inference and uploads on it: no change, no need to look again.

>>> import numpy as np
>>> still = np.zeros((64, 96, 3), np.uint8)
>>> moved = still.copy()
>>> moved[8:24, 40:56] = 255                 # a bright 16x16 square appears
>>> detector = MotionDetector(factor=8, threshold=25)
>>> detector.update(still).changed_fraction  # the first frame counts as all motion
1.0
>>> result = detector.update(moved)
>>> result.changed_cells, result.box, round(result.changed_fraction, 3)
(4, (40, 8, 56, 24), 0.042)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core._native import kernel
from core.errors import ConfigError, FrameError
from core.preprocess import check_frame

MAX_FACTOR = 256
"""Largest block size the kernels take (block sums stay within 16 bits)."""


@dataclass(frozen=True)
class MotionResult:
    """What changed between two frames."""

    changed_fraction: float
    """Changed cells over all cells, 0..1."""
    box: tuple[int, int, int, int] | None
    """``(x0, y0, x1, y1)`` (half-open) around the changed cells, in frame pixels; None if none."""
    changed_cells: int
    """Number of changed cells."""


def _check_settings(factor: int, threshold: int) -> None:
    if not 1 <= factor <= MAX_FACTOR:
        raise ConfigError(f"factor must be in [1, {MAX_FACTOR}], got {factor}")
    if not 0 <= threshold <= 255:
        raise ConfigError(f"threshold must be in [0, 255] levels, got {threshold}")


def _grid(frame: np.ndarray, factor: int, out: np.ndarray | None, impl: str | None) -> np.ndarray:
    """The cell grid of ``frame``, ``(rows, cols, 3)`` (into ``out`` when it has that shape)."""
    check_frame(frame)
    shape = (frame.shape[0] // factor, frame.shape[1] // factor, 3)
    if shape[0] == 0 or shape[1] == 0:
        raise FrameError(
            f"a {frame.shape[1]}x{frame.shape[0]} frame holds no {factor}x{factor} block"
        )
    if out is None or out.shape != shape:
        out = np.empty(shape, np.uint8)
    kernel("motion_cells", impl)(frame, factor, out)
    return out


def _compare(
    prev: np.ndarray, cur: np.ndarray, factor: int, threshold: int, impl: str | None
) -> MotionResult:
    changed, x0, y0, x1, y1 = kernel("motion_diff", impl)(prev, cur, threshold)
    box = (x0 * factor, y0 * factor, x1 * factor, y1 * factor) if changed else None
    return MotionResult(changed / (cur.shape[0] * cur.shape[1]), box, int(changed))


def motion_score(
    prev: np.ndarray,
    cur: np.ndarray,
    factor: int = 8,
    threshold: int = 25,
    *,
    impl: str | None = None,
) -> MotionResult:
    """Motion between two HxWx3 uint8 frames of the same size (stateless; see the module)."""
    _check_settings(factor, threshold)
    if prev.shape != cur.shape:
        raise FrameError(f"frames differ in size: {prev.shape} and {cur.shape}")
    before = _grid(prev, factor, None, impl)
    after = _grid(cur, factor, None, impl)
    return _compare(before, after, factor, threshold, impl)


class MotionDetector:
    """Motion of each frame against the one before, keeping only the previous cell grid.

    The first frame, and the first after a change of frame size or :meth:`reset`, has nothing
    to compare with and reports *all* motion (fraction 1.0, the whole gridded area): a gate
    that uses the score then looks at it rather than skip it.
    """

    def __init__(
        self,
        factor: int = 8,
        threshold: int = 25,
        *,
        impl: str | None = None,
    ) -> None:
        _check_settings(factor, threshold)
        self.factor = factor
        self.threshold = threshold
        self._impl = impl
        self._prev: np.ndarray | None = None
        self._spare: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame: the next one reports all motion."""
        self._prev = None

    def update(self, frame: np.ndarray) -> MotionResult:
        """Motion of ``frame`` (HxWx3 uint8) against the previous frame given to ``update``."""
        cur = _grid(frame, self.factor, self._spare, self._impl)
        prev, self._prev, self._spare = self._prev, cur, self._prev
        if prev is None or prev.shape != cur.shape:
            rows, cols = cur.shape[:2]
            box = (0, 0, cols * self.factor, rows * self.factor)
            return MotionResult(1.0, box, rows * cols)
        return _compare(prev, cur, self.factor, self.threshold, self._impl)
