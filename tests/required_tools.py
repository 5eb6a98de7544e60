"""The programs the tests run for real, which the set-up installs (the Makefile's
``DEB_PACKAGES``): a test that needs one fails where it is missing, never skips, since a
skipped check of the broker or the exporter reads as a passed one in a CI summary.

:func:`require` gives a program's path, or fails the calling test in one line that names the
Debian package ``make test`` installs.
"""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = {
    "mosquitto": "mosquitto",
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "tjbench": "libjpeg-turbo-progs",
}
"""Program -> the Debian package that provides it (each one of the Makefile's DEB_PACKAGES)."""

SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
"""Searched after ``PATH``: Debian puts mosquitto in /usr/sbin, which a user's PATH may lack."""


def find(program: str) -> str | None:
    """``program``'s path on ``PATH`` or in the sbin folders, or None."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN])
    return shutil.which(program, path=search)


def require(program: str) -> str:
    """``program``'s path; fails the calling test (no traceback) where it is not installed.

    Raises ``KeyError`` for a program not in :data:`PACKAGES`: every program a test requires
    names the package that provides it.
    """
    package = PACKAGES[program]
    path = find(program)
    if path is None:
        pytest.fail(
            f"{program} is not installed: `make test` installs the Debian package {package} "
            f"(or run: sudo apt-get install -y {package})",
            pytrace=False,
        )
    return path
