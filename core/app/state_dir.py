"""The device's state directory: the spool, the crash file and, later, the model versions.

Mode 0700: what it holds (results not sent yet, stack traces) is the device's alone. The app
refuses to start, naming the path, where it cannot write there.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import ConfigError

__all__ = ["check_state_dir", "prepare_state_dir"]

MODE = 0o700


def check_state_dir(path: Path) -> None:
    """Whether ``path`` is, or could be created as, a folder this process writes in;
    :class:`ConfigError` naming it otherwise. Creates nothing (for ``check``)."""
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"state_dir: {path} is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"state_dir: {path} is not writable by this user")
        return
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"state_dir: {path} cannot be created ({parent} is not writable)")


def prepare_state_dir(path: Path) -> Path:
    """``path`` created where missing, mode 0700, proven writable by writing a file there;
    :class:`ConfigError` naming the path and the cause otherwise."""
    check_state_dir(path)
    try:
        path.mkdir(mode=MODE, parents=True, exist_ok=True)
        os.chmod(path, MODE)
        probe = path / ".write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"state_dir: {path}: {exc.strerror or exc}") from None
    return path
