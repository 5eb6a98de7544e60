"""The device application (``python -m core``, the ``edgeloop`` console script): its one config,
``check``, and ``run`` as a subprocess against a real mosquitto -- every acknowledged record
received exactly once and an empty spool after SIGTERM, a broker that comes up late, and bad
configs refused with status 2 and one line naming the key or the path, and ``kill -9`` then a
restart losing nothing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import psutil
import pytest
import yaml

from core.app.cli import main
from core.app.config import load_device_config
from core.errors import ConfigError
from tests.app_runner import LOCAL, ROOT, AppProcess, file_records, spool_status
from tests.mqtt_broker import Mosquitto, MotoServer, Recorder, check_order
from tests.test_cloud_sync import BUCKET, TABLE, _items, create_store

AWS = ROOT / "examples" / "device-aws.yaml"
SHUTDOWN_TIMEOUT_S = 10.0


# -- the config ---------------------------------------------------------------------------------


def test_the_examples_load(tmp_path: Path) -> None:
    local = load_device_config(LOCAL)
    assert local.thing == local.mqtt.thing == "edgeloop-local"  # type: ignore[union-attr]
    assert local.outbox.path == Path("edgeloop-state/outbox.db") and local.channels == ("mqtt",)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder\n")
    files = [
        f"mqtt.tls.ca_file={tmp_path / 'ca.pem'}",
        f"mqtt.tls.cert_file={tmp_path / 'cert.pem'}",
        f"mqtt.tls.key_file={tmp_path / 'key.pem'}",
    ]
    aws = load_device_config(AWS, files)
    assert aws.channels == ("mqtt", "s3") and aws.cloud.thing == "gate-cam-01"  # type: ignore[union-attr]
    assert aws.mqtt.transport == "tls" and aws.logging.format == "json"  # type: ignore[union-attr]


def test_check_prints_the_resolved_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["check", "--config", str(LOCAL), "--set", f"state_dir={tmp_path / 's'}"]
    assert main([*argv, "--set", "pipeline.filter.score_threshold=0.7"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["pipeline"]["filter"]["score_threshold"] == 0.7
    assert shown["outbox"]["path"] == str(tmp_path / "s" / "outbox.db")
    assert shown["metrics"]["data_path"] == str(tmp_path / "s")
    assert shown["channels"] == ["mqtt"] and shown["mqtt"]["thing"] == "edgeloop-local"
    assert not (tmp_path / "s").exists()  # check creates nothing
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["thing"] == "edgeloop-local"


def test_the_console_script_is_installed(tmp_path: Path) -> None:
    script = shutil.which("edgeloop", path=str(Path(sys.executable).parent))
    assert script is not None, "pip install -e . installs the edgeloop console script"
    out = subprocess.run(
        [script, "check", "--config", str(LOCAL), "--set", f"state_dir={tmp_path}", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state_dir"] == str(tmp_path)


def _bad(case: str, tmp_path: Path) -> tuple[list[str], str]:
    """Overrides that break the config one way, and the words the one line must hold."""
    if case == "unknown-key":
        return ["pipeline.filter.score_treshold=0.5"], "pipeline.filter.score_treshold: unknown key"
    if case == "wrong-type":
        return ["shutdown_timeout_s=soon"], "shutdown_timeout_s: must be a number, got 'soon'"
    if case == "missing-certificate":
        missing = tmp_path / "nowhere" / "thing.crt"
        sets = [
            "mqtt.transport=tls",
            f"mqtt.tls.ca_file={LOCAL}",
            f"mqtt.tls.cert_file={missing}",
            f"mqtt.tls.key_file={LOCAL}",
        ]
        return sets, f"mqtt.tls.cert_file: {missing} is not a file"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    return [f"state_dir={blocker / 'state'}"], f"state_dir: {blocker / 'state'} cannot be created"


@pytest.mark.parametrize("case", ["unknown-key", "wrong-type", "missing-certificate", "state-dir"])
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_bad_config_is_status_2_and_one_line(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets, words = _bad(case, tmp_path)
    argv = [command, "--config", str(LOCAL)]
    if case != "state-dir":
        argv += ["--set", f"state_dir={tmp_path / 'state'}"]
    argv += [item for value in sets for item in ("--set", value)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, lines
    assert lines[0].startswith("edgeloop: error: ConfigError: ") and words in lines[0], lines[0]


def test_thing_is_declared_once() -> None:
    with pytest.raises(ConfigError, match=r"mqtt.thing: declare the thing once, at the root"):
        load_device_config(LOCAL, ["mqtt.thing=other"])
    with pytest.raises(ConfigError, match="mqtt, cloud: no destination"):
        load_device_config(overrides=["state_dir=/tmp/x"])


# -- the app, running ---------------------------------------------------------------------------


def test_every_acknowledged_record_arrives_once_and_sigterm_stops_cleanly(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """20 s on the synthetic camera: what the spool stored reaches a subscriber exactly once,
    the metrics endpoint answers while it runs, and SIGTERM exits 0 in time with the spool
    empty (the file sink beside the outbox saw the same records)."""
    recorder = Recorder(mosquitto.plain)
    app = AppProcess(tmp_path, mosquitto.plain)
    try:
        url = app.base_url() + "/metrics"
        app.wait_for_log(r"running: thing edgeloop-local")
        time.sleep(20)
        with urllib.request.urlopen(url, timeout=10) as response:
            exposed = response.read()
        assert b"edgeloop_broker_connected" in exposed and b"edgeloop_spool_depth" in exposed
        app.signal(signal.SIGTERM)
        signalled = time.monotonic()
        status = app.wait(SHUTDOWN_TIMEOUT_S + 20)
        took = time.monotonic() - signalled
    finally:
        app.kill()
    assert status == 0, app.log()[-3000:]
    assert took < SHUTDOWN_TIMEOUT_S + 5, took  # the app's deadline, plus its process exit
    summary = json.loads(app.out)
    assert summary["frames"] > 100 and summary["spool_left"] == 0
    assert spool_status(tmp_path / "state" / "outbox.db")["records"] == 0
    written = file_records(tmp_path / "results")
    assert written, "the filter sent nothing in 20 s"
    deadline = time.monotonic() + 10
    while len(recorder.records) < len(written) and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.close()
    ids = [str(r["id"]) for r in recorder.records]
    assert len(ids) == len(set(ids)) == len(written)  # each stored record once, none lost
    sent = sorted((str(r["stream"]), int(str(r["seq"]))) for r in recorder.records)
    assert sent == [("0", i) for i in range(len(written))]  # the spool's gap-free sequence


def test_a_broker_that_comes_up_late_gets_the_spool(tmp_path: Path) -> None:
    """The broker is down when the app starts and up 10 s later: the app runs, spools, and
    drains to it; a subscriber with a persistent session sees every record."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    Recorder(broker.plain).close()  # its persistent session keeps what comes while it is away
    broker.stop()
    app = AppProcess(tmp_path, broker.plain, "mqtt.backoff.max_s=1", duration=25)
    try:
        app.wait_for_log(r"running: thing edgeloop-local")
        time.sleep(10)
        spooled = spool_status(tmp_path / "state" / "outbox.db")["records"]
        broker.start()
        recorder = Recorder(broker.plain)
        status = app.wait(60)
    finally:
        app.kill()
        broker.stop()
    assert status == 0, app.log()[-3000:]
    assert isinstance(spooled, int) and spooled > 0  # results waited in the spool
    assert json.loads(app.out)["spool_left"] == 0
    written = file_records(tmp_path / "results")
    deadline = time.monotonic() + 10
    while len(recorder.ids()) < len(written) and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.close()
    assert len(recorder.ids()) == len(written)


def test_kill_9_loses_nothing_acknowledged_and_a_repeat_keeps_its_id(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """``kill -9`` mid-run, then a restart on the same state dir: every record the spool
    stored reaches the subscriber (the spool ends empty, and first arrivals are gap-free per
    stream across both runs: the sequence goes on after a restart), a record sent twice
    carries the same message id, and the dead app's children did not outlive it."""
    recorder = Recorder(mosquitto.plain)
    first = AppProcess(tmp_path, mosquitto.plain, log_name="first.log")
    try:
        first.wait_for_log(r"health: running")
        children = psutil.Process(first.proc.pid).children(recursive=True)
        time.sleep(6)
        first.proc.kill()  # SIGKILL: no handler runs, nothing is flushed
        first.proc.wait()
    finally:
        first.kill()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"children outlived the app: {[c.name() for c in alive]}"
    before = len(recorder.ids())
    second = AppProcess(tmp_path, mosquitto.plain, duration=8, log_name="second.log")
    try:
        status = second.wait(60)
    finally:
        second.kill()
    assert status == 0, second.log()[-3000:]
    assert json.loads(second.out)["spool_left"] == 0
    assert spool_status(tmp_path / "state" / "outbox.db")["records"] == 0
    written = file_records(tmp_path / "results")  # what both runs stored, less a torn tail
    deadline = time.monotonic() + 10
    while len(recorder.ids()) < len(written) and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.close()
    assert before > 0 and len(recorder.ids()) >= len(written)
    check_order(recorder.records)  # the second run's seq goes on: a lost record is a gap


def test_results_reach_s3_and_dynamodb_beside_mqtt(
    mosquitto: Mosquitto, moto_server: MotoServer, tmp_path: Path
) -> None:
    """The ``cloud`` section beside ``mqtt``, against moto's server: after the run every result
    the file sink saw is one DynamoDB event item and a results object in S3 (crops under
    ``images/``), and the spool is empty on both channels."""
    create_store(moto_server.url)
    cloud = [
        f"cloud.bucket={BUCKET}",
        f"cloud.table={TABLE}",
        f"cloud.endpoint_url={moto_server.url}",
        "cloud.poll_s=0.05",
    ]
    app = AppProcess(tmp_path, mosquitto.plain, *cloud, duration=8)
    try:
        status = app.wait(90)
    finally:
        app.kill()
    assert status == 0, app.log()[-3000:]
    assert json.loads(app.out)["spool_left"] == 0
    written = file_records(tmp_path / "results")
    events = [i for i in _items(moto_server.url) if i["sk"]["S"].startswith("event#")]  # type: ignore[index]
    assert written and len(events) == len(written)
    s3 = boto3.client("s3", endpoint_url=moto_server.url)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith("results/edgeloop-local/") for k in keys)
    assert any(k.startswith("images/edgeloop-local/") for k in keys)
