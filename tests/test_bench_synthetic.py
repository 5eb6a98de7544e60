"""bench.micro.synthetic: the report's shape on a small frame with a token budget (plumbing,
not speed)."""

from __future__ import annotations

import pytest

from bench.micro import SUMMARY_CASES, MicroOptions, run_suite
from bench.micro import synthetic as synthetic_suite
from bench.timing import Budget
from native import kernels

TINY = Budget(warmup_s=0.0, warmup_count=1, min_s=0.005, min_count=3, max_count=10)


def test_suite_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic_suite, "HEIGHT", 90)
    monkeypatch.setattr(synthetic_suite, "WIDTH", 160)
    messages: list[str] = []
    result = run_suite("synthetic", MicroOptions(budget=TINY, quick=True, progress=messages.append))
    assert messages and all(m.startswith("synthetic: render1080p: ") for m in messages)
    report = result["render1080p"]
    assert report["impl"] == kernels.implementation_for("add_wrapped")
    impls = [row["impl"] for row in report["rows"] if "impl" in row]
    assert impls == kernels.available_implementations()
    assert report["ratio_vs_numpy"] > 0 and report["render_ms"] > 0
    assert report["rows"][-1]["name"].startswith("whole frame")
    for row in report["rows"]:
        assert {"name", "median_ms", "p99_ms", "n"} <= row.keys(), row
    assert "render1080p" in SUMMARY_CASES  # the standard suite's summary shows the camera's cost


def test_only_the_cases_asked_for() -> None:
    assert run_suite("synthetic", MicroOptions(budget=TINY, cases=frozenset({"x"}))) == {
        "frame": "1920x1080 BGR uint8, default SceneConfig"
    }
