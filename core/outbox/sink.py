"""The pipeline's sink into the outbox: results are spooled to disk, drainers send them on.

:class:`OutboxSink` turns each :class:`~core.sinks.ResultRecord` into an outbox entry (its
compact JSON) per configured channel, buffers them, and stores the buffer in one transaction at
:meth:`~OutboxSink.flush` (the pipeline calls it after each batch): one fsync per batch with
``sync: full``. Once ``flush`` returned, the records survive a crash.

Priorities and MQTT QoS follow the filter's transmission level (``core.filter``), as
``levels`` maps them (:mod:`core.outbox.levels`): by default ``metadata`` results are kept
longest, ``crops`` and ``frame`` results next, all at QoS 1, and the JPEGs themselves (stored on the
``images`` channel for the cloud sync to upload as separate S3 objects, referenced from the
result by ``image_keys``) are dropped first when the spool is full. The images go only where
the ``s3`` channel is configured; otherwise a result carries their sizes, not their bytes.

A :class:`~core.errors.OutboxFullError` from ``flush`` (records refused by the full policy)
is a :class:`~core.errors.SinkError`: the pipeline counts it and goes on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from core.config import checked, validate
from core.errors import OutboxFullError
from core.outbox.config import OutboxConfig
from core.outbox.levels import TransmissionLevels
from core.outbox.store import Entry, Outbox
from core.sinks.base import ResultRecord, Sink

__all__ = ["IMAGES_CHANNEL", "OutboxSink", "OutboxSinkConfig", "image_key"]

IMAGES_CHANNEL = "images"


def _channels(value: tuple[str, ...]) -> str | None:
    known = {"mqtt", "s3"}
    if not value or not set(value) <= known:
        return f"must be a non-empty list of {sorted(known)}, got {list(value)}"
    return None


@dataclass(frozen=True)
class OutboxSinkConfig:
    """Which destinations a result goes to, and per transmission level its MQTT QoS and rank
    in a full spool (:mod:`core.outbox.levels`). As YAML::

    outbox_sink:
      channels: [mqtt, s3]   # each result is spooled once per channel
      levels:                # images are priority 0, below every level
        metadata: {qos: 1, priority: 3}
        crops: {qos: 1, priority: 2}
        frame: {qos: 0, priority: 1}
    """

    channels: tuple[str, ...] = checked(("mqtt",), _channels)
    levels: TransmissionLevels = field(default_factory=TransmissionLevels)

    def __post_init__(self) -> None:
        validate(self)


def image_key(jpeg: bytes) -> str:
    """Content-addressed object name of a JPEG (the sync puts it under ``images/{thing}/``)."""
    return f"{hashlib.sha256(jpeg).hexdigest()[:32]}.jpg"


class OutboxSink(Sink):
    """Spools results into an :class:`Outbox` (given, and then shared with the drainers and
    not closed here; or opened from an :class:`OutboxConfig` at :meth:`open`)."""

    name = "outbox"

    def __init__(
        self, outbox: Outbox | OutboxConfig, config: OutboxSinkConfig | None = None
    ) -> None:
        self.config = config if config is not None else OutboxSinkConfig()
        self._given = outbox if isinstance(outbox, Outbox) else None
        self._outbox_config = outbox.config if isinstance(outbox, Outbox) else outbox
        self.outbox: Outbox | None = self._given
        self._buffer: list[Entry] = []
        self.records = 0
        self.refused = 0
        self.last_error: str | None = None
        """Why the last flush failed (None: it stored everything)."""

    def open(self) -> None:
        if self.outbox is None:
            self.outbox = Outbox(self._outbox_config)

    def emit(self, record: ResultRecord) -> None:
        stream = str(record.stream_id)
        payload = record.to_json()
        if record.images and "s3" in self.config.channels:
            keys = [image_key(image.jpeg) for image in record.images]
            payload = json.dumps(
                {**record.to_dict(), "image_keys": keys}, separators=(",", ":")
            ).encode()
            # Images number in a stream of their own: the results' sequence stays gap-free,
            # so a consumer can tell a lost result from an image.
            for image in record.images:
                self._buffer.append(Entry(f"{stream}:images", image.jpeg, 0, (IMAGES_CHANNEL,)))
        policy = self.config.levels.policy(record.level)
        self._buffer.append(
            Entry(stream, payload, policy.priority, self.config.channels, policy.qos)
        )
        self.records += 1

    def flush(self) -> None:
        if not self._buffer:
            return
        if self.outbox is None:
            raise OutboxFullError("outbox sink: flush before open() or after close()")
        entries, self._buffer = self._buffer, []
        try:
            result = self.outbox.put_many(entries)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        if result.refused:
            self.refused += result.refused
            self.last_error = (
                f"outbox full ({self.outbox.config.full_policy}): {result.refused} of "
                f"{len(entries)} entries refused"
            )
            raise OutboxFullError(0, self.last_error, str(self.outbox.path))
        self.last_error = None

    def close(self) -> None:
        if self.outbox is None:
            return
        try:
            self.flush()
        finally:
            if self._given is None:
                self.outbox.close()
            self.outbox = None
