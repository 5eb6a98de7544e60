"""``python -m core.outbox``: the outbox from the command line.

``status --spool PATH [--json]``   what the spool holds: records and bytes waiting, the age of
                                   the oldest, records per channel, each stream's next
                                   sequence number, records dropped by reason (JSON:
                                   :mod:`core.outbox.status`)

Safe beside the running process that owns the spool (read-only, no lock taken).
Exit 0 on success; 1 with a one-line cause on failure (no spool, corrupt spool); 2 for a
command line that cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import EdgeloopError
from core.outbox.config import OutboxConfig
from core.outbox.status import spool_status


def render(status: dict[str, Any]) -> str:
    """The status as aligned ``name  value`` lines for a person."""
    age = status["oldest_age_s"]
    lines = [
        f"spool         {status['spool']}",
        f"records       {status['records']}",
        f"bytes         {status['bytes']}",
        f"oldest        {'-' if age is None else f'{age:.1f} s ago'}",
        "channels      " + (", ".join(f"{k} {v}" for k, v in status["channels"].items()) or "-"),
        "dropped       " + ", ".join(f"{k} {v}" for k, v in status["dropped"].items()),
        "next seq      " + (", ".join(f"{k} {v}" for k, v in status["streams"].items()) or "-"),
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.outbox", description="Inspect an edgeloop outbox spool."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status",
        help="what the spool holds (read-only; safe beside the process that owns it)",
        description="Records and bytes waiting, oldest age, per-channel depth, each stream's "
        "next sequence, drops by reason.",
    )
    status.add_argument(
        "--spool",
        type=Path,
        default=OutboxConfig().path,
        help="the spool's database file (outbox.path; default %(default)s)",
    )
    status.add_argument("--json", action="store_true", help="print the JSON status")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        status = spool_status(args.spool)
    except EdgeloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
