"""Cloud sync: the outbox's ``s3`` and ``images`` channels to S3, indexed in DynamoDB.

A **batch** is up to ``max_records`` results of the ``s3`` channel as gzipped JSON Lines (one
:func:`core.mqtt.batch.record_json` object a line), stored at::

    results/{thing}/{yyyy}/{mm}/{dd}/{hh}/{batch-id}.jsonl.gz

``batch-id`` is the first 32 hex digits of the SHA-256 of the JSON Lines: content-addressed,
and the hour is the first record's creation time (UTC), so the key is deterministic. The
records are *claimed* for the batch in the outbox (:meth:`Outbox.assign_batch`) before the
upload, so a retry after a failure or a crash re-sends the very same batch under the same key,
never a regrouped one. The upload carries ``ChecksumSHA256`` (S3 verifies the bytes and
refuses a corrupted body) and, in its metadata, the hex SHA-256 of the object and of the JSON
Lines (for consumers, and for S3-compatible stores that do not echo checksums).

The **index** (DynamoDB, one table, partition key ``thing``, sort key ``sk``) holds:

* one item per batch, ``sk = "batch#{yyyy-mm-ddThh}#{batch-id}"``, with the S3 key, checksum,
  record count and bytes -- written with ``attribute_not_exists`` as condition, so a retried
  batch finds its item there and writes nothing (a ConditionalCheckFailed means "done");
* one item per result, ``sk = "event#{stream}#{seq:012d}#{message id}"``, with the batch and
  key it is in -- written with ``BatchWriteItem`` (25 a request; unprocessed items retried
  with back-off). The keys are deterministic, so a retry overwrites the same items and never
  adds one. Attribute names that DynamoDB reserves (``size``, ``count``...) are only used
  through ``ExpressionAttributeNames``.

Only then are the records acked (deleted) in the outbox. JPEGs of the ``images`` channel go
one object each to ``images/{thing}/{sha256[:32]}.jpg`` (the name results carry in
``image_keys``), with their checksum, then are acked.

An outage of S3 or DynamoDB raises :class:`~core.errors.CloudSyncError` from
:meth:`CloudSync.sync_once`; the records stay in the outbox and :meth:`CloudSync.run` retries
with exponential back-off and jitter.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.background import BackgroundLoop
from core.cloud.config import CloudSyncConfig
from core.errors import CloudSyncError
from core.metrics.registry import MetricsRegistry
from core.mqtt.batch import record_json
from core.mqtt.publisher import backoff_delay
from core.outbox.rate import RateLimiter
from core.outbox.sink import IMAGES_CHANNEL, image_key
from core.outbox.store import Outbox, OutboxRecord

__all__ = ["CHANNEL", "Batch", "CloudSync", "batch_key"]

log = logging.getLogger(__name__)

CHANNEL = "s3"
_WRITE_CHUNK = 25  # BatchWriteItem's limit
_UNPROCESSED_TRIES = 8


@dataclass(frozen=True)
class Batch:
    """A claimed batch: its records, id, S3 key and compressed body."""

    records: list[OutboxRecord]
    batch_id: str
    key: str
    hour: str
    body: bytes
    jsonl_sha256: str


def batch_key(thing: str, created_ns: int, batch_id: str) -> tuple[str, str]:
    """(S3 key, ``yyyy-mm-ddThh``) of a batch whose first record was made at ``created_ns``.

    >>> batch_key("cam", 1_700_000_000 * 10**9, "ab12")
    ('results/cam/2023/11/14/22/ab12.jsonl.gz', '2023-11-14T22')
    """
    when = datetime.datetime.fromtimestamp(created_ns / 1e9, tz=datetime.timezone.utc)
    key = f"results/{thing}/{when:%Y/%m/%d/%H}/{batch_id}.jsonl.gz"
    return key, f"{when:%Y-%m-%dT%H}"


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class CloudSync(BackgroundLoop):
    """Drains the outbox's ``s3`` and ``images`` channels (see the module docstring)."""

    thread_name = "edgeloop-cloud"

    def __init__(
        self,
        config: CloudSyncConfig,
        outbox: Outbox,
        *,
        registry: MetricsRegistry | None = None,
        session: boto3.session.Session | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        session = session if session is not None else boto3.session.Session()
        client_config = Config(
            region_name=config.region,
            connect_timeout=config.timeout_s,
            read_timeout=config.timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        self.s3 = session.client("s3", endpoint_url=config.endpoint_url, config=client_config)
        self.dynamodb = session.client(
            "dynamodb", endpoint_url=config.endpoint_url, config=client_config
        )
        self._limiter = RateLimiter(config.rate)
        self._rng = random.Random(seed)
        super().__init__()
        self.last_error: str | None = None
        registry = registry if registry is not None else MetricsRegistry()
        self._m_batches = registry.counter("edgeloop_cloud_batches_total", "Batches in S3")
        self._m_records = registry.counter(
            "edgeloop_cloud_records_total", "Records stored in S3 and indexed"
        )
        self._m_images = registry.counter("edgeloop_cloud_images_total", "Images stored in S3")
        self._m_failures = registry.counter(
            "edgeloop_cloud_failures_total", "Failed sync attempts, by stage", ("stage",)
        )
        self._m_unprocessed = registry.counter(
            "edgeloop_cloud_unprocessed_retries_total", "BatchWriteItem unprocessed-item retries"
        )

    # -- batches ---------------------------------------------------------------------------

    def next_batch(self, *, force: bool = False) -> Batch | None:
        """The batch to send next: a claimed one being retried, else a new one claimed now
        (None while a partial batch waits for ``max_delay_s``, unless ``force``)."""
        cfg = self.config.batch
        records = self.outbox.pending(CHANNEL, cfg.max_records)
        if not records:
            return None
        if records[0].batch is not None:
            records = self.outbox.pending(CHANNEL, 1 << 30, batch=records[0].batch)
            return self._build(records, records[0].batch)
        fresh: list[OutboxRecord] = []
        total = 0
        for record in records:
            if record.batch is not None:
                break
            total += record.size + 80
            if fresh and total > cfg.max_bytes:
                break
            fresh.append(record)
        full = len(fresh) < len(records) or len(fresh) == cfg.max_records
        waited_s = (time.time_ns() - fresh[0].created_ns) / 1e9
        if not (full or force or waited_s >= cfg.max_delay_s):
            return None
        batch = self._build(fresh, None)
        self.outbox.assign_batch([r.rowid for r in fresh], batch.batch_id)
        return batch

    def _build(self, records: list[OutboxRecord], batch_id: str | None) -> Batch:
        jsonl = b"".join(record_json(r) + b"\n" for r in records)
        digest = hashlib.sha256(jsonl).hexdigest()
        batch_id = batch_id or digest[:32]
        key, hour = batch_key(self.config.thing, records[0].created_ns, batch_id)
        body = gzip.compress(jsonl, compresslevel=6, mtime=0)
        return Batch(records, batch_id, key, hour, body, digest)

    def deliver(self, batch: Batch) -> None:
        """Upload ``batch`` and index it (idempotent: safe to repeat); does not ack."""
        try:
            self.s3.put_object(
                Bucket=self.config.bucket,
                Key=batch.key,
                Body=batch.body,
                ChecksumSHA256=_b64_sha256(batch.body),
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
                Metadata={
                    "sha256": hashlib.sha256(batch.body).hexdigest(),
                    "jsonl-sha256": batch.jsonl_sha256,
                    "records": str(len(batch.records)),
                },
            )
        except (BotoCoreError, ClientError) as exc:
            self._m_failures.labels(stage="s3").inc()
            raise CloudSyncError(
                f"cloud sync: upload of s3://{self.config.bucket}/{batch.key} failed: {exc}"
            ) from exc
        try:
            self._index(batch)
        except (BotoCoreError, ClientError) as exc:
            self._m_failures.labels(stage="dynamodb").inc()
            raise CloudSyncError(
                f"cloud sync: index of {batch.key} in table {self.config.table} failed: {exc}"
            ) from exc

    def _index(self, batch: Batch) -> None:
        thing = self.config.thing
        streams = sorted({r.stream for r in batch.records})
        try:
            self.dynamodb.put_item(
                TableName=self.config.table,
                Item={
                    "thing": {"S": thing},
                    "sk": {"S": f"batch#{batch.hour}#{batch.batch_id}"},
                    "key": {"S": batch.key},
                    "sha256": {"S": batch.jsonl_sha256},
                    "count": {"N": str(len(batch.records))},
                    "size": {"N": str(len(batch.body))},
                    "streams": {"SS": streams},
                },
                ConditionExpression="attribute_not_exists(#pk) AND attribute_not_exists(#sk)",
                ExpressionAttributeNames={"#pk": "thing", "#sk": "sk"},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            log.info("batch %s was indexed before (a retry): not written again", batch.key)
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "thing": {"S": thing},
                        "sk": {"S": f"event#{r.stream}#{r.seq:012d}#{r.msg_id}"},
                        "id": {"S": r.msg_id},
                        "batch": {"S": batch.batch_id},
                        "key": {"S": batch.key},
                        "created_ns": {"N": str(r.created_ns)},
                        "size": {"N": str(r.size)},
                    }
                }
            }
            for r in batch.records
        ]
        for start in range(0, len(requests), _WRITE_CHUNK):
            self._write_all({self.config.table: requests[start : start + _WRITE_CHUNK]})

    def _write_all(self, items: dict[str, list[dict[str, Any]]]) -> None:
        """BatchWriteItem until nothing is unprocessed (back-off between tries)."""
        for attempt in range(_UNPROCESSED_TRIES):
            response = self.dynamodb.batch_write_item(RequestItems=items)
            items = response.get("UnprocessedItems") or {}
            if not items:
                return
            self._m_unprocessed.inc()
            time.sleep(backoff_delay(attempt, self.config.backoff, self._rng) / 10)
        raise CloudSyncError(
            f"cloud sync: DynamoDB left items unprocessed after {_UNPROCESSED_TRIES} tries"
        )

    def sync_images(self, limit: int = 50) -> int:
        """Upload up to ``limit`` JPEGs of the ``images`` channel; returns how many."""
        done = 0
        for record in self.outbox.pending(IMAGES_CHANNEL, limit):
            key = f"images/{self.config.thing}/{image_key(record.payload)}"
            try:
                self.s3.put_object(
                    Bucket=self.config.bucket,
                    Key=key,
                    Body=record.payload,
                    ChecksumSHA256=_b64_sha256(record.payload),
                    ContentType="image/jpeg",
                )
            except (BotoCoreError, ClientError) as exc:
                self._m_failures.labels(stage="s3").inc()
                raise CloudSyncError(f"cloud sync: upload of {key} failed: {exc}") from exc
            self.outbox.ack([record.rowid])
            self._m_images.inc()
            done += 1
        return done

    def sync_once(self, *, force: bool = False) -> int:
        """Send one batch (if one is due) and acked it; returns its record count.
        :class:`CloudSyncError` if S3 or DynamoDB failed (the records stay)."""
        batch = self.next_batch(force=force)
        if batch is None:
            return 0
        self.deliver(batch)
        self.outbox.ack([r.rowid for r in batch.records])
        self._m_batches.inc()
        self._m_records.inc(len(batch.records))
        return len(batch.records)

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Sync batches and images as they come due; on failure back off and retry."""
        attempt = 0
        while not self.stopping.is_set():
            wait = self._limiter.delay(1)
            if wait > 0:
                self.stopping.wait(wait)
                continue
            try:
                sent = self.sync_once() + self.sync_images()
            except CloudSyncError as exc:
                self.last_error = str(exc)
                delay = backoff_delay(attempt, self.config.backoff, self._rng)
                attempt += 1
                log.warning("%s; retrying in %.1f s", exc, delay)
                self.stopping.wait(delay)
                continue
            attempt = 0
            if sent:
                self._limiter.take(1)
            else:
                self.stopping.wait(self.config.poll_s)
