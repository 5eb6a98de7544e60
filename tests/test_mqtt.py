"""The MQTT publisher against a real mosquitto: mutual TLS, limits, batches, commands."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import from_mapping
from core.detections import Detections
from core.errors import ConfigError, MqttConnectionError, MqttLimitError
from core.metrics.registry import MetricsRegistry
from core.mqtt import (
    BackoffConfig,
    BatchConfig,
    CommandDispatcher,
    ConfigUpdate,
    ModelUpdate,
    MqttConfig,
    TlsConfig,
)
from core.mqtt.limits import MAX_PAYLOAD_BYTES
from core.mqtt.publisher import MqttPublisher
from core.outbox import (
    Entry,
    LevelPolicy,
    Outbox,
    OutboxConfig,
    OutboxSink,
    OutboxSinkConfig,
    TransmissionLevels,
)
from core.sinks import ResultRecord
from tests.mqtt_broker import Mosquitto, Mqtt311Broker, Recorder, check_order

FAST = {
    "backoff": BackoffConfig(initial_s=0.05, max_s=0.5),
    "batch": BatchConfig(max_records=50, max_bytes=64 * 1024, max_delay_s=0.05),
    "poll_s": 0.01,
    "connect_timeout_s": 3.0,
}


def plain(broker: Mosquitto, **kw: Any) -> MqttConfig:
    return MqttConfig(
        thing="cam-01", host="127.0.0.1", port=broker.plain, transport="tcp", **{**FAST, **kw}
    )


def mutual_tls(broker: Mosquitto, port: int | None = None, **kw: Any) -> MqttConfig:
    p = broker.pki
    return MqttConfig(
        thing="cam-01",
        host="localhost",
        port=port or broker.tls,
        tls=TlsConfig(ca_file=p.ca, cert_file=p.client_cert, key_file=p.client_key),
        **{**FAST, **kw},
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(OutboxConfig(path=tmp_path / "spool" / "outbox.db", sync="normal")) as box:
        yield box


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(mosquitto.plain)
    yield rec
    rec.close()


def wait_until(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def _record(stream: int, seq: int) -> ResultRecord:
    dets = Detections(np.array([[1, 2, 30, 40]]), np.array([0.9]), np.array([0]), ("person",))
    return ResultRecord(stream, seq, seq, 0, 0, "metadata", dets)


def test_pipeline_sink_to_broker_over_mutual_tls(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    registry = MetricsRegistry()
    outbox = Outbox(OutboxConfig(path=tmp_path / "o.db"), registry)
    publisher = MqttPublisher(mutual_tls(mosquitto), outbox, registry=registry, seed=1)
    publisher.start()
    try:
        with OutboxSink(outbox) as sink:
            for seq in range(120):
                sink.emit(_record(seq % 2, seq // 2))
                if seq % 10 == 9:
                    sink.flush()
        assert wait_until(lambda: outbox.depth() == 0), publisher.last_error
        assert wait_until(lambda: len(recorder.ids()) == 120)
    finally:
        publisher.stop()
        outbox.close()
    check_order(recorder.records)
    assert {r["result"]["stream_id"] for r in recorder.records} == {0, 1}  # type: ignore[index]
    snap = registry.snapshot()
    assert snap["edgeloop_broker_rtt_seconds"]["samples"][0]["count"] >= 3
    assert snap["edgeloop_broker_records_total"]["samples"][0]["value"] == 120
    assert snap["edgeloop_broker_sent_bytes_total"]["samples"][0]["value"] > 0
    assert snap["edgeloop_broker_connected"]["samples"][0]["value"] == 0  # stopped
    assert snap["edgeloop_spool_depth"]["samples"][0]["value"] == 0
    assert snap["edgeloop_spool_acked_total"]["samples"][0]["value"] == 120


def test_wrong_hostname_is_refused(mosquitto: Mosquitto, outbox: Outbox) -> None:
    registry = MetricsRegistry()
    outbox.put(Entry("0", b'{"x":1}'))
    publisher = MqttPublisher(mutual_tls(mosquitto, mosquitto.wrong_tls), outbox, registry=registry)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.last_error is not None)
    finally:
        publisher.stop()
    assert not publisher.connected
    assert "certificate" in str(publisher.last_error).lower()
    failures = registry.snapshot()["edgeloop_broker_connect_failures_total"]["samples"]
    assert {s["labels"]["reason"] for s in failures if s["value"]} == {"tls"}
    assert outbox.depth() == 1  # nothing was sent, nothing deleted


CONNECT = bytes([0x10, 0x12, 0x00, 0x04, *b"MQTT", 0x04, 0x02, 0x00, 0x0A, 0x00, 0x06, *b"cam-01"])
"""An MQTT 3.1.1 CONNECT: clean session, keep-alive 10 s, client id ``cam-01``."""
CONNACK_ACCEPTED = bytes([0x20, 0x02, 0x00, 0x00])
NO_CERTIFICATE = "peer did not return a certificate"
"""OpenSSL's reason, in mosquitto's log, for a client that sent no certificate."""


def _connect_over_tls(broker: Mosquitto, *, client_certificate: bool) -> bytes:
    """A TLS handshake with the mutual-TLS listener (trusting the test CA, checking the
    server's name ``localhost``), with or without the test CA's client certificate, then a
    CONNECT: the broker's first 4 bytes back (a CONNACK), ``b""`` where it closed first."""
    p = broker.pki
    context = ssl.create_default_context(cafile=str(p.ca))
    if client_certificate:
        context.load_cert_chain(p.client_cert, p.client_key)
    with (
        socket.create_connection(("127.0.0.1", broker.tls), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(CONNECT)
        reply = b""
        while len(reply) < len(CONNACK_ACCEPTED):
            chunk = tls.recv(len(CONNACK_ACCEPTED) - len(reply))
            if not chunk:
                break
            reply += chunk
        return reply


def test_tls_listener_needs_a_client_certificate(mosquitto: Mosquitto) -> None:
    """A real TLS client that trusts the broker's CA but has no certificate of its own gets no
    CONNACK from mosquitto's mutual-TLS listener, which says it refused for the missing
    certificate; the same client with the test CA's client certificate is accepted (the
    control: the listener speaks TLS and MQTT to a client that has one)."""
    try:
        reply = _connect_over_tls(mosquitto, client_certificate=False)
    except (ssl.SSLError, ConnectionError):
        # TLS 1.2 refuses in the handshake; in TLS 1.3 the client's side of the handshake
        # ends first, and the broker's close meets the CONNECT or the read of its answer.
        reply = b""
    assert reply == b"", f"the broker answered a client without a certificate: {reply!r}"
    assert wait_until(lambda: NO_CERTIFICATE in mosquitto.log.read_text(), timeout=10), (
        mosquitto.log.read_text()
    )
    refusals = mosquitto.log.read_text().count(NO_CERTIFICATE)
    reply = _connect_over_tls(mosquitto, client_certificate=True)
    assert reply == CONNACK_ACCEPTED, mosquitto.log.read_text()
    assert mosquitto.log.read_text().count(NO_CERTIFICATE) == refusals


def test_plain_tcp_to_the_tls_listener_never_connects(mosquitto: Mosquitto, outbox: Outbox) -> None:
    # Plain TCP to the TLS port: the broker never answers with a CONNACK the client accepts.
    config = MqttConfig(
        thing="cam-01",
        host="127.0.0.1",
        port=mosquitto.tls,
        transport="tcp",
        protocol="5",
        **{**FAST, "connect_timeout_s": 1.0},
    )
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.last_error is not None)
    finally:
        publisher.stop()
    assert not publisher.connected


def test_limits_are_refused_before_sending(mosquitto: Mosquitto, outbox: Outbox) -> None:
    watcher = Recorder(mosquitto.plain, topic="#", client_id="watch")
    publisher = MqttPublisher(plain(mosquitto), outbox)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.connected)
        cases = [
            ("edgeloop/cam-01/health", b"x" * (129 * 1024), 1, "129 KB|131072|payload"),
            ("edgeloop/a/b/c/d/e/f/g/h", b"{}", 1, "8 slashes"),
            ("$aws/things/cam-01/shadow/update", b"{}", 1, "reserved"),
            ("edgeloop/cam-01/health", b"{}", 2, "QoS 2"),
        ]
        for topic, payload, qos, message in cases:
            with pytest.raises(MqttLimitError, match=message):
                publisher.publish(topic, payload, qos)
        # A valid message on the same connection arrives: the refusals sent nothing.
        publisher.publish("edgeloop/cam-01/health", b'{"ok":true}', 1)
        assert wait_until(lambda: len(watcher.messages) >= 1)
    finally:
        publisher.stop()
        watcher.close()
    assert watcher.messages == [("edgeloop/cam-01/health", b'{"ok":true}')]
    with pytest.raises(MqttConnectionError, match="not connected"):
        publisher.publish("edgeloop/cam-01/health", b"{}", 1)
    with pytest.raises(ConfigError, match="client id"):
        plain(mosquitto, client_id="c" * 129)
    with pytest.raises(ConfigError, match="tls: ca_file, cert_file, key_file missing"):
        MqttConfig()
    with pytest.raises(ConfigError, match="thing name"):
        MqttConfig(thing="a/b", transport="tcp")


def test_batches_stay_within_limits(
    mosquitto: Mosquitto, recorder: Recorder, outbox: Outbox
) -> None:
    # Incompressible-ish payloads of 3 KB: batches are cut by bytes, never over 128 KB.
    rng = np.random.default_rng(0)
    blobs = [rng.integers(0, 2**62, size=384).tolist() for _ in range(200)]
    outbox.put_many(
        [Entry(str(i % 3), repr(b).encode().replace(b" ", b"")) for i, b in enumerate(blobs)]
    )
    config = plain(
        mosquitto, batch=BatchConfig(max_records=50, max_bytes=120 * 1024, max_delay_s=0.05)
    )
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    try:
        assert wait_until(lambda: len(recorder.ids()) == 200), publisher.last_error
    finally:
        publisher.stop()
    sizes = [len(payload) for _, payload in recorder.messages]
    assert max(sizes) <= MAX_PAYLOAD_BYTES and len(sizes) >= 4
    check_order(recorder.records)


def test_commands_are_typed_and_unknown_ones_rejected(
    mosquitto: Mosquitto, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    registry = MetricsRegistry()
    dispatcher = CommandDispatcher("cam-01", registry)
    configs: list[ConfigUpdate] = []
    models: list[ModelUpdate] = []
    dispatcher.register("config", ConfigUpdate, configs.append)
    dispatcher.register("model-update", ModelUpdate, models.append)
    publisher = MqttPublisher(plain(mosquitto), outbox, dispatcher=dispatcher, registry=registry)
    publisher.start()
    sender = Recorder(mosquitto.plain, topic="nothing/here", client_id="cloud")
    try:
        assert wait_until(lambda: publisher.connected)
        time.sleep(0.2)  # let the SUBACK arrive (no assertion on time)
        send = sender.client.publish
        send("edgeloop/cam-01/cmd/config", b'{"overrides": ["filter.score_threshold=0.6"]}', 1)
        send("edgeloop/cam-01/cmd/reboot", b"{}", 1)
        send("edgeloop/cam-01/cmd/model-update", b'{"name": "det"}', 1)
        digest = "b" * 64
        body = f'{{"name":"det","version":"7.0.0","uri":"s3://m/reg","sha256":"{digest}"}}'
        send("edgeloop/cam-01/cmd/model-update", body.encode(), 1)
        assert wait_until(lambda: len(models) == 1 and len(configs) == 1)
    finally:
        sender.close()
        publisher.stop()
    assert configs[0].overrides == ("filter.score_threshold=0.6",)
    assert models[0].version == "7.0.0"
    counts = {
        (s["labels"]["command"], s["labels"]["result"]): s["value"]
        for s in registry.snapshot()["edgeloop_mqtt_commands_total"]["samples"]
    }
    assert counts == {
        ("config", "ok"): 1,
        ("unknown", "unknown"): 1,
        ("model-update", "invalid"): 1,
        ("model-update", "ok"): 1,
    }
    assert "unknown command 'reboot'" in caplog.text


def test_mqtt_3_1_1_when_configured(
    mosquitto: Mosquitto, recorder: Recorder, outbox: Outbox
) -> None:
    stored = set(outbox.put_many([Entry("0", b'{"v":%d}' % i) for i in range(30)]).stored)
    publisher = MqttPublisher(plain(mosquitto, protocol="3.1.1"), outbox)
    publisher.start()
    try:
        assert not recorder.wait_for(stored, timeout=30), publisher.last_error
    finally:
        publisher.stop()
    check_order(recorder.records)


@pytest.mark.parametrize("answer", ["refuse", "close"])
def test_auto_falls_back_to_3_1_1_where_the_broker_lacks_mqtt_5(
    mosquitto: Mosquitto, recorder: Recorder, outbox: Outbox, answer: str
) -> None:
    """``protocol: auto`` tries MQTT 5, and where the broker refuses it (CONNACK "unacceptable
    protocol version") or closes before its CONNACK, connects again with 3.1.1 at once and
    delivers everything."""
    stored = set(outbox.put_many([Entry("0", b'{"v":%d}' % i) for i in range(30)]).stored)
    with Mqtt311Broker(mosquitto.plain, answer) as broker:
        config = MqttConfig(
            thing="cam-01", host="127.0.0.1", port=broker.port, transport="tcp", **FAST
        )
        publisher = MqttPublisher(config, outbox)
        publisher.start()
        try:
            assert not recorder.wait_for(stored, timeout=30), publisher.last_error
        finally:
            publisher.stop()
    assert broker.levels[:2] == [5, 4]
    assert set(broker.levels[1:]) == {4}  # once fallen back, it stays on 3.1.1
    check_order(recorder.records)


def test_each_level_travels_at_its_qos(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    """``frame`` results at QoS 0, the rest at QoS 1: batches never mix QoS, and the
    subscriber (at QoS 1) receives each record at its level's QoS, in order per stream."""
    levels = TransmissionLevels(
        metadata=LevelPolicy(qos=1, priority=3),
        crops=LevelPolicy(qos=1, priority=2),
        frame=LevelPolicy(qos=0, priority=1),
    )
    registry = MetricsRegistry()
    outbox = Outbox(OutboxConfig(path=tmp_path / "o.db", sync="normal"), registry)
    dets = Detections(np.array([[1, 2, 30, 40]]), np.array([0.9]), np.array([0]), ("person",))
    with OutboxSink(outbox, OutboxSinkConfig(levels=levels)) as sink:
        for seq in range(90):
            level = ("metadata", "frame", "crops")[(seq // 10) % 3]  # runs of 10 per level
            sink.emit(ResultRecord(seq % 2, seq // 2, seq, 0, 0, level, dets))
    stored = outbox.pending("mqtt", 1000)
    assert [r.priority for r in stored[:30:10]] == [3, 1, 2]
    assert [r.qos for r in stored[:30:10]] == [1, 0, 1]
    publisher = MqttPublisher(plain(mosquitto), outbox, registry=registry, seed=1)
    publisher.start()
    try:
        assert wait_until(lambda: outbox.depth() == 0), publisher.last_error
        assert wait_until(lambda: len(recorder.ids()) == 90)
    finally:
        publisher.stop()
        outbox.close()
    check_order(recorder.records)
    for record in recorder.records:
        level = record["result"]["level"]  # type: ignore[index]
        assert recorder.qos_of[str(record["id"])] == (0 if level == "frame" else 1)
    batches = registry.snapshot()["edgeloop_broker_batches_total"]["samples"]
    by_qos = {s["labels"]["qos"]: s["value"] for s in batches}
    assert by_qos["0"] >= 3 and by_qos["1"] >= 3  # three runs of each: never merged


def test_level_qos_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"levels\.frame\.qos"):
        from_mapping(OutboxSinkConfig, {"levels": {"frame": {"qos": 2, "priority": 1}}})
    with pytest.raises(ConfigError, match="priority"):
        LevelPolicy(priority=0)  # 0 is the images'
    config = from_mapping(OutboxSinkConfig, {"levels": {"frame": {"qos": 0}}})
    assert config.levels.policy("frame") == LevelPolicy(qos=0, priority=2)
    assert config.levels.policy("metadata") == LevelPolicy(qos=1, priority=3)
