"""Each stream's source loop and shared block: the source reads frames straight into its
FrameRing's slots, in a thread of the pipeline's process or in a process of its own
(:mod:`core.pipeline.source_workers`).

What travels with a frame besides the ring's own metadata (sequence number, stream id, capture
time) lives in a small per-stream block beside the ring -- shared memory in both modes, so one
code path serves both: the frame index goes in the ring's ``flags``; the ground truth (synthetic
sources) in a per-slot sidecar written before the slot is published and read after it is taken,
so the ring's own protocol orders the two. The block also carries the stream's status (state,
counts, the last error) and the source stage's timings, which the parent reads.

Pacing: with ``rate`` set, a worker publishes each frame on its tick, as a camera delivers one
from its buffer when the frame clock ticks, sleeping until the tick (``Event.wait``, never a
busy wait: spinning would steal a core from the stages on a 2-core machine). A replayed source
(the synthetic camera, a file, a folder) paced from the start reads on a thread of its own, up
to :data:`READ_AHEAD` frames ahead in claimed slots, as a camera's buffer holds them: a key
frame that takes several periods to decode then delays no tick
(docs/decisions/0032-the-suite-reads-h264.md). A live source, or one paced only by a later
change, reads in turn with publishing, starting a little before the tick (1.5 times the mean
read, plus 0.2 ms).
A period or more behind (still reading, or waiting for a free slot while the stages are
behind), it counts the ticks that passed without a frame (``missed_ticks``: a camera would
have lost those frames) and gives the frame the latest tick that passed, rather than bursting.
Why not read at the tick: reads vary, so frames would arrive unevenly and one that came early
would wait out the previous frame's whole inference (docs/decisions/0003-paced-ticks.md).

A replayed source's paced frame (the synthetic camera, a file, a folder) is stamped captured
at its tick, the time a camera would have captured it: its time is the pacing's to give. A
frame published late (its read, or a free slot, came after its tick) carries that lateness
in its end-to-end latency, and the ticks it let pass are counted, so a run that fell behind
cannot look faster by producing fewer frames (coordinated omission: load generators such as
MLPerf's LoadGen measure from the scheduled time for the same reason; the same record). A live
source's frame keeps the time it was decoded at (:attr:`core.sources.Source.live`), since it
really was captured then. A frame read when the stream stops is not published.

Failures: a read that raises :class:`~core.errors.SourceStalledError` or any other error is
counted (stalls apart), logged with its cause (rate-limited) and retried; ``error_limit``
consecutive failures end the stream as ``failed``. ``None`` from a read ends it as ``ended``.
A frame in which the decoder concealed errors (``SourceFrame.concealed``) is published as
decoded, counted (``concealed``) and logged the same way: it is data, damaged, not a failure.
Either way the producer closes the ring, so the stream's consumer drains what was published and
then sees the end of the stream.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from core.detections import GroundTruth
from core.errors import RingTimeoutError, SourceStalledError
from core.pipeline.priority import be_nicer
from core.pipeline.stats import HEADER, SAMPLES, ErrorLog, StageStats
from core.ring import RingProducer, WritableSlot
from core.shm import create_segment, open_segment, unlink_segment
from core.sources import Source, SourceFrame
from core.threadname import name_this_thread

log = logging.getLogger("edgeloop.pipeline")

TRUTH_MAX = 64
"""Ground-truth objects kept per frame (the synthetic camera draws at most 64)."""

RUNNING, ENDED, FAILED, STOPPED = range(4)
STATE_NAMES = {RUNNING: "running", ENDED: "ended", FAILED: "failed", STOPPED: "stopped"}
(
    _STATE,
    _PRODUCED,
    _ERRORS,
    _STALLS,
    _READING_SINCE,
    _LAST_FRAME,
    _CONCEALED,
    _MISSED_TICKS,
    _PERIOD_ASKED,
    _LOOPS,
) = range(10)
_STATUS_FIELDS = 10
UNPACED = -1
"""In the block's asked period: run unpaced (0 there: nothing asked, keep the settings')."""
_MESSAGE_BYTES = 256
LEAD_SLACK_NS = 200_000
"""Added to 1.5 times the mean read for when a paced read starts before its tick."""
READ_AHEAD = 3
"""Frames a paced replayed source keeps read, in claimed slots, ahead of their ticks: a
camera's buffer, which absorbs a key frame that takes several periods to decode."""
POLL_S = 0.1
"""How often the read-ahead's threads look at the stop flag while they wait for each other."""


class StopFlag(Protocol):
    """``threading.Event``, or :class:`core.pipeline.source_workers.PipeStopFlag` in a source
    process."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


def _layout(slots: int) -> list[tuple[str, np.dtype[Any], tuple[int, ...]]]:
    return [
        ("status", np.dtype(np.int64), (_STATUS_FIELDS,)),
        ("stats", np.dtype(np.int64), (HEADER + SAMPLES,)),
        ("truth_boxes", np.dtype(np.float32), (slots, TRUTH_MAX, 4)),
        ("truth_classes", np.dtype(np.int64), (slots, TRUTH_MAX)),
        ("truth_occluded", np.dtype(np.float32), (slots, TRUTH_MAX)),
        ("truth_count", np.dtype(np.int32), (slots,)),
        ("message", np.dtype(np.uint8), (_MESSAGE_BYTES,)),
    ]


def _block_bytes(slots: int) -> int:
    return sum(-(-dt.itemsize * int(np.prod(shape)) // 64) * 64 for _, dt, shape in _layout(slots))


class StreamBlock:
    """A stream's shared block: status, source timings and the ground-truth sidecar.

    Created by the pipeline (``create``) beside the ring, attached by a source process
    (``attach``); the creator unlinks it on :meth:`close`.
    """

    def __init__(self, name: str, slots: int, *, create: bool) -> None:
        self.name = name
        self.slots = slots
        size = _block_bytes(slots)
        self._owner = create
        self._segment = create_segment(name, size) if create else open_segment(name)
        buffer = memoryview(self._segment)
        offset = 0
        views: dict[str, npt.NDArray[Any]] = {}
        for field, dtype, shape in _layout(slots):
            count = int(np.prod(shape))
            views[field] = np.frombuffer(buffer, dtype, count, offset).reshape(shape)
            offset += -(-dtype.itemsize * count // 64) * 64
        del buffer
        self.status: npt.NDArray[np.int64] = views["status"]
        self.stats = StageStats("source", views["stats"])
        self._boxes = views["truth_boxes"]
        self._classes = views["truth_classes"]
        self._occluded = views["truth_occluded"]
        self._count = views["truth_count"]
        self._message = views["message"]
        self._views = views

    # -- the sidecar ------------------------------------------------------------------------

    def write_truth(self, slot: int, truth: GroundTruth | None) -> None:
        """Store ``truth`` for the frame being written into ``slot`` (before publishing)."""
        if truth is None:
            self._count[slot] = -1
            return
        n = min(len(truth.classes), TRUTH_MAX)
        self._boxes[slot, :n] = truth.boxes[:n]
        self._classes[slot, :n] = truth.classes[:n]
        self._occluded[slot, :n] = truth.occluded[:n]
        self._count[slot] = n

    def read_truth(self, slot: int) -> GroundTruth | None:
        """The ground truth of the frame in ``slot`` (after taking it), copied out."""
        n = int(self._count[slot])
        if n < 0:
            return None
        return GroundTruth(
            self._boxes[slot, :n].copy(),
            self._classes[slot, :n].copy(),
            self._occluded[slot, :n].copy(),
        )

    # -- status -------------------------------------------------------------------------------

    @property
    def state(self) -> int:
        return int(self.status[_STATE])

    def set_state(self, state: int, message: str | None = None) -> None:
        if message is not None:
            self.set_message(message)
        self.status[_STATE] = state

    def set_message(self, message: str) -> None:
        data = message.encode("utf-8", "replace")[: _MESSAGE_BYTES - 1]
        self._message[: len(data)] = np.frombuffer(data, np.uint8)
        self._message[len(data)] = 0

    @property
    def message(self) -> str:
        raw = bytes(self._message)
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    @property
    def produced(self) -> int:
        return int(self.status[_PRODUCED])

    @property
    def errors(self) -> int:
        return int(self.status[_ERRORS])

    @property
    def stalls(self) -> int:
        return int(self.status[_STALLS])

    @property
    def concealed(self) -> int:
        """Frames delivered in which the decoder concealed errors (damaged data)."""
        return int(self.status[_CONCEALED])

    @property
    def missed_ticks(self) -> int:
        """Ticks of a paced stream that passed without a frame (:attr:`FrameClock.missed`)."""
        return int(self.status[_MISSED_TICKS])

    @property
    def loops(self) -> int:
        """Times the source went back to its start (a looping file)."""
        return int(self.status[_LOOPS])

    @property
    def last_frame_ns(self) -> int:
        """When the last frame was published (``time.monotonic_ns``; 0 before the first)."""
        return int(self.status[_LAST_FRAME])

    def ask_rate(self, rate: float | None) -> None:
        """Pace the running stream at ``rate`` frames/s from its next frame (None: unpaced):
        a live change, read by the source loop in whichever process it runs."""
        self.status[_PERIOD_ASKED] = int(1e9 / rate) if rate else UNPACED

    def reading_for_s(self, now_ns: int) -> float:
        """How long the current read has been going on (0.0 when not reading)."""
        since = int(self.status[_READING_SINCE])
        return (now_ns - since) / 1e9 if since else 0.0

    def close(self) -> None:
        """Drop the views and unmap; the creator also unlinks the name."""
        self._views.clear()
        for attr in ("status", "_boxes", "_classes", "_occluded", "_count", "_message"):
            setattr(self, attr, np.zeros(0))
        self.stats = StageStats("source")
        with contextlib.suppress(BufferError):  # a view lives on: unmapped when it goes
            self._segment.close()
        if self._owner:
            unlink_segment(self.name)


@dataclass(frozen=True)
class SourceLoopSettings:
    """What a source worker needs besides its source, ring and block (picklable)."""

    stream_id: int
    rate: float | None
    quota: int | None
    error_limit: int
    claim_timeout_s: float = 0.1
    nice: int = 0
    """Steps nicer than inference the loop runs (:mod:`core.pipeline.priority`)."""


class FrameClock:
    """A paced stream's frame clock (see the module docstring): when to start reading the next
    frame (:meth:`wait_to_read`), and when to publish it (:meth:`wait`, its tick)."""

    def __init__(self, period_ns: int) -> None:
        self.period_ns = period_ns
        self.due_ns = time.monotonic_ns()
        self.lead_ns = 0
        """How long before its tick a read starts: 1.5 times the mean read, plus 0.2 ms."""
        self._read_ns = 0.0
        self.missed = 0
        """Ticks that passed without a frame: the worker was still reading, or waited for a
        free slot (back-pressure). A camera would have lost these frames."""

    def wait_to_read(self, stop: StopFlag) -> bool:
        """Sleep until ``lead_ns`` before the next tick; False when ``stop`` was set meanwhile."""
        start = self.due_ns - self.lead_ns
        now = time.monotonic_ns()
        if start > now:
            return not stop.wait((start - now) / 1e9)
        return True

    def learn(self, read_ns: int) -> None:
        """One more read's time (a moving average of them sets ``lead_ns``, at most a period)."""
        self._read_ns = 0.9 * self._read_ns + 0.1 * read_ns if self._read_ns else float(read_ns)
        self.lead_ns = min(self.period_ns, int(1.5 * self._read_ns) + LEAD_SLACK_NS)

    def wait(self, stop: StopFlag) -> int | None:
        """Sleep until the next tick (at once when it has passed) and return the tick's time
        (ns, ``time.monotonic_ns``): the frame's capture time. None when ``stop`` is set,
        before or meanwhile. A period or more late, the ticks that passed without a frame are
        counted in :attr:`missed` and the frame takes the latest tick that passed: no burst to
        catch up, and its lateness (under a period) is in its latency."""
        if stop.is_set():
            return None
        now = time.monotonic_ns()
        if self.due_ns > now:
            if stop.wait((self.due_ns - now) / 1e9):
                return None
        elif now - self.due_ns >= self.period_ns:
            passed = (now - self.due_ns) // self.period_ns
            self.missed += passed
            self.due_ns += passed * self.period_ns
        tick = self.due_ns
        self.due_ns += self.period_ns
        return tick


class _Read(NamedTuple):
    """A frame read into a claimed slot, not yet published."""

    slot: WritableSlot
    frame: SourceFrame
    start_ns: int
    end_ns: int


class _End(NamedTuple):
    """Why the stream ends: its final state and message."""

    state: int
    message: str


class _Reader:
    """One stream's reads into claimed slots, with the failure rules of the module docstring
    (errors counted and retried, ``error_limit`` in a row end the stream) and the quota."""

    def __init__(
        self,
        source: Source,
        producer: RingProducer,
        block: StreamBlock,
        settings: SourceLoopSettings,
    ) -> None:
        self.source = source
        self.producer = producer
        self.block = block
        self.settings = settings
        self.errlog = ErrorLog()
        self.stage = f"source {source.name}"
        self.consecutive = 0
        self.read = 0

    def next(self) -> _Read | _End | None:
        """The next frame, read into a claimed slot; an :class:`_End` when the stream ends
        (its end, the quota, too many failed reads); None when no slot came free within the
        claim timeout or the read failed (counted: call again)."""
        settings, status, block = self.settings, self.block.status, self.block
        if settings.quota is not None and self.read >= settings.quota:
            return _End(ENDED, f"read the {settings.quota} frames asked for")
        try:
            slot = self.producer.claim(timeout=settings.claim_timeout_s)
        except RingTimeoutError:
            return None  # back-pressure; the caller looks at the stop flag again
        start = time.monotonic_ns()
        status[_READING_SINCE] = start
        try:
            frame = self.source.read_into(slot.array)
        except Exception as exc:
            self.producer.abandon(slot)
            status[_READING_SINCE] = 0
            self.consecutive += 1
            status[_STALLS if isinstance(exc, SourceStalledError) else _ERRORS] += 1
            block.stats.error()
            block.set_message(f"{type(exc).__name__}: {exc}")
            self.errlog.report(self.stage, f"{type(exc).__name__}: {exc}")
            if self.consecutive >= settings.error_limit:
                message = f"{self.consecutive} failed reads in a row, the last: {exc}"
                log.error("%s: stream given up after %s", self.stage, message)
                return _End(FAILED, message)
            return None
        end = time.monotonic_ns()
        status[_READING_SINCE] = 0
        if frame is None:
            self.producer.abandon(slot)
            return _End(ENDED, "end of stream")
        self.consecutive = 0
        if frame.concealed:
            status[_CONCEALED] += 1
            self.errlog.report(
                self.stage,
                f"frame {frame.index}: the decoder concealed errors in it (damaged data); "
                "delivered as decoded",
            )
        block.stats.record(start, end)
        self.read += 1
        return _Read(slot, frame, start, end)


class _Publisher:
    """Publishes read frames, each on its tick when the stream is paced (a live change of
    ``rate`` takes effect at the next frame), counting what was produced."""

    def __init__(
        self,
        source: Source,
        producer: RingProducer,
        block: StreamBlock,
        settings: SourceLoopSettings,
    ) -> None:
        self.source = source
        self.producer = producer
        self.block = block
        self.stream_id = settings.stream_id
        self.period_ns = int(1e9 / settings.rate) if settings.rate else 0
        self.tick = FrameClock(self.period_ns)
        self.restamp = not source.live
        self.produced = 0

    def follow_rate(self) -> None:
        """Take up a rate asked for live (:meth:`StreamBlock.ask_rate`)."""
        asked = int(self.block.status[_PERIOD_ASKED])
        if asked and asked != (self.period_ns or UNPACED):
            self.period_ns = max(0, asked)
            missed, self.tick = self.tick.missed, FrameClock(self.period_ns)  # starts now
            self.tick.missed = missed

    def publish(self, read: _Read, stop: StopFlag) -> bool:
        """Publish ``read`` (on its tick when paced); False when ``stop`` came first (the slot
        given back unpublished)."""
        status = self.block.status
        capture_ns, published_ns = read.frame.capture_ns, read.end_ns  # unpaced: once read
        if self.period_ns:
            tick_ns = self.tick.wait(stop)
            status[_MISSED_TICKS] = self.tick.missed
            if tick_ns is None:
                self.producer.abandon(read.slot)
                return False
            published_ns = time.monotonic_ns()  # on its tick, or late
            if self.restamp:
                capture_ns = tick_ns
        self.block.write_truth(read.slot.index, read.frame.truth)
        self.producer.publish(
            read.slot, stream_id=self.stream_id, capture_ns=capture_ns, flags=read.frame.index
        )
        self.produced += 1
        status[_PRODUCED] = self.produced
        status[_LOOPS] = self.source.loops
        status[_LAST_FRAME] = published_ns
        return True


def source_loop(
    source: Source,
    producer: RingProducer,
    block: StreamBlock,
    settings: SourceLoopSettings,
    stop: StopFlag,
) -> None:
    """Read frames into ring slots until the source ends, fails, the quota is met or ``stop``
    is set; then end the stream (see the module docstring). Never raises for a bad read.

    A replayed source paced from the start reads on a thread of its own, up to
    :data:`READ_AHEAD` frames ahead of their ticks, while this thread publishes them: a frame
    that takes several periods to decode (a key frame) then delays no tick."""
    be_nicer(settings.nice)
    reader = _Reader(source, producer, block, settings)
    publisher = _Publisher(source, producer, block, settings)
    final = _End(STOPPED, "stopped")
    try:
        if publisher.period_ns and publisher.restamp:
            final = _read_ahead(reader, publisher, stop) or final
            return
        while not stop.is_set():
            publisher.follow_rate()
            tick = publisher.tick
            if publisher.period_ns and not tick.wait_to_read(stop):
                break
            got = reader.next()
            if got is None:
                continue
            if isinstance(got, _End):
                final = got
                break
            if publisher.period_ns:
                tick.learn(got.end_ns - got.start_ns)
            if not publisher.publish(got, stop):
                break
    finally:
        block.set_state(final.state, final.message)
        producer.close(end_of_stream=True)


def _read_ahead(reader: _Reader, publisher: _Publisher, stop: StopFlag) -> _End | None:
    """:func:`source_loop` for a paced replayed source: ``reader`` on a thread of its own,
    its frames handed over through a queue of :data:`READ_AHEAD`; the stream's end, or None
    when ``stop`` came first. Frames read but not published are given back."""
    handed: queue.Queue[_Read | _End] = queue.Queue(READ_AHEAD)
    halt = threading.Event()

    def read() -> None:
        name_this_thread(f"read-{publisher.stream_id}")
        try:
            while not (halt.is_set() or stop.is_set()):
                got = reader.next()
                while got is not None:
                    try:
                        handed.put(got, timeout=POLL_S)
                    except queue.Full:
                        if halt.is_set() or stop.is_set():
                            if isinstance(got, _Read):
                                reader.producer.abandon(got.slot)
                            return
                        continue
                    if isinstance(got, _End):
                        return
                    got = None
        except BaseException as exc:  # never silent: the stream fails with the cause
            failed = _End(FAILED, f"the reader thread failed: {type(exc).__name__}: {exc}")
            while not halt.is_set():
                with contextlib.suppress(queue.Full):
                    handed.put(failed, timeout=POLL_S)
                    return

    thread = threading.Thread(target=read, name=f"edgeloop-read-{publisher.stream_id}")
    thread.start()
    try:
        while not stop.is_set():
            publisher.follow_rate()
            try:
                got = handed.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if isinstance(got, _End):
                return got
            if not publisher.publish(got, stop):
                return None
        return None
    finally:
        halt.set()
        thread.join()  # a read is bounded by the source's timeout_s
        while not handed.empty():
            left = handed.get_nowait()
            if isinstance(left, _Read):
                reader.producer.abandon(left.slot)
