"""The outbox: a disk spool every result passes through before it leaves the device
(:mod:`core.outbox.store`), its send-rate cap (:mod:`core.outbox.rate`) and the pipeline's sink
into it (:mod:`core.outbox.sink`). Drainers -- :mod:`core.mqtt` and :mod:`core.cloud` -- read it
in order and delete a record only once its destination acknowledged it."""

from __future__ import annotations

from core.outbox.config import OutboxConfig, RateCap
from core.outbox.levels import LevelPolicy, TransmissionLevels
from core.outbox.rate import RateLimiter
from core.outbox.sink import IMAGES_CHANNEL, OutboxSink, OutboxSinkConfig, image_key
from core.outbox.store import Entry, Outbox, OutboxRecord, PutResult

__all__ = [
    "IMAGES_CHANNEL",
    "Entry",
    "LevelPolicy",
    "Outbox",
    "OutboxConfig",
    "OutboxRecord",
    "OutboxSink",
    "OutboxSinkConfig",
    "PutResult",
    "RateCap",
    "RateLimiter",
    "TransmissionLevels",
    "image_key",
]
