"""Named POSIX shared-memory segments under /dev/shm, mapped with ``mmap``.

Our own few lines instead of ``multiprocessing.shared_memory``: its resource tracker unlinks
segments that *attaching* processes merely opened (Python < 3.13), which would tear a ring away
from under a live producer. Segments are named ``edgeloop.<name>``.
"""

from __future__ import annotations

import mmap
import os
import re

from core.errors import RingExistsError, RingNotFoundError

SHM_DIR = "/dev/shm"
PREFIX = "edgeloop."
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def segment_path(name: str) -> str:
    """The /dev/shm path of ring ``name`` (validated: letters, digits, ``_.-``)."""
    if not _NAME.match(name):
        raise ValueError(f"ring name {name!r} must be 1-200 characters of letters, digits, '_.-'")
    return os.path.join(SHM_DIR, PREFIX + name)


def create_segment(name: str, size: int) -> mmap.mmap:
    """Create and map a new zero-filled segment; refuses to replace an existing one."""
    path = segment_path(name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise RingExistsError(
            f"a ring named {name!r} already exists ({path}); attach to it, or unlink it if its "
            "producer is gone"
        ) from None
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size, flags=_MAP_FLAGS)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


def open_segment(name: str) -> mmap.mmap:
    """Map an existing segment."""
    path = segment_path(name)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        raise RingNotFoundError(
            f"no ring named {name!r} ({path} does not exist); start its producer first"
        ) from None
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise RingNotFoundError(f"ring {name!r} is still being created ({path} is empty)")
        return mmap.mmap(fd, size, flags=_MAP_FLAGS)
    finally:
        os.close(fd)


def unlink_segment(name: str) -> bool:
    """Remove the segment's name (mappings stay valid until closed); False if already gone."""
    try:
        os.unlink(segment_path(name))
    except FileNotFoundError:
        return False
    return True


def segment_names() -> list[str]:
    """Names (without :data:`PREFIX`) of every edgeloop segment in /dev/shm."""
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return [e[len(PREFIX) :] for e in entries if e.startswith(PREFIX)]
