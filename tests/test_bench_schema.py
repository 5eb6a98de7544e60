"""The report format is typed once (bench.schema): a real standard-suite report holds only what
the schema declares, of the declared types, with every key CI and dashboards read; a report that
strays is caught; the documentation's key table is generated from the schema and current."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench import schema
from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent

CONTRACT = (
    "schema",
    "env",
    "verdict.result",
    "pipeline.fps",
    "pipeline.frames",
    "pipeline.dropped",
    "pipeline.duration_s",
    "pipeline.e2e_latency_ms.p50",
    "pipeline.e2e_latency_ms.p99",
    "pipeline.stages.<name>.busy_frac",
    "pipeline.bound_fps",
    "pipeline.efficiency",
    "pipeline.naive_fps",
    "pipeline.speedup_vs_naive",
    "pipeline.bytes.sent",
    "pipeline.source.kind",
    "pipeline.source.codec",
    "pipeline.source.width",
    "pipeline.source.height",
    "pipeline.source.decoder",
    "pipeline.source.workers",
    "pipeline.accuracy.map50",
    "pipeline.accuracy.relevant_recall",
    "pipeline.paced.rate",
    "pipeline.paced.e2e_latency_ms.p99",
    "pipeline.paced.infer_p99_ms",
    "pipeline.paced.dropped",
    "pipeline.paced.missed_ticks",
    "pipeline.paced.stalls.count",
    "pipeline.paced.load.ratio",
    "pipeline.quiet.bytes.reduction_vs_jpeg_all",
    "pipeline.quiet.accuracy.relevant_recall",
    "naive.fps",
    "naive.machine_drift",
    "targets.<name>.met",
    "suite.test_slowdown",
)
"""Keys issues named and CI, dashboards and users read: they stay."""


@pytest.fixture(scope="module")
def standard_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("standard")
    out = folder / "report.json"
    code = main(["--quick", "--quiet", "--no-micro", "--out", str(folder), "--json", str(out)])
    assert code == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def _paths(node: Any, path: str = "") -> set[str]:
    """Every dotted path of a report, mapping keys as they are."""
    found = set()
    if isinstance(node, dict):
        for name, value in node.items():
            here = f"{path}.{name}" if path else name
            found.add(here)
            if name not in ("env", "config", "options"):
                found |= _paths(value, here)
    return found


def _generic(path: str) -> str:
    """``path`` with a stage's or a target's own name as ``<name>``, as the schema has it."""
    parts = path.split(".")
    return ".".join(
        "<name>" if i and parts[i - 1] in ("stages", "targets") else part
        for i, part in enumerate(parts)
    )


def test_a_real_standard_report_is_what_the_schema_declares(
    standard_report: dict[str, Any],
) -> None:
    assert schema.problems(standard_report) == []
    assert standard_report["schema"] == schema.SCHEMA
    for block in ("pipeline", "naive", "targets", "suite", "verdict"):
        assert block in standard_report
    for block in ("paced", "quiet", "accuracy", "stages", "samples"):
        assert block in standard_report["pipeline"]


def test_the_contract_keys_are_declared_and_in_a_real_report(
    standard_report: dict[str, Any],
) -> None:
    declared = {k.path for k in schema.walk()}
    assert set(CONTRACT) <= declared
    present = {_generic(path) for path in _paths(standard_report)}
    assert set(CONTRACT) <= present


def test_what_strays_from_the_schema_is_named() -> None:
    report: dict[str, Any] = {
        "schema": schema.SCHEMA,
        "env": {"anything": {"goes": 1}},
        "verdict": {"result": "VALID", "reason": "all held", "runs": {"pipeline": "VALID"}},
        "targets": {"efficiency": {"target": ">= 0.95", "measured": 0.97, "met": True}},
    }
    assert schema.problems(report) == []
    bad = copy.deepcopy(report)
    bad["verdict"]["results"] = "VALID"  # a typo
    bad["targets"]["efficiency"]["met"] = "yes"  # a string where JSON has true/false/null
    del bad["verdict"]["reason"]
    bad["extra"] = 1
    assert schema.problems(bad) == [
        "verdict: no 'reason', which the schema requires",
        "verdict.results: not a key of the schema",
        "targets.<name>.met: str where the schema has boolean or null",
        "extra: not a key of the schema",
    ]
    assert schema.problems({"env": {}}) == ["the report: no 'schema', which the schema requires"]


def test_a_key_the_schema_does_not_declare_is_refused() -> None:
    assert schema.key("pipeline.paced.load.ratio") == schema.PACED_LOAD_RATIO
    with pytest.raises(KeyError, match=r"pipeline\.fsp"):
        schema.key("pipeline.fsp")
    assert schema.lookup({"a": {"b": 2}}, "a.b") == 2
    assert schema.lookup({"a": {}}, "a.b.c") is None and schema.lookup({"a": 3}, "a.b") is None


def test_the_documented_key_table_is_current(tmp_path: Path) -> None:
    page = ROOT / "docs" / "bench.md"
    assert schema.main(["--check", str(page)]) == 0, "run: python -m bench.schema docs/bench.md"
    stale = tmp_path / "bench.md"
    text = page.read_text()
    stale.write_text(text.replace("| `pipeline.fps` |", "| `pipeline.fps_old` |"))
    assert schema.main(["--check", str(stale)]) == 1
    assert schema.main([str(stale)]) == 0 and stale.read_text() == text
    (tmp_path / "none.md").write_text("no markers")
    assert schema.main([str(tmp_path / "none.md")]) == 2
