"""A process that stores records in an outbox as fast as it can and prints what it stored:
``stored <msg_id>`` after each committed batch. tests/test_outbox_crash.py kills it with SIGKILL
at random moments and checks that every printed id survived.

    python -m tests.outbox_writer SPOOL SYNC
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.outbox import Entry, Outbox, OutboxConfig


def main() -> None:
    path, sync = Path(sys.argv[1]), sys.argv[2]
    box = Outbox(OutboxConfig(path=path, sync=sync))  # type: ignore[arg-type]
    print("ready", flush=True)
    n = 0
    while True:
        entries = [Entry(f"cam{i % 3}", b"r" * (100 + n % 400)) for i in range(20)]
        result = box.put_many(entries)
        n += 1
        print("stored", " ".join(result.stored), flush=True)


if __name__ == "__main__":
    main()
