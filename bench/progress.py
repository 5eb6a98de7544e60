"""A progress bar for the standard suite: what is running, how far the whole suite is.

On a terminal one line on stderr is redrawn in place (at most 10 times a second)::

    [##########..........]  48%  1:02  pipeline: 3120 frames, 14 s

Elsewhere (CI logs, a pipe) a plain line per message, with the elapsed time, so a log reads as
a history rather than a mess of carriage returns. ``--quiet`` silences both.

The suite declares its phases with their expected seconds up front; the bar's fraction is the
expected time of the finished phases plus the running phase's own fraction of its share.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

WIDTH = 20
REDRAW_S = 0.1


class ProgressBar:
    """Phases with expected durations; :meth:`phase` starts one, :meth:`update` moves it."""

    def __init__(
        self,
        phases: Sequence[tuple[str, float]],
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        tty: bool | None = None,
    ) -> None:
        self.weights = dict(phases)
        self.total = sum(self.weights.values()) or 1.0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty() if tty is None else tty
        self.start = time.monotonic()
        self.done = 0.0
        self.current: str | None = None
        self.fraction = 0.0
        self.text = ""
        self._drawn = 0.0
        self._width = 0

    def phase(self, name: str, message: str = "") -> None:
        """Start phase ``name`` (one of the declared ones), closing the one before."""
        if self.current is not None:
            self.done += self.weights.get(self.current, 0.0)
        self.current, self.fraction = name, 0.0
        self._show(message or name, force=True)

    def update(self, fraction: float, message: str = "") -> None:
        """The running phase is ``fraction`` done; ``message`` says what it is doing."""
        self.fraction = max(0.0, min(1.0, fraction))
        if message and message != self.text:
            self._show(message, force=not self.tty)
        else:
            self._show(self.text, force=False)

    def message(self, text: str) -> None:
        """A message without progress (the micro suites' callback)."""
        self._show(text, force=True)

    @property
    def overall(self) -> float:
        share = self.weights.get(self.current or "", 0.0) * self.fraction
        return min(1.0, (self.done + share) / self.total)

    def finish(self) -> None:
        """Clear the bar (terminal) so the summary that follows starts on a clean line."""
        if self.enabled and self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._width = 0

    def _show(self, text: str, *, force: bool) -> None:
        self.text = text
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = now - self.start
        if not self.tty:
            if force:
                print(f"[{elapsed:6.1f}s] {text}", file=self.stream, flush=True)
            return
        if not force and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        filled = round(self.overall * WIDTH)
        minutes, seconds = divmod(int(elapsed), 60)
        line = (
            f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.overall * 100:3.0f}% "
            f"{minutes}:{seconds:02d}  {text}"
        )
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._width = len(line)
