"""A publishing process for the crash test: stores ``quota`` records in the outbox (printing
``stored <ids>`` after each commit) while an MQTT publisher drains the spool to the broker.

    python -m tests.mqtt_publisher_proc SPOOL PORT QUOTA

tests/test_mqtt_outage.py kills it with SIGKILL mid-batch and starts it again on the same spool.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from core.mqtt import BackoffConfig, BatchConfig, MqttConfig
from core.mqtt.publisher import MqttPublisher
from core.outbox import Entry, Outbox, OutboxConfig


def main() -> None:
    spool, port, quota = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    box = Outbox(OutboxConfig(path=spool))
    config = MqttConfig(
        thing="cam-01",
        host="127.0.0.1",
        port=port,
        transport="tcp",
        batch=BatchConfig(max_records=10, max_delay_s=0.02),
        backoff=BackoffConfig(initial_s=0.05, max_s=0.5),
        poll_s=0.005,
    )
    publisher = MqttPublisher(config, box)
    publisher.start()
    print("ready", flush=True)
    stored = 0
    while stored < quota:
        result = box.put_many([Entry(f"cam{i % 3}", b'{"v":%d}' % (stored + i)) for i in range(5)])
        stored += len(result.stored)
        print("stored", " ".join(result.stored), flush=True)
        time.sleep(0.005)
    while True:  # keep draining until killed
        print("depth", box.depth(), flush=True)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
