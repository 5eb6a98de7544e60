"""Live sources (V4L2 cameras, network streams): a reader thread each, bounded waits, reconnects.

Why a reader thread: a live camera does not wait for the pipeline. The thread decodes frames as
they arrive, each into a new array, and keeps at most :data:`QUEUED_FRAMES` of them; when the
pipeline falls behind the oldest is dropped (counted in :attr:`LiveSource.dropped_frames`), so
the pipeline always gets a recent frame and latency does not creep up through buffers. Its
``capture_ns`` is when the thread had the frame decoded. :meth:`LiveSource.read_into` waits
at most ``timeout_s`` for a frame and copies it into the slot: one copy, because the thread
must never write into a slot the pipeline may already have reused after a timeout.

The thread never blocks for long either: the decoders bound every read by ``timeout_s``
(FFmpeg's interrupt callback in PyAV, ``CAP_PROP_READ_TIMEOUT_MSEC`` in OpenCV), and the thread
alone closes its decoder, so nothing is freed under a read in progress.

Reconnect policy, the same for every live source:

1. A stall (no frame within ``timeout_s``: :class:`~core.errors.SourceStalledError`), a lost
   connection, a read error or the sender ending the stream (:class:`~core.errors.SourceError`)
   is raised by the read that meets it, and the connection is dropped. A frame that does not
   decode (:class:`~core.errors.SourceFrameError`) is raised too, but keeps the connection.
2. The next read reconnects at once. A reconnect that fails raises
   :class:`~core.errors.SourceError` with the cause, and the next attempt waits 1 s, then 2, 4,
   8, 16 and at most 30 s (:data:`BACKOFF_S`). A read that comes during that wait sleeps at most
   ``timeout_s`` of it, then raises :class:`~core.errors.SourceStalledError` ("reconnecting in
   ...") rather than block longer.
3. A frame delivered resets the count. After ``reconnect_attempts`` consecutive failed
   reconnects (-1: never give up) the stream has ended: reads return None. With
   ``reconnect_attempts: 0`` the first loss ends the stream (a sender that closes it cleanly,
   with no error, then simply ends it).
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections import deque

import numpy as np

from core.errors import SourceError, SourceFrameError, SourceStalledError
from core.sources.base import Source, SourceConfig, SourceFrame
from core.sources.decoders import Decoder

__all__ = ["BACKOFF_S", "QUEUED_FRAMES", "LiveSource"]

log = logging.getLogger(__name__)

QUEUED_FRAMES = 2
"""Decoded frames a reader thread keeps waiting for the pipeline; older ones are dropped."""

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
"""Wait before reconnect attempt 2, 3, ...; the last value repeats."""


class _End:
    """The sender ended the stream."""


_Item = tuple[np.ndarray, int, bool] | SourceError | _End
"""A frame (pixels, capture time, whether the decoder concealed errors in it), an error, the
end."""


class _Mailbox:
    """What the reader thread hands over: frames (the newest :data:`QUEUED_FRAMES`), errors and
    the end (never dropped, so neither is ever lost behind a frame)."""

    def __init__(self) -> None:
        self._items: deque[_Item] = deque()
        self._ready = threading.Condition()
        self.dropped = 0

    def put(self, item: _Item) -> None:
        with self._ready:
            if isinstance(item, tuple):
                frames = [i for i in self._items if isinstance(i, tuple)]
                if len(frames) >= QUEUED_FRAMES:
                    self._items.remove(frames[0])
                    self.dropped += 1
            self._items.append(item)
            self._ready.notify()

    def get(self, timeout: float) -> _Item | None:
        """The oldest item, or None when nothing came within ``timeout`` seconds."""
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._items), timeout):
                return None
            return self._items.popleft()


class _Reader:
    """One connection: a decoder and the thread that reads it into a mailbox."""

    def __init__(self, decoder: Decoder, name: str) -> None:
        self.decoder = decoder
        self.mailbox = _Mailbox()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"edgeloop {name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    frame = self.decoder.read()
                except SourceFrameError as exc:
                    self.mailbox.put(exc)
                    continue
                except SourceError as exc:
                    self.mailbox.put(exc)
                    return
                except Exception as exc:  # a library failure: report it, never die silently
                    self.mailbox.put(SourceError(f"{self.decoder.name}: reader failed: {exc!r}"))
                    return
                if frame is None:
                    self.mailbox.put(_End())
                    return
                self.mailbox.put((frame, time.monotonic_ns(), self.decoder.concealed))
        finally:
            self.decoder.close()


class LiveSource(Source):
    """A source fed by a reader thread; subclasses say how to :meth:`connect`."""

    live = True

    def active_decoder(self) -> Decoder | None:
        reader = self._reader
        return reader.decoder if reader is not None else None

    def __init__(self, config: SourceConfig, stream_id: int) -> None:
        super().__init__(config, stream_id)
        self._reader: _Reader | None = None
        self._fps: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._ended = False
        self._dropped_before = 0
        self._stopping: list[_Reader] = []

    @abc.abstractmethod
    def connect(self) -> Decoder:
        """Open the device or stream (bounded by ``timeout_s``); SourceError naming the cause."""

    def open(self) -> tuple[int, int]:
        self.close()
        self._ended, self._failures = False, 0
        decoder = self.connect()
        self._start(decoder)
        return self._opened((decoder.height, decoder.width))

    def _start(self, decoder: Decoder) -> None:
        self._reader = _Reader(decoder, self.name)
        self._fps = decoder.fps

    @property
    def nominal_fps(self) -> float | None:
        return self._fps

    @property
    def dropped_frames(self) -> int:
        """Frames the reader thread decoded but dropped because the pipeline was behind."""
        reader = self._reader
        return self._dropped_before + (reader.mailbox.dropped if reader is not None else 0)

    def read_into(self, out: np.ndarray) -> SourceFrame | None:
        self._check_out(out)
        if self._reader is None:
            if self._ended:
                return None
            self._reconnect()
        assert self._reader is not None
        item = self._reader.mailbox.get(self.config.timeout_s)
        if item is None:
            raise self._lost(f"no frame within {self.config.timeout_s:g} s", SourceStalledError)
        if isinstance(item, _End):
            if self.config.reconnect_attempts == 0:
                self._drop()
                self._ended = True
                return None
            raise self._lost("the sender ended the stream")
        if isinstance(item, SourceFrameError):
            raise item
        if isinstance(item, SourceError):  # a stall FFmpeg's own timeout caught stays a stall
            raise self._lost(str(item).removeprefix(f"{self.name}: "), type(item))
        frame, capture_ns, concealed = item
        if frame.shape != out.shape:
            raise self.error(
                f"a {frame.shape[1]}x{frame.shape[0]} frame, the stream was opened at "
                f"{out.shape[1]}x{out.shape[0]}; skipped",
                SourceFrameError,
            )
        np.copyto(out, frame)
        self._failures = 0
        return self._delivered(capture_ns, concealed=concealed)

    def _drop(self) -> None:
        """Let go of the connection: its thread closes the decoder when its read returns."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop.set()
            self._dropped_before += reader.mailbox.dropped
            self._stopping = [r for r in self._stopping if r.thread.is_alive()] + [reader]
        self._retry_at = 0.0

    def _lost(self, cause: str, kind: type[SourceError] = SourceError) -> SourceError:
        self._drop()
        if self.config.reconnect_attempts == 0:
            self._ended = True
            return self.error(f"{cause}; not reconnecting (reconnect_attempts: 0)", kind)
        return self.error(f"{cause}; reconnecting on the next read", kind)

    def _reconnect(self) -> None:
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, self.config.timeout_s))
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise self.error(f"reconnecting in {wait:.1f} s", SourceStalledError)
        attempt, limit = self._failures + 1, self.config.reconnect_attempts
        try:
            decoder = self.connect()
        except SourceError as exc:
            self._failures = attempt
            cause = str(exc).removeprefix(f"{self.name}: ")
            if 0 <= limit <= attempt:
                self._ended = True
                raise self.error(f"reconnect {attempt}/{limit} failed, giving up: {cause}") from exc
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1]
            self._retry_at = time.monotonic() + delay
            raise self.error(
                f"reconnect {attempt} failed, next try in {delay:g} s: {cause}"
            ) from exc
        log.info("%s: reconnected (attempt %d)", self.name, attempt)
        self._start(decoder)

    def close(self) -> None:
        """Stop the reader threads (this connection's and any dropped one still in a read):
        each ends within ``timeout_s``, the bound on its decoder's reads."""
        self._drop()
        deadline = time.monotonic() + self.config.timeout_s + 0.5
        for reader in self._stopping:
            reader.thread.join(max(0.0, deadline - time.monotonic()))
            if reader.thread.is_alive():  # in a library call that ignored its timeout
                log.warning("%s: a reader thread is still running after close", self.name)
        self._stopping = [r for r in self._stopping if r.thread.is_alive()]
