"""The outbox's typed configuration (loaded like every other section by :mod:`core.config`).

As YAML::

    outbox:
      path: /var/lib/edgeloop/outbox.db
      max_bytes: 268435456      # payload bytes kept on disk (256 MiB)
      max_age_s: 604800         # older records are dropped (7 days), counted as "expired"
      full_policy: drop-lowest  # drop-lowest | reject-new
      sync: full                # full: fsync every commit (power-cut safe) | normal: kill -9 safe
      check_on_open: true       # PRAGMA quick_check at open; a corrupt file is moved aside

>>> OutboxConfig(max_bytes=10)
Traceback (most recent call last):
...
core.errors.ConfigError: max_bytes: must be >= 4096, got 10
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.config import at_least, checked, positive, validate

__all__ = ["FullPolicy", "OutboxConfig", "RateCap", "SyncMode"]

FullPolicy = Literal["drop-lowest", "reject-new"]
SyncMode = Literal["full", "normal"]


@dataclass(frozen=True)
class OutboxConfig:
    """Where the spool lives and how it is bounded.

    ``full_policy``: ``drop-lowest`` makes room by deleting the records of the lowest priority
    first, oldest first among equals, but never a record of higher priority than the new one
    (then the new one is refused); ``reject-new`` refuses the new record and keeps the old.
    Either way the outcome is counted (:attr:`core.outbox.Outbox.counters`), never a crash.

    ``sync``: ``full`` is SQLite ``synchronous=FULL`` in WAL mode -- every commit fsyncs the
    WAL, so a stored record survives a power cut; ``normal`` fsyncs only at checkpoints -- a
    stored record survives ``kill -9`` of the process but the last commits may be lost to a
    power cut. Records are committed in groups (one transaction per pipeline batch), so
    ``full`` costs one fsync per batch, not per record.
    """

    path: Path = Path("edgeloop-outbox/outbox.db")
    max_bytes: int = checked(256 * 1024 * 1024, at_least(4096))
    max_age_s: float = checked(7 * 24 * 3600.0, positive)
    full_policy: FullPolicy = "drop-lowest"
    sync: SyncMode = "full"
    check_on_open: bool = True

    def __post_init__(self) -> None:
        validate(self)


def _optional_positive(value: float | None) -> str | None:
    return None if value is None else positive(value)


@dataclass(frozen=True)
class RateCap:
    """How fast a drainer (MQTT publisher, cloud sync) may replay the spool on one connection.

    AWS IoT Core allows 100 publishes per second per connection; ``bytes_per_s`` (None: no
    cap) keeps a reconnect after a long outage from flooding a thin uplink. As YAML::

        rate:
          publishes_per_s: 100
          bytes_per_s: 262144
    """

    publishes_per_s: float = checked(100.0, positive)
    bytes_per_s: float | None = checked(None, _optional_positive)

    def __post_init__(self) -> None:
        validate(self)
