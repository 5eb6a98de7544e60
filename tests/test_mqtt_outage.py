"""Nothing lost: broker outages mid-stream and ``kill -9`` of the publishing process, against a
real mosquitto. A persistent-session subscriber records everything; per stream, first arrivals
come in sequence order with no gap, and a repeat only ever carries the same message id."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.mqtt import BackoffConfig, BatchConfig, MqttConfig
from core.mqtt.publisher import MqttPublisher
from core.outbox import Entry, Outbox, OutboxConfig
from tests.mqtt_broker import Mosquitto, Recorder, check_order

ROOT = Path(__file__).resolve().parents[1]


def test_broker_outages_lose_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    recorder = Recorder(mosquitto.plain)
    box = Outbox(OutboxConfig(path=tmp_path / "o.db", sync="normal"))
    config = MqttConfig(
        thing="cam-01",
        host="127.0.0.1",
        port=mosquitto.plain,
        transport="tcp",
        batch=BatchConfig(max_records=20, max_delay_s=0.02),
        backoff=BackoffConfig(initial_s=0.05, max_s=0.4),
        poll_s=0.005,
    )
    publisher = MqttPublisher(config, box, seed=3)
    stored: list[str] = []
    stop = threading.Event()

    def produce() -> None:  # a steady stream on 3 streams, through every outage
        n = 0
        while not stop.is_set():
            entries = [Entry(f"cam{i % 3}", b'{"n":%d}' % (n + i)) for i in range(6)]
            stored.extend(box.put_many(entries).stored)
            n += 6
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    publisher.start()
    producer.start()
    try:
        for _ in range(5):
            time.sleep(0.6)
            mosquitto.stop()
            time.sleep(1.5)  # the outage: the producer keeps storing
            mosquitto.start()
        time.sleep(0.3)
        stop.set()
        producer.join()
        deadline = time.monotonic() + 60
        while box.depth() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert box.depth() == 0, f"outbox still holds {box.depth()}: {publisher.last_error}"
        missing = recorder.wait_for(set(stored))
    finally:
        stop.set()
        publisher.stop()
        recorder.close()
        box.close()
    assert not missing, f"{len(missing)} of {len(stored)} records lost"
    assert len(stored) > 300
    check_order(recorder.records)


def _run(spool: Path, port: int, quota: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.mqtt_publisher_proc", str(spool), str(port), str(quota)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _read_stored(proc: subprocess.Popen[str], stored: list[str], lines: int) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    for _ in range(lines):
        line = proc.stdout.readline()
        if line.startswith("stored"):
            stored.extend(line.split()[1:])


def test_kill_9_of_the_publisher_loses_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    recorder = Recorder(mosquitto.plain)
    spool = tmp_path / "outbox.db"
    rng = random.Random(9)
    stored: list[str] = []
    try:
        for _ in range(4):  # store and publish, killed mid-batch each time
            proc = _run(spool, mosquitto.plain, quota=10_000)
            try:
                _read_stored(proc, stored, lines=rng.randint(20, 60))
                os.kill(proc.pid, signal.SIGKILL)
                assert proc.stdout is not None
                for line in proc.stdout:  # lines printed before it died were committed
                    if line.startswith("stored") and line.endswith("\n"):
                        stored.extend(line.split()[1:])
            finally:
                proc.kill()
                proc.wait()
                assert proc.stdout is not None
                proc.stdout.close()
            assert proc.returncode == -signal.SIGKILL
        proc = _run(spool, mosquitto.plain, quota=0)  # the restart drains what is left
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip() == "depth 0":
                    break
        finally:
            proc.terminate()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
        missing = recorder.wait_for(set(stored))
    finally:
        recorder.close()
    assert not missing, f"{len(missing)} of {len(stored)} stored records never arrived"
    check_order(recorder.records)
