"""The device app's logs: stderr, plain lines or one JSON object a line (``logging.format``).

>>> record = logging.LogRecord("edgeloop.app", logging.INFO, __file__, 1, "up %s", ("now",), None)
>>> sorted(json.loads(JsonLines().format(record)))
['level', 'logger', 'message', 'thread', 'time']
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from core.app.config import LoggingConfig

__all__ = ["JsonLines", "setup_logging"]

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``thread``,
    ``message``, and ``exception`` (its stack) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, timezone.utc)
        entry = {
            "time": when.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(config: LoggingConfig) -> None:
    """Route every logger to stderr at ``config.level`` in ``config.format`` (replacing the
    root logger's handlers: the app owns its process)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonLines() if config.format == "json" else logging.Formatter(PLAIN)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
