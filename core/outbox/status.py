"""What a spool holds, read from its file: for ``python -m core.outbox status`` and for
health checks of a device whose publisher runs in another process.

Why read-only and without the spool's lock: the process that owns the spool holds its
``flock`` for as long as it runs, and an operator asks exactly then ("is the outbox
backing up?"). SQLite's WAL lets a reader see the last committed state beside the writer;
the file is opened ``mode=ro``, so a status query never creates, migrates or repairs a spool
(a corrupt one is reported, and moved aside only by the next :class:`~core.outbox.Outbox`).

The JSON form (:func:`spool_status`) is a contract::

    {"schema": "edgeloop.outbox-status/1", "spool": PATH, "records": N, "bytes": N,
     "oldest_age_s": S | null, "channels": {channel: records},
     "streams": {stream: next_seq}, "dropped": {"evicted": N, "rejected": N, "expired": N}}

``dropped`` counts over the spool's life (persisted with each transaction that dropped).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from core.errors import OutboxError
from core.metrics.messaging import DROP_REASONS

__all__ = ["STATUS_SCHEMA", "spool_status"]

STATUS_SCHEMA = "edgeloop.outbox-status/1"


def spool_status(path: Path, now_ns: int | None = None) -> dict[str, Any]:
    """The figures of the spool at ``path`` (see the module docstring).

    :class:`~core.errors.OutboxError` when there is no spool there, or the file is not a
    readable spool (corrupt, another database, a newer schema).
    """
    path = Path(path)
    if not path.is_file():
        raise OutboxError(2, "no outbox spool here (check outbox.path)", str(path))
    now_ns = time.time_ns() if now_ns is None else now_ns
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise OutboxError(0, f"cannot open the spool: {exc}", str(path)) from exc
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        version = meta.get("schema")
        if version not in ("1", "2"):
            raise OutboxError(0, f"unknown spool schema version {version!r}", str(path))
        records, size = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records"
        ).fetchone()
        oldest = conn.execute("SELECT created_ns FROM records ORDER BY id LIMIT 1").fetchone()
        channels = dict(
            conn.execute("SELECT channel, COUNT(*) FROM records GROUP BY channel ORDER BY channel")
        )
        streams = dict(conn.execute("SELECT stream, next_seq FROM streams ORDER BY stream"))
    except sqlite3.Error as exc:
        raise OutboxError(
            0, f"not a readable outbox spool ({exc}); is it corrupt?", str(path)
        ) from exc
    finally:
        conn.close()
    return {
        "schema": STATUS_SCHEMA,
        "spool": str(path),
        "records": int(records),
        "bytes": int(size),
        "oldest_age_s": None if oldest is None else max(0.0, (now_ns - oldest[0]) / 1e9),
        "channels": {str(k): int(v) for k, v in channels.items()},
        "streams": {str(k): int(v) for k, v in streams.items()},
        "dropped": {r: int(meta.get(f"dropped.{r}", 0)) for r in DROP_REASONS},
    }
