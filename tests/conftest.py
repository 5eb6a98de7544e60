"""Fixtures shared by the whole suite."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.liveness import is_alive
from core.shm import segment_names, unlink_segment

_CREATOR_PID = re.compile(r"-(\d+)-")


def _ours(name: str) -> bool:
    """Whether this session made the segment (its creator is us, or a child that has exited).

    Ring names default to ``ring-{pid}-{uuid}``: a segment whose creator is another live process
    belongs to a concurrent run (another checkout's ``make test``) and is not ours to judge.
    """
    found = _CREATOR_PID.search(name)
    if found is None:
        return True
    pid = int(found.group(1))
    return pid == os.getpid() or not is_alive(pid)


@pytest.fixture(autouse=True, scope="session")
def _no_shared_memory_left_behind() -> Iterator[None]:
    """Fail the session if any test left a FrameRing segment in /dev/shm."""
    before = set(segment_names())
    yield
    leaked = {name for name in set(segment_names()) - before if _ours(name)}
    for name in leaked:  # clean up so one failure does not poison the next run
        unlink_segment(name)
    assert not leaked, f"FrameRing segments left in /dev/shm: {sorted(leaked)}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[object]:
    """A real mosquitto on free ports (plain, mutual TLS, wrong-hostname TLS); stopped after.
    Fails, never skips, where mosquitto is not installed: ``make test`` installs it."""
    from tests.mqtt_broker import Mosquitto

    with Mosquitto(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto's S3/DynamoDB server on a free port, with fake credentials; stopped after.
    Fails, never skips, where moto is not installed: ``make test`` installs it (``.[dev]``)."""
    if importlib.util.find_spec("moto") is None:
        pytest.fail(
            "moto is not installed: `make test` installs it (pip install -e '.[dev]')",
            pytrace=False,
        )
    from tests.mqtt_broker import FAKE_AWS_ENV, MotoServer

    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
