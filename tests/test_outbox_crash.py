"""``kill -9`` of a process writing to the outbox, at random moments, several times: reopening
never loses a record the writer was told was stored, never wedges, and sequences continue."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.outbox import Entry, Outbox, OutboxConfig

ROOT = Path(__file__).resolve().parents[1]


def _run_and_kill(spool: Path, sync: str, batches: int, rng: random.Random) -> set[str]:
    """Start the writer, let it commit at least ``batches`` batches, SIGKILL it mid-write."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.outbox_writer", str(spool), sync],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    stored: set[str] = set()
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        for _ in range(batches):
            line = proc.stdout.readline()
            assert line.startswith("stored"), line
            stored.update(line.split()[1:])
        time.sleep(rng.uniform(0, 0.02))  # somewhere inside a later transaction
        os.kill(proc.pid, signal.SIGKILL)
        # What it printed before dying was committed too: read it all.
        for line in proc.stdout:
            if line.startswith("stored") and line.endswith("\n"):
                stored.update(line.split()[1:])
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return stored


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_kill_9_loses_no_stored_record(tmp_path: Path, sync: str) -> None:
    spool = tmp_path / "outbox.db"
    rng = random.Random(6)
    stored: set[str] = set()
    for round_ in range(4):
        stored |= _run_and_kill(spool, sync, batches=5 + 3 * round_, rng=rng)
    with Outbox(OutboxConfig(path=spool, sync=sync)) as box:  # type: ignore[arg-type]
        assert box.quarantined is None
        records = box.pending("mqtt", limit=1_000_000)
        present = {r.msg_id for r in records}
        assert stored <= present, f"lost {len(stored - present)} stored records"
        # Sequences per stream: contiguous from 0 (a killed transaction left no gap or repeat).
        for stream in ("cam0", "cam1", "cam2"):
            seqs = [r.seq for r in records if r.stream == stream]
            assert seqs == list(range(len(seqs)))
        assert box.stats()["records"] == len(records)
        # Not wedged: it takes and acks records as before.
        box.put(Entry("cam0", b"after"))
        assert box.ack([r.rowid for r in records]) == len(records)
        assert [r.payload for r in box.pending("mqtt")] == [b"after"]
