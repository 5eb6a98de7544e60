"""The whole way: the pipeline publishes through the outbox to a real mosquitto (mutual TLS) and
syncs to S3/DynamoDB on moto's server; every result arrives, in order per stream."""

from __future__ import annotations

import time
from pathlib import Path

import boto3

from core.cloud import CloudBatchConfig, CloudSyncConfig
from core.cloud.sync import CloudSync
from core.metrics.registry import MetricsRegistry
from core.mqtt.publisher import MqttPublisher
from core.outbox import Outbox, OutboxConfig, OutboxSink, OutboxSinkConfig
from core.pipeline import Pipeline
from tests.mqtt_broker import Mosquitto, MotoServer, Recorder, check_order
from tests.pipeline_doubles import send_everything, small_config
from tests.test_cloud_sync import BUCKET, TABLE, _items, create_store
from tests.test_mqtt import mutual_tls


def test_pipeline_to_broker_and_cloud(
    mosquitto: Mosquitto, moto_server: MotoServer, tmp_path: Path
) -> None:
    create_store(moto_server.url)
    registry = MetricsRegistry()
    outbox = Outbox(OutboxConfig(path=tmp_path / "outbox.db"), registry)
    recorder = Recorder(mosquitto.plain)
    publisher = MqttPublisher(mutual_tls(mosquitto), outbox, registry=registry)
    cloud = CloudSync(
        CloudSyncConfig(
            thing="cam-01",
            bucket=BUCKET,
            table=TABLE,
            endpoint_url=moto_server.url,
            batch=CloudBatchConfig(max_records=20, max_delay_s=0.05),
            poll_s=0.02,
        ),
        outbox,
        registry=registry,
    )
    sink = OutboxSink(outbox, OutboxSinkConfig(channels=("mqtt", "s3")))
    publisher.start()
    cloud.start()
    try:
        config = small_config(*send_everything("filter.transmission=crops"), streams=2)
        with Pipeline(config, sink=sink, registry=registry) as pipeline:
            report = pipeline.run(max_frames=40)
        assert sink.records > 10 and report.errors["sink"] == 0
        deadline = time.monotonic() + 60
        while outbox.depth() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.depth() == 0, (publisher.last_error, cloud.last_error)
        deadline = time.monotonic() + 30
        while len(recorder.records) < sink.records and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        cloud.stop()
        publisher.stop()
        recorder.close()
        outbox.close()
    assert len(recorder.ids()) == sink.records
    check_order(recorder.records)
    events = [i for i in _items(moto_server.url) if i["sk"]["S"].startswith("event#")]  # type: ignore[index]
    assert len(events) == sink.records
    s3 = boto3.client("s3", endpoint_url=moto_server.url)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith("images/cam-01/") for k in keys)
    assert any(k.startswith("results/cam-01/") for k in keys)
