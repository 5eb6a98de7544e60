"""The modules of ``core`` and ``native`` import each other without a cycle, and each package
imports nothing from the packages above it (ARCHITECTURE.md: bench, hil, deploy -> core ->
native). Then there is an order in which a newcomer can read every module, each after the
modules it needs.

Read from the source with :mod:`ast`, so every import statement counts: at module level,
inside a function (a lazy import delays a cycle, it does not remove it) and under
``if TYPE_CHECKING:`` (a reader still needs that module first). Nodes are modules; a package is
its ``__init__``. A Cython module (``.pyx``) is a node that imports nothing of ours.

Packages: importing ``a.b.c`` runs ``a/b/__init__.py`` first, and everything that imports, so
from a module *outside* package ``a.b`` it counts as importing ``a.b`` too. From a module inside
``a.b`` it does not: a module's own packages are already in ``sys.modules`` before its body runs
(Python imports parents first), so a sibling import never runs them, and a package's
``__init__`` is its front door, read after the modules it re-exports. A submodule that imports
its own package by name (``from core.backends import open_backend``) does depend on the
``__init__``, as written.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRAPH_PACKAGES = ("core", "native")
LAYERS_ABOVE = {
    "core": ("bench", "hil", "deploy"),
    "native": ("core", "bench", "hil", "deploy"),
}
"""Package -> the top-level packages it must never import (ARCHITECTURE.md's arrows)."""


@dataclass(frozen=True)
class Import:
    """One imported module, as ``importer`` names it at ``where`` (``path:line``)."""

    importer: str
    target: str
    """Absolute dotted name: the module itself, or for ``from m import x`` the submodule
    ``m.x`` when there is one, else ``m``."""
    where: str


@dataclass
class ImportGraph:
    """Modules of the scanned packages and the imports between them."""

    modules: dict[str, Path]
    edges: dict[str, dict[str, str]] = field(default_factory=dict)
    """importer -> imported module -> where the first such import is (``path:line``)."""
    unresolved: list[Import] = field(default_factory=list)
    """Imports naming one of the scanned packages' modules that does not exist."""
    external: list[Import] = field(default_factory=list)
    """Imports of anything outside the scanned packages (stdlib, third party, bench...)."""


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` and ``.pyx`` file of ``packages``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*")):
            if path.suffix not in (".py", ".pyx") or "__pycache__" in path.parts:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imports_in(name: str, path: Path, root: Path, modules: Mapping[str, Path]) -> list[Import]:
    """Every import statement of the module ``name``, anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, where) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append(Import(name, submodule if submodule in modules else source, where))
    return found


def _packages_run_by(imported: str, importer: str, modules: Mapping[str, Path]) -> list[str]:
    """``imported`` and the packages above it that importing it runs, seen from ``importer``:
    all but those that contain ``importer`` (already imported before its body ran)."""
    own = importer.split(".")
    if modules[importer].name != "__init__.py":
        own = own[:-1]
    own_packages = {".".join(own[:i]) for i in range(1, len(own) + 1)}
    parts = imported.split(".")
    above = (".".join(parts[:i]) for i in range(1, len(parts)))
    return [p for p in above if p in modules and p not in own_packages] + [imported]


def build_graph(root: Path, packages: Iterable[str]) -> ImportGraph:
    """The module import graph of ``packages`` (directories under ``root``)."""
    scanned = tuple(packages)
    graph = ImportGraph(module_files(root, scanned))
    for name, path in graph.modules.items():
        graph.edges[name] = {}
        if path.suffix != ".py":
            continue
        for imp in _imports_in(name, path, root, graph.modules):
            if imp.target.split(".")[0] not in scanned:
                graph.external.append(imp)
            elif imp.target not in graph.modules:
                graph.unresolved.append(imp)
            else:
                for target in _packages_run_by(imp.target, name, graph.modules):
                    if target != name:
                        graph.edges[name].setdefault(target, imp.where)
    return graph


def strongly_connected(edges: Mapping[str, Mapping[str, str]]) -> list[list[str]]:
    """Groups of two or more modules that all reach each other (Tarjan's algorithm,
    iterative), each sorted; a graph without a cycle has none."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return sorted(groups)


def shortest_cycle(edges: Mapping[str, Mapping[str, str]], group: list[str]) -> list[str]:
    """A shortest cycle through ``group[0]`` inside ``group``, first module repeated last."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(edges[node]):
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if succ in members and succ not in came_from:
                came_from[succ] = node
                queue.append(succ)
    raise AssertionError(f"{group} is not strongly connected")


def describe_cycles(graph: ImportGraph) -> str:
    """Each cycle as ``a -(path:line)-> b -> ... -> a``, one per line, with its modules."""
    lines = []
    for group in strongly_connected(graph.edges):
        cycle = shortest_cycle(graph.edges, group)
        hops = [cycle[0]]
        for src, dst in itertools.pairwise(cycle):
            hops.append(f"-({graph.edges[src][dst]})-> {dst}")
        lines.append(f"cycle among {', '.join(group)}:\n    " + " ".join(hops))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph(ROOT, GRAPH_PACKAGES)


def test_core_and_native_import_without_cycles(graph: ImportGraph) -> None:
    assert len(graph.modules) > 50  # the scan found the packages
    cycles = describe_cycles(graph)
    assert not cycles, f"import cycles (lazy imports count; see the module docstring):\n{cycles}"


def test_every_import_of_core_and_native_names_a_module(graph: ImportGraph) -> None:
    """An import the graph cannot place would drop its edge: the cycle test would miss it."""
    assert not graph.unresolved, "\n".join(
        f"{imp.where}: {imp.target} is not a module of {GRAPH_PACKAGES}" for imp in graph.unresolved
    )


@pytest.mark.parametrize(("package", "above"), sorted(LAYERS_ABOVE.items()))
def test_package_imports_nothing_from_the_layers_above(
    graph: ImportGraph, package: str, above: tuple[str, ...]
) -> None:
    offending = [
        f"{imp.where}: {imp.importer} imports {imp.target}"
        for imp in graph.external
        if imp.importer.split(".")[0] == package and imp.target.split(".")[0] in above
    ]
    assert not offending, "\n".join(offending)


# -- the graph itself, on small trees --------------------------------------------------------


def _tree(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_function_level_import_closes_a_cycle(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import helper\n",
            "pkg/b.py": "def helper():\n    from pkg import a\n    return a\n",
        },
    )
    graph = build_graph(root, ["pkg"])
    assert strongly_connected(graph.edges) == [["pkg.a", "pkg.b"]]
    assert "pkg.a -(pkg/a.py:1)-> pkg.b -(pkg/b.py:2)-> pkg.a" in describe_cycles(graph)


def test_importing_another_packages_module_runs_that_packages_init(tmp_path: Path) -> None:
    """The shape core.backends <-> core.models had: no module imports the other's, but the
    facade one runs is on the way back."""
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/x/__init__.py": "def f():\n    from pkg.y import thing\n",
            "pkg/x/leaf.py": "",
            "pkg/y.py": "from pkg.x.leaf import value\n",
        },
    )
    graph = build_graph(root, ["pkg"])
    assert set(graph.edges["pkg.y"]) == {"pkg.x", "pkg.x.leaf"}
    assert strongly_connected(graph.edges) == [["pkg.x", "pkg.y"]]


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.x import value\n",
            "pkg/x/__init__.py": "from pkg.x.leaf import value\nfrom . import other\n",
            "pkg/x/leaf.py": "from .other import thing\nimport os\n",
            "pkg/x/other.py": "import bench.report\n",
        },
    )
    graph = build_graph(root, ["pkg"])
    assert graph.edges["pkg.x"] == {
        "pkg.x.leaf": "pkg/x/__init__.py:1",
        "pkg.x.other": "pkg/x/__init__.py:2",
    }
    assert graph.edges["pkg.x.leaf"] == {"pkg.x.other": "pkg/x/leaf.py:1"}
    assert strongly_connected(graph.edges) == []
    assert {(i.importer, i.target) for i in graph.external} == {
        ("pkg.x.leaf", "os"),
        ("pkg.x.other", "bench.report"),
    }


def test_an_import_of_a_missing_module_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg.gone import x\n"})
    (unresolved,) = build_graph(root, ["pkg"]).unresolved
    assert (unresolved.target, unresolved.where) == ("pkg.gone", "pkg/a.py:1")
