"""Fair turns between streams that compete for the same cores.

Each stream's ingest takes frames from its own ring as fast as its source fills it, so when the
streams together want more than the machine has (several decoders flat out, or cameras paced
past capacity), each one gets what the scheduler happens to give its source: on two cores,
three 1080p H.264 streams ran 50, 52 and 47 frames/s. A camera whose frames are dropped more
often than its neighbours' is a blind spot nobody chose.

:class:`FairTurns` makes the streams take turns, as a round-robin muxer does (DeepStream's
``nvstreammux`` batches one frame of each source): a stream's ingest waits before taking its
next frame while another stream that *wants* frames has taken ``slack`` or more fewer. The
one ahead stops taking, its ring fills, its source waits for a slot, and the cores go to the
sources behind. It is work-conserving: a stream that wants nothing -- a camera waiting for its
next frame, a stream that ended, a source stuck in a read -- never holds another back, and
its count is carried along so that it does not come back owed a burst
(:meth:`FairTurns.ahead`). A wait is bounded (:data:`MAX_WAIT_S`), so a wrong reading of
"wants" costs a stream at most that, never a stall.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["MAX_WAIT_S", "SLACK", "FairTurns"]

SLACK = 2
"""Frames a stream may take beyond the one furthest behind before it waits its turn."""
MAX_WAIT_S = 0.25
"""The longest one wait lasts, whatever the other streams do."""
RECHECK_S = 0.002
"""How often a waiting stream looks again whether the others still want frames."""


class FairTurns:
    """Turns between ``streams`` ingests; ``wants(j)`` says whether stream ``j`` wants frames
    now (its ingest has work, or its source is busy reading one)."""

    def __init__(self, streams: int, wants: Callable[[int], bool], *, slack: int = SLACK) -> None:
        self._taken = [0] * streams
        self._active = [True] * streams
        self._wants = wants
        self._slack = slack
        self._changed = threading.Condition()
        self.waits = 0
        """Times a stream waited its turn (for tests and reports)."""

    def ahead(self, stream: int) -> bool:
        """Whether ``stream`` is ``slack`` or more frames ahead of a stream that wants frames.
        A stream that wants none is carried along to within ``slack`` of this one."""
        mine = self._taken[stream]
        behind = False
        for other, taken in enumerate(self._taken):
            if other == stream or not self._active[other] or taken + self._slack > mine:
                continue
            if self._wants(other):
                behind = True
            else:
                self._taken[other] = mine - self._slack + 1
        return behind

    def wait_turn(self, stream: int, stop: threading.Event) -> None:
        """Return when ``stream`` may take its next frame (at once when it is not ahead; after
        :data:`MAX_WAIT_S` at most, or when ``stop`` is set)."""
        if len(self._taken) < 2:
            return
        with self._changed:
            if not self.ahead(stream):
                return
            self.waits += 1
            deadline = time.monotonic() + MAX_WAIT_S
            while not stop.is_set() and time.monotonic() < deadline:
                self._changed.wait(RECHECK_S)
                if not self.ahead(stream):
                    return

    def took(self, stream: int) -> None:
        """``stream`` took a frame."""
        with self._changed:
            self._taken[stream] += 1
            self._changed.notify_all()

    def ended(self, stream: int) -> None:
        """``stream`` takes no more frames: it no longer holds any other back."""
        with self._changed:
            self._active[stream] = False
            self._changed.notify_all()
