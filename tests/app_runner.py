"""The device app (``python -m core run``) as a subprocess of a test, pointed at the test's
broker and folders: its log in a file (so a chatty app never blocks on a full pipe), its
metrics and probe pages, its children."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "examples" / "device-local.yaml"


def local_overrides(tmp_path: Path, port: int, *extra: str) -> list[str]:
    """``--set`` arguments that point the local example at this test's broker and folders."""
    sets = [
        f"mqtt.port={port}",
        f"state_dir={tmp_path / 'state'}",
        f"pipeline.sink.path={tmp_path / 'results'}",
        "metrics.port=0",
        *extra,
    ]
    return [item for value in sets for item in ("--set", value)]


class AppProcess:
    """One ``python -m core run`` (``command`` prefixes it: a wrapper script, say)."""

    def __init__(
        self,
        tmp_path: Path,
        port: int,
        *extra: str,
        duration: float | None = None,
        config: Path = LOCAL,
        command: list[str] | None = None,
        log_name: str = "app.log",
        env: dict[str, str] | None = None,
    ) -> None:
        argv = command or [sys.executable, "-m", "core"]
        argv += ["run", "--config", str(config), "--json", *local_overrides(tmp_path, port, *extra)]
        if duration is not None:
            argv += ["--duration", str(duration)]
        self.log_path = tmp_path / log_name
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.out = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first log match of ``pattern``; fails if none comes in ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"no log line matching {pattern!r} (exit {self.proc.poll()}):\n{self.log()[-3000:]}"
        )

    def base_url(self) -> str:
        return self.wait_for_log(r"metrics at (http://\S+)/metrics").group(1)

    def page(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET ``path`` on the metrics server: status and JSON body."""
        try:
            with urllib.request.urlopen(self.base_url() + path, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def child(self, name: str) -> psutil.Process:
        """The child process whose name (comm) is ``name`` (e.g. ``source-0``)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                if child.name() == name:
                    return child
            time.sleep(0.1)
        raise AssertionError(f"no child process named {name}")

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def signal_term(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Wait for the exit; returns the status (stdout kept in :attr:`out`)."""
        self.out, _ = self.proc.communicate(timeout=timeout)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def file_records(folder: Path) -> list[dict[str, object]]:
    """The file sink's records (a line torn by ``kill -9`` is not one)."""
    records = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.open():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def spool_status(spool: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "core.outbox", "status", "--spool", str(spool), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    status: dict[str, object] = json.loads(out.stdout)
    return status
