"""tests/required_tools.py: a program or Python module the tests need fails the test where it
is missing, and every such program names a package the Makefile installs, every such module
an extra the Makefile installs that lists the module's distribution."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from tests import required_tools
from tests.required_tools import MODULES, PACKAGES, require, require_module

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = ROOT / "Makefile"
PYPROJECT = ROOT / "pyproject.toml"


def _deb_packages() -> set[str]:
    """The Makefile's BASE_DEBS and TEST_DEBS (``make test`` installs both)."""
    text = MAKEFILE.read_text()
    packages: set[str] = set()
    for name in ("BASE_DEBS", "TEST_DEBS"):
        found = re.search(rf"^{name}\s*:=\s*(.+)$", text, re.MULTILINE)
        assert found, f"Makefile: no {name} line"
        packages |= set(found.group(1).split())
    return packages


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


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _makefile_extras() -> set[str]:
    found = re.search(r"^EXTRAS\s*\?=\s*(\S+)\s*$", MAKEFILE.read_text(), re.MULTILINE)
    assert found, "Makefile: no EXTRAS ?= line"
    return set(found.group(1).split(","))


def _extras() -> dict[str, set[str]]:
    """pyproject's optional dependencies: extra -> the normalised distribution names."""
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    return {
        extra: {_normalized(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) for spec in specs}
        for extra, specs in extras.items()
    }


def test_every_required_module_comes_from_an_extra_the_makefile_installs() -> None:
    named = set(MODULES.values())
    assert named <= set(_extras()), "an extra pyproject.toml does not define"
    assert named <= _makefile_extras(), "an extra the Makefile's EXTRAS default leaves out"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_required_module_imports_and_its_extra_lists_it(module: str) -> None:
    require_module(module)
    provided_by = importlib.metadata.packages_distributions().get(module, [])
    listed = _extras()[MODULES[module]]
    assert {_normalized(d) for d in provided_by} & listed, (
        f"{module} comes from {provided_by}, none of them in the {MODULES[module]} extra"
    )


def test_a_missing_module_fails_the_test_naming_its_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    with pytest.raises(pytest.fail.Exception) as failed:
        require_module("av")
    message = str(failed.value)
    assert message.startswith("av is not importable (") and "\n" not in message
    assert "`make test` installs it with the video extra" in message
    assert "pip install -e '.[video]'" in message
    with pytest.raises(KeyError):
        require_module("not_a_module_the_set_up_installs")
