"""A JPEG that travels with a result record: the value the filter makes and the sinks carry.

Its own module so that :mod:`core.filter` (which encodes crops and frames) and
:mod:`core.sinks` (which write them out) share it without one importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class EncodedImage:
    """A JPEG that goes with a record: a crop around detections, or the whole frame."""

    kind: Literal["crop", "frame"]
    box: tuple[float, float, float, float] | None
    """Where the crop was cut (frame pixels, xyxy, margin included); None for a full frame."""
    jpeg: bytes = field(repr=False)
