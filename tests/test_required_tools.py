"""tests/required_tools.py: a program the tests need fails the test where it is missing, and
every such program names a package the Makefile installs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import required_tools
from tests.required_tools import PACKAGES, require

MAKEFILE = Path(__file__).resolve().parent.parent / "Makefile"


def _deb_packages() -> set[str]:
    found = re.search(r"^DEB_PACKAGES\s*:=\s*(.+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert found, "Makefile: no DEB_PACKAGES line"
    return set(found.group(1).split())


def test_every_required_program_comes_from_a_package_the_makefile_installs() -> None:
    assert set(PACKAGES.values()) <= _deb_packages()


@pytest.mark.parametrize("program", sorted(PACKAGES))
def test_every_required_program_is_installed(program: str) -> None:
    assert Path(require(program)).is_file()


def test_a_missing_program_fails_the_test_naming_its_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(required_tools, "SBIN", ())
    with pytest.raises(pytest.fail.Exception) as failed:
        require("promtool")
    message = str(failed.value)
    assert "promtool is not installed" in message and "Debian package prometheus" in message
    assert "`make test` installs" in message
    with pytest.raises(KeyError):
        require("not-a-program-the-set-up-installs")
