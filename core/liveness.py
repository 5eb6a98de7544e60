"""Is a peer process still alive? pid plus kernel start time, so a recycled pid is not mistaken
for the process that registered (what FrameRing and later health checks rely on)."""

from __future__ import annotations

import os


def process_start_time(pid: int) -> int:
    """The start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22);
    0 when the process does not exist or /proc is unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0


def is_alive(pid: int, start_time: int = 0) -> bool:
    """True when ``pid`` runs and, if ``start_time`` is given, is the same process as then.

    >>> is_alive(os.getpid(), process_start_time(os.getpid()))
    True
    >>> is_alive(os.getpid(), 1)
    False
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start_time:
        current = process_start_time(pid)
        return current in (0, start_time)
    return True
