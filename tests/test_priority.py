"""core.pipeline.priority: the short slice the latency-critical threads ask for is granted to
the thread that asked (or was named) and to no other, and can be read back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from core.pipeline.priority import ask_short_slice, slice_us

KERNEL_REPORTS_SLICES = slice_us() is not None
"""Linux 6.12 and later report (and honour) a normal thread's slice; older ones do neither."""


T = TypeVar("T")


def _in_thread(body: Callable[[], T]) -> T:
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(body()))
    thread.start()
    thread.join()
    return result[0]


@pytest.mark.skipif(not KERNEL_REPORTS_SLICES, reason="the kernel reports no slices (< 6.12)")
def test_a_thread_gets_the_slice_it_asks_for_and_others_keep_theirs() -> None:
    default = slice_us()
    assert default is not None and default > 100

    def ask() -> tuple[bool, float | None]:
        return ask_short_slice(100), slice_us()

    assert _in_thread(ask) == (True, 100.0)
    assert slice_us() == default  # the asking thread's, not the process's
    assert _in_thread(lambda: (ask_short_slice(0), slice_us())) == (False, default)


@pytest.mark.skipif(not KERNEL_REPORTS_SLICES, reason="the kernel reports no slices (< 6.12)")
def test_a_thread_can_be_given_the_slice_by_its_id() -> None:
    """How the pipeline gives it to the inference process's thread from the parent."""
    ready, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def wait() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(5)

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        ready.wait(5)
        assert ask_short_slice(250, tid[0]) and slice_us(tid[0]) == 250.0
    finally:
        done.set()
        thread.join()


def test_asking_never_raises() -> None:
    """A kernel or machine that cannot say gives False or None, never an error."""
    assert ask_short_slice(100, tid=2**22 + 12345) is False  # no such thread
    assert slice_us(2**22 + 12345) is None
