"""Why a process started with multiprocessing's ``spawn`` died before it answered.

``spawn`` starts a fresh interpreter that imports the parent's main script again; a script
without an ``if __name__ == "__main__":`` guard then tries to start its processes a second time,
multiprocessing refuses in the child (a long traceback on stderr), and the parent only sees a
child that never answered. A process source
(:class:`core.pipeline.source_workers.ProcessSourceWorker`)
and the ring micro-benchmark's consumers both say so in one line instead of waiting out their
timeout.
"""

from __future__ import annotations

import sys

MAIN_GUARD_HINT = (
    'if the script that started it has no `if __name__ == "__main__":` guard, multiprocessing\'s '
    "spawn cannot start a process (see the traceback above)"
)


def exit_cause(exitcode: int | None) -> str:
    """The cause of a spawned child's exit before it answered, in words (one clause)."""
    if exitcode is None:
        return "it is still running but did not answer"
    if exitcode < 0:
        return f"it was killed by signal {-exitcode}"
    main = sys.modules.get("__main__")
    if exitcode == 1 and getattr(main, "__file__", None):
        return f"it exited with code 1; {MAIN_GUARD_HINT}"
    return f"it exited with code {exitcode}"
