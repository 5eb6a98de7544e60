"""Source workers: each stream's source runs :func:`core.pipeline.streams.source_loop` in a
thread of the pipeline's process or in a process of its own (``source_workers``:
:mod:`core.pipeline.placement`), writing into the stream's ring and block.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from core.errors import EdgeloopError, PipelineError
from core.pipeline.streams import FAILED, SourceLoopSettings, StreamBlock, source_loop
from core.ring import FrameRing
from core.sources import Source, SourceConfig, open_source
from core.spawned import exit_cause
from core.threadname import name_this_thread

log = logging.getLogger("edgeloop.pipeline")

OPEN_TIMEOUT_S = 60.0
"""How long a source process may take to start and open its source."""


class PipeStopFlag:
    """A source process's stop flag: set when the parent writes to (or closes) its pipe.

    Why not ``multiprocessing.Event``: its ``set()`` waits for every process sleeping in
    ``wait()`` to wake and acknowledge, so a source process that hangs -- stopped by a signal,
    stuck in a driver -- would hang the parent's stop forever. A byte down a pipe never waits
    for the reader."""

    def __init__(self, reader: Connection) -> None:
        self._reader = reader
        self._set = False

    def is_set(self) -> bool:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> bool:
        if not self._set:
            try:
                self._set = self._reader.poll(timeout)
            except (EOFError, OSError):  # the parent is gone: stop
                self._set = True
        return self._set


class SourceWorker:
    """Common face of the thread and process workers, for the pipeline."""

    stream_id: int
    name: str
    shape: tuple[int, int]
    has_truth: bool
    config: SourceConfig
    facts: dict[str, Any]
    """What the source reads and how (:meth:`core.sources.Source.facts`), once opened."""
    kind: str
    """``thread`` or ``process``: where it runs."""

    def start(self, ring: FrameRing, block: StreamBlock, settings: SourceLoopSettings) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; True when the worker is gone."""
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def abandon(self) -> str:
        """Give up on a worker that did not stop: what was done about it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the worker holds in this process (after it stopped or was abandoned)."""


class ThreadSourceWorker(SourceWorker):
    """A source read by a daemon thread of this process (``source_workers: auto`` for a
    source that renders or copies: it releases the GIL, and a thread starts instantly;
    :mod:`core.pipeline.placement`)."""

    kind = "thread"

    def __init__(self, source: Source, config: SourceConfig) -> None:
        self.source = source
        self.config = config
        self.stream_id = source.stream_id
        self.name = source.name
        self.shape = source.open()
        self.has_truth = source.has_ground_truth()
        self.facts = source.facts()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, ring: FrameRing, block: StreamBlock, settings: SourceLoopSettings) -> None:
        producer = ring.producer()

        def run() -> None:
            name_this_thread(f"source-{self.stream_id}")
            try:
                source_loop(self.source, producer, block, settings, self._stop)
            except BaseException:  # pragma: no cover - a bug, or the ring closed under a
                # worker that was abandoned: report it, the pipeline reads the state
                log.exception("source worker of %s crashed", self.name)
                try:
                    block.set_state(FAILED, "the source worker crashed (see the log)")
                    producer.close(end_of_stream=True)
                except Exception:
                    pass

        self._thread = threading.Thread(target=run, name=f"source-{self.stream_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def abandon(self) -> str:
        return "its thread is stuck in read_into and was left behind (a daemon thread)"

    def close(self) -> None:
        if not self.alive():
            self.source.close()


def _child_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(name)s[%(process)d]: %(message)s")


def _source_process(
    config: SourceConfig,
    stream_id: int,
    conn: Connection,
    stop_reader: Connection,
    make_source: Callable[[SourceConfig, int], Source],
) -> None:
    """A source process: open the source, say its size, attach the ring, run the loop."""
    stop = PipeStopFlag(stop_reader)
    name_this_thread(f"source-{stream_id}")
    _child_logging()
    try:
        source = make_source(config, stream_id)
        shape = source.open()
    except Exception as exc:  # the parent raises an edgeloop error as it would in a thread
        conn.send(("error", f"{type(exc).__name__}: {exc}", _portable(exc)))
        return
    try:
        conn.send(("opened", shape, source.has_ground_truth(), source.name, source.facts()))
        if not conn.poll(OPEN_TIMEOUT_S):
            return
        message = conn.recv()
        if message[0] != "attach":
            return
        _, ring_name, block_name, slots, settings = message
        ring = FrameRing.attach(ring_name)
        block = StreamBlock(block_name, slots, create=False)
        try:
            producer = ring.producer()
            conn.send(("ready",))
            source_loop(source, producer, block, settings, stop)
        finally:
            block.close()
            ring.close()
    finally:
        source.close()


def _portable(exc: Exception) -> EdgeloopError | None:
    """``exc`` when it is an edgeloop error that survives pickling, else None."""
    if not isinstance(exc, EdgeloopError):
        return None
    try:
        pickle.dumps(exc)
    except Exception:  # an argument that does not pickle
        return None
    return exc


class ProcessSourceWorker(SourceWorker):
    """A source read by a process of its own (``spawn``: safe beside the parent's threads),
    writing into the shared-memory ring; its decoding or rendering never holds the parent's
    GIL. Start-up costs an interpreter (about half a second) and the source's own opening:
    made with ``wait=False``, the process starts and :meth:`opened` waits for it, so that
    several streams start side by side."""

    kind = "process"

    def __init__(
        self,
        config: SourceConfig,
        stream_id: int,
        make_source: Callable[[SourceConfig, int], Source] = open_source,
        *,
        wait: bool = True,
    ) -> None:
        self.config = config
        self.stream_id = stream_id
        ctx = multiprocessing.get_context("spawn")
        stop_reader, self._stop = ctx.Pipe(duplex=False)
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_source_process,
            args=(config, stream_id, child, stop_reader, make_source),
            name=f"edgeloop-source-{stream_id}",
            daemon=True,
        )
        self._process.start()
        child.close()
        stop_reader.close()
        if wait:
            self.opened()

    def opened(self) -> None:
        """Wait until the process opened its source (its size, name and facts then known);
        the source's own error where it could not."""
        reply = self._receive(OPEN_TIMEOUT_S, "open its source")
        if reply[0] == "error":
            self._process.join(5.0)
            if reply[2] is not None:  # a SourceError, ConfigError...: the same as in a thread
                raise reply[2]
            raise PipelineError(f"source {self.stream_id} ({self.config.kind}): {reply[1]}")
        _, shape, self.has_truth, self.name, self.facts = reply
        self.shape = (int(shape[0]), int(shape[1]))

    def _receive(self, timeout: float, what: str) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._conn.poll(0.05):
                try:
                    reply: tuple[Any, ...] = self._conn.recv()
                except EOFError:  # it hung up: it is exiting, and its exit code says why
                    self._process.join(1.0)
                    break
                return reply
            if not self._process.is_alive():
                break
        exitcode = self._process.exitcode
        self.abandon()
        cause = f"within {timeout:.0f} s" if exitcode is None else f"({exit_cause(exitcode)})"
        raise PipelineError(f"source process {self.stream_id} did not {what} {cause}")

    def start(self, ring: FrameRing, block: StreamBlock, settings: SourceLoopSettings) -> None:
        self._conn.send(("attach", ring.name, block.name, block.slots, settings))
        self._receive(OPEN_TIMEOUT_S, "attach its ring")

    def stop(self) -> None:
        """Ask the process to stop; never waits for it (:class:`PipeStopFlag`)."""
        with contextlib.suppress(OSError):
            self._stop.send_bytes(b"s")

    def join(self, timeout: float) -> bool:
        self._process.join(timeout)
        return not self._process.is_alive()

    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode

    def abandon(self) -> str:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(2.0)
        return "its process did not stop and was killed"

    def close(self) -> None:
        self._conn.close()
        self._stop.close()
