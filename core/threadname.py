"""Give the calling OS thread the name of its job, so that ``top -H``, ``ps -L``, ``perf``,
``py-spy`` and ``/proc/<pid>/task/*/comm`` tell a pipeline's threads apart.

Python's ``threading.Thread(name=...)`` names the thread for Python only (before 3.14): the
kernel sees every thread of the process as ``python``. Finding which thread burns a core on a
device, or which one a stall kept off the CPU, then means guessing from thread ids. Linux keeps
a 15-byte name per thread (``prctl(PR_SET_NAME)``); longer names are cut, which is why the
pipeline's thread names are short (``infer``, ``ingest-0``, ``source-0``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

PR_SET_NAME = 15
"""``prctl`` option that names the calling thread (linux/prctl.h)."""
MAX_NAME_BYTES = 15
"""The kernel's limit, without the terminating NUL (``TASK_COMM_LEN`` - 1)."""

_libc: ctypes.CDLL | None = None


def _prctl() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        except OSError:  # pragma: no cover - no C library to load
            return None
    return _libc


def os_thread_name(name: str) -> bytes:
    """The bytes the kernel keeps for ``name``: UTF-8, cut to :data:`MAX_NAME_BYTES` on a
    character boundary.

    >>> os_thread_name("infer"), os_thread_name("compress-worker-12")
    (b'infer', b'compress-worker')
    """
    raw = name.encode("utf-8")[:MAX_NAME_BYTES]
    return raw.decode("utf-8", "ignore").encode("utf-8")


def name_this_thread(name: str) -> bool:
    """Name the calling thread ``name`` for the kernel; False where the platform has no such
    name (not Linux) or refused it. Never raises: a name is a convenience, not a requirement."""
    libc = _prctl()
    if libc is None:
        return False
    return int(libc.prctl(PR_SET_NAME, ctypes.c_char_p(os_thread_name(name)), 0, 0, 0)) == 0
