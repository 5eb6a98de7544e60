"""A running pipeline's state at one moment, for the device app's health checks
(:meth:`core.pipeline.Pipeline.status`): each stream's state and the age of its last frame,
and how long each worker has been in its current piece of work. Cheap to take: it reads
counters the run keeps anyway."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunStatus", "StreamStatus"]


@dataclass(frozen=True)
class StreamStatus:
    """One stream: ``state`` is ``running``, ``ended``, ``failed`` or ``stopped``."""

    stream_id: int
    name: str
    state: str
    frames: int
    """Frames its source published."""
    delivered: int
    """Frames that went through every stage."""
    last_frame_age_s: float
    """Seconds since its last frame was published (since the run started, before the first)."""
    error: str | None
    """Why it failed or hangs (None while it runs well)."""


@dataclass(frozen=True)
class RunStatus:
    """The whole run."""

    streams: tuple[StreamStatus, ...]
    busy_s: dict[str, float]
    """Worker -> seconds in its current piece of work (0.0: waiting for work). A source's
    read counts as ``source-{stream}``; the monitoring loop's time since it last ticked as
    ``monitor``."""

    def stuck(self, limit_s: float) -> dict[str, float]:
        """The workers busy for more than ``limit_s`` seconds."""
        return {name: s for name, s in self.busy_s.items() if s > limit_s}
