"""The programs and Python modules the tests use for real, which the set-up installs (the
Makefile's ``BASE_DEBS`` and ``TEST_DEBS``, the extras in its ``EXTRAS``): a test that needs one
fails where it is missing, never skips, since a skipped check of the broker, the exporter or a
decoder reads as a passed one in a CI summary. Tests skip only for missing hardware (GPU,
Jetson) or an OS fact.

:func:`require` gives a program's path, or fails the calling test in one line that names the
Debian package ``make test`` installs; :func:`require_module` does the same for a Python
module and the extra (``pyproject.toml``'s ``[project.optional-dependencies]``) that installs it.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

import pytest

PACKAGES = {
    "mosquitto": "mosquitto",
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "tjbench": "libjpeg-turbo-progs",
}
"""Program -> the Debian package that provides it (in the Makefile's BASE_DEBS or TEST_DEBS)."""

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


MODULES = {
    "av": "video",
    "cv2": "video",  # opencv-python-headless: the bench extra installs it too
    "PIL": "bench",
    "mlperf_loadgen": "bench",
    "simplejpeg": "bench",
    "turbojpeg": "bench",
    "zmq": "bench",
    "numba": "numba",
    "paho": "cloud",
    "boto3": "cloud",
    "moto": "dev",
    "aio_rtsp_toolkit": "dev",
}
"""Top-level module -> the extra that installs it (each one in the Makefile's ``EXTRAS``)."""


def require_module(name: str) -> ModuleType:
    """The module ``name`` (dotted names too: ``"PIL.Image"``); fails the calling test (no
    traceback) where it does not import.

    Raises ``KeyError`` for a module whose top level is not in :data:`MODULES`: every module
    a test requires names the extra that installs it.
    """
    extra = MODULES[name.partition(".")[0]]
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        pytest.fail(
            f"{name} is not importable ({cause}): `make test` installs it with the {extra} "
            f"extra (or run: pip install -e '.[{extra}]')",
            pytrace=False,
        )
