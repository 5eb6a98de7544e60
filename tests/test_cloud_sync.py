"""Cloud sync against moto's server over HTTP: keys, checksums, idempotent index, S3 outage."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from core.cloud import CloudBatchConfig, CloudSyncConfig
from core.cloud.sync import CloudSync
from core.detections import Detections
from core.errors import CloudSyncError
from core.mqtt import BackoffConfig
from core.outbox import Entry, Outbox, OutboxConfig, OutboxSink, OutboxSinkConfig
from core.sinks import EncodedImage, ResultRecord
from tests.mqtt_broker import MotoServer

BUCKET, TABLE = "edgeloop-results", "edgeloop-index"


def create_store(url: str) -> None:
    """The bucket and the index table the sync writes to, in a fresh moto account."""
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
    boto3.client("dynamodb", endpoint_url=url).create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "thing", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "thing", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _items(url: str) -> list[dict[str, object]]:
    pages = boto3.client("dynamodb", endpoint_url=url).get_paginator("scan")
    return [item for page in pages.paginate(TableName=TABLE) for item in page["Items"]]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(OutboxConfig(path=tmp_path / "o.db", sync="normal")) as box:
        yield box


def _sync(server: MotoServer, outbox: Outbox, max_records: int = 40) -> CloudSync:
    config = CloudSyncConfig(
        thing="cam-01",
        bucket=BUCKET,
        table=TABLE,
        endpoint_url=server.url,
        batch=CloudBatchConfig(max_records=max_records, max_delay_s=3600.0),
        backoff=BackoffConfig(initial_s=0.05, max_s=0.2),
        timeout_s=2.0,
    )
    return CloudSync(config, outbox, seed=1)


def _record(seq: int, images: int = 0) -> ResultRecord:
    dets = Detections(np.array([[1, 2, 30, 40]]), np.array([0.9]), np.array([0]), ("person",))
    crops = tuple(
        EncodedImage("crop", (0.0, 0.0, 1.0, 1.0), b"\xff\xd8" + bytes([seq, i]) * 20)
        for i in range(images)
    )
    return ResultRecord(seq % 2, seq, seq, 0, 0, "crops" if images else "metadata", dets, crops)


def test_batches_land_with_keys_checksums_and_index(
    moto_server: MotoServer, outbox: Outbox
) -> None:
    create_store(moto_server.url)
    sink = OutboxSink(outbox, OutboxSinkConfig(channels=("mqtt", "s3")))
    with sink:
        for seq in range(100):
            sink.emit(_record(seq, images=1 if seq % 10 == 0 else 0))
    sync = _sync(moto_server, outbox)
    sent: dict[str, str] = {}  # the checksum header of each upload, as it left this process

    def capture(request: object, **kwargs: object) -> None:
        headers = request.headers  # type: ignore[attr-defined]
        sent[request.url.split("?")[0].split("/", 4)[-1]] = headers[
            "x-amz-checksum-sha256"
        ].decode()  # type: ignore[attr-defined]

    sync.s3.meta.events.register("before-send.s3.PutObject", capture)
    assert sync.sync_once() == 40 and sync.sync_once() == 40
    assert sync.sync_once() == 0  # 20 left: a partial batch waits for max_delay_s
    assert sync.sync_once(force=True) == 20
    assert sync.sync_images() == 10
    assert outbox.depth("s3") == 0 and outbox.depth("images") == 0
    assert outbox.depth("mqtt") == 100  # the other destination keeps its copies

    s3 = boto3.client("s3", endpoint_url=moto_server.url)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    batches = [k for k in keys if k.startswith("results/")]
    assert len(batches) == 3 and len([k for k in keys if k.startswith("images/")]) == 10
    seen = []
    for key in batches:
        parts = key.split("/")
        assert parts[:2] == ["results", "cam-01"] and len(parts) == 7
        assert parts[-1].endswith(".jsonl.gz") and len(parts[-1]) == 32 + 9
        obj = s3.get_object(Bucket=BUCKET, Key=key)
        body = obj["Body"].read()
        # S3 verifies the x-amz-checksum-sha256 header (moto's server takes it without
        # echoing it back): check what was sent against what landed.
        assert sent[key] == base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert obj["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
        jsonl = gzip.decompress(body)
        assert hashlib.sha256(jsonl).hexdigest()[:32] == parts[-1][:32]  # content-addressed
        assert obj["Metadata"]["jsonl-sha256"] == hashlib.sha256(jsonl).hexdigest()
        seen += [json.loads(line) for line in jsonl.splitlines()]
    assert sorted(r["result"]["seq"] for r in seen) == list(range(100))
    with_images = [r["result"] for r in seen if r["result"]["images"]]
    image_keys = {f"images/cam-01/{k}" for r in with_images for k in r["image_keys"]}
    assert image_keys <= set(keys)

    items = _items(moto_server.url)
    assert len([i for i in items if i["sk"]["S"].startswith("batch#")]) == 3  # type: ignore[index]
    assert len([i for i in items if i["sk"]["S"].startswith("event#")]) == 100  # type: ignore[index]


def test_a_retried_batch_does_not_duplicate_index_items(
    moto_server: MotoServer, outbox: Outbox
) -> None:
    create_store(moto_server.url)
    outbox.put_many([Entry(f"cam{i % 3}", b'{"i":%d}' % i, channels=("s3",)) for i in range(60)])
    sync = _sync(moto_server, outbox, max_records=30)
    batch = sync.next_batch()
    assert batch is not None
    sync.deliver(batch)  # uploaded and indexed, then "crashed" before the ack
    assert outbox.depth("s3") == 60
    again = sync.next_batch()
    assert again is not None and again.key == batch.key  # the same claimed batch, same key
    assert sync.sync_once() == 30  # the retry: conditional put finds the item, writes none
    assert sync.sync_once() == 30
    items = _items(moto_server.url)
    assert len([i for i in items if i["sk"]["S"].startswith("batch#")]) == 2  # type: ignore[index]
    events = [i["id"]["S"] for i in items if i["sk"]["S"].startswith("event#")]  # type: ignore[index]
    assert len(events) == len(set(events)) == 60


def test_an_s3_outage_is_survived(moto_server: MotoServer, outbox: Outbox) -> None:
    create_store(moto_server.url)
    outbox.put_many([Entry("cam0", b'{"i":%d}' % i, channels=("s3",)) for i in range(50)])
    sync = _sync(moto_server, outbox, max_records=50)
    moto_server.stop()
    with pytest.raises(CloudSyncError, match="upload of s3://edgeloop-results/results/cam-01/"):
        sync.sync_once()
    assert outbox.depth("s3") == 50  # nothing lost while S3 is away
    moto_server.start()
    create_store(moto_server.url)  # moto keeps its state in memory: a fresh account after restart
    sync.start()
    try:
        import time

        deadline = time.monotonic() + 30
        while outbox.depth("s3") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sync.stop()
    assert outbox.depth("s3") == 0, sync.last_error
    s3 = boto3.client("s3", endpoint_url=moto_server.url)
    (only,) = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    lines = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=only["Key"])["Body"].read())
    assert [json.loads(x)["seq"] for x in lines.splitlines()] == list(range(50))
