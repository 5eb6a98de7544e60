"""bench.micro.motion: the report's shape on a small frame with a token budget (plumbing, not
speed), and that OpenCV's gate counts what edgeloop's does (up to rounding at the threshold)."""

from __future__ import annotations

import pytest

from bench.micro import SUMMARY_CASES, MicroOptions, run_suite
from bench.micro import motion as motion_suite
from bench.timing import Budget
from native import kernels

TINY = Budget(warmup_s=0.0, warmup_count=1, min_s=0.005, min_count=3, max_count=10)


def test_suite_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(motion_suite, "HEIGHT", 360)  # 80x45 cells: enough that rounding
    monkeypatch.setattr(motion_suite, "WIDTH", 640)  # at the threshold moves a cell or two
    messages: list[str] = []
    result = run_suite("motion", MicroOptions(budget=TINY, quick=True, progress=messages.append))
    assert messages and all(m.startswith("motion: gate1080p: ") for m in messages)
    report = result["gate1080p"]
    assert report["impl"] == kernels.implementation_for("motion_cells")
    impls = [row["impl"] for row in report["rows"]]
    assert impls[: len(kernels.available_implementations())] == kernels.available_implementations()
    assert report["ratio_vs_numpy"] > 0
    for row in report["rows"]:
        assert {"name", "impl", "median_ms", "p99_ms", "n"} <= row.keys(), row
    assert report["changed_cells"] > 0  # objects moved between the two frames
    if report["changed_cells_cv2"] is not None:  # OpenCV installed (the bench extra)
        assert report["ratio_vs_cv2"] > 0 and report["ratio_vs_cv2_grey"] > 0
        assert abs(report["changed_cells"] - report["changed_cells_cv2"]) <= max(
            2, report["changed_cells"] // 10
        )
    assert "gate1080p" in SUMMARY_CASES


def test_only_the_cases_asked_for() -> None:
    result = run_suite("motion", MicroOptions(budget=TINY, cases=frozenset({"x"})))
    assert "gate1080p" not in result and result["factor"] == 8
