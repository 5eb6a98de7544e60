"""bench.micro.preprocess: the report's shape on a small frame with a token budget (plumbing, not
speed)."""

from __future__ import annotations

import pytest

from bench.micro import MicroOptions, run_suite
from bench.micro import preprocess as preprocess_suite
from bench.timing import Budget
from native import kernels

TINY = Budget(warmup_s=0.0, warmup_count=1, min_s=0.005, min_count=3, max_count=10)


def test_suite_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preprocess_suite, "HEIGHT", 90)
    monkeypatch.setattr(preprocess_suite, "WIDTH", 160)
    messages: list[str] = []
    result = run_suite(
        "preprocess", MicroOptions(budget=TINY, quick=True, progress=messages.append)
    )
    assert messages and all(m.startswith("preprocess: ") for m in messages)
    has_cv2 = any(row["name"].startswith("cv2") for row in result["resize224"]["rows"])
    for case in ("resize224", "letterbox640", "area224"):
        report = result[case]
        assert report["impl"] == kernels.implementation_for("preprocess_into")
        assert report["ratio_vs_numpy"] > 0
        impls = [row["impl"] for row in report["rows"] if "impl" in row]
        assert impls == kernels.available_implementations()
        for row in report["rows"]:
            assert {"name", "median_ms", "p99_ms", "n"} <= row.keys(), row
        if has_cv2:
            assert report["ratio_vs_best_cv2"] > 0
            assert report["max_diff_vs_cv2_grey"] <= 1.0  # the same work, to a grey level
