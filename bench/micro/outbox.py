"""The outbox spool: write and ack throughput against a bare SQLite insert at the same durability.

One case, ``write_ack`` (headline keys ``micro.outbox.records_per_s`` and
``micro.outbox.ratio_vs_bare_sqlite``, copied from the case to the suite's top level):

* **edgeloop** -- :meth:`core.outbox.Outbox.put_many` of result records (the compact JSON of a
  :class:`~core.sinks.ResultRecord` with 3 detections, about 400 B) in transactions of
  ``BATCH`` records (a pipeline batch: what :class:`~core.outbox.OutboxSink` commits per
  ``flush``), then draining them: ``pending`` + ``ack`` per ``BATCH``.
* **bare sqlite** -- the least a spool could do with SQLite: ``INSERT INTO t(payload)`` of the
  same payloads with ``executemany`` in transactions of ``BATCH``, then ``DELETE ... WHERE id IN``
  per ``BATCH``; one table, one primary key, no bookkeeping.

Both run in WAL mode at the same ``synchronous`` setting, stated in every row as
``fsync_policy``: ``full`` (the outbox's default: the WAL is fsynced at every commit, so one
fsync per batch -- power-cut safe) and ``normal`` (fsync at checkpoints only -- ``kill -9``
safe). The headline is at ``full``. Files live in a temporary folder on the disk the system
temp dir is on (``tmpfs`` would make fsync free; the row says which filesystem was used).
Edgeloop and bare SQLite take turns batch by batch (two files side by side) so a burst of disk
or CPU contention from a neighbour hits both alike; each figure is the median over rounds.
Targets: ``records_per_s`` >= 5,000, ``ratio_vs_bare_sqlite`` >= 0.5.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.micro import MicroOptions
from bench.stats import ratio
from core.detections import Detections
from core.outbox import Entry, Outbox, OutboxConfig
from core.sinks import ResultRecord

BATCH = 100
RECORDS = 20_000  # per round (4,000 with --quick)
ROUNDS = 3  # per policy (1 with --quick)


def _payloads(count: int) -> list[bytes]:
    names = ("person", "car", "bicycle")
    out = []
    for i in range(count):
        boxes = np.array([[10 + i % 50, 20, 110, 220], [300, 40, 380, 90], [5, 5, 60, 60]])
        dets = Detections(boxes, np.array([0.91, 0.72, 0.55]), np.array([0, 1, 2]), names)
        record = ResultRecord(i % 4, i, i, 1_000_000 + i, 2_000_000 + i, "metadata", dets)
        out.append(record.to_json())
    return out


def _filesystem(path: Path) -> str:
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


class _Bare:
    """The baseline: one table, one primary key, the same payloads and transactions."""

    def __init__(self, path: Path, sync: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={sync.upper()}")
        self.conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")

    def put(self, payloads: list[bytes]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO t(payload) VALUES (?)", [(p,) for p in payloads])
        self.conn.execute("COMMIT")

    def drain(self) -> bool:
        rows = self.conn.execute("SELECT id, payload FROM t ORDER BY id LIMIT ?", (BATCH,))
        ids = [r[0] for r in rows]
        if ids:
            self.conn.execute("BEGIN")
            self.conn.execute(f"DELETE FROM t WHERE id IN ({','.join('?' * len(ids))})", ids)
            self.conn.execute("COMMIT")
        return bool(ids)


def _drain(box: Outbox) -> bool:
    records = box.pending("mqtt", BATCH)
    if records:
        box.ack([r.rowid for r in records])
    return bool(records)


def _round(folder: Path, payloads: list[bytes], sync: str) -> dict[str, tuple[float, float]]:
    """Seconds to write every payload and to drain them again, for edgeloop and bare SQLite,
    one batch of each in turn (so a burst of disk or CPU contention hits both alike)."""
    entries = [Entry(f"cam{i % 4}", p) for i, p in enumerate(payloads)]
    config = OutboxConfig(
        path=folder / "outbox.db",
        sync=sync,  # type: ignore[arg-type]
        max_bytes=1 << 30,
    )
    clock = time.perf_counter
    ours = [0.0, 0.0]
    base = [0.0, 0.0]
    bare = _Bare(folder / "bare.db", sync)
    try:
        with Outbox(config) as box:
            for start in range(0, len(entries), BATCH):
                t0 = clock()
                box.put_many(entries[start : start + BATCH])
                t1 = clock()
                bare.put(payloads[start : start + BATCH])
                t2 = clock()
                ours[0] += t1 - t0
                base[0] += t2 - t1
            more_ours = more_base = True
            while more_ours or more_base:
                t0 = clock()
                more_ours = more_ours and _drain(box)
                t1 = clock()
                more_base = more_base and bare.drain()
                t2 = clock()
                ours[1] += t1 - t0
                base[1] += t2 - t1
    finally:
        bare.conn.close()
    return {"edgeloop": (ours[0], ours[1]), "bare": (base[0], base[1])}


def _row(
    name: str, sync: str, fs: str, times: list[tuple[float, float]], *, n: int, mb: float
) -> dict[str, Any]:
    write = statistics.median(t[0] for t in times)
    drain = statistics.median(t[1] for t in times)
    return {
        "name": name,
        "fsync_policy": sync,
        "records_per_s": n / write,
        "mb_per_s": mb / write,
        "ack_records_per_s": n / drain,
        "write_ack_records_per_s": n / (write + drain),
        "batch": BATCH,
        "rounds": len(times),
        "filesystem": fs,
    }


def run(options: MicroOptions) -> dict[str, Any]:
    """Spool write/ack throughput and the bare SQLite baseline, at both fsync policies."""
    if not options.wants("write_ack"):
        return {}
    count = 4_000 if options.quick else RECORDS
    rounds = 1 if options.quick else ROUNDS
    payloads = _payloads(count)
    mb = sum(len(p) for p in payloads) / 1e6
    rows: list[dict[str, Any]] = []
    figures: dict[str, dict[str, float | None]] = {}
    for sync in ("full", "normal"):
        ours: list[tuple[float, float]] = []
        bare: list[tuple[float, float]] = []
        fs = "?"
        for i in range(rounds):
            options.progress(f"outbox write_ack: sync={sync} round {i + 1}/{rounds}")
            with tempfile.TemporaryDirectory(prefix="edgeloop-outbox-bench-") as name:
                folder = Path(name)
                fs = _filesystem(folder)
                times = _round(folder, payloads, sync)
                ours.append(times["edgeloop"])
                bare.append(times["bare"])
        row = _row("edgeloop outbox", sync, fs, ours, n=count, mb=mb)
        base = _row("bare sqlite insert", sync, fs, bare, n=count, mb=mb)
        rows += [row, base]
        figures[sync] = {
            "records_per_s": row["records_per_s"],
            "ratio": ratio(row["records_per_s"], base["records_per_s"]),
        }
    case: dict[str, Any] = {
        "rows": rows,
        "record_bytes": round(mb * 1e6 / count),
        "fsync_policy": "full",
        "records_per_s": figures["full"]["records_per_s"],
        "mb_per_s": rows[0]["mb_per_s"],
        "ratio_vs_bare_sqlite": figures["full"]["ratio"],
        "normal_records_per_s": figures["normal"]["records_per_s"],
        "normal_ratio_vs_bare_sqlite": figures["normal"]["ratio"],
    }
    return {
        "write_ack": case,
        "records_per_s": case["records_per_s"],
        "ratio_vs_bare_sqlite": case["ratio_vs_bare_sqlite"],
        "fsync_policy": "full",
    }
