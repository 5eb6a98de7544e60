"""The device app under Greengrass, against a fake nucleus (tests/fake_nucleus.py: the IPC
socket's eventstream-RPC server side, spoken to by the unmodified ``awsiotsdk`` client -- no
nucleus can run on these machines): ``UpdateState`` RUNNING after start and ERRORED after a
fatal error, result batches and health records through ``PublishToIoTCore`` (no broker, no
certificate), a configuration update changing a live key through the same path as SIGHUP, and
a ``config`` command arriving through ``SubscribeToIoTCore``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.app.config import load_device_config
from core.errors import ConfigError
from core.greengrass.publisher import IpcPublisher
from core.mqtt import decode_batch
from core.mqtt.config import BackoffConfig, BatchConfig, MqttConfig
from core.outbox import Entry, Outbox, OutboxConfig
from tests.app_runner import LOCAL, AppProcess
from tests.fake_nucleus import FakeNucleus
from tests.mqtt_broker import check_order

IPC = ("mqtt.transport=greengrass-ipc", "health.interval_s=1")
RESULTS = "edgeloop/edgeloop-local/results"
HEALTH = "edgeloop/edgeloop-local/health"
CMD = "edgeloop/edgeloop-local/cmd/"


@pytest.fixture
def nucleus(tmp_path: Path) -> Iterator[FakeNucleus]:
    with FakeNucleus(tmp_path / "ipc.socket") as running:
        yield running


def _results(nucleus: FakeNucleus) -> list[dict[str, Any]]:
    return [
        record
        for topic, _, payload in list(nucleus.published)
        if topic == RESULTS
        for record in decode_batch(payload)["records"]
    ]


def _health(nucleus: FakeNucleus) -> list[dict[str, Any]]:
    return [json.loads(p) for topic, _, p in list(nucleus.published) if topic == HEALTH]


def test_under_greengrass_state_results_and_a_configuration_update(
    nucleus: FakeNucleus, tmp_path: Path
) -> None:
    device = yaml.safe_load(LOCAL.read_text())
    nucleus.configuration = {"device": device}
    app = AppProcess(tmp_path, 1883, *IPC, env=nucleus.environment())
    try:
        assert nucleus.wait_for(lambda n: "RUNNING" in n.states), app.log()[-3000:]
        assert nucleus.wait_for(lambda n: len(_results(n)) >= 3), app.log()[-3000:]
        assert {qos for topic, qos, _ in nucleus.published if topic == RESULTS} == {1}
        assert any(h["state"] == "running" for h in _health(nucleus))

        device["pipeline"]["filter"]["transmission"] = "metadata"
        nucleus.update_configuration({"device": device}, ["device", "pipeline", "filter"])

        def applied(n: FakeNucleus) -> bool:
            return any(
                (h.get("event") or {}).get("origin") == "greengrass"
                and h["event"]["result"] == "applied"
                for h in _health(n)
            )

        assert nucleus.wait_for(applied), [h.get("event") for h in _health(nucleus)]
        change = next(h["event"] for h in _health(nucleus) if h.get("event"))
        assert change["keys"] == ["pipeline.filter.transmission"]
        seen = len(_results(nucleus))
        assert nucleus.wait_for(lambda n: len(_results(n)) >= seen + 4)

        command = {"overrides": ["pipeline.filter.score_threshold=0.6"]}
        assert nucleus.deliver(CMD + "config", json.dumps(command).encode()) == 1

        def by_command(n: FakeNucleus) -> bool:
            return any((h.get("event") or {}).get("origin") == "command" for h in _health(n))

        assert nucleus.wait_for(by_command)
        answer = next(
            h["event"]
            for h in _health(nucleus)
            if (h.get("event") or {}).get("origin") == "command"
        )
        assert answer["result"] == "applied", answer
        assert answer["keys"] == ["pipeline.filter.score_threshold"]
        app.signal_term()
        status = app.wait(30)
    finally:
        app.kill()
    assert status == 0, app.log()[-3000:]
    later = _results(nucleus)[seen + 2 :]
    assert later and {r["result"]["level"] for r in later} == {"metadata"}
    assert nucleus.states == ["RUNNING"]
    assert "SubscribeToConfigurationUpdate" in nucleus.operations


def test_a_fatal_error_under_greengrass_reports_errored(
    nucleus: FakeNucleus, tmp_path: Path
) -> None:
    crashing = [sys.executable, str(Path(__file__).with_name("crashing_app.py"))]
    app = AppProcess(tmp_path, 1883, *IPC, command=crashing, env=nucleus.environment())
    try:
        status = app.wait(60)
    finally:
        app.kill()
    assert status == 1, app.log()[-3000:]
    assert "crash in thread edgeloop-ipc: RuntimeError: injected fault" in app.log()
    assert nucleus.states[0] == "RUNNING" and nucleus.states[-1] == "ERRORED", nucleus.states


def test_greengrass_ipc_outside_a_nucleus_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SVCUID", raising=False)
    with pytest.raises(ConfigError, match=r"mqtt\.transport: greengrass-ipc publishes through"):
        load_device_config(LOCAL, ["mqtt.transport=greengrass-ipc"])


def test_the_ipc_publisher_sends_again_what_the_nucleus_refused(
    nucleus: FakeNucleus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests refused by the nucleus (``ServiceError``) leave their records in the spool;
    after the back-off they go again, in order, with their message ids, and the spool
    empties: none is lost, a repeat keeps its id."""
    for name, value in nucleus.environment().items():
        monkeypatch.setenv(name, value)
    config = MqttConfig(
        thing="cam",
        transport="greengrass-ipc",
        batch=BatchConfig(max_records=5, max_delay_s=0.01),
        backoff=BackoffConfig(initial_s=0.05, max_s=0.2),
        max_inflight=1,
    )
    nucleus.refusals = 3
    with Outbox(OutboxConfig(path=tmp_path / "spool.db", sync="normal")) as outbox:
        outbox.put_many([Entry("0", json.dumps({"n": i}).encode()) for i in range(23)])
        publisher = IpcPublisher(config, outbox)
        publisher.start()
        try:
            assert nucleus.wait_for(lambda n: outbox.depth() == 0, timeout=30)
        finally:
            publisher.stop()
    records = [
        record
        for topic, _, payload in nucleus.published
        if topic == "edgeloop/cam/results"
        for record in decode_batch(payload)["records"]
    ]
    check_order(records)
    assert {r["seq"] for r in records} == set(range(23))
    assert nucleus.refusals == 0 and publisher.last_error is not None
    assert "ServiceError" in publisher.last_error
