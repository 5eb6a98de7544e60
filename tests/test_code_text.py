"""Code states contracts, not history: no docstring or comment in core/, native/ or bench/
carries a date or a commit hash (figures and their runs live in docs/decisions/, once), and every
decision record the code links to exists."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "native", "bench")
DATE = re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b")
COMMIT = re.compile(r"`[0-9a-f]{7,12}`|\b(?:commit|at|since|from) [0-9a-f]{7,12}\b")
"""A hash quoted as code (the way run logs cite commits), or named as a commit."""
DECISION = re.compile(r"docs/decisions/(\d{4}-[a-z0-9-]+\.md)")


def _texts(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every docstring and comment in a Python file; every line of a Cython or
    C file (their comments and docstrings are most of their prose)."""
    source = path.read_text()
    if path.suffix != ".py":
        yield from enumerate(source.splitlines(), 1)
        return
    for node in ast.walk(ast.parse(source)):  # docstrings, attribute docstrings included
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            yield node.lineno, node.value.value
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def _files() -> list[Path]:
    suffixes = (".py", ".pyx", ".pxd", ".pyi", ".c", ".h")
    return sorted(
        p
        for package in PACKAGES
        for p in (ROOT / package).rglob("*")
        if p.suffix in suffixes and "__pycache__" not in p.parts
    )


def _found(pattern: re.Pattern[str]) -> list[str]:
    hits = set()
    for path in _files():
        for line, text in _texts(path):
            for match in pattern.finditer(text):
                hits.add(f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}")
    return sorted(hits)


@pytest.mark.parametrize(("what", "pattern"), [("a date", DATE), ("a commit hash", COMMIT)])
def test_no_docstring_or_comment_carries(what: str, pattern: re.Pattern[str]) -> None:
    found = _found(pattern)
    assert not found, f"{what} in code text (move the evidence to docs/decisions/):\n" + "\n".join(
        found
    )


def test_the_patterns_find_what_they_look_for() -> None:
    assert DATE.search("measured on 2026-11-27, EPYC VM")
    assert COMMIT.search("a run at `42b1f28` gave") and COMMIT.search("since commit c777008")
    assert not COMMIT.search("the SHA-256 abcdef0123 of the model") and not DATE.search("1080p")


def test_every_decision_the_code_links_to_exists() -> None:
    missing = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in _files()
        for name in DECISION.findall(path.read_text())
        if not (ROOT / "docs" / "decisions" / name).is_file()
    )
    assert not missing, "links to decision records that do not exist:\n" + "\n".join(missing)
