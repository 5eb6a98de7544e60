"""The outbox: a SQLite (WAL) spool that every result passes through before it leaves the device.

Why a disk spool: an edge device goes offline for minutes or days, and the process may be
killed (``kill -9``, OOM killer, power cut) at any moment. paho keeps its QoS 1 session in
memory, Greengrass's spooler keeps 2.5 MB in memory and drops the oldest, and its DiskSpooler
deletes a corrupt database. Here:

* :meth:`Outbox.put_many` returns only after its transaction committed: a record it returned
  an id for is "acknowledged as stored" and survives ``kill -9`` (either ``sync`` mode) and a
  power cut (``sync: full``: the WAL is fsynced at every commit). SQLite's WAL makes a torn
  write roll back on the next open; nothing to repair, nothing that wedges.
* A record is deleted only by :meth:`Outbox.ack` -- called by a drainer when the broker sent
  its PUBACK or S3/DynamoDB confirmed it -- or by the bounds below, which count what they drop.
* Bounded by payload bytes (:attr:`OutboxConfig.max_bytes`) and age (``max_age_s``); when
  full, ``full_policy`` decides (``drop-lowest``: lowest priority first, then oldest; or
  ``reject-new``). Results of level ``frame`` and ``crops`` get a lower priority than
  ``metadata`` (:mod:`core.outbox.sink`), so images go before detections.
* A database that SQLite calls corrupt (at open: ``PRAGMA quick_check``) is moved aside to
  ``<name>.corrupt-<UTC time>`` with its WAL, reported (log, :attr:`Outbox.quarantined`,
  ``edgeloop_spool_corrupt_total``) and a fresh spool starts: never silently wiped.
* One process owns a spool at a time (an ``flock`` on ``<path>.lock``, released by the kernel
  when the process dies, so a crash never leaves it locked).

Each record has a stable message id ``{instance}-{stream}-{seq}`` (instance: random, made when
the spool is created; seq: per stream, persisted, so it continues after a restart) for dedup
downstream, plus its stream, created time (wall clock, ns), priority and size. A record meant
for several destinations (``channels``: ``mqtt``, ``s3``) is stored once per channel with
the same message id, and each destination acks its own copy.

Replay is in insertion order per channel (:meth:`Outbox.pending`), which is sequence order per
stream. :class:`core.outbox.rate.RateLimiter` caps how fast a drainer sends.

>>> import tempfile, pathlib
>>> folder = tempfile.TemporaryDirectory()
>>> box = Outbox(OutboxConfig(path=pathlib.Path(folder.name) / "o.db", sync="normal"))
>>> ids = box.put_many([Entry("cam0", b'{"a":1}'), Entry("cam0", b'{"a":2}')]).stored
>>> [r.seq for r in box.pending("mqtt")]
[0, 1]
>>> box.ack([r.rowid for r in box.pending("mqtt")])
2
>>> box.stats()["records"]
0
>>> box.close(); folder.cleanup()
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import OutboxError, OutboxFullError
from core.metrics.messaging import DROP_REASONS, SpoolMetrics
from core.metrics.registry import MetricsRegistry
from core.outbox.config import OutboxConfig

__all__ = ["Entry", "Outbox", "OutboxRecord", "PutResult"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams(stream TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records(
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL,
    batch TEXT,
    qos INTEGER
);
CREATE INDEX IF NOT EXISTS records_by_channel ON records(channel, id);
CREATE INDEX IF NOT EXISTS records_by_priority ON records(priority, id);
"""
SCHEMA_VERSION = "2"
"""2 added ``records.qos``; a version 1 spool is migrated at open (one ``ALTER TABLE``)."""
_CHUNK = 500  # ids per DELETE ... WHERE id IN (...) (SQLite's variable limit is 32766)
_EXPIRE_EVERY_S = 1.0


@dataclass(frozen=True)
class Entry:
    """What to store: a payload for ``stream``, for each of ``channels``.

    ``priority``: higher is kept longer when the spool is full (0 = dropped first).
    ``qos``: the MQTT QoS (0 or 1) its transmission level asks for; None: the publisher's
    configured ``qos``.
    """

    stream: str
    payload: bytes
    priority: int = 1
    channels: tuple[str, ...] = ("mqtt",)
    qos: int | None = None


@dataclass(frozen=True)
class OutboxRecord:
    """One stored record as a drainer sees it."""

    rowid: int
    msg_id: str
    channel: str
    stream: str
    seq: int
    created_ns: int
    """Wall-clock time (``time.time_ns()``) when it was stored."""
    priority: int
    size: int
    payload: bytes = field(repr=False)
    batch: str | None = None
    qos: int | None = None


@dataclass
class PutResult:
    """Message ids of the stored entries (None where the full policy refused one)."""

    ids: list[str | None]

    @property
    def stored(self) -> list[str]:
        return [i for i in self.ids if i is not None]

    @property
    def refused(self) -> int:
        return sum(1 for i in self.ids if i is None)


class Outbox:
    """The spool (see the module docstring). Thread-safe: one connection behind a lock."""

    def __init__(self, config: OutboxConfig, registry: MetricsRegistry | None = None) -> None:
        self.config = config
        self.path = Path(config.path)
        self.quarantined: Path | None = None
        """Where a corrupt database found at open was moved (None: it was fine)."""
        self.counters: dict[str, int] = {
            "stored": 0,
            "acked": 0,
            "evicted": 0,
            "rejected": 0,
            "expired": 0,
        }
        self._lock = threading.RLock()
        self._last_expire = 0.0
        registry = registry if registry is not None else MetricsRegistry()
        self._metrics = SpoolMetrics(registry)
        self._lockfile = self._take_lock()
        try:
            self._conn = self._open()
        except BaseException:
            os.close(self._lockfile)
            raise

    def _error(self, what: str, exc: Exception) -> OutboxError:
        code = exc.errno if isinstance(exc, OSError) and exc.errno else 0
        return OutboxError(code, f"outbox cannot {what}: {exc}", str(self.path))

    # -- opening ---------------------------------------------------------------------------

    def _take_lock(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutboxError(
                exc.errno or 0, f"outbox cannot create its folder: {exc}", str(self.path)
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise OutboxError(
                exc.errno or 0,
                "outbox spool is in use by another process (one process per spool); "
                "stop it or configure another outbox.path",
                str(self.path),
            ) from exc
        return fd

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={self.config.sync.upper()}")
            conn.execute("PRAGMA journal_size_limit=67108864")
            if self.config.check_on_open:
                problem = conn.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":
                    raise sqlite3.DatabaseError(f"quick_check: {problem}")
            conn.executescript(_SCHEMA)
            version = self._meta(conn, "schema", SCHEMA_VERSION)
            if version == "1":
                conn.execute("ALTER TABLE records ADD COLUMN qos INTEGER")
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
                version = SCHEMA_VERSION
            if version != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version}, expected {SCHEMA_VERSION}")
            self.instance = self._meta(conn, "instance", secrets.token_hex(6))
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str, default: str) -> str:
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, default))
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def _open(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
        except sqlite3.DatabaseError as exc:
            self._quarantine(exc)
            try:
                conn = self._connect()
            except sqlite3.Error as again:
                raise OutboxError(
                    0, f"outbox cannot create a fresh spool: {again}", str(self.path)
                ) from again
        except (sqlite3.Error, OSError) as exc:
            raise self._error("open its spool", exc) from exc
        self._next_seq: dict[str, int] = dict(conn.execute("SELECT stream, next_seq FROM streams"))
        count, total = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records"
        ).fetchone()
        self._count = int(count)
        self._bytes = int(total)
        # Row ids are given here, increasing for the life of this process (no AUTOINCREMENT
        # bookkeeping per insert): drainers' cursors (``pending(after=...)``) live no longer.
        self._next_id = (
            int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM records").fetchone()[0]) + 1
        )
        self._publish_depth()
        return conn

    def _quarantine(self, exc: Exception) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, f"{target}{suffix}")
        self.quarantined = target
        self._metrics.corrupt()
        log.error(
            "outbox %s is corrupt (%s): moved aside to %s, starting a fresh spool; "
            "inspect it with sqlite3 '.recover'",
            self.path,
            exc,
            target,
        )

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def put_many(self, entries: Sequence[Entry]) -> PutResult:
        """Store ``entries`` in one transaction (one fsync with ``sync: full``); returns once
        committed. Entries the full policy refuses get ``None`` instead of a message id (and
        are counted as ``rejected``); nothing is raised for them."""
        now_ns = time.time_ns()
        with self._lock:
            seq_before, next_id = dict(self._next_seq), self._next_id
            count, nbytes = self._count, self._bytes
            counters = dict(self.counters)
            try:
                with self._transaction() as conn:
                    self._expire_locked(conn, now_ns)
                    ids = self._insert_locked(conn, entries, now_ns)
                    self._persist_drops(conn, counters)
            except sqlite3.Error as exc:
                self._next_seq, self._next_id = seq_before, next_id
                self._count, self._bytes = count, nbytes
                self.counters = counters
                raise OutboxError(0, f"outbox cannot store records: {exc}", str(self.path)) from exc
            self._publish_counts(counters)
        return PutResult(ids)

    def put(self, entry: Entry) -> str:
        """Store one entry (a transaction of its own); :class:`OutboxFullError` if refused."""
        msg_id = self.put_many([entry]).ids[0]
        if msg_id is None:
            raise OutboxFullError(
                0,
                f"outbox full ({self._bytes} of {self.config.max_bytes} bytes, policy "
                f"{self.config.full_policy}): record of stream {entry.stream} refused",
                str(self.path),
            )
        return msg_id

    def _insert_locked(
        self, conn: sqlite3.Connection, entries: Sequence[Entry], now_ns: int
    ) -> list[str | None]:
        ids: list[str | None] = []
        rows: list[tuple[Any, ...]] = []
        touched: dict[str, int] = {}
        limit = self.config.max_bytes
        for entry in entries:
            size = len(entry.payload)
            need = size * len(entry.channels)
            if self._bytes + need > limit:
                self._flush_rows(conn, rows)  # evictions must see this batch's earlier rows
                if not self._make_room(conn, need, entry.priority):
                    self.counters["rejected"] += 1
                    ids.append(None)
                    continue
            seq = self._next_seq.get(entry.stream, 0)
            self._next_seq[entry.stream] = touched[entry.stream] = seq + 1
            for channel in entry.channels:
                rows.append(
                    (
                        self._next_id,
                        channel,
                        entry.stream,
                        seq,
                        now_ns,
                        entry.priority,
                        size,
                        entry.payload,
                        entry.qos,
                    )
                )
                self._next_id += 1
            self._count += len(entry.channels)
            self._bytes += need
            self.counters["stored"] += len(entry.channels)
            ids.append(f"{self.instance}-{entry.stream}-{seq}")
        self._flush_rows(conn, rows)
        conn.executemany(
            "INSERT INTO streams(stream, next_seq) VALUES (?, ?) "
            "ON CONFLICT(stream) DO UPDATE SET next_seq = excluded.next_seq",
            touched.items(),
        )
        return ids

    @staticmethod
    def _flush_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            conn.executemany(
                "INSERT INTO records(id, channel, stream, seq, created_ns, priority, size, "
                "payload, qos) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            rows.clear()

    def _make_room(self, conn: sqlite3.Connection, need: int, priority: int) -> bool:
        """Apply the full policy for a record of ``need`` bytes; True if it now fits."""
        limit = self.config.max_bytes
        if need > limit or self.config.full_policy == "reject-new":
            return False
        while self._bytes + need > limit:
            victims = conn.execute(
                "SELECT id, size FROM records WHERE priority <= ? ORDER BY priority, id LIMIT 64",
                (priority,),
            ).fetchall()
            if not victims:
                return False
            chosen: list[int] = []
            freed = 0
            for rowid, size in victims:
                chosen.append(rowid)
                freed += size
                if self._bytes - freed + need <= limit:
                    break
            self._delete_locked(conn, chosen, "evicted")
        return True

    def expire(self, now_ns: int | None = None) -> int:
        """Drop records older than ``max_age_s`` (as of ``now_ns``, default now); returns how
        many. :meth:`put_many` does this at most once a second on its own."""
        with self._lock:
            counters = dict(self.counters)
            self._last_expire = 0.0
            with self._transaction() as conn:
                self._expire_locked(conn, time.time_ns() if now_ns is None else now_ns)
                self._persist_drops(conn, counters)
            self._publish_counts(counters)
            return self.counters["expired"] - counters["expired"]

    def _persist_drops(self, conn: sqlite3.Connection, before: dict[str, int]) -> None:
        """Add this transaction's drops to the spool's lifetime totals (``meta`` keys
        ``dropped.<reason>``), so ``python -m core.outbox status`` can tell them after a
        restart. Drops are rare: nothing is written when there were none."""
        for reason in DROP_REASONS:
            delta = self.counters[reason] - before[reason]
            if delta:
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                    "SET value = CAST(CAST(value AS INTEGER) + excluded.value AS TEXT)",
                    (f"dropped.{reason}", str(delta)),
                )

    def _expire_locked(self, conn: sqlite3.Connection, now_ns: int) -> None:
        now = time.monotonic()
        if self._last_expire and now - self._last_expire < _EXPIRE_EVERY_S:
            return
        self._last_expire = now
        cutoff = now_ns - int(self.config.max_age_s * 1e9)
        while True:
            # Oldest first by id (insertion order ~ time order): stop at the first young one,
            # so expiry never scans the whole table.
            oldest = conn.execute(
                "SELECT id, created_ns FROM records ORDER BY id LIMIT 256"
            ).fetchall()
            old = [rowid for rowid, created in oldest if created < cutoff]
            if old:
                self._delete_locked(conn, old, "expired")
            if len(old) < 256:
                return

    def _delete_locked(self, conn: sqlite3.Connection, rowids: Sequence[int], reason: str) -> int:
        deleted = 0
        for start in range(0, len(rowids), _CHUNK):
            chunk = rowids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sizes = conn.execute(
                f"DELETE FROM records WHERE id IN ({marks}) RETURNING size", chunk
            ).fetchall()
            deleted += len(sizes)
            self._count -= len(sizes)
            self._bytes -= sum(s for (s,) in sizes)
        self.counters[reason] += deleted
        return deleted

    def ack(self, rowids: Iterable[int]) -> int:
        """Delete records a destination confirmed (PUBACK, S3 + DynamoDB); returns how many
        were still there (one the full policy dropped meanwhile is not counted twice)."""
        ids = list(rowids)
        if not ids:
            return 0
        with self._lock:
            counters = dict(self.counters)
            try:
                with self._transaction() as conn:
                    deleted = self._delete_locked(conn, ids, "acked")
            except sqlite3.Error as exc:
                raise OutboxError(
                    0, f"outbox cannot delete acked records: {exc}", str(self.path)
                ) from exc
            self._publish_counts(counters)
        return deleted

    def assign_batch(self, rowids: Sequence[int], batch: str) -> None:
        """Remember that these records form batch ``batch`` (cloud sync: a retry re-sends the
        same batch under the same key, never a regrouped one)."""
        with self._lock, self._transaction() as conn:
            for start in range(0, len(rowids), _CHUNK):
                chunk = list(rowids[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                conn.execute(f"UPDATE records SET batch = ? WHERE id IN ({marks})", [batch, *chunk])

    # -- reading ---------------------------------------------------------------------------

    def pending(
        self,
        channel: str,
        limit: int = 1000,
        after: int = 0,
        *,
        batch: str | None = None,
    ) -> list[OutboxRecord]:
        """Up to ``limit`` records of ``channel`` with row id > ``after``, oldest first (so in
        sequence order per stream); only batch ``batch``'s records when it is given."""
        sql = (
            "SELECT id, channel, stream, seq, created_ns, priority, size, payload, batch, qos "
            "FROM records WHERE channel = ? AND id > ?"
        )
        params: list[Any] = [channel, after]
        if batch is not None:
            sql += " AND batch = ?"
            params.append(batch)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        instance = self.instance
        return [OutboxRecord(r[0], f"{instance}-{r[2]}-{r[3]}", *r[1:]) for r in rows]

    def depth(self, channel: str | None = None) -> int:
        """Records waiting (on ``channel``, or on all)."""
        if channel is None:
            return self._count
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM records WHERE channel = ?", (channel,)
            ).fetchone()
        return int(row[0])

    def stats(self) -> dict[str, Any]:
        """Records and bytes held, what happened to records so far (counters), the bounds."""
        return {
            "records": self._count,
            "bytes": self._bytes,
            "max_bytes": self.config.max_bytes,
            "full_policy": self.config.full_policy,
            "sync": self.config.sync,
            "counters": dict(self.counters),
            "quarantined": None if self.quarantined is None else str(self.quarantined),
        }

    # -- metrics and closing ---------------------------------------------------------------

    def _publish_depth(self) -> None:
        self._metrics.depth(self._count, self._bytes)

    def _publish_counts(self, before: dict[str, int]) -> None:
        self._publish_depth()
        for reason in ("evicted", "rejected", "expired"):
            self._metrics.dropped(reason, self.counters[reason] - before[reason])
        self._metrics.stored(self.counters["stored"] - before["stored"])
        self._metrics.acked(self.counters["acked"] - before["acked"])

    def close(self) -> None:
        """Checkpoint and close the database, release the spool's lock (idempotent)."""
        with self._lock:
            conn = getattr(self, "_conn", None)
            if conn is None:
                return
            self._conn = None  # type: ignore[assignment]
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            os.close(self._lockfile)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
