"""Real Prometheus and Pushgateway servers for the metrics tests (Debian packages ``prometheus``
and ``prometheus-pushgateway``, installed by ``make test``): each started on a free port in a
temporary folder, waited for until ready, and stopped (its folder removed) after the test.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port
from tests.required_tools import require

READY_TIMEOUT_S = 30.0


def get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


@dataclass
class Server:
    """A started server: its base URL, process and log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(command: Callable[[int], list[str]], folder: Path, name: str) -> Server:
    """Start ``command(port)`` on a free port (retried on another if it loses the race for
    it) and wait until ``/-/ready`` answers."""
    for _ in range(3):
        port = free_port()
        log = folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", process, log)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                get(f"{server.url}/-/ready", timeout=1)
                return server
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        server.stop()
    raise RuntimeError(f"{name} did not start; its log:\n{log.read_text()[-2000:]}")


def prometheus_config(targets: list[str], interval_s: float = 1.0) -> str:
    return json.dumps(  # JSON is YAML: no YAML writer needed
        {
            "global": {"scrape_interval": f"{interval_s:g}s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "edgeloop",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": targets, "labels": {"device": "test-device"}}],
                }
            ],
        }
    )


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[list[str]], Server]]:
    """``prometheus(["127.0.0.1:PORT"])`` starts a Prometheus scraping those targets each
    second; stopped at the end of the test."""
    exe = require("prometheus")
    started: list[Server] = []

    def launch(targets: list[str]) -> Server:
        folder = tmp_path / f"prometheus{len(started)}"
        (folder / "data").mkdir(parents=True)
        config = folder / "prometheus.yml"
        config.write_text(prometheus_config(targets))
        server = start(
            lambda port: [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            folder,
            "prometheus",
        )
        started.append(server)
        return server

    yield launch
    for server in started:
        server.stop()


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Server]:
    """A Pushgateway on a free port, keeping what it receives in memory only."""
    exe = require("prometheus-pushgateway")
    server = start(
        lambda port: [
            exe,
            f"--web.listen-address=127.0.0.1:{port}",
            "--persistence.file=",  # Debian defaults to a file in /var/lib: keep it in memory
            "--log.level=warn",
        ],
        tmp_path,
        "pushgateway",
    )
    yield server
    server.stop()


def query(server: Server, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector (raises on a PromQL error, with Prometheus's message)."""
    url = f"{server.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        body = json.loads(get(url))
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{promql}: {exc.read().decode(errors='replace')}") from None
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(server: Server, promql: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Query until the result is not empty (scrapes come each second); the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = query(server, promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)
