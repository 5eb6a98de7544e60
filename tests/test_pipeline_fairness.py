"""Streams take turns: a stream ahead of one that wants frames waits (bounded), one that wants
none is carried along, one that ended holds nobody back."""

from __future__ import annotations

import threading

from core.pipeline.fairness import SLACK, FairTurns


def _turns(wanting: set[int], streams: int = 3) -> FairTurns:
    return FairTurns(streams, lambda j: j in wanting)


def test_a_stream_ahead_of_one_that_wants_frames_waits() -> None:
    turns = _turns({0, 1, 2})
    for _ in range(SLACK - 1):
        turns.took(0)
    assert not turns.ahead(0)  # within the slack
    turns.took(0)
    assert turns.ahead(0) and not turns.ahead(1)
    turns.took(1), turns.took(2)
    assert not turns.ahead(0)


def test_one_that_wants_nothing_is_carried_along_and_owes_no_burst() -> None:
    wanting = {0}
    turns = _turns(wanting, streams=2)
    for _ in range(50):
        turns.took(0)
        assert not turns.ahead(0)  # stream 1 (a camera between frames) holds nothing back
    wanting.add(1)  # stream 1 wants frames again: it is not owed 50
    turns.took(0)
    assert turns.ahead(0)
    turns.took(1)
    assert not turns.ahead(0)


def test_an_ended_stream_holds_nobody_back() -> None:
    turns = _turns({0, 1})
    turns.took(0), turns.took(0)
    assert turns.ahead(0)
    turns.ended(1)
    assert not turns.ahead(0)


def test_a_waiting_stream_goes_on_when_the_other_takes_or_stop_is_set() -> None:
    turns = _turns({0, 1}, streams=2)
    turns.took(0), turns.took(0)
    released = threading.Event()
    stop = threading.Event()

    def waiter() -> None:
        turns.wait_turn(0, stop)
        released.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not released.wait(0.02)  # waiting its turn
    turns.took(1)
    thread.join(5)
    assert released.is_set() and turns.waits == 1
    turns.took(0), turns.took(0)  # ahead again; a stop ends the wait
    stop.set()
    turns.wait_turn(0, stop)
    assert turns.waits == 2


def test_one_stream_never_waits() -> None:
    turns = _turns({0}, streams=1)
    for _ in range(10):
        turns.took(0)
    turns.wait_turn(0, threading.Event())
    assert turns.waits == 0
