"""The bench measures a timed run on while its windows disagree (perf_analyzer's
``--max-trials``), judged by the very check its verdict uses, and says so in the report."""

from __future__ import annotations

from typing import Any

import pytest

from bench import pipeline_run, report
from bench import verdict as checks
from tests.pipeline_doubles import small_config


def test_a_paced_run_measures_on_until_the_verdicts_stability_check_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[bool] = []
    real = pipeline_run._stable

    def first_no(fps: Any, latency: Any, *, judge_latency: bool) -> checks.Check:
        asked.append(judge_latency)
        if len(asked) == 1:
            return checks.Check("stable", False, "disturbed (test)")
        return real(fps, latency, judge_latency=judge_latency)

    monkeypatch.setattr(pipeline_run, "_stable", first_no)
    spec = pipeline_run.RunSpec(
        1.5, min_frames=10, warmup_s=0.2, stage_costs=False, label="paced", max_trials=5
    )
    measured = pipeline_run.run(small_config("rate=50"), spec, cores=2.0)
    step_s, max_s = checks.extension_plan(1.5, 5)
    assert (step_s, max_s) == (0.5, 2.5)
    extensions = round(measured.report.extended_s / step_s)
    assert measured.report.extended_s == extensions * step_s
    assert 1 <= extensions <= 2  # the "no", then the real check: room for one more step
    assert asked[0] is True  # paced: latency is judged too, as in the verdict
    block = pipeline_run.paced_block(measured)
    assert block["run"]["extended_s"] == extensions * step_s
    assert block["duration_s"] >= 1.5 + extensions * step_s
    lines = report.extension_lines({"pipeline": {"run": {}, "paced": block}})
    assert lines and lines[0].startswith(f"paced run measured {extensions * step_s:g} s past")


def test_no_extension_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> checks.Check:
        raise AssertionError("asked without max_trials")

    monkeypatch.setattr(pipeline_run, "_stable", never)
    spec = pipeline_run.RunSpec(0.5, min_frames=5, warmup_s=0.1, stage_costs=False)
    measured = pipeline_run.run(small_config("rate=50"), spec, cores=2.0)
    assert measured.report.extended_s == 0.0
    assert pipeline_run._run_settings(measured)["extended_s"] == 0.0
