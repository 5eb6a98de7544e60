"""``python -m bench compare BASE NEW``: did NEW regress against BASE?

Per figure, the change ``new / base - 1`` computed from the raw samples both reports keep
(``*.samples``: per-window fps, end-to-end latencies downsampled to order statistics, per-window
p99 latencies), a 95 % percentile-bootstrap interval for it (each run resampled on its own), and
a Mann-Whitney two-sided p-value (does one run's distribution sit above the other's?). A median
is judged on frames; the paced p99 on windows (the median of the windows' p99s): a tail is made of
a few stalls, each delaying a burst of frames, so frames resampled one by one would make the
interval far narrower than the run-to-run spread.

A figure **regressed** when both hold:

* it moved the wrong way by more than its threshold: fps down by more than
  ``--max-regression`` percent (default 5), latency up by more than
  ``--max-latency-regression`` percent (default 10; see :data:`DEFAULT_MAX_LATENCY_REGRESSION`
  for why latency gets more);
* the change is statistically significant: its 95 % interval lies entirely on the wrong side
  of zero, and the Mann-Whitney test agrees (p < 0.05). Both, because samples within a run come
  in bursts (one stall delays many frames): an interval from resampling them is narrower than
  the variation between runs, most of all for a tail percentile, while the rank test asks
  whether the whole distribution moved.

The exit status is 1 only then -- a noisy run whose interval straddles zero, or a significant
change smaller than the threshold, is reported and passes. And the machine's own drift is taken
out: when the control (below) changed significantly, a gated figure's change is divided by the
control's (fps; latency multiplied), and a regression that falls within the threshold once so
adjusted is reported as ``worse (so was the control)``, not gated: on a machine whose speed
drifts within minutes, back-to-back runs of the same code otherwise "regress". Fps is also
judged the other way: fps that held while the control rose more than the threshold allows is a
regression when the adjusted change's interval (both runs and both controls resampled) lies
below zero, or a slowdown measured on a machine that had sped up would pass
(:func:`_against_control`; docs/decisions/0006-naive-loop-as-control.md).
A paced latency that got worse while the new paced run kept its bounding stage more than 5 %
busier (``pipeline.paced.load.ratio``) is shown as ``worse (heavier paced load)``, not gated:
each run is paced at 80 % of its own capacity, the load it lands at moves between runs of the
same code, and latency near 80 % follows it steeply (:func:`_heavier_load`).
Gated: the pipeline's fps and the paced run's end-to-end p50 and p99. Shown, never gated: the
flat-out latencies (queueing in the rings, not the code's speed), the naive loop's fps (a
control: the same code in both runs, measured in segments around the pipeline runs, so when it
moved as much as edgeloop's the machine changed, not the code), and figures without samples
(efficiency, speedup, scenario results: points without an interval).

Each side may be several runs of the same code (a folder of reports, :func:`load_side`): their
samples are pooled, and the interval comes from a two-stage bootstrap that draws runs before
samples (:func:`bench.stats.bootstrap_change`), so it is as wide as the runs disagree. One
run's samples cannot show what moves a whole run -- the host's speed in those minutes, the load
the paced run landed at -- and on a shared machine that is most of the paced latency's spread
between runs of the same code; with two or three runs a side it is in the interval
(docs/decisions/0007-judging-paced-latency.md). (The rank test sees the pooled samples, so it
is the interval that carries the runs' disagreement.)

A report whose verdict is INVALID is compared all the same, with a warning: its intervals are
wide when its run was noisy, which is the honest answer.

Reports of different machines (:func:`bench.env.machine_fingerprint`: CPU model and cores,
cgroup quota, GPUs, Jetson model and power mode), different models (SHA-256) or different
workloads (:func:`workload`: streams, and flat out or paced with ``--rate``) are refused with
exit status 2 unless ``--force``; so are files that are not ``edgeloop.bench/1`` reports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from bench import schema
from bench.env import machine_fingerprint
from bench.pipeline_run import PACED_LOAD_TOLERANCE
from bench.schema import SCHEMA, lookup
from bench.stats import bootstrap_change, bootstrap_change_vs_control, mann_whitney, statistic

Report: TypeAlias = dict[str, Any]
Side: TypeAlias = Sequence[Report]
"""One side of a comparison: one or more reports of the same code, run one after another."""

DEFAULT_MAX_REGRESSION = 5.0
"""Percent, for throughput (fps)."""
DEFAULT_MAX_LATENCY_REGRESSION = 10.0
"""Percent, for latency figures. A median of a few milliseconds made of several hand-offs
between threads moves with where the scheduler puts them more than fps does, so at 5 % A/A
pairs of the same code failed (docs/decisions/0008-compare-thresholds.md)."""
CONFIDENCE = 0.95
ALPHA = 0.05
"""Mann-Whitney significance level."""
REGRESSED, IMPROVED, SAME, NOT_SIGNIFICANT = "REGRESSION", "improved", "same", "not significant"
SMALL = "worse (small)"
"""A significant change the wrong way, within the threshold: shown, passes."""
MACHINE = "worse (so was the control)"
HEAVIER_LOAD = "worse (heavier paced load)"
"""A paced latency that rose while the new paced run also kept its bounding stage busier
(``pipeline.paced.load.ratio`` up by more than :data:`bench.pipeline_run.PACED_LOAD_TOLERANCE`):
shown, not gated (:func:`_heavier_load`)."""


class CompareRefused(ValueError):
    """The two reports cannot be compared honestly (another machine, model or schema)."""


@dataclass(frozen=True)
class Figure:
    """A figure to compare: where its value and its raw samples sit in a report."""

    name: str
    value: str
    """Dotted path of the reported value (``pipeline.fps``)."""
    samples: str | None
    """Dotted path of its raw samples, or None (point only)."""
    statistic: str
    """How the samples give the figure: ``mean``, ``median``, ``p99``..."""
    higher_is_better: bool
    """True: throughput (a drop is worse); False: latency (a rise is worse)."""
    gated: bool = True
    """False: shown, never a regression (controls, points without samples)."""
    control: bool = False
    """The control: the same code in both runs, so its change is the machine's."""


FIGURES: tuple[Figure, ...] = (
    Figure("pipeline fps", schema.PIPELINE_FPS, schema.FPS_WINDOWS, "mean", True),
    Figure("paced e2e p50 ms", schema.PACED_E2E_P50, schema.PACED_E2E_SAMPLES, "median", False),
    # A tail percentile is judged on the run's windows (each window's own p99), not on its
    # frames: the frames of one stall come together, so resampling frames calls a p99 that
    # merely met a different stall "significant". The median window, not the mean: the number
    # of stall windows moves the mean between runs of the same code, while a slower pipeline
    # moves every window (docs/decisions/0007-judging-paced-latency.md).
    Figure("paced e2e p99 ms", schema.PACED_E2E_P99, schema.PACED_P99_WINDOWS, "median", False),
    # Flat out, latency is queueing in the rings (how full the back-pressure window happens to
    # run), not the code's speed: shown, not gated.
    Figure("flat-out e2e p50 ms", schema.E2E_P50, schema.E2E_SAMPLES, "median", False, gated=False),
    Figure("flat-out e2e p99 ms", schema.E2E_P99, schema.E2E_SAMPLES, "p99", False, gated=False),
    Figure(
        "naive fps (control)",
        schema.NAIVE_LOOP_FPS,  # every segment's, as its samples; pipeline.naive_fps is two of them
        schema.NAIVE_FPS_WINDOWS,
        "mean",
        True,
        gated=False,
        control=True,
    ),
    Figure("pipeline efficiency", schema.EFFICIENCY, None, "mean", True, gated=False),
    Figure("speedup vs naive", schema.SPEEDUP_VS_NAIVE, None, "mean", True, gated=False),
    Figure("scenario p90 ms", schema.SCENARIO_P90, None, "p90", False, gated=False),
    Figure("scenario p99 ms", schema.SCENARIO_P99, None, "p99", False, gated=False),
    Figure("scenario samples/s", schema.SCENARIO_THROUGHPUT, None, "mean", True, gated=False),
)


def load(path: Path) -> dict[str, Any]:
    """A report file, checked to be an ``edgeloop.bench/1`` report."""
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise CompareRefused(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise CompareRefused(f"{path} is not a readable JSON report: {exc}") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        found = report.get("schema") if isinstance(report, dict) else type(report).__name__
        raise CompareRefused(f"{path} is not an {SCHEMA} report (schema: {found!r})")
    return report


def load_side(path: Path) -> list[Report]:
    """The reports of one side: ``path`` itself, or when it is a folder every run in it -- its
    ``*.json`` files and its subfolders' ``report.json`` (what ``--json DIR/N.json`` or
    ``--out DIR/N`` leave), in name order. The same run twice (identical files, as ``--json``
    and ``--out`` of one run leave) is refused: it would count one run's machine as two."""
    if not path.is_dir():
        return [load(path)]
    files = sorted(path.glob("*.json")) + sorted(path.glob("*/report.json"))
    if not files:
        raise CompareRefused(f"{path} holds no report (*.json, or */report.json)")
    seen: dict[bytes, Path] = {}
    for file in files:
        content = file.read_bytes()
        if content in seen:
            raise CompareRefused(f"{file} is the same run as {seen[content]}: keep one of them")
        seen[content] = file
    return [load(file) for file in files]


def check_comparable(base: Report | Side, new: Report | Side) -> list[str]:
    """Why the reports should not be compared (empty: they may be): every report of either
    side is held against the first of ``base``."""
    reports = [*_side(base), *_side(new)]
    problems: list[str] = []
    for other in reports[1:]:
        problems += [p for p in _differences(reports[0], other) if p not in problems]
    return problems


def _differences(base: Report, new: Report) -> list[str]:
    problems = []
    a, b = machine_fingerprint(base.get("env", {})), machine_fingerprint(new.get("env", {}))
    differ = [f"{k}: {a[k]!r} vs {b[k]!r}" for k in a if a[k] != b[k]]
    if differ:
        problems.append("different machines (" + "; ".join(differ) + ")")
    model_a = lookup(base, schema.MODEL_SHA256)
    model_b = lookup(new, schema.MODEL_SHA256)
    if model_a != model_b:
        problems.append(f"different models (sha256 {model_a!s:.12} vs {model_b!s:.12})")
    asked, asked_new = workload(base), workload(new)
    differ = [f"{k}: {v} vs {asked_new[k]}" for k, v in asked.items() if asked_new.get(k, v) != v]
    if differ:
        problems.append("different workloads (" + "; ".join(differ) + ")")
    return problems


def workload(report: dict[str, Any]) -> dict[str, Any]:
    """What the pipeline run was asked to carry, where the report says: its streams, and its
    pacing (``--rate``: a paced run's fps is the rate, not capacity, so it compares with a
    run paced alike only). A code change that makes the same workload slower is what compare
    is for; a different workload is not a regression.

    >>> workload({"pipeline": {"run": {"config": {"rate": 20.0, "sources": [{}, {}]}}}})
    {'streams': 2, 'pacing': '20 frames/s a stream'}
    >>> workload({})
    {}
    """
    config = lookup(report, schema.RUN_CONFIG)
    if not isinstance(config, dict):
        return {}
    rate = config.get("rate")
    return {
        "streams": len(config.get("sources") or ()),
        "pacing": "flat out" if rate is None else f"{rate:g} frames/s a stream",
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _side(reports: Report | Side) -> list[Report]:
    return [reports] if isinstance(reports, dict) else list(reports)


def _value(side: Side, path: str) -> float | None:
    """The side's value at ``path``: the mean of its runs', None where a run lacks it."""
    values = [_number(lookup(report, path)) for report in side]
    return None if None in values else float(np.mean([v for v in values if v is not None]))


def _samples(report: Report, path: str | None) -> list[float] | None:
    values = lookup(report, path) if path else None
    if not isinstance(values, list) or len(values) < 2:
        return None
    return [float(v) for v in values]


def _runs(side: Side, path: str | None) -> list[list[float]] | None:
    """Each run's samples at ``path``, or None where a run has none."""
    runs = [_samples(report, path) for report in side]
    return None if any(r is None for r in runs) else [r for r in runs if r is not None]


def compare_figure(
    figure: Figure,
    base: Report | Side,
    new: Report | Side,
    max_regression: float,
    *,
    rounds: int = 2000,
) -> dict[str, Any] | None:
    """The comparison row of one figure judged against ``max_regression`` percent (its own
    threshold), or None when a report lacks it. With several runs a side, ``base`` and ``new``
    are the means of the runs' values, and the change is of their pooled samples."""
    base, new = _side(base), _side(new)
    base_value, new_value = _value(base, figure.value), _value(new, figure.value)
    if base_value is None or new_value is None:
        return None
    row: dict[str, Any] = {
        "figure": figure.name,
        "key": figure.value,
        "base": base_value,
        "new": new_value,
        "gated": figure.gated,
        "threshold_pct": max_regression,
    }
    runs_a, runs_b = _runs(base, figure.samples), _runs(new, figure.samples)
    if runs_a is None or runs_b is None:
        row["change"] = new_value / base_value - 1.0 if base_value else None
        row.update(ci95=None, p_value=None, verdict="point only")
        return row
    change, low, high = bootstrap_change(
        runs_a, runs_b, figure.statistic, confidence=CONFIDENCE, rounds=rounds
    )
    a, b = np.concatenate(runs_a), np.concatenate(runs_b)
    _, p_value = mann_whitney(b, a)
    reduce = statistic(figure.statistic)
    row.update(
        change=change,
        ci95=[low, high],
        p_value=p_value,
        statistic=figure.statistic,
        samples=figure.samples,
        judged=[float(reduce(np.asarray([a]))[0]), float(reduce(np.asarray([b]))[0])],
        n=[len(a), len(b)],
        verdict=_verdict(figure, change, (low, high), p_value, max_regression),
    )
    return row


def _verdict(
    figure: Figure,
    change: float,
    ci: tuple[float, float],
    p_value: float,
    max_regression: float,
) -> str:
    """What a figure's change means: significant only when the interval excludes zero *and*
    the Mann-Whitney test agrees (p < :data:`ALPHA`) -- within one run, samples come in bursts
    (a stall delays many frames), so an interval from resampled samples alone is narrower than
    run-to-run variation, most of all for a tail percentile."""
    sign = -1.0 if figure.higher_is_better else 1.0  # > 0: worse
    worse = sign * change
    worse_low, worse_high = sorted((sign * ci[0], sign * ci[1]))
    if p_value >= ALPHA or worse_low <= 0 <= worse_high:
        return NOT_SIGNIFICANT
    if worse_high < 0:
        return IMPROVED
    if worse * 100 <= max_regression:
        return SMALL
    return REGRESSED if figure.gated else "worse (not gated)"


def _significant_control(
    pairs: Sequence[tuple[Figure, dict[str, Any]]],
) -> tuple[Figure, dict[str, Any]] | None:
    """The control's figure and row, when its change in speed (fps) is significant."""
    for figure, row in pairs:
        if figure.control and row.get("ci95") and row["verdict"] != NOT_SIGNIFICANT:
            return figure, row
    return None


def _against_control(
    figure: Figure,
    row: dict[str, Any],
    control: tuple[Figure, dict[str, Any]],
    sides: tuple[Side, Side],
    *,
    max_regression: float,
    rounds: int,
) -> None:
    """A gated figure judged once the machine's own change (the control's) is taken out.

    * A regression no larger than the threshold once so adjusted is the machine's, not the
      code's: reported (:data:`MACHINE`), not gated.
    * Throughput is also *accused*: fps that held (or rose) while the control rose more is a
      regression when the adjusted change is beyond the threshold and its interval (pipeline
      and control resampled alike, :func:`bench.stats.bootstrap_change_vs_control`) lies on
      the wrong side of zero. Why: a slowdown measured on a machine that had sped up passes a
      control that can only excuse (docs/decisions/0006-naive-loop-as-control.md).
    * Latency is only excused: its change with the machine's speed is not proportional (a
      tail is made of queueing), so the control can say a regression may be the machine's,
      not size one.
    """
    control_figure, control_row = control
    speed = 1.0 + float(control_row["change"])
    if not figure.higher_is_better:
        if row["verdict"] == REGRESSED:
            row["change_vs_control"] = (1.0 + row["change"]) * speed - 1.0
            if row["change_vs_control"] * 100 <= max_regression:
                row["verdict"] = MACHINE
        return
    a, ca, b, cb = [_runs(s, p) for s in sides for p in (figure.samples, control_figure.samples)]
    if a is None or b is None or ca is None or cb is None:
        return
    adjusted, low, high = bootstrap_change_vs_control(
        a,
        b,
        ca,
        cb,
        reduce=figure.statistic,
        control_reduce=control_figure.statistic,
        rounds=rounds,
    )
    row["change_vs_control"] = adjusted
    row["ci95_vs_control"] = [low, high]
    beyond = -adjusted * 100 > max_regression
    if row["verdict"] == REGRESSED and not beyond:
        row["verdict"] = MACHINE
    elif row["verdict"] != REGRESSED and beyond and high < 0:
        row["verdict"] = REGRESSED
        row["accused_by_control"] = True


def compare(
    base: Report | Side,
    new: Report | Side,
    *,
    max_regression: float = DEFAULT_MAX_REGRESSION,
    max_latency_regression: float = DEFAULT_MAX_LATENCY_REGRESSION,
    force: bool = False,
    figures: Sequence[Figure] = FIGURES,
    rounds: int = 2000,
) -> dict[str, Any]:
    """Every figure both sides have; ``regressed`` lists the gated regressions. Throughput
    is judged against ``max_regression`` percent, latency against ``max_latency_regression``.
    A side is a report or several runs' (pooled, :func:`compare_figure`)."""
    base, new = _side(base), _side(new)
    if not base or not new:
        raise CompareRefused("each side needs at least one report")
    problems = check_comparable(base, new)
    if problems and not force:
        raise CompareRefused(
            "refusing to compare " + " and ".join(problems) + "; --force compares anyway"
        )

    def threshold(figure: Figure) -> float:
        return max_regression if figure.higher_is_better else max_latency_regression

    pairs = [
        (f, r) for f in figures if (r := compare_figure(f, base, new, threshold(f), rounds=rounds))
    ]
    control = _significant_control(pairs)
    if control is not None:
        for figure, row in pairs:
            if figure.gated:
                _against_control(
                    figure,
                    row,
                    control,
                    (base, new),
                    max_regression=threshold(figure),
                    rounds=rounds,
                )
    paced_load = [_value(side, schema.PACED_LOAD_RATIO) for side in (base, new)]
    _heavier_load(rows := [r for _, r in pairs], paced_load)
    machine = float(control[1]["change"]) if control is not None else None
    regressed = [r["figure"] for r in rows if r["verdict"] == REGRESSED]
    invalid = [
        f"{name} report is {v.get('result')}: {v.get('reason')}"
        for name, report in _named(base, "base") + _named(new, "new")
        if isinstance(v := report.get("verdict"), dict) and v.get("result") not in (None, "VALID")
    ]
    return {
        "schema": SCHEMA,
        "comparison": {
            "max_regression_pct": max_regression,
            "max_latency_regression_pct": max_latency_regression,
            "confidence": CONFIDENCE,
            "runs": [len(base), len(new)],
            "machine_change": machine,
            "paced_load": paced_load,
            "forced_past": problems if force else [],
            "invalid_runs": invalid,
            "figures": rows,
            "regressed": regressed,
            "result": "REGRESSION" if regressed else "OK",
        },
    }


def _heavier_load(rows: Sequence[dict[str, Any]], paced_load: Sequence[float | None]) -> None:
    """Paced latency regressions that the new run's heavier load explains, not gated.

    Each run is paced at 80 % of its own capacity, and where its paced inference cost a frame
    more than flat out, or the machine's speed moved, it kept the stage busier (its ``load``
    ratio; the suite paces once more when it is off by more than 5 %, but the second run lands
    off too). Latency near 80 % follows the load steeply, so a run at a heavier load is slower
    whatever the code (docs/decisions/0007-judging-paced-latency.md). Only that direction is
    excused: a latency that rose while the load held or fell is judged
    as it is, and the load itself is on the row (and under the table) to be seen."""
    base, new = paced_load
    if base is None or new is None or new <= base * (1 + PACED_LOAD_TOLERANCE):
        return
    for row in rows:
        if row["key"].startswith("pipeline.paced.") and row["verdict"] in (REGRESSED, MACHINE):
            row["verdict"] = HEAVIER_LOAD
            row["paced_load"] = [base, new]


def _named(side: Side, name: str) -> list[tuple[str, Report]]:
    """``(name, report)``, numbered when the side has several runs (``base run 2 of 3``)."""
    if len(side) == 1:
        return [(name, side[0])]
    return [(f"{name} run {i} of {len(side)}", r) for i, r in enumerate(side, 1)]


def _paced_load_lines(comparison: dict[str, Any]) -> list[str]:
    """A line when a paced figure got worse: the load each paced run put on its bounding stage
    (``pipeline.paced.load.ratio``; 1.0: the 80 % it aimed at), which the paced latency
    follows steeply.

    >>> _paced_load_lines({"paced_load": [1.048, 1.121], "figures": [
    ...     {"key": "pipeline.paced.e2e_latency_ms.p50", "verdict": "REGRESSION"}]})[0][:35]
    'paced load 1.048 -> 1.121 (+7.0 %):'
    """
    base, new = comparison.get("paced_load") or (None, None)
    worse = any(
        r["key"].startswith("pipeline.paced.")
        and r["verdict"] in (REGRESSED, SMALL, MACHINE, HEAVIER_LOAD)
        for r in comparison["figures"]
    )
    if base is None or new is None or not worse:
        return []
    if abs(new / base - 1) <= PACED_LOAD_TOLERANCE:
        return [
            f"paced load {base:.3f} -> {new:.3f} ({_pct(new / base - 1)}): the same load "
            f"within {PACED_LOAD_TOLERANCE * 100:.0f} %, so the load does not explain the paced "
            "change"
        ]
    return [
        f"paced load {base:.3f} -> {new:.3f} ({_pct(new / base - 1)}): the paced runs kept "
        "their bounding stage at different loads, and latency near 80 % load follows the load "
        "steeply, so paced latency compares loosely; a heavier new load excuses a worse paced "
        "latency (not gated), a lighter one does not"
    ]


def _close(a: Sequence[float], b: Sequence[float], rel: float = 0.01) -> bool:
    return all(abs(x - y) <= rel * max(abs(x), abs(y)) for x, y in zip(a, b, strict=True))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} %"


def render(result: dict[str, Any]) -> str:
    """The comparison as a terminal table and a closing line."""
    from bench.report import table  # noqa: PLC0415 - report imports this module's siblings

    comparison = result["comparison"]
    rows = []
    for r in comparison["figures"]:
        ci = r.get("ci95")
        rows.append(
            {
                "figure": r["figure"],
                "base": r["base"],
                "new": r["new"],
                "change": _pct(r.get("change")),
                "ci95": f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "-",
                "p_value": r.get("p_value"),
                "verdict": r["verdict"] + (" (vs control)" if r.get("accused_by_control") else ""),
            }
        )
    lines = table(rows) if rows else ["no figure in common"]
    runs = comparison.get("runs") or [1, 1]
    if max(runs) > 1:
        lines.append(
            f"base {runs[0]} run(s), new {runs[1]}: each side's values are its runs' mean, the "
            "change is of their pooled samples, and its interval draws runs, then their samples"
        )
    for r in comparison["figures"]:
        judged = r.get("judged")
        if judged and not _close(judged, (r["base"], r["new"])):
            name = str(r["samples"]).rsplit(".", 1)[-1]
            lines.append(
                f"{r['figure']}: the change is of the {r['statistic']} of {name} "
                f"({judged[0]:.4g} -> {judged[1]:.4g})"
            )
    machine = comparison.get("machine_change")
    if machine is not None:
        lines.append(
            f"the control changed by {_pct(machine)}: the machine's own drift, taken out of "
            "the gated figures"
        )
        for r in comparison["figures"]:
            if r.get("change_vs_control") is None:
                continue
            ci = r.get("ci95_vs_control")
            interval = f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
            lines.append(
                f"{r['figure']}: {_pct(r['change_vs_control'])}{interval} once the control's "
                f"change is taken out: {r['verdict']}"
            )
    lines += _paced_load_lines(comparison)
    for problem in comparison["forced_past"]:
        lines.append(f"warning (--force): {problem}")
    for problem in comparison["invalid_runs"]:
        lines.append(f"warning: the {problem}")
    threshold = (
        f"{comparison['max_regression_pct']:g} % (fps), "
        f"{comparison['max_latency_regression_pct']:g} % (latency)"
    )
    if comparison["regressed"]:
        names = ", ".join(comparison["regressed"])
        lines.append(f"REGRESSION beyond {threshold} and significant: {names}")
    else:
        lines.append(f"no significant regression beyond {threshold}")
    return "\n".join(lines)
