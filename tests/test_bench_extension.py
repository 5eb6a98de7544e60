"""The bench measures a timed run on while its windows disagree (perf_analyzer's
``--max-trials``), judged by the very check its verdict uses, and says so in the report; and it
paces again a paced run that measured another load than 80 %."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from bench import pipeline_run, report, standard
from bench import verdict as checks
from bench.progress import ProgressBar
from tests.pipeline_doubles import small_config


def _unsettled_once(monkeypatch: pytest.MonkeyPatch, *, then_settled: bool = False) -> list[bool]:
    """The verdict's stability check says "disturbed" on its first call, then what it finds
    (or, ``then_settled``, settled whatever it finds); returns each call's ``judge_latency``."""
    asked: list[bool] = []
    real = pipeline_run._stable

    def first_no(fps: Any, latency: Any, *, judge_latency: bool) -> checks.Check:
        asked.append(judge_latency)
        if len(asked) == 1:
            return checks.Check("stable", False, "disturbed (test)")
        found = real(fps, latency, judge_latency=judge_latency)
        return checks.Check("stable", True, found.detail) if then_settled else found

    monkeypatch.setattr(pipeline_run, "_stable", first_no)
    return asked


def test_a_paced_run_measures_on_until_the_verdicts_stability_check_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _unsettled_once(monkeypatch)
    spec = pipeline_run.RunSpec(
        1.5, min_frames=10, warmup_s=0.2, stage_costs=False, label="paced", max_trials=5
    )
    measured = pipeline_run.run(small_config("rate=50"), spec, cores=2.0)
    step_s, max_s = checks.extension_plan(1.5, 5)
    assert (step_s, max_s) == (0.5, 2.5)
    extensions = round(measured.timelines.extended_s / step_s)
    assert measured.timelines.extended_s == extensions * step_s
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
    assert measured.timelines.extended_s == 0.0
    assert pipeline_run._run_settings(measured)["extended_s"] == 0.0


def test_a_paced_run_at_another_load_than_80_percent_is_paced_again() -> None:
    """A flat-out run that claimed far less capacity than the machine has (as a flat-out run
    measured while the machine was slow does): paced at 80 % of it, inference is nowhere near
    80 % of its flat-out busy fraction, so the suite paces again at 80 % of the capacity the
    paced run showed, and keeps the first run's figures in ``attempts``."""
    config = small_config()
    flat = {"fps": 30.0, "bound": {"limit": "infer"}, "stages": {"infer": {"busy_frac": 0.99}}}
    options = standard.SuiteOptions(paced_s=1.0, warmup_s=0.2, min_frames=10, max_trials=0)
    bar = ProgressBar([("paced", 1.0)], enabled=False)
    measured, block = standard._paced(config, flat, options, 2.0, bar)
    assert measured.accuracy is None  # a latency run counts no accuracy (its block has none)
    [first] = block["attempts"]
    assert first["why"] == "load"
    assert first["rate"] == pytest.approx(24.0) and first["load_ratio"] < 0.95
    assert first["verdict"]["result"] in ("VALID", "INVALID") and first["dropped"] == 0
    assert block["rate"] == pytest.approx(24.0 / first["load_ratio"])
    assert measured.config.rate == pytest.approx(block["rate"])  # the block is the last run's
    assert block["load"]["ratio"] > first["load_ratio"]
    [line] = report.repace_lines({"pipeline": {"paced": block}})
    assert line.startswith(f"paced again at {block['rate']:.1f} frames/s: the run paced at 24.0")

    never = dataclasses.replace(options, paced_retries=0)
    _, once = standard._paced(config, flat, never, 2.0, bar)
    assert once["attempts"] == [] and once["rate"] == pytest.approx(24.0)
    assert report.repace_lines({"pipeline": {"paced": once}}) == []


def test_a_paced_run_whose_windows_disagreed_is_measured_again_and_only_the_last_measures_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A disturbed first run (its last windows disagree) is not measured on past its seconds
    while a second run may still come: the second run, at the same rate, is the one that may
    measure on, and the first is kept in ``attempts`` with why."""
    verdicts = _unsettled_once(monkeypatch, then_settled=True)
    specs: list[pipeline_run.RunSpec] = []
    run = pipeline_run.run

    def recording(config: Any, spec: pipeline_run.RunSpec, **kwargs: Any) -> Any:
        specs.append(spec)
        return run(config, spec, **kwargs)

    monkeypatch.setattr(pipeline_run, "run", recording)
    flat = {"fps": 30.0, "bound": None, "stages": {}}  # no bound: the load is not judged
    options = standard.SuiteOptions(paced_s=1.5, warmup_s=0.2, min_frames=10, max_trials=4)
    bar = ProgressBar([("paced", 1.0)], enabled=False)
    _, block = standard._paced(small_config(), flat, options, 2.0, bar)
    assert [spec.max_trials for spec in specs] == [0, 4]  # only the last may measure on
    [first] = block["attempts"]
    assert first["why"] == "unsettled" and first["load_ratio"] is None
    assert first["verdict"]["reason"] == "stable: disturbed (test)"
    assert first["rate"] == block["rate"] == pytest.approx(24.0)  # the same rate again
    assert standard._unsettled(block) is None  # the last run settled
    [line] = report.repace_lines({"pipeline": {"paced": block}})
    assert "the run before had its last windows unsettled (stable: disturbed (test))" in line

    specs.clear()
    verdicts.clear()
    late = time.monotonic() + 1.5 * (1.5 + 0.2 + standard.REPACE_START_S)  # room for one run
    _, once = standard._paced(small_config(), flat, options, 2.0, bar, deadline=late)
    assert [spec.max_trials for spec in specs] == [4] and once["attempts"] == []
