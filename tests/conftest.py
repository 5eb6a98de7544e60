"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHM_DIR = Path("/dev/shm")
RING_PREFIX = "edgeloop."


def _rings() -> set[str]:
    if not SHM_DIR.is_dir():
        return set()
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(RING_PREFIX)}


@pytest.fixture(autouse=True, scope="session")
def _no_shared_memory_left_behind() -> Iterator[None]:
    """Fail the session if any test left a FrameRing segment in /dev/shm."""
    before = _rings()
    yield
    leaked = _rings() - before
    for name in leaked:  # clean up so one failure does not poison the next run
        os.unlink(SHM_DIR / name)
    assert not leaked, f"FrameRing segments left in /dev/shm: {sorted(leaked)}"
