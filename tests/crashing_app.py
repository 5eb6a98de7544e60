"""``python -m core`` with one injected fault, for the crash tests: the publisher's thread
(MQTT or Greengrass IPC) raises ``RuntimeError("injected fault")`` once the app has run for
``$CRASH_AFTER_S`` seconds -- an uncaught exception in a thread that is not the pipeline's,
as a bug would."""

from __future__ import annotations

import os
import sys
import time

from core.app.cli import main
from core.mqtt.batch import Batch, SpoolBatches

_peek = SpoolBatches.peek


def inject() -> None:
    """Patch the fault in (only when run as a script: pytest imports this module to look for
    doctests, and the patch must not reach its own process)."""
    crash_at = time.monotonic() + float(os.environ.get("CRASH_AFTER_S", "3"))

    def _faulty_peek(self: SpoolBatches) -> Batch | None:
        if time.monotonic() > crash_at:
            raise RuntimeError("injected fault")
        return _peek(self)

    SpoolBatches.peek = _faulty_peek  # type: ignore[method-assign]


if __name__ == "__main__":
    inject()
    sys.exit(main(sys.argv[1:]))
