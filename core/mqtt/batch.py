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
from collections.abc import Sequence
from typing import Any

from core.errors import MqttLimitError
from core.mqtt.limits import MAX_PAYLOAD_BYTES
from core.outbox.store import OutboxRecord

__all__ = [
    "BATCH_SCHEMA",
    "decode_batch",
    "encode_batch",
    "entry_bytes",
    "record_json",
    "take_batch",
]

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
