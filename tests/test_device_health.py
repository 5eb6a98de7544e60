"""The device app's health, live changes and crashes, run as a subprocess against a real
mosquitto: health records on ``edgeloop/{thing}/health`` and the ``/healthz`` / ``/readyz``
pages; the ``config`` command, SIGHUP and a ``model-update`` answered on the health topic; a
stalled source (its process stopped with SIGSTOP) turning ``/readyz`` false and, with
``exit_on_stall``, exiting 1; an uncaught exception in a thread exiting 1 and reported once
on the next start."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from paho.mqtt import publish

from tests.app_runner import LOCAL, AppProcess, file_records
from tests.mqtt_broker import Mosquitto, Recorder

HEALTH = "edgeloop/+/health"
CMD = "edgeloop/edgeloop-local/cmd/"


@pytest.fixture
def health(mosquitto: Mosquitto) -> Iterator[Recorder]:
    """A subscriber to every thing's health topic (persistent session)."""
    recorder = Recorder(mosquitto.plain, topic=HEALTH, client_id="health")
    yield recorder
    recorder.close()


def _records(recorder: Recorder) -> list[dict[str, Any]]:
    return [json.loads(payload) for topic, payload in list(recorder.messages)]


def _wait_record(
    recorder: Recorder, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in _records(recorder):
            if match(record):
                return record
        time.sleep(0.05)
    seen = [(r["state"], r.get("event")) for r in _records(recorder)]
    raise AssertionError(f"no such health record; seen: {seen}")


def _event(kind: str, **fields: object) -> Callable[[dict[str, Any]], bool]:
    def match(record: dict[str, Any]) -> bool:
        event = record.get("event") or {}
        return event.get("type") == kind and all(event.get(k) == v for k, v in fields.items())

    return match


def _command(port: int, name: str, body: dict[str, Any]) -> None:
    publish.single(CMD + name, json.dumps(body), qos=1, hostname="127.0.0.1", port=port)


def test_health_records_probes_and_live_changes(
    mosquitto: Mosquitto, health: Recorder, tmp_path: Path
) -> None:
    """Records at start, on change and every interval; the probe pages; a live key changed by
    the config command and by SIGHUP (its effect seen in the results and the frame count);
    a key that is not live, and a model update of a version the registry lacks, refused with
    the reason; ``stopped`` last."""
    config = tmp_path / "device.yaml"
    config.write_text(LOCAL.read_text())
    app = AppProcess(tmp_path, mosquitto.plain, "health.interval_s=1", config=config)
    try:
        app.wait_for_log(r"health: running")
        assert app.page("/healthz") == (200, {"state": "running", "ok": True, "problems": []})
        assert app.page("/readyz")[0] == 200
        running = _wait_record(health, lambda r: r["state"] == "running")
        assert _records(health)[0]["state"] == "starting"
        assert running["schema"] == "edgeloop.health/1" and running["thing"] == "edgeloop-local"
        assert running["live"] and running["ready"] and running["problems"] == []
        assert re.fullmatch(r"[0-9a-f]{12}", running["model"]["version"]), running["model"]
        assert running["streams"][0]["state"] == "running" and "records" in running["spool"]
        _wait_record(health, lambda r: r["uptime_s"] > running["uptime_s"] + 0.9)  # interval

        _command(
            mosquitto.plain, "config", {"overrides": ["pipeline.filter.transmission=metadata"]}
        )
        applied = _wait_record(health, _event("config", origin="command", result="applied"))
        assert applied["event"]["keys"] == ["pipeline.filter.transmission"]
        sent_at = len(file_records(tmp_path / "results"))
        _command(mosquitto.plain, "config", {"overrides": ["pipeline.model.batch_size=2"]})
        refused = _wait_record(health, _event("config", result="refused"))["event"]
        assert "pipeline.model.batch_size: not live" in refused["reason"]
        registry = f"file://{tmp_path / 'no-registry'}"
        update = {"name": "detector", "version": "2.0.0", "uri": registry, "sha256": "a" * 64}
        _command(mosquitto.plain, "model-update", update)
        answer = _wait_record(health, _event("model-update"))["event"]
        assert answer["result"] == "refused" and answer["version"] == "2.0.0"
        assert answer["step"] == "download" and "not published" in answer["reason"]

        data = yaml.safe_load(config.read_text())
        data["pipeline"]["rate"] = 5
        data["pipeline"]["filter"]["transmission"] = "metadata"  # the command's change, kept
        config.write_text(yaml.safe_dump(data))
        app.signal(signal.SIGHUP)
        hup = _wait_record(health, _event("config", origin="sighup", result="applied"))
        assert hup["event"]["keys"] == ["pipeline.rate"]
        start = hup["streams"][0]["frames"]
        time.sleep(4)
        app.signal(signal.SIGTERM)
        status = app.wait(30)
    finally:
        app.kill()
    assert status == 0, app.log()[-3000:]
    records = _records(health)
    assert records[-1]["state"] == "stopped"
    frames = max(r["streams"][0]["frames"] for r in records if r["streams"]) - start
    assert frames < 4 * 10, f"{frames} frames in 4 s after rate 15 -> 5"
    later = file_records(tmp_path / "results")[sent_at + 2 :]
    assert later and {r["level"] for r in later} == {"metadata"}


def test_a_stalled_source_turns_readyz_false_and_exit_on_stall_exits_1(
    mosquitto: Mosquitto, health: Recorder, tmp_path: Path
) -> None:
    """The source's process stopped (SIGSTOP): ``/readyz`` and ``/healthz`` 503 and a
    ``stalled`` record; continued, the app is ready again. With ``exit_on_stall`` the same
    stall stops the app with status 1 and the reason in one line."""
    common = ("pipeline.source_workers=process", "health.stall_s=2", "health.interval_s=1")
    app = AppProcess(tmp_path, mosquitto.plain, *common, log_name="first.log")
    try:
        app.wait_for_log(r"health: running")
        source = app.child("source-0")
        source.suspend()
        stalled = _wait_record(health, lambda r: r["state"] == "stalled")
        assert "stream 0" in stalled["problems"][0] and "no frame for" in stalled["problems"][0]
        code, page = app.page("/readyz")
        assert code == 503 and page["state"] == "stalled", page
        assert app.page("/healthz")[0] == 503
        source.resume()
        deadline = time.monotonic() + 10
        while app.page("/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert app.page("/readyz") == (200, {"state": "running", "ok": True, "problems": []})
        app.signal(signal.SIGTERM)
        assert app.wait(30) == 0, app.log()[-3000:]
    finally:
        app.kill()

    second = AppProcess(
        tmp_path, mosquitto.plain, *common, "health.exit_on_stall=true", log_name="second.log"
    )
    try:
        second.wait_for_log(r"health: running")
        second.child("source-0").suspend()
        status = second.wait(40)
    finally:
        second.kill()
    assert status == 1, second.log()[-3000:]
    assert re.search(r"edgeloop: error: stalled: stream 0 .*no frame for", second.log())
    assert _records(health)[-1]["state"] == "failed"


def test_a_crash_in_a_thread_exits_1_and_is_reported_once_on_the_next_start(
    mosquitto: Mosquitto, health: Recorder, tmp_path: Path
) -> None:
    """An uncaught exception in the MQTT publisher's thread: logged with its stack, the app
    stops with status 1, the crash file names it; the next start sends its summary once on
    the health topic and keeps the file as sent."""
    crashing = [sys.executable, str(Path(__file__).with_name("crashing_app.py"))]
    app = AppProcess(tmp_path, mosquitto.plain, command=crashing, log_name="crash.log")
    try:
        status = app.wait(60)
    finally:
        app.kill()
    assert status == 1, app.log()[-3000:]
    log = app.log()
    assert "crash in thread edgeloop-mqtt: RuntimeError: injected fault" in log
    assert "Traceback (most recent call last)" in log and "_faulty_peek" in log
    crash_file = tmp_path / "state" / "last-crash.json"
    assert json.loads(crash_file.read_text())["where"] == "thread edgeloop-mqtt"

    again = AppProcess(tmp_path, mosquitto.plain, duration=4, log_name="again.log")
    try:
        assert again.wait(60) == 0, again.log()[-3000:]
    finally:
        again.kill()
    crashes = [r for r in _records(health) if (r.get("event") or {}).get("type") == "crash"]
    assert len(crashes) == 1 and crashes[0]["event"]["message"] == "injected fault"
    assert not crash_file.exists() and crash_file.with_name("last-crash.sent.json").exists()
