"""The outbox spool: ordering, ids, acks, bounds and policies, corruption, locking, the sink."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from core.detections import Detections
from core.errors import ConfigError, OutboxError, OutboxFullError, SinkError
from core.metrics.registry import MetricsRegistry
from core.outbox import (
    IMAGES_CHANNEL,
    Entry,
    Outbox,
    OutboxConfig,
    OutboxSink,
    OutboxSinkConfig,
    RateCap,
    RateLimiter,
)
from core.sinks import EncodedImage, ResultRecord


def _box(tmp_path: Path, **kw: object) -> Outbox:
    config = OutboxConfig(path=tmp_path / "spool" / "outbox.db", **kw)  # type: ignore[arg-type]
    return Outbox(config)


def test_order_ids_and_ack(tmp_path: Path) -> None:
    with _box(tmp_path) as box:
        result = box.put_many([Entry(f"s{i % 2}", f"{i}".encode()) for i in range(10)])
        assert len(set(result.stored)) == 10 and result.refused == 0
        records = box.pending("mqtt")
        assert [r.payload for r in records] == [f"{i}".encode() for i in range(10)]
        assert [r.seq for r in records if r.stream == "s0"] == [0, 1, 2, 3, 4]
        assert [r.msg_id for r in records] == result.stored
        assert all(r.size == len(r.payload) and r.created_ns > 0 for r in records)
        assert box.ack([records[0].rowid, records[1].rowid]) == 2
        assert box.ack([records[0].rowid]) == 0  # acked twice: counted once
        assert [r.payload for r in box.pending("mqtt", limit=3)] == [b"2", b"3", b"4"]
        assert [r.payload for r in box.pending("mqtt", after=records[8].rowid)] == [b"9"]
        assert box.stats()["records"] == 8


def test_ids_and_sequences_survive_reopen(tmp_path: Path) -> None:
    with _box(tmp_path) as box:
        first = box.put(Entry("cam", b"a"))
    with _box(tmp_path) as box:
        second = box.put(Entry("cam", b"b"))
        assert [r.seq for r in box.pending("mqtt")] == [0, 1]
        assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]  # same instance and stream
        assert box.stats()["records"] == 2 and box.stats()["bytes"] == 2


def test_channels_store_one_copy_each_with_one_id(tmp_path: Path) -> None:
    with _box(tmp_path) as box:
        msg_id = box.put(Entry("cam", b"x", channels=("mqtt", "s3")))
        mqtt, s3 = box.pending("mqtt"), box.pending("s3")
        assert mqtt[0].msg_id == s3[0].msg_id == msg_id
        box.ack([mqtt[0].rowid])
        assert box.depth("mqtt") == 0 and box.depth("s3") == 1


def test_full_drops_lowest_priority_then_oldest(tmp_path: Path) -> None:
    registry = MetricsRegistry()
    box = Outbox(OutboxConfig(path=tmp_path / "o.db", max_bytes=4096), registry)
    with box:
        kb = b"x" * 1024
        box.put_many([Entry("s", kb, 0), Entry("s", kb, 2), Entry("s", kb, 0), Entry("s", kb, 1)])
        box.put(Entry("s", kb, 1))  # evicts the oldest priority-0 record
        assert [r.priority for r in box.pending("mqtt")] == [2, 0, 1, 1]
        box.put(Entry("s", kb, 1))  # then the other priority 0
        box.put(Entry("s", kb, 1))  # then the oldest priority 1
        assert [r.priority for r in box.pending("mqtt")] == [2, 1, 1, 1]
        # A record of lower priority than everything held is refused, not stored.
        assert box.put_many([Entry("s", kb, 0)]).refused == 1
        with pytest.raises(OutboxFullError, match="refused"):
            box.put(Entry("s", b"y" * 5000, 9))  # larger than the whole spool
        assert box.counters["evicted"] == 3 and box.counters["rejected"] == 2
        assert box.stats()["bytes"] <= 4096
    dropped = registry.snapshot()["edgeloop_spool_dropped_total"]["samples"]
    by_reason = {s["labels"]["reason"]: s["value"] for s in dropped}
    assert by_reason == {"evicted": 3, "rejected": 2, "expired": 0}


def test_full_reject_new_keeps_old(tmp_path: Path) -> None:
    with _box(tmp_path, max_bytes=4096, full_policy="reject-new") as box:
        box.put_many([Entry("s", b"x" * 1024, 0) for _ in range(4)])
        result = box.put_many([Entry("s", b"new", 9), Entry("s", b"new", 9)])
        assert result.refused == 2 and box.counters["rejected"] == 2
        assert len(box.pending("mqtt")) == 4


def test_expiry_is_counted(tmp_path: Path) -> None:
    with _box(tmp_path, max_age_s=60.0) as box:
        box.put_many([Entry("s", b"old") for _ in range(300)])
        assert box.expire() == 0
        assert box.expire(now_ns=time.time_ns() + 61 * 10**9) == 300
        assert box.counters["expired"] == 300 and box.depth() == 0


def test_corrupt_database_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database at all" * 200)
    registry = MetricsRegistry()
    with Outbox(OutboxConfig(path=path), registry) as box:
        assert box.quarantined is not None and box.quarantined.exists()
        assert box.quarantined.read_bytes().startswith(b"this is not")
        box.put(Entry("s", b"fresh"))
        assert box.depth() == 1
    assert "corrupt" in caplog.text
    assert registry.snapshot()["edgeloop_spool_corrupt_total"]["samples"][0]["value"] == 1


def test_damaged_pages_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(OutboxConfig(path=path, sync="normal")) as box:
        box.put_many([Entry("s", bytes([i % 256]) * 2000) for i in range(200)])
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page : 40 * page] = b"\x5a" * (37 * page)  # scribble over b-tree pages
    path.write_bytes(bytes(data))
    with Outbox(OutboxConfig(path=path)) as box:
        assert box.quarantined is not None
        assert box.depth() == 0


def test_second_process_is_refused(tmp_path: Path) -> None:
    with _box(tmp_path), pytest.raises(OutboxError, match="in use"):
        _box(tmp_path)
    _box(tmp_path).close()  # the lock went with the first


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        OutboxConfig(max_bytes=1)
    with pytest.raises(ConfigError, match="publishes_per_s"):
        RateCap(publishes_per_s=0)
    with pytest.raises(ConfigError, match="channels"):
        OutboxSinkConfig(channels=("kafka",))


def test_rate_limiter_caps_publishes_and_bytes() -> None:
    now = [0.0]
    limiter = RateLimiter(RateCap(publishes_per_s=100, bytes_per_s=1000), clock=lambda: now[0])
    sent = 0
    for _ in range(1000):  # one simulated second in 1 ms steps
        while limiter.delay(10) == 0.0:
            limiter.take(10)
            sent += 1
        now[0] += 0.001
    # A one-second burst plus one second of refill, by publishes and by bytes (10 B each).
    assert 100 <= sent <= 200
    assert limiter.delay(5000) > 0  # larger than the bucket: waits for a full bucket


def _record(stream: int, seq: int, level: str, images: int = 0) -> ResultRecord:
    dets = Detections(np.array([[1, 2, 3, 4]]), np.array([0.9]), np.array([0]), ("person",))
    crops = tuple(
        EncodedImage("crop", (0.0, 0.0, 3.0, 4.0), bytes([seq % 256, i]) * 50)
        for i in range(images)
    )
    return ResultRecord(stream, seq, seq, 0, 0, level, dets, crops)


def test_sink_spools_per_channel_with_images(tmp_path: Path) -> None:
    import json

    box = Outbox(OutboxConfig(path=tmp_path / "o.db"))
    sink = OutboxSink(box, OutboxSinkConfig(channels=("mqtt", "s3")))
    with sink:
        sink.emit(_record(0, 0, "metadata"))
        sink.emit(_record(1, 0, "crops", images=2))
        assert box.depth() == 0  # buffered until flush
        sink.flush()
    assert sink.outbox is None and box.depth() == 6  # 2 results x 2 channels + 2 images
    mqtt = box.pending("mqtt")
    assert [json.loads(r.payload)["stream_id"] for r in mqtt] == [0, 1]
    assert [r.priority for r in mqtt] == [3, 2]
    keys = json.loads(mqtt[1].payload)["image_keys"]
    images = box.pending(IMAGES_CHANNEL)
    assert len(keys) == 2 and [r.priority for r in images] == [0, 0]
    box.close()


def test_sink_reports_refusals_as_sink_errors(tmp_path: Path) -> None:
    config = OutboxConfig(path=tmp_path / "o.db", max_bytes=4096, full_policy="reject-new")
    sink = OutboxSink(config)
    sink.open()
    for seq in range(200):
        sink.emit(_record(0, seq, "metadata"))
    with pytest.raises(SinkError, match="refused"):
        sink.flush()
    assert 0 < sink.refused < 200
    sink.close()
    with Outbox(config) as box:
        assert box.stats()["bytes"] <= 4096 and box.depth() == 200 - sink.refused


def test_rolled_back_put_leaves_state_alone(tmp_path: Path) -> None:
    with _box(tmp_path) as box:
        box.put(Entry("s", b"a"))
        box._conn.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON records BEGIN "
            "SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        with pytest.raises(OutboxError, match="disk on fire"):
            box.put_many([Entry("s", b"b"), Entry("t", b"c")])
        box._conn.execute("DROP TRIGGER boom")
        box.put(Entry("s", b"d"))
        assert [r.seq for r in box.pending("mqtt")] == [0, 1]
        assert box.stats()["records"] == 2
    assert sqlite3.sqlite_version_info >= (3, 35)  # DELETE ... RETURNING


def test_a_version_1_spool_is_migrated(tmp_path: Path) -> None:
    """Spools written before records carried a QoS open, keep their records, and those
    records travel at the publisher's configured QoS (``qos`` None)."""
    path = tmp_path / "spool" / "outbox.db"
    with _box(tmp_path) as box:
        box.put(Entry("s", b"old"))
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE records DROP COLUMN qos")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    with _box(tmp_path) as box:
        assert box.quarantined is None
        assert [(r.payload, r.qos) for r in box.pending("mqtt")] == [(b"old", None)]
        box.put(Entry("s", b"new", qos=0))
        assert [r.qos for r in box.pending("mqtt")] == [None, 0]
