"""Model updates on the device app, run as a subprocess against a real mosquitto and a registry
folder: ``model-update`` over MQTT swaps a new version in while frames flow (answered on the
health topic with each step's time, the results labelled with the version that served them);
the version survives a restart; ``model-rollback`` swaps the old one back; ``python -m core
models status`` shows it all."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.models import reference_model_path
from deploy.models.registry import open_registry
from tests.app_runner import LOCAL, ROOT, AppProcess, file_records, local_overrides
from tests.mqtt_broker import Mosquitto, Recorder
from tests.test_device_health import _command, _event, _records, _wait_record

LARGER = reference_model_path("detector-m")


@pytest.fixture
def health(mosquitto: Mosquitto) -> Iterator[Recorder]:
    recorder = Recorder(mosquitto.plain, topic="edgeloop/+/health", client_id="health")
    yield recorder
    recorder.close()


def _status(tmp_path: Path, port: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "core",
            "models",
            "status",
            "--config",
            str(LOCAL),
            "--json",
            *local_overrides(tmp_path, port),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    status: dict[str, Any] = json.loads(out.stdout)
    return status


def test_an_update_over_mqtt_serves_survives_a_restart_and_rolls_back(
    mosquitto: Mosquitto, health: Recorder, tmp_path: Path
) -> None:
    registry = open_registry(f"file://{tmp_path / 'registry'}")
    registry.publish(LARGER, name="gate", version="1.1.0")
    sha = hashlib.sha256(LARGER.read_bytes()).hexdigest()
    ratio = "models.max_latency_ratio=8"  # detector-m costs 3-4 x detector-s
    app = AppProcess(tmp_path, mosquitto.plain, ratio, "health.interval_s=1")
    try:
        base = _wait_record(health, lambda r: r["state"] == "running")["model"]["version"]
        update = {"name": "gate", "version": "1.1.0", "uri": registry.url, "sha256": sha}
        _command(mosquitto.plain, "model-update", update)
        applied = _wait_record(health, _event("model-update"), timeout=120)["event"]
        assert applied["result"] == "applied" and applied["from"] == base, applied
        assert applied["timings"]["swap_s"] < 1.0 and applied["origin"] == "command"
        after = _wait_record(health, lambda r: r["model"].get("version") == "1.1.0")
        assert after["model"]["path"].endswith("models/gate/1.1.0/model.onnx")
        _wait_record(health, lambda r: r["uptime_s"] > after["uptime_s"] + 1.5)
        app.signal(signal.SIGTERM)
        assert app.wait(30) == 0, app.log()[-3000:]
    finally:
        app.kill()
    versions = [r["model_version"] for r in file_records(tmp_path / "results")]
    switch = versions.index("1.1.0")
    assert set(versions[:switch]) == {base} and set(versions[switch:]) == {"1.1.0"}
    status = _status(tmp_path, mosquitto.plain)
    assert status["current"] == "1.1.0" and status["previous"] == base
    assert status["history"] == ["1.1.0"] and status["last_decision"]["result"] == "applied"

    health.messages.clear()
    app = AppProcess(tmp_path, mosquitto.plain, ratio, log_name="second.log")
    try:
        running = _wait_record(health, lambda r: r["state"] == "running")
        assert running["model"]["version"] == "1.1.0"  # the update outlived the restart
        _command(mosquitto.plain, "model-rollback", {"reason": "operator"})
        back = _wait_record(health, _event("model-rollback"), timeout=60)["event"]
        assert back["result"] == "applied" and back["version"] == base, back
        assert back["from"] == "1.1.0" and back["reason"] == "operator"
        app.signal(signal.SIGTERM)
        assert app.wait(30) == 0, app.log()[-3000:]
    finally:
        app.kill()
    records = _records(health)
    assert records[-1]["model"]["version"] == base
    status = _status(tmp_path, mosquitto.plain)
    assert status["current"] is None and status["last_decision"]["action"] == "rollback"


def test_a_kill_during_an_update_leaves_a_device_that_starts_on_a_whole_model(
    mosquitto: Mosquitto, health: Recorder, tmp_path: Path
) -> None:
    """``kill -9`` 0.3 s after the command, in whichever step it lands (on this machine,
    while the candidate loads beside the serving model): no process is left running and no
    shared memory behind (the shm fixture checks), and the next start serves the version the
    state record names (the configured one, or the update whole), and says the same in
    ``models status``."""
    registry = open_registry(f"file://{tmp_path / 'registry'}")
    registry.publish(LARGER, name="gate", version="1.1.0")
    sha = hashlib.sha256(LARGER.read_bytes()).hexdigest()
    ratio = "models.max_latency_ratio=8"
    app = AppProcess(tmp_path, mosquitto.plain, ratio)
    try:
        base = _wait_record(health, lambda r: r["state"] == "running")["model"]["version"]
        update = {"name": "gate", "version": "1.1.0", "uri": registry.url, "sha256": sha}
        _command(mosquitto.plain, "model-update", update)
        time.sleep(0.3)
        children = psutil.Process(app.proc.pid).children(recursive=True)
        app.proc.send_signal(signal.SIGKILL)
        app.proc.wait(30)
        _, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, f"left running after the app was killed: {alive}"
    finally:
        app.kill()
    health.messages.clear()
    app = AppProcess(tmp_path, mosquitto.plain, ratio, log_name="second.log")
    try:
        running = _wait_record(health, lambda r: r["state"] == "running")
        app.signal(signal.SIGTERM)
        assert app.wait(30) == 0, app.log()[-3000:]
    finally:
        app.kill()
    status = _status(tmp_path, mosquitto.plain)
    serving = running["model"]["version"]
    assert serving == (status["current"] or base)
    if serving == "1.1.0":
        held = tmp_path / "state" / "models" / "gate" / "1.1.0" / "model.onnx"
        assert held.read_bytes() == LARGER.read_bytes()
