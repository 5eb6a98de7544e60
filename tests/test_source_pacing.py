"""Paced source loops: each frame is published on its tick, replayed frames are stamped captured
at it while live ones keep their own time, ticks that pass without a frame are counted, a frame
read when the stream stops is abandoned, and the frame clock neither bursts nor oversleeps a
stop. No timing assertions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from core.pipeline.streams import (
    ENDED,
    STOPPED,
    FrameClock,
    SourceLoopSettings,
    StreamBlock,
    source_loop,
)
from core.ring import FrameRing, RingConsumer
from core.sources import Source, SourceConfig, SourceFrame
from native._ring import PHASE_WRITING

SHAPE = (4, 6)
OLD_NS = 12_345
"""A capture time long past: what the double's frames claim."""
PERIOD_1KHZ = 1_000_000
"""The frame clock's period at 1000 fps (ns)."""


class _Frames(Source):
    """Frames of a constant colour (the read count) that claim :data:`OLD_NS`; with
    ``stop_at``, the read of that frame sets ``stop`` (a stop that comes mid-read)."""

    def __init__(
        self, *, live: bool = False, stop: threading.Event | None = None, stop_at: int = -1
    ) -> None:
        super().__init__(SourceConfig(), 0)
        self.live = live
        self.reads = 0
        self._stop, self._stop_at = stop, stop_at

    def open(self) -> tuple[int, int]:
        return self._opened(SHAPE)

    def read_into(self, out: np.ndarray) -> SourceFrame | None:
        out[...] = self.reads % 256
        if self.reads == self._stop_at and self._stop is not None:
            self._stop.set()
        self.reads += 1
        return self._delivered(capture_ns=OLD_NS)


@pytest.fixture
def ring() -> Iterator[FrameRing]:
    with FrameRing.create(shape=(*SHAPE, 3), slots=4) as created:
        yield created


def _loop(
    ring: FrameRing, source: Source, settings: SourceLoopSettings, stop: threading.Event
) -> tuple[StreamBlock, list[tuple[int, int]]]:
    """Run the loop to its end; the block (still open) and each frame's (pixel, capture_ns)."""
    source.open()
    consumer = ring.consumer("test")
    block = StreamBlock(f"{ring.name}.meta", ring.slots, create=True)
    source_loop(source, ring.producer(), block, settings, stop)
    frames = []
    for frame in consumer:
        with frame:
            frames.append((int(frame.data[0, 0, 0]), frame.meta.capture_ns))
    consumer.close()
    return block, frames


@pytest.mark.parametrize("live", [False, True])
def test_paced_frames_carry_their_tick_unless_live(ring: FrameRing, live: bool) -> None:
    before = time.monotonic_ns()
    settings = SourceLoopSettings(0, rate=1000.0, quota=3, error_limit=1)
    block, frames = _loop(ring, _Frames(live=live), settings, threading.Event())
    try:
        captures = [capture for _, capture in frames]
        assert len(captures) == 3 and block.state == ENDED
        if live:
            assert captures == [OLD_NS] * 3  # captured when the source says
        else:
            assert all(c >= before for c in captures)  # captured at their ticks
            gaps = np.diff(captures)  # whole periods (more than one where ticks were missed)
            assert np.all(gaps > 0) and np.all(gaps % PERIOD_1KHZ == 0)
            # ticks between the frames, and any before the first (a slow first read)
            assert block.missed_ticks >= int(gaps.sum() // PERIOD_1KHZ) - 2
    finally:
        block.close()


def test_a_paced_source_held_back_counts_the_ticks_it_missed(ring: FrameRing) -> None:
    """Stages that hold every slot (back-pressure) make the source late: the ticks that pass
    are counted, each frame still carries a tick (its lateness is latency), none bursts."""
    source = _Frames()
    source.open()
    block = StreamBlock(f"{ring.name}.meta", ring.slots, create=True)
    consumer = ring.consumer("slow")
    captures: list[int] = []

    def take_slowly() -> None:
        for frame in consumer:
            with frame:
                captures.append(frame.meta.capture_ns)
                time.sleep(0.005)  # five periods a frame

    taker = threading.Thread(target=take_slowly)
    taker.start()
    settings = SourceLoopSettings(0, rate=1000.0, quota=12, error_limit=1)
    try:
        source_loop(source, ring.producer(), block, settings, threading.Event())
        taker.join(10.0)
        assert len(captures) == 12 and block.produced == 12
        gaps = np.diff(captures)
        assert np.all(gaps % PERIOD_1KHZ == 0) and np.all(gaps > 0)
        between = int(gaps.sum() // PERIOD_1KHZ) - 11
        assert between > 0 and block.missed_ticks >= between
    finally:
        consumer.close()
        block.close()


def test_unpaced_frames_keep_the_sources_time(ring: FrameRing) -> None:
    settings = SourceLoopSettings(0, rate=None, quota=2, error_limit=1)
    block, frames = _loop(ring, _Frames(), settings, threading.Event())
    try:
        assert [capture for _, capture in frames] == [OLD_NS, OLD_NS]
    finally:
        block.close()


def test_a_frame_read_when_the_stream_stops_is_not_published(ring: FrameRing) -> None:
    stop = threading.Event()
    settings = SourceLoopSettings(0, rate=1000.0, quota=None, error_limit=1)
    block, frames = _loop(ring, _Frames(stop=stop, stop_at=1), settings, stop)
    try:
        # The second was read, never published; the first was read ahead of its tick, and is
        # published only when its tick came before the stop.
        assert [pixel for pixel, _ in frames] in ([0], [])
        assert block.state == STOPPED and block.produced == len(frames)
        assert ring.stats().published == len(frames) and ring.occupancy() == 0
    finally:
        block.close()


def test_the_clock_starts_a_read_ahead_of_its_tick_by_what_reads_take() -> None:
    period = 10 * 10**9
    clock = FrameClock(period)
    assert clock.lead_ns == 0  # nothing read yet: read at the tick
    for _ in range(50):
        clock.learn(2_000_000)  # 2 ms reads
    assert clock.lead_ns == pytest.approx(1.5 * 2_000_000 + 200_000, rel=1e-3)
    clock.learn(100 * period)  # one read longer than any period: the lead stops at one
    assert clock.lead_ns == period


def test_a_clock_that_fell_behind_counts_the_ticks_it_missed() -> None:
    period = 1_000_000
    clock = FrameClock(period)
    clock.due_ns -= 50 * period  # fifty frames late
    before = time.monotonic_ns()
    tick = clock.wait(threading.Event())  # at once: no sleep for a tick long gone
    after = time.monotonic_ns()
    assert tick is not None and before - period < tick <= after  # the latest tick that passed
    assert clock.missed >= 50  # the ticks before it had no frame
    assert clock.due_ns == tick + period > before  # no burst of fifty frames to catch up


def test_a_stopped_clock_neither_waits_nor_publishes() -> None:
    clock = FrameClock(10 * 10**9)
    assert clock.wait(threading.Event()) is not None  # the first tick is now
    stop = threading.Event()
    stop.set()
    assert not clock.wait_to_read(stop)  # the next read is ten seconds off: not waited for
    assert clock.wait(stop) is None


def test_a_rate_asked_while_running_paces_from_the_next_frame(ring: FrameRing) -> None:
    """``StreamBlock.ask_rate`` (a live config change) reaches a running loop: frames read
    after it are paced and stamped on their ticks, those before keep the source's time."""
    block = StreamBlock(f"{ring.name}.meta", ring.slots, create=True)

    class _AskingAtThird(_Frames):
        def read_into(self, out: np.ndarray) -> SourceFrame | None:
            if self.reads == 2:
                block.ask_rate(1000.0)
            return super().read_into(out)

    source = _AskingAtThird()
    source.open()
    consumer = ring.consumer("test")
    captures: list[int] = []

    def take() -> None:
        for frame in consumer:
            with frame:
                captures.append(frame.meta.capture_ns)

    taker = threading.Thread(target=take)
    taker.start()
    try:
        settings = SourceLoopSettings(0, rate=None, quota=7, error_limit=1)
        source_loop(source, ring.producer(), block, settings, threading.Event())
        taker.join(10.0)
        assert captures[:3] == [OLD_NS] * 3 and OLD_NS not in captures[3:]
        assert len(captures) == 7 and np.all(np.diff(captures[3:]) % PERIOD_1KHZ == 0)
    finally:
        consumer.close()
        block.close()


def test_a_paced_replayed_source_reads_ahead_of_its_ticks(ring: FrameRing) -> None:
    """Reads run ahead of publishing (a key frame that takes several periods to decode then
    delays no tick): at 20 frames/s, the fourth frame is read long before the third is due,
    where reading in turn with publishing would have published three first."""
    block = StreamBlock(f"{ring.name}.meta", ring.slots, create=True)
    published_at_read: list[int] = []

    class _Watching(_Frames):
        def read_into(self, out: np.ndarray) -> SourceFrame | None:
            published_at_read.append(block.produced)
            return super().read_into(out)

    source = _Watching()
    source.open()
    consumer = ring.consumer("test")
    try:
        settings = SourceLoopSettings(0, rate=20.0, quota=4, error_limit=1)
        source_loop(source, ring.producer(), block, settings, threading.Event())
        assert block.produced == 4 and block.state == ENDED
        assert published_at_read[3] < 3  # read while earlier frames waited for their ticks
        assert _pixels(consumer) == [0, 1, 2, 3]
    finally:
        consumer.close()
        block.close()


def test_frames_read_ahead_when_the_stream_stops_are_given_back(ring: FrameRing) -> None:
    """A stop while frames wait for their ticks: none is published, no slot stays claimed."""
    stop = threading.Event()
    block = StreamBlock(f"{ring.name}.meta", ring.slots, create=True)
    source = _Frames(stop=stop, stop_at=3)  # the fourth read stops the stream
    source.open()
    settings = SourceLoopSettings(0, rate=1.0, quota=None, error_limit=1)  # a tick a second
    try:
        source_loop(source, ring.producer(), block, settings, stop)
        assert block.state == STOPPED and block.produced <= 1  # the first tick is now
        core = ring._core_checked()
        phases = [core.slot_state(i)[0] for i in range(ring.slots)]
        assert all(phase != PHASE_WRITING for phase in phases), phases
    finally:
        block.close()


def _pixels(consumer: RingConsumer) -> list[int]:
    """The colour (the read count) of each frame left in the ring, in order."""
    pixels = []
    for frame in consumer:
        with frame:
            pixels.append(int(frame.data[0, 0, 0]))
    return pixels
