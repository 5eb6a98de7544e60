"""bench.micro.metrics: the suite's shape and its headline key (a token budget: plumbing, not
speed -- the figure itself is measured by ``python -m bench micro --only metrics``)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.cli import main
from bench.micro import SUITES, SUMMARY_CASES, MicroOptions, run_suite
from bench.timing import Budget

TINY = Budget(warmup_s=0.0, warmup_count=1, min_s=0.01, min_count=3, max_count=20)


def test_suite_rows_and_headline() -> None:
    assert "metrics" in SUITES and "sample1hz" in SUMMARY_CASES
    messages: list[str] = []
    result = run_suite("metrics", MicroOptions(budget=TINY, quick=True, progress=messages.append))
    assert messages and all(m.startswith("metrics: ") for m in messages)
    case = result["sample1hz"]
    names = [row["name"] for row in case["rows"]]
    assert names[0] == "sample (all collectors)" and "exposition" in names
    assert any(n.startswith("scrape over HTTP") for n in names)
    assert all(row["cpu_ms"] > 0 and row["n"] >= 3 for row in case["rows"])
    assert result["core_fraction_at_1hz"] == case["core_fraction_at_1hz"] > 0
    assert case["target_core_fraction"] == 0.001 and isinstance(case["target_met"], bool)
    assert case["families"] > 20 and case["exposition_bytes"] > 1000


def test_cli_only_metrics_writes_the_headline(tmp_path: Path) -> None:
    out = tmp_path / "micro.json"
    assert main(["micro", "--only", "metrics", "--quick", "--quiet", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["micro"]["metrics"]["core_fraction_at_1hz"] > 0


def test_suite_skipped_when_its_case_is_not_wanted() -> None:
    assert run_suite("metrics", MicroOptions(budget=TINY, cases=frozenset({"1080p"}))) == {}
