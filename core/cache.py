"""Where edgeloop keeps what it builds once and reuses: reference models, TensorRT engines,
calibration caches.

``$EDGELOOP_CACHE`` wins, then ``$XDG_CACHE_HOME/edgeloop``, then ``~/.cache/edgeloop``. Files
are written whole or not at all (a temporary file in the same folder, then ``os.replace``), so
a process killed mid-write, or two processes building the same thing, never leave a half file
that a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

ENV_VAR = "EDGELOOP_CACHE"


def cache_root() -> Path:
    """The cache's root folder (not created)."""
    forced = os.environ.get(ENV_VAR)
    if forced:
        return Path(forced).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "edgeloop"


def cache_dir(*parts: str) -> Path:
    """``cache_root() / parts...``, created if missing."""
    folder = cache_root().joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (readers see the old file or the whole new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def digest_path(path: Path) -> Path:
    """Where the SHA-256 of a built file is recorded: beside it, ``<name>.sha256``."""
    return path.with_name(path.name + ".sha256")


def write_built(path: Path, data: bytes) -> Path:
    """Write a built file and then its SHA-256 (last: a file without it is not trusted)."""
    atomic_write_bytes(path, data)
    atomic_write_bytes(digest_path(path), hashlib.sha256(data).hexdigest().encode() + b"\n")
    return path


def intact(path: Path) -> bool:
    """Whether a built file exists and matches the SHA-256 recorded when it was written: a
    missing, truncated or altered file is built again."""
    try:
        recorded = digest_path(path).read_text(errors="replace").strip()
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return False
    return recorded == actual


def built(path: Path, make: Callable[[], bytes]) -> Path:
    """``path``, built with ``make`` and written (:func:`write_built`) unless it is
    :func:`intact`."""
    if not intact(path):
        write_built(path, make())
    return path
