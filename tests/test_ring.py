"""FrameRing: zero copy, ordering, fan-out, both policies, drops, peers that die, bad use."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import struct
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from core.errors import (
    FrameError,
    RingClosedError,
    RingExistsError,
    RingNotFoundError,
    RingTimeoutError,
    RingUsageError,
    RingVersionError,
)
from core.ring import FrameRing, sweep_orphans
from core.shm import segment_path

SHAPE = (16, 24, 3)
SPAWN = mp.get_context("spawn")


def _name() -> str:
    return f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ring() -> Iterator[FrameRing]:
    with FrameRing.create(_name(), shape=SHAPE, slots=4) as r:
        yield r


def _publish(producer: Any, value: int, **meta: Any) -> int:
    slot = producer.claim(timeout=5)
    slot.array[:] = value % 256
    seq: int = producer.publish(slot, **meta)
    return seq


def test_consumer_gets_a_read_only_view_of_the_slot_not_a_copy(ring: FrameRing) -> None:
    consumer = ring.consumer()
    producer = ring.producer()
    slot = producer.claim()
    slot.array[:] = 42
    producer.publish(slot)
    with consumer.acquire(timeout=1) as frame:
        assert np.shares_memory(frame.data, ring.slot_array(frame.meta.slot, writable=True))
        assert frame.data.shape == SHAPE and frame.data.dtype == np.uint8
        assert int(frame.data[3, 4, 1]) == 42
        with pytest.raises(ValueError, match="read-only"):
            frame.data[0, 0, 0] = 1


def test_metadata_travels_with_the_frame(ring: FrameRing) -> None:
    consumer = ring.consumer()
    producer = ring.producer()
    seqs = [_publish(producer, i, stream_id=7 + i, capture_ns=1000 + i, flags=i) for i in range(3)]
    assert seqs == [1, 2, 3]
    for i in range(3):
        with consumer.acquire(timeout=1) as frame:
            meta = frame.meta
            assert (meta.seq, meta.stream_id, meta.capture_ns, meta.flags) == (
                i + 1,
                7 + i,
                1000 + i,
                i,
            )
            assert meta.publish_ns > 0
            assert int(frame.data[0, 0, 0]) == i


def test_frames_arrive_in_publication_order_even_when_slots_are_reused_out_of_order() -> None:
    with FrameRing.create(_name(), shape=(4,), dtype=np.int64, slots=3) as ring:
        consumer = ring.consumer()
        producer = ring.producer()
        received = []
        for start in range(0, 30, 3):
            for value in range(start, start + 3):
                slot = producer.claim(timeout=1)
                slot.array[:] = value
                producer.publish(slot)
            frames = [consumer.acquire(timeout=1) for _ in range(3)]
            for frame in reversed(frames):  # release newest first
                received.append(int(frame.data[0]))
                frame.release()
        assert sorted(received) == list(range(30))
        seqs_in_take_order = []
        for start in range(0, 9, 3):
            for _ in range(3):
                _publish(producer, start)
            for _ in range(3):
                with consumer.acquire(timeout=1) as frame:
                    seqs_in_take_order.append(frame.meta.seq)
        assert seqs_in_take_order == sorted(seqs_in_take_order)


def test_block_policy_applies_back_pressure(ring: FrameRing) -> None:
    consumer = ring.consumer("slow")
    producer = ring.producer()
    for i in range(ring.slots):
        _publish(producer, i)
    assert ring.occupancy() == ring.slots
    with pytest.raises(RingTimeoutError, match="slow") as info:
        producer.claim(timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    frame = consumer.acquire(timeout=1)
    assert ring.occupancy() == ring.slots  # held is still occupied
    frame.release()
    assert ring.occupancy() == ring.slots - 1
    _publish(producer, 99)
    assert consumer.dropped == 0


def test_fan_out_every_consumer_sees_every_frame_and_slots_wait_for_all(ring: FrameRing) -> None:
    a, b = ring.consumer("a"), ring.consumer("b")
    producer = ring.producer()
    for i in range(ring.slots):
        _publish(producer, i)
    for _ in range(ring.slots):
        a.acquire(timeout=1).release()
    with pytest.raises(RingTimeoutError):  # b still has them all
        producer.claim(timeout=0.05)
    got_b = []
    for _ in range(ring.slots):
        with b.acquire(timeout=1) as frame:
            got_b.append(int(frame.data[0, 0, 0]))
    assert got_b == list(range(ring.slots))
    _publish(producer, 50)
    assert int(a.acquire(timeout=1).data[0, 0, 0]) == 50
    assert int(b.acquire(timeout=1).data[0, 0, 0]) == 50


def test_drop_oldest_never_waits_and_counts_drops_per_consumer() -> None:
    with FrameRing.create(_name(), shape=(8,), dtype=np.int64, slots=3, policy="drop_oldest") as r:
        fast, slow = r.consumer("fast"), r.consumer("slow")
        producer = r.producer()
        for value in range(1, 11):
            slot = producer.claim(timeout=0)
            slot.array[:] = value
            producer.publish(slot)
            with fast.acquire(timeout=1) as frame:
                assert int(frame.data[0]) == value
        got = []
        while (frame := slow.try_acquire()) is not None:
            got.append(frame.meta.seq)
            frame.release()
        assert got == [8, 9, 10]
        assert (fast.dropped, fast.received) == (0, 10)
        assert (slow.dropped, slow.received) == (7, 3)


def test_drop_oldest_never_overwrites_a_frame_being_read() -> None:
    with FrameRing.create(_name(), shape=(8,), dtype=np.int64, slots=3, policy="drop_oldest") as r:
        consumer = r.consumer()
        producer = r.producer()
        slot = producer.claim(timeout=0)
        slot.array[:] = 1
        producer.publish(slot)
        held = consumer.acquire(timeout=1)
        for value in range(2, 40):
            slot = producer.claim(timeout=0)
            assert slot.index != held.meta.slot
            slot.array[:] = value
            producer.publish(slot)
        assert held.meta.seq == 1 and (held.data == 1).all()
        held.release()
        assert consumer.dropped == 36  # 2..39 minus the two newest still in the ring


def _hammer(policy: str, slots: int, frames: int) -> None:
    """Producer and two consumer threads; every frame checked for tearing and accounted for."""
    width = 512
    with FrameRing.create(_name(), shape=(width,), dtype=np.int64, slots=slots, policy=policy) as r:
        consumers = [r.consumer(f"c{i}") for i in range(2)]
        producer = r.producer()
        seen: list[list[int]] = [[], []]
        errors: list[str] = []

        def consume(k: int) -> None:
            rng = np.random.default_rng(k)
            for frame in consumers[k]:
                with frame:
                    if not (frame.data == frame.meta.seq).all():
                        errors.append(f"torn frame seq {frame.meta.seq}")
                    seen[k].append(frame.meta.seq)
                    if rng.random() < 0.1:
                        np.sum(frame.data)  # hold it a little longer

        threads = [threading.Thread(target=consume, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for seq in range(1, frames + 1):
            slot = producer.claim(timeout=10)
            slot.array[:] = seq
            assert producer.publish(slot) == seq
        producer.close()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors[:5]
        for k in range(2):
            assert seen[k] == sorted(seen[k]), "out of order"
            assert len(set(seen[k])) == len(seen[k]), "duplicate delivery"
            stats = next(c for c in r.stats().consumers if c.index == consumers[k].index)
            assert stats.received + stats.dropped == frames
            assert stats.received == len(seen[k])
        if policy == "block":
            assert seen == [list(range(1, frames + 1))] * 2


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
def test_threads_hammering_the_ring_see_no_torn_lost_or_reordered_frame(policy: str) -> None:
    _hammer(policy, slots=4, frames=3000)


def _child_producer(name: str, frames: int, kill_while_writing: bool) -> None:
    ring = FrameRing.attach(name)
    producer = ring.producer()
    for value in range(frames):
        slot = producer.claim(timeout=10)
        slot.array[:] = value
        producer.publish(slot, stream_id=5)
    if kill_while_writing:
        producer.claim(timeout=10)  # a slot left in WRITING
        os.kill(os.getpid(), signal.SIGKILL)
    producer.close()
    ring.close()


def test_works_between_processes_attached_by_name() -> None:
    with FrameRing.create(_name(), shape=SHAPE, slots=4) as ring:
        consumer = ring.consumer()
        child = SPAWN.Process(target=_child_producer, args=(ring.name, 200, False))
        child.start()
        values = [int(f.data[0, 0, 0]) for f in _released(consumer)]
        child.join(timeout=30)
        assert values == [v % 256 for v in range(200)]
        assert child.exitcode == 0


def _released(consumer: Any) -> Iterator[Any]:
    for frame in consumer:
        with frame:
            yield frame


def _child_consumer_that_dies(ring: FrameRing, attached: Any, holding: Any) -> None:
    consumer = ring.consumer("doomed")  # ring arrived pickled: an attach by name
    attached.set()
    consumer.acquire(timeout=30)  # hold a slot forever
    holding.set()
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_consumer_that_dies_holding_a_slot_is_reaped() -> None:
    with FrameRing.create(_name(), shape=SHAPE, slots=2) as ring:
        producer = ring.producer()
        attached, holding = SPAWN.Event(), SPAWN.Event()
        child = SPAWN.Process(target=_child_consumer_that_dies, args=(ring, attached, holding))
        child.start()
        assert attached.wait(30)
        _publish(producer, 1)
        assert holding.wait(30)
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGKILL
        _publish(producer, 2)
        # Slot 1 held by the dead consumer, slot 2 pending for it: a claim must reap it.
        _publish(producer, 3)
        stats = ring.stats()
        assert stats.reaped == 1 and stats.consumers == ()


def test_a_dead_producer_ends_the_stream_and_can_be_replaced() -> None:
    with FrameRing.create(_name(), shape=SHAPE, slots=4) as ring:
        consumer = ring.consumer()
        child = SPAWN.Process(target=_child_producer, args=(ring.name, 3, True))
        child.start()
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGKILL
        values = [int(f.data[0, 0, 0]) for f in _released(consumer)]
        assert values == [0, 1, 2]  # drained, then end of stream (not a hang)
        producer = ring.producer()  # takes over; the slot left WRITING is reset
        assert ring.stats().takeovers == 1
        for value in range(10, 14):
            _publish(producer, value)
        got = [int(consumer.acquire(timeout=1).data[0, 0, 0]) for _ in range(4)]
        assert got == [10, 11, 12, 13]


def test_end_of_stream_after_producer_close(ring: FrameRing) -> None:
    consumer = ring.consumer()
    producer = ring.producer()
    _publish(producer, 1)
    producer.close()
    assert [f.meta.seq for f in _released(consumer)] == [1]
    with pytest.raises(RingClosedError):
        consumer.acquire(timeout=1)


def test_a_late_consumer_sees_only_frames_published_after_it_joined(ring: FrameRing) -> None:
    producer = ring.producer()
    _publish(producer, 1)
    consumer = ring.consumer()
    _publish(producer, 2)
    assert consumer.acquire(timeout=1).meta.seq == 2
    assert ring.stats().unread == 1


def test_acquire_timeout_and_try_acquire_on_an_empty_ring(ring: FrameRing) -> None:
    consumer = ring.consumer()
    ring.producer()
    assert consumer.try_acquire() is None
    with pytest.raises(TimeoutError):
        consumer.acquire(timeout=0.02)


def test_wrong_frame_is_refused_with_the_ring_shape_in_the_message(ring: FrameRing) -> None:
    producer = ring.producer()
    with pytest.raises(FrameError, match=r"\(16, 24, 3\)"):
        producer.put(np.zeros((24, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        producer.put(np.zeros(SHAPE, np.float32))
    assert producer.put(np.ones(SHAPE, np.uint8)) == 1


def test_attaching_to_a_missing_ring_says_so() -> None:
    with pytest.raises(RingNotFoundError, match="no ring named") as info:
        FrameRing.attach("does-not-exist")
    assert isinstance(info.value, FileNotFoundError)


def test_a_ring_of_another_version_or_no_ring_at_all_is_refused(ring: FrameRing) -> None:
    path = segment_path(ring.name)
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 99))
    with pytest.raises(RingVersionError, match="v99"):
        FrameRing.attach(ring.name)
    other = _name()
    with open(segment_path(other), "wb") as f:
        f.write(b"not a ring" * 1000)
    try:
        with pytest.raises(RingVersionError, match="not an edgeloop FrameRing"):
            FrameRing.attach(other)
    finally:
        os.unlink(segment_path(other))


def test_bad_use_is_refused(ring: FrameRing) -> None:
    with pytest.raises(RingExistsError):
        FrameRing.create(ring.name, shape=SHAPE)
    ring.producer()
    with pytest.raises(RingUsageError, match="already has a producer"):
        ring.producer()
    with pytest.raises(ValueError, match="policy"):
        FrameRing.create(_name(), shape=SHAPE, policy="lifo")
    with pytest.raises(ValueError, match="ring name"):
        FrameRing.create("../escape", shape=SHAPE)
    with pytest.raises(FrameError):
        FrameRing.create(_name(), shape=(0, 3))


def test_consumer_records_run_out_with_a_clear_error() -> None:
    with FrameRing.create(_name(), shape=(4,), max_consumers=2) as ring:
        ring.consumer()
        ring.consumer()
        with pytest.raises(RingUsageError, match="max_consumers"):
            ring.consumer()


def test_close_unlinks_only_for_the_creator_and_frees_the_name() -> None:
    name = _name()
    ring = FrameRing.create(name, shape=SHAPE)
    attached = FrameRing.attach(name)
    attached.close()
    assert os.path.exists(segment_path(name))
    consumer = ring.consumer()
    producer = ring.producer()
    _publish(producer, 1)
    frame = consumer.acquire(timeout=1)  # a view outlives the ring handle
    ring.close()
    assert not os.path.exists(segment_path(name))
    assert int(frame.data[0, 0, 0]) == 1
    frame.release()  # no-op on a closed ring
    with pytest.raises(RingClosedError):
        ring.consumer()


def _child_creator_that_dies(made: Any, die: Any) -> None:
    from core.shm import create_segment

    ring = FrameRing.create(shape=SHAPE, slots=2)  # a default name: ring-<pid>-<hex>
    create_segment(ring.name + ".meta", 4096).close()  # a companion, like the pipeline's
    made.put(ring.name)
    die.wait(30)
    os.kill(os.getpid(), signal.SIGKILL)


def test_rings_of_a_creator_killed_with_kill_9_are_swept_once_nobody_uses_them() -> None:
    made, die = SPAWN.Queue(), SPAWN.Event()
    child = SPAWN.Process(target=_child_creator_that_dies, args=(made, die))
    child.start()
    name = made.get(timeout=30)
    paths = [segment_path(name), segment_path(name + ".meta")]
    try:
        reader = FrameRing.attach(name)
        consumer = reader.consumer("survivor")
        die.set()
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGKILL
        assert all(os.path.exists(p) for p in paths)  # the dead creator could not unlink
        assert name not in sweep_orphans()  # a live consumer still reads it: kept
        assert all(os.path.exists(p) for p in paths)
        consumer.close()
        reader.close()
        with FrameRing.create(shape=SHAPE, slots=2) as mine:  # creating sweeps
            assert not any(os.path.exists(p) for p in paths)
            assert mine.name not in sweep_orphans()  # a live creator's ring stays
            assert os.path.exists(segment_path(mine.name))
    finally:
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)
