"""Result batches on the wire: gzip-compressed JSON, each at most 128 KB.

A batch is ``{"schema": "edgeloop.batch/1", "thing": ..., "records": [...]}``, each record
``{"id", "stream", "seq", "created_ns", "result"}`` where ``result`` is the outbox payload (the
result's own JSON, embedded without re-encoding) and ``id`` the outbox's stable message id:
after a reconnect or a crash a record may arrive twice, always with the same id, so a consumer
dedups by ``id``. Batch boundaries are not stable across resends; ids are.

Why gzip JSON rather than CBOR or MessagePack: detections JSON compresses 4-6x, any consumer
(an AWS IoT rule to Lambda, a Python script) reads it without a schema library, and MQTT 5's
content type says what it is. Where the payload is not JSON, use another channel.

>>> from core.outbox import OutboxRecord
>>> r = OutboxRecord(1, "ab-0-3", "mqtt", "0", 3, 5, 3, 10, b'{"x":1}')
>>> payload = encode_batch("cam", [r])
>>> decode_batch(payload)["records"][0]
{'id': 'ab-0-3', 'stream': '0', 'seq': 3, 'created_ns': 5, 'result': {'x': 1}}
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from core.errors import MqttLimitError
from core.metrics.messaging import BrokerMetrics
from core.mqtt.config import BatchConfig, MqttConfig
from core.mqtt.limits import MAX_PAYLOAD_BYTES
from core.outbox.store import Outbox, OutboxRecord

__all__ = [
    "BATCH_SCHEMA",
    "Batch",
    "SpoolBatches",
    "decode_batch",
    "encode_batch",
    "entry_bytes",
    "next_batch",
    "record_json",
    "take_batch",
]

log = logging.getLogger("core.mqtt")

BATCH_SCHEMA = "edgeloop.batch/1"
_OVERHEAD = 80  # the batch envelope, bytes


def record_json(record: OutboxRecord) -> bytes:
    """One record as the JSON object batches carry (the payload embedded as ``result``)."""
    head = json.dumps(
        {
            "id": record.msg_id,
            "stream": record.stream,
            "seq": record.seq,
            "created_ns": record.created_ns,
        },
        separators=(",", ":"),
    )
    return head[:-1].encode() + b',"result":' + record.payload + b"}"


def entry_bytes(record: OutboxRecord) -> int:
    """About how many JSON bytes ``record`` adds to a batch (for the size cut)."""
    return record.size + len(record.msg_id) + len(record.stream) + 70


def take_batch(records: Sequence[OutboxRecord], max_records: int, max_bytes: int) -> int:
    """How many of ``records`` (in order) make the next batch: at least one, then as many as
    fit ``max_records`` and ``max_bytes`` of JSON."""
    total = _OVERHEAD
    for i, record in enumerate(records[:max_records]):
        total += entry_bytes(record)
        if total > max_bytes and i > 0:
            return i
    return min(len(records), max_records)


def encode_batch(thing: str, records: Sequence[OutboxRecord]) -> bytes:
    """The compressed batch; :class:`MqttLimitError` if it exceeds 128 KB even so (a single
    result that large must go by S3 reference)."""
    body = (
        b'{"schema":"'
        + BATCH_SCHEMA.encode()
        + b'","thing":'
        + json.dumps(thing).encode()
        + b',"records":['
        + b",".join(record_json(r) for r in records)
        + b"]}"
    )
    payload = gzip.compress(body, compresslevel=6, mtime=0)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MqttLimitError(
            f"batch of {len(records)} records compresses to {len(payload)} bytes, over "
            f"{MAX_PAYLOAD_BYTES}: lower batch.max_bytes or send large items by reference"
        )
    return payload


def decode_batch(payload: bytes) -> dict[str, Any]:
    """A batch back to data (for consumers and tests)."""
    data: dict[str, Any] = json.loads(gzip.decompress(payload))
    if data.get("schema") != BATCH_SCHEMA:
        raise ValueError(f"not an edgeloop batch (schema {data.get('schema')!r})")
    return data


class Batch(NamedTuple):
    """The next batch to publish: its records (in spool order), payload and QoS."""

    records: list[OutboxRecord]
    payload: bytes
    qos: int


def next_batch(
    outbox: Outbox,
    channel: str,
    *,
    after: int,
    thing: str,
    config: BatchConfig,
    qos_of: Callable[[OutboxRecord], int],
    too_large: Callable[[OutboxRecord, MqttLimitError], None],
) -> Batch | None:
    """The next batch of ``channel``'s records after row ``after``, for any publisher (MQTT,
    Greengrass IPC): records of one QoS in a row (so per-stream order holds across levels),
    cut at ``max_records`` and ``max_bytes``; None when nothing waits, or when a partial batch
    may still wait for more (less than ``max_delay_s`` old). A single record over 128 KB even
    alone goes to ``too_large`` (the caller counts and acks it: it can never be sent)."""
    while True:
        records = outbox.pending(channel, config.max_records, after)
        if not records:
            return None
        qos = qos_of(records[0])
        run = 1
        while run < len(records) and qos_of(records[run]) == qos:
            run += 1
        n = take_batch(records[:run], config.max_records, config.max_bytes)
        waited_s = (time.time_ns() - records[0].created_ns) / 1e9
        if n == len(records) < config.max_records and waited_s < config.max_delay_s:
            return None  # a partial batch: wait for more or for max_delay_s
        batch = records[:n]
        try:
            return Batch(batch, encode_batch(thing, batch), qos)
        except MqttLimitError as exc:
            if n > 1:  # rare: JSON that barely compresses; send half
                batch = batch[: n // 2]
                return Batch(batch, encode_batch(thing, batch), qos)
            too_large(batch[0], exc)


class SpoolBatches:
    """The outbox's ``channel`` as a publisher reads it, batch after batch: what both the
    direct publisher and the Greengrass one share. :meth:`peek` the next batch, publish it,
    then :meth:`advance` past it (a batch held back by the rate cap is peeked again);
    :meth:`rewind` after a lost connection replays from the oldest record not acknowledged."""

    def __init__(
        self, outbox: Outbox, channel: str, config: MqttConfig, metrics: BrokerMetrics
    ) -> None:
        self.outbox = outbox
        self.channel = channel
        self.config = config
        self.metrics = metrics
        self.cursor = 0
        """The row id of the last record published on this connection."""

    def qos(self, record: OutboxRecord) -> int:
        """The record's QoS (its transmission level's, :mod:`core.outbox.levels`), else the
        configured ``qos`` (records stored without one)."""
        return self.config.qos if record.qos is None else record.qos

    def peek(self) -> Batch | None:
        return next_batch(
            self.outbox,
            self.channel,
            after=self.cursor,
            thing=self.config.thing,
            config=self.config.batch,
            qos_of=self.qos,
            too_large=self._drop,
        )

    def advance(self, batch: Batch) -> list[int]:
        """Past ``batch`` (published); returns its row ids, for the ack."""
        self.cursor = batch.records[-1].rowid
        return [r.rowid for r in batch.records]

    def rewind(self) -> None:
        self.cursor = 0

    def _drop(self, record: OutboxRecord, exc: MqttLimitError) -> None:
        log.error("dropping record %s: %s", record.msg_id, exc)
        self.metrics.publish_failed("too-large")
        self.outbox.ack([record.rowid])
