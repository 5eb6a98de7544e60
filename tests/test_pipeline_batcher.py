"""The batcher alone: order across streams, skipped frames keep their place, timeouts, slots."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core.errors import PipelineError
from core.pipeline.batcher import Batcher, WorkItem


def _item(stream: int, seq: int) -> WorkItem:
    return WorkItem(None, stream, seq, seq, 0, None)


class _Buffers:
    """A serving model's input slots, as far as the batcher reads them."""

    def __init__(self, batch: int, slots: int) -> None:
        self.buffers = [np.zeros((batch, 3, 2, 2), np.float32) for _ in range(slots)]
        self.backend = self

        self.held = 0

    def input_buffer(self, n: int, slot: int) -> np.ndarray:
        return self.buffers[slot][:n]

    def hold(self) -> None:
        self.held += 1


def _batcher(batch: int = 2, timeout_s: float = 10.0, slots: int = 2) -> Batcher:
    return Batcher(_Buffers(batch, slots), batch, timeout_s, slots)  # type: ignore[arg-type]


def test_full_batches_go_in_order_with_skipped_frames_in_place() -> None:
    b = _batcher(batch=2)
    first, row = b.reserve(_item(0, 1), 1.0)
    assert row.shape == (3, 2, 2)
    b.skip(_item(1, 1))  # joins the open batch: it must not overtake stream 0's frame
    b.written(first)
    second, _ = b.reserve(_item(1, 2), 1.0)
    assert second is first
    b.written(first)
    got = b.next_batch(0.01)
    assert got is first and got.rows == 2
    assert [(i.stream_id, i.seq) for i in got.items] == [(0, 1), (1, 1), (1, 2)]


def test_a_skipped_frame_with_nothing_queued_goes_at_once() -> None:
    b = _batcher()
    b.skip(_item(0, 1))
    got = b.next_batch(0.01)
    assert got is not None and got.rows == 0 and got.slot == -1


def test_a_partial_batch_goes_after_the_timeout() -> None:
    b = _batcher(batch=4, timeout_s=0.01)
    batch, _ = b.reserve(_item(0, 1), 1.0)
    b.written(batch)
    got = b.next_batch(1.0)
    assert got is batch and got.rows == 1
    assert b.partial == 1


def test_a_timed_out_batch_waits_for_rows_still_being_written() -> None:
    b = _batcher(batch=4, timeout_s=0.0)
    batch, _ = b.reserve(_item(0, 1), 1.0)
    b.skip(_item(1, 1))
    threading.Timer(0.05, b.written, (batch,)).start()
    got = b.next_batch(1.0)
    assert got is batch and [i.seq for i in got.items] == [1, 1]


def test_slots_are_back_pressure() -> None:
    b = _batcher(batch=1, slots=2)
    for seq in (1, 2):
        batch, _ = b.reserve(_item(0, seq), 1.0)
        b.written(batch)
    with pytest.raises(TimeoutError):
        b.reserve(_item(0, 3), 0.01)
    done = b.next_batch(0.01)
    assert done is not None
    b.free(done.slot)
    batch, _ = b.reserve(_item(0, 3), 0.01)
    assert batch.slot == done.slot


def test_close_drains_then_ends() -> None:
    b = _batcher(batch=4, timeout_s=60.0)
    batch, _ = b.reserve(_item(0, 1), 1.0)
    b.written(batch)
    b.close()
    assert b.next_batch(0.01) is batch
    assert b.next_batch(0.01) is None
    with pytest.raises(PipelineError):
        b.reserve(_item(0, 2), 0.01)


def test_a_waiting_ingest_worker_wakes_when_a_slot_frees() -> None:
    b = _batcher(batch=1, slots=1)
    batch, _ = b.reserve(_item(0, 1), 1.0)
    b.written(batch)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(b.reserve(_item(0, 2), 5.0)))
    waiter.start()
    time.sleep(0.02)
    b.free(b.next_batch(0.01).slot)  # type: ignore[union-attr]
    waiter.join(5.0)
    assert got and not waiter.is_alive()


def test_a_switch_seals_the_open_batch_and_later_batches_open_on_the_new_model() -> None:
    """The batch being filled stays with the model it was opened on; the next opens on the
    new one, so every frame goes to exactly one model (a hot swap's batch boundary)."""
    b = _batcher(batch=3)
    old = b.serving
    batch, _ = b.reserve(_item(0, 1), 1.0)
    b.written(batch)
    new = _Buffers(3, 2)
    assert b.switch(new) is old  # type: ignore[arg-type]
    first = b.next_batch()
    assert first is batch and first.serving is old and first.rows == 1 and first.sealed
    batch2, row = b.reserve(_item(0, 2), 1.0)
    assert batch2.serving is new and batch2 is not batch
    assert (old.held, new.held) == (1, 1)  # each model counts the batches opened on it
    assert np.shares_memory(row, new.buffers[batch2.slot])
