"""Crashes: what the app keeps of one in its state dir, and the summary sent once after it.

An uncaught exception in any thread is logged with its stack, counted
(``edgeloop_crashes_total{where}``) and written to ``last-crash.json``; the app then stops and
exits 1 (never a half-running pipeline). A fatal signal (a segfault in native code) leaves
its stacks in ``faulthandler.log`` instead. On the next start :meth:`CrashLog.pending` finds
either, and the app sends its summary once on the health topic: once the broker acknowledged
it, the file is renamed ``last-crash.sent.json`` (kept for a person to read).

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> crashes = CrashLog(folder)
>>> try:
...     raise RuntimeError("boom")
... except RuntimeError as exc:
...     summary = crashes.record("thread edgeloop-mqtt", exc)
>>> CrashLog(folder).pending()["message"]
'boom'
>>> CrashLog(folder).sent(); CrashLog(folder).pending() is None
True
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

from core.cache import atomic_write_bytes
from core.metrics.registry import MetricsRegistry

__all__ = ["CRASH_FILE", "FAULT_FILE", "CrashLog"]

log = logging.getLogger("edgeloop.app")

CRASH_FILE = "last-crash.json"
FAULT_FILE = "faulthandler.log"
"""Where ``faulthandler`` writes the stacks of a fatal signal."""
STACK_LINES = 40
"""Lines of the stack a summary keeps (the innermost)."""


class CrashLog:
    """The crash files of one state dir, and the crash counter."""

    def __init__(self, state_dir: Path, registry: MetricsRegistry | None = None) -> None:
        self.path = state_dir / CRASH_FILE
        self.fault_path = state_dir / FAULT_FILE
        registry = registry if registry is not None else MetricsRegistry()
        self._counter = registry.counter(
            "edgeloop_crashes_total", "Uncaught exceptions, by where they happened", ("where",)
        )

    def record(self, where: str, exc: BaseException) -> dict[str, Any]:
        """Count ``exc``, log it with its stack and write its summary (atomically); returns
        the summary."""
        self._counter.labels(where=where).inc()
        log.critical("crash in %s: %s: %s", where, type(exc).__name__, exc, exc_info=exc)
        stack = traceback.format_exception(type(exc), exc, exc.__traceback__)
        lines = "".join(stack).splitlines()[-STACK_LINES:]
        summary = {
            "type": "crash",
            "where": where,
            "error": type(exc).__name__,
            "message": str(exc),
            "time": time.time(),
            "pid": os.getpid(),
            "stack": lines,
        }
        self._write(summary)
        return summary

    def _write(self, summary: dict[str, Any]) -> None:
        try:
            atomic_write_bytes(self.path, json.dumps(summary, indent=1).encode())
        except OSError as exc:
            log.error("cannot write the crash summary to %s: %s", self.path, exc)

    def pending(self) -> dict[str, Any] | None:
        """The summary of a crash not reported yet: ``last-crash.json``, or what a fatal
        signal left in ``faulthandler.log`` (turned into a summary here, the log moved to
        ``faulthandler.log.1``); None when there is none."""
        self._adopt_fault()
        try:
            summary: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return {"type": "crash", "where": "unknown", "error": "unreadable", "message": str(exc)}
        return summary

    def _adopt_fault(self) -> None:
        try:
            text = self.fault_path.read_text(errors="replace")
        except OSError:
            return
        if not text.strip():
            return
        lines = text.strip().splitlines()
        self._write(
            {
                "type": "crash",
                "where": "fatal signal",
                "error": "FatalError",
                "message": lines[0],
                "time": self.fault_path.stat().st_mtime,
                "stack": lines[:STACK_LINES],
            }
        )
        os.replace(self.fault_path, self.fault_path.with_name(FAULT_FILE + ".1"))

    def sent(self) -> None:
        """The pending summary went out: keep it as ``last-crash.sent.json``."""
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path.with_name("last-crash.sent.json"))
