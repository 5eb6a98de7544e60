"""Report formats: the JSON contract (``schema`` ``edgeloop.bench/1``), terminal tables and a
Markdown copy of them. Figures keep their unit in their key; tables show it in the header.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench import schema
from bench.schema import SCHEMA, lookup
from bench.verdict import STABILITY

# Columns never shown in tables (identifiers or bulky raw data).
_HIDDEN = {"contender", "impl_forced", "samples_ns", "skipped"}


def new_report(env: dict[str, Any]) -> schema.Report:
    return {"schema": SCHEMA, "env": env}


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.1:
            return f"{value:.3f}"
        return f"{value:.4f}"
    return str(value)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        for key, value in row.items():
            hidden = key in _HIDDEN or isinstance(value, (list, dict))
            if key not in cols and not hidden:
                cols.append(key)
    return cols


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Rows of dicts as aligned text lines (first column left, figures right)."""
    cols = _columns(rows)
    cells = [[_fmt(row.get(c)) if c in row else "" for c in cols] for row in rows]
    for row, line in zip(rows, cells, strict=True):
        if "skipped" in row:
            line[-1] = f"skipped: {row['skipped']}"
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    out = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cols, widths, strict=True))
        )
    ]
    out.append("  ".join("-" * w for w in widths))
    for line in cells:
        out.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    return out


def headline(case: dict[str, Any]) -> str:
    """The case's scalar figures (ratios first) as one line."""
    scalars = {k: v for k, v in case.items() if k != "rows" and not isinstance(v, (list, dict))}
    ordered = sorted(scalars, key=lambda k: (not k.startswith("ratio"), k))
    return ", ".join(f"{k}={_fmt(scalars[k])}" for k in ordered)


def micro_sections(micro: dict[str, Any]) -> Iterable[tuple[str, list[str]]]:
    """(title, lines) per case of every micro suite."""
    for suite, cases in micro.items():
        for case, data in cases.items():
            if not isinstance(data, dict) or "rows" not in data:
                continue
            lines = table(data["rows"])
            lines.append(headline(data))
            yield f"micro.{suite}.{case}", lines


SUMMARY = (
    ("pipeline fps", schema.PIPELINE_FPS, "frames/s", None),
    ("bound_fps", schema.BOUND_FPS, "frames/s", None),
    ("efficiency", schema.EFFICIENCY, "fps / bound_fps", "efficiency"),
    ("bound.cpu_fps", schema.CPU_FPS, "frames/s", None),
    ("cpu_efficiency", schema.CPU_EFFICIENCY, "fps / cpu_fps", "cpu_efficiency"),
    ("naive_fps", schema.NAIVE_FPS, "frames/s", None),
    ("speedup_vs_naive", schema.SPEEDUP_VS_NAIVE, "x", "speedup_vs_naive"),
    ("frames", schema.PIPELINE_FRAMES, "", None),
    ("dropped", schema.PIPELINE_DROPPED, "frames", None),
    ("e2e p50", schema.E2E_P50, "ms", None),
    ("e2e p99", schema.E2E_P99, "ms", None),
    ("e2e max", schema.E2E_MAX, "ms", None),
    ("paced rate", schema.PACED_RATE, "frames/s", None),
    ("paced e2e p99", schema.PACED_E2E_P99, "ms", "paced_p99"),
    ("paced infer p99", schema.PACED_INFER_P99, "ms", None),
    ("paced dropped", schema.PACED_DROPPED, "frames", "paced_drops"),
    ("paced missed ticks", schema.PACED_MISSED_TICKS, "frames", "paced_missed_ticks"),
    ("paced stall windows", schema.PACED_STALL_COUNT, "windows", None),
    ("bytes raw", schema.BYTES_RAW, "bytes", None),
    ("bytes jpeg_all", schema.BYTES_JPEG_ALL, "bytes", None),
    ("bytes sent", schema.BYTES_SENT, "bytes", None),
    ("map50", schema.MAP50, "", None),
    ("relevant_recall", schema.RELEVANT_RECALL, "", None),
    ("quiet jpeg_all / sent", schema.QUIET_REDUCTION, "x", "quiet_bytes"),
    ("quiet relevant_recall", schema.QUIET_RECALL, "", "quiet_recall"),
    ("ring hand-off / floor", schema.target("ring_handoff") + ".measured", "x", "ring_handoff"),
    ("multistream streams", schema.MULTI_STREAMS, "", None),
    ("multistream fps", schema.MULTI_FPS, "frames/s", None),
    ("multistream cpu_efficiency", schema.MULTI_CPU_EFFICIENCY, "", "multistream_cpu_efficiency"),
    ("multistream fairness", schema.MULTI_FAIRNESS, "min / max", "multistream_fairness"),
    ("overload rate", schema.MULTI_PACED_RATE, "frames/s each", None),
    ("overload fairness", schema.MULTI_PACED_FAIRNESS, "min / max", "multistream_paced_fairness"),
    ("overload e2e p99", schema.MULTI_PACED_P99, "ms", "multistream_paced_latency"),
    ("overload latency bound", schema.MULTI_PACED_LATENCY_BOUND, "ms", None),
)
"""(label, key in report.json, unit, target name) of the summary table."""


def summary_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The headline figures with their keys and issue 4's targets (when the run measured them)."""
    rows = []
    for label, key, unit, target in SUMMARY:
        value = lookup(report, key)
        if value is None:
            continue
        row: dict[str, Any] = {"figure": label, "value": value, "unit": unit, "target": ""}
        goal = lookup(report, schema.target(target)) if target else None
        if goal:
            met = goal["met"]
            row["target"] = (
                f"{goal['target']} ({'met' if met else 'MISSED' if met is False else '?'})"
            )
        row["key"] = key
        rows.append(row)
    return rows


def stage_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per pipeline stage: latency, busy fraction, service and CPU time alone."""
    stages = lookup(report, schema.STAGES) or {}
    keys = (
        "workers",
        "p50_ms",
        "p99_ms",
        "mean_ms",
        "busy_frac",
        "service_ms",
        "cpu_ms",
        "bound_fps",
    )
    return [{"stage": name, **{k: data.get(k) for k in keys}} for name, data in stages.items()]


def verdict_line(report: Mapping[str, Any]) -> str | None:
    verdict = report.get("verdict")
    if not isinstance(verdict, dict):
        return None
    return f"verdict: {verdict.get('result')} -- {verdict.get('reason')}"


def stall_lines(report: Mapping[str, Any]) -> list[str]:
    """One line per paced stall window: when, its p99, the stage that added the most, and how
    long inference waited for a core in it.

    >>> stall_lines({"pipeline": {"paced": {"stalls": {"windows": [{"t_s": 20.3, "p99_ms": 27.2,
    ...     "slowest_stage": {"stage": "infer", "added_ms": 2.81, "ratio": 1.87},
    ...     "infer_off_cpu_ms": 31.0}], "median_window_infer_off_cpu_ms": 0.6}}}})
    ['paced stall at 20.3 s: p99 27.2 ms; most added by infer: +2.81 ms (1.87x its median
      window); inference off its core 31.0 ms (median window 0.6)']
    """
    lines = []
    stalls = lookup(report, schema.PACED_STALLS) or {}
    for window in stalls.get("windows") or []:
        line = f"paced stall at {window['t_s']:.1f} s: p99 {window['p99_ms']:.1f} ms"
        slowest = window.get("slowest_stage") or {}
        if "added_ms" in slowest:  # older reports (before ``added_ms``) have the ratio only
            line += (
                f"; most added by {slowest['stage']}: +{slowest['added_ms']:.2f} ms "
                f"({slowest['ratio']:.2f}x its median window)"
            )
        if "infer_off_cpu_ms" in window:  # older reports lack it
            line += (
                f"; inference off its core {window['infer_off_cpu_ms']:.1f} ms "
                f"(median window {stalls['median_window_infer_off_cpu_ms']:.1f})"
            )
        lines.append(line)
    return lines


def extension_lines(report: Mapping[str, Any]) -> list[str]:
    """A line for each run that measured past its plan because its windows disagreed.

    >>> extension_lines({"pipeline": {"run": {"duration_s": 20.0, "extended_s": 0.0},
    ...     "paced": {"run": {"duration_s": 30.0, "extended_s": 10.0}}}})
    ['paced run measured 10 s past its 30 s: its last windows disagreed until then (--max-trials)']
    """
    lines = []
    for name, key in (("flat-out run", schema.RUN), ("paced run", schema.PACED_RUN)):
        run = lookup(report, key) or {}
        if run.get("extended_s"):  # reports since this change
            lines.append(
                f"{name} measured {run['extended_s']:g} s past its {run['duration_s']:g} s: "
                "its last windows disagreed until then (--max-trials)"
            )
    return lines


def drift_lines(report: Mapping[str, Any]) -> list[str]:
    """A line when the naive loop's segments (before, between and after the pipeline runs) lie
    further apart than the stability rule allows: the machine's speed moved during the suite.

    >>> [line] = drift_lines({"naive": {"segments_fps": [66.3, 60.7, 80.7],
    ...                                  "machine_drift": 0.166}})
    >>> line.split(": the")[1]
    ' naive loop ran 66.3, 60.7, 80.7 frames/s in its segments (16.6 % from their mean)'
    >>> drift_lines({"naive": {"segments_fps": [66.3, 64.7], "machine_drift": 0.012}})
    []
    """
    naive = report.get("naive") or {}
    drift = naive.get("machine_drift")
    if drift is None or drift <= STABILITY:
        return []
    rates = ", ".join(f"{v:.1f}" for v in naive["segments_fps"])
    return [
        f"machine drift: the naive loop ran {rates} frames/s in its segments "
        f"({drift * 100:.1f} % from their mean): the figures of this report compare only loosely "
        "with other runs"
    ]


def load_lines(report: Mapping[str, Any]) -> list[str]:
    """A line when the paced run kept the bounding stage busier (or idler) than 80 % of its
    flat-out busy fraction by more than the stability rule allows: each frame cost the stage
    more (or less) than when the rate was set, and the paced figures are of another load than
    80 %. It says what moved, not why (:func:`bench.pipeline_run.paced_load`).

    >>> load_lines({"pipeline": {"paced": {"load": {"stage": "infer", "busy_frac": 0.87,
    ...     "fraction": 0.8, "expected": 0.79, "ratio": 1.10}}}})[0].split(": ")[1]
    'infer 87 % busy where 79 % was expected (80 % of its flat-out busy fraction)'
    """
    load = lookup(report, schema.PACED_LOAD)
    if not load or abs(load["ratio"] - 1.0) <= STABILITY:
        return []
    return [
        f"paced load: {load['stage']} {load['busy_frac'] * 100:.0f} % busy where "
        f"{load['expected'] * 100:.0f} % was expected ({load['fraction'] * 100:.0f} % of its "
        f"flat-out busy fraction): each frame took it {_more_or_less(load['ratio'])} than "
        "when the rate was set"
    ]


def _more_or_less(ratio: float) -> str:
    """``16 % longer`` for a cost ratio of 1.16, ``15 % less time`` for 0.85.

    >>> _more_or_less(1.162), _more_or_less(0.846)
    ('16 % longer', '15 % less time')
    """
    change = abs(ratio - 1) * 100
    return f"{change:.0f} % longer" if ratio > 1 else f"{change:.0f} % less time"


def repace_lines(report: Mapping[str, Any]) -> list[str]:
    """A line for each paced run measured again (``pipeline.paced.attempts``): at the wrong
    load, or with its last windows unsettled; the summary's paced figures are the last run's.

    >>> [line] = repace_lines({"pipeline": {"paced": {"rate": 103.9, "attempts": [
    ...     {"rate": 120.7, "load_ratio": 1.16, "e2e_latency_ms": {"p99": 63.2},
    ...      "infer_p99_ms": 11.7, "e2e_p99_over_infer_p99_ms": 51.5}]}}})
    >>> line.split(": ")[0]
    'paced again at 103.9 frames/s'
    >>> [line] = repace_lines({"pipeline": {"paced": {"rate": 103.9, "attempts": [
    ...     {"rate": 103.9, "why": "unsettled", "load_ratio": 1.01, "e2e_latency_ms": {},
    ...      "e2e_p99_over_infer_p99_ms": None,
    ...      "verdict": {"reason": "stable: latency 15.4 % from their mean"}}]}}})
    >>> line.split(" (")[0]
    'paced again at 103.9 frames/s: the run before had its last windows unsettled'
    """
    paced = lookup(report, schema.PACED) or {}
    lines = []
    for attempt in paced.get("attempts") or []:
        p99, margin = attempt["e2e_latency_ms"].get("p99"), attempt["e2e_p99_over_infer_p99_ms"]
        latency = f", p99 {p99:.1f} ms" if p99 is not None else ""
        if p99 is not None and margin is not None:
            latency += f" = inference p99 {attempt['infer_p99_ms']:.1f} + {margin:.1f} ms"
        if attempt.get("why") == "unsettled":
            cause = (
                f"the run before had its last windows unsettled "
                f"({attempt['verdict']['reason']}){latency}"
            )
        else:
            cause = (
                f"the run paced at {attempt['rate']:.1f} had a load "
                f"{attempt['load_ratio']:.2f} times 80 % (each frame took inference "
                f"{_more_or_less(attempt['load_ratio'])} than when its rate was set){latency}"
            )
        lines.append(
            f"paced again at {paced['rate']:.1f} frames/s: {cause}; the paced figures are the "
            "last run's"
        )
    return lines


def rate_lines(report: Mapping[str, Any]) -> list[str]:
    """A line when the user paced the pipeline run (``--rate``): its fps is the rate, so the
    capacity figures were not measured.

    >>> [line] = rate_lines({"pipeline": {"run": {"config": {"rate": 25.0}},
    ...                                   "paced": {"rate": 50.0}}})
    >>> line.split(": ")[0]
    'paced at 50 frames/s in all (--rate)'
    """
    if lookup(report, f"{schema.RUN_CONFIG}.rate") is None:  # per stream; the run went flat out
        return []
    rate = lookup(report, schema.PACED_RATE)
    return [
        f"paced at {rate:g} frames/s in all (--rate): fps is the rate the sources gave, not "
        "capacity, so efficiency and speedup_vs_naive are not measured (leave --rate out); "
        "the paced figures are this run's"
    ]


def source_lines(report: Mapping[str, Any]) -> list[str]:
    """What the run read, and how (``pipeline.source``), in one line.

    >>> source_lines({"pipeline": {"source": {"kind": "file", "codec": "h264", "width": 1280,
    ...     "height": 720, "decoder": "pyav", "decode_threads": 0, "workers": "thread",
    ...     "streams": 3, "loops": 2}}})
    ['source: 3 x file 1280x720 h264, decoded by pyav (threads: its own choice) in threads;
      2 loop points']
    """
    source = lookup(report, "pipeline.source")
    if not isinstance(source, Mapping):
        return []
    what = f"{source.get('kind')} {source.get('width')}x{source.get('height')}"
    if source.get("codec"):
        what += f" {source['codec']}"
    if source.get("decoder"):
        threads = source.get("decode_threads")
        shown = "its own choice" if threads == 0 else threads
        what += f", decoded by {source['decoder']}"
        if source.get("hwaccel") not in (None, "cpu"):
            what += f" on {source['hwaccel']}"
        what += f" (threads: {shown})" if threads is not None else ""
    workers = {"thread": "threads", "process": "processes"}.get(str(source.get("workers")), "?")
    line = f"source: {source.get('streams')} x {what} in {workers}"
    if source.get("loops"):
        line += f"; {source['loops']} loop points"
    return [line]


def pipeline_sections(report: Mapping[str, Any]) -> Iterable[tuple[str, list[str]]]:
    """(title, lines) of the pipeline summary and stage tables, when the report has them."""
    if "pipeline" not in report:
        return
    notes = [
        *source_lines(report),
        *rate_lines(report),
        *stall_lines(report),
        *extension_lines(report),
        *repace_lines(report),
        *load_lines(report),
        *drift_lines(report),
    ]
    yield "summary", table(summary_rows(report)) + notes
    rows = stage_rows(report)
    if rows:
        limit = lookup(report, schema.BOUND_LIMIT)
        lines = table(rows)
        if limit:
            lines.append(f"bound_fps limited by: {limit}")
        lines += cpu_bound_lines(report)
        yield "pipeline stages", lines
    streams = multistream_lines(report)
    if streams:
        yield "multistream", streams


def cpu_bound_lines(report: Mapping[str, Any]) -> list[str]:
    """The formula of ``bound.cpu_fps``, with this run's figures.

    >>> cpu_bound_lines({"pipeline": {"bound": {"cores": 2.0, "cpu_ms_per_frame": 8.3,
    ...     "cpu_fps": 240.96}}})
    ['bound.cpu_fps = cores / CPU per frame of all stages, each alone = 2 / 8.30 ms
      = 241.0 frames/s']
    """
    bound = lookup(report, "pipeline.bound") or {}
    if bound.get("cpu_fps") is None:
        return []
    return [
        f"bound.cpu_fps = cores / CPU per frame of all stages, each alone = {bound['cores']:g} "
        f"/ {bound['cpu_ms_per_frame']:.2f} ms = {bound['cpu_fps']:.1f} frames/s"
    ]


def multistream_lines(report: Mapping[str, Any]) -> list[str]:
    """Per-stream fps and losses of the multistream runs.

    >>> multistream_lines({"multistream": {"streams": 2, "per_stream_fps": [40.0, 38.0],
    ...     "dropped_by_stream": [0, 0], "paced": {"rate_per_stream": 50.0,
    ...     "per_stream_fps": [39.0, 39.5], "lost_by_stream": [88, 84]}}})
    ['flat out: 40.0, 38.0 frames/s; dropped 0, 0',
     'paced at 50.0 frames/s each: 39.0, 39.5 frames/s; lost (drops + missed ticks) 88, 84']
    """
    multi = report.get("multistream")
    if not isinstance(multi, Mapping):
        return []

    def listed(values: list[float]) -> str:
        return ", ".join(f"{v:.1f}" for v in values)

    drops = ", ".join(str(v) for v in multi.get("dropped_by_stream", []))
    lines = [f"flat out: {listed(multi['per_stream_fps'])} frames/s; dropped {drops}"]
    paced = multi.get("paced")
    if isinstance(paced, Mapping):
        lost = ", ".join(str(v) for v in paced["lost_by_stream"])
        lines.append(
            f"paced at {paced['rate_per_stream']:.1f} frames/s each: "
            f"{listed(paced['per_stream_fps'])} frames/s; lost (drops + missed ticks) {lost}"
        )
    return lines


def render_text(report: Mapping[str, Any]) -> str:
    out: list[str] = []
    sections = [*pipeline_sections(report), *micro_sections(report.get("micro", {}))]
    for title, lines in sections:
        out.append(f"\n== {title}")
        out.extend(lines)
    line = verdict_line(report)
    if line:
        out.append("\n" + line)
    return "\n".join(out) + "\n"


def render_markdown(report: Mapping[str, Any]) -> str:
    env = report.get("env", {})
    cpu = env.get("cpu", {})
    model = env.get("model") or {}
    out = [
        "# edgeloop bench report",
        "",
        f"- schema: `{report.get('schema')}`",
        f"- host: `{env.get('host')}`, CPU: {cpu.get('model')} ({cpu.get('usable_cores')} usable "
        f"cores), commit `{env.get('git_commit')}`{' (modified)' if env.get('git_dirty') else ''}",
        f"- kernels: {env.get('kernels')}",
    ]
    if model:
        out.append(f"- model: `{model.get('path')}` (sha256 `{str(model.get('sha256'))[:16]}`)")
    line = verdict_line(report)
    if line:
        out += ["", f"**{line}**"]
    for title, lines in pipeline_sections(report):
        out += ["", f"## {title}", "", "```", *lines, "```"]
    for name in report.get("plots", []):
        out += ["", f"![{name}]({name})"]
    for title, lines in micro_sections(report.get("micro", {})):
        out += ["", f"## {title}", "", "```", *lines, "```"]
    return "\n".join(out) + "\n"


def json_ready(value: Any) -> Any:
    """``value`` with NaN and infinities as None (strict JSON has neither: a dashboard's
    parser would reject the file) and NumPy scalars as Python numbers.

    >>> json_ready({"a": [1.0, float("nan")], "b": float("inf")})
    {'a': [1.0, None], 'b': None}
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_ready(report), indent=2, sort_keys=False, allow_nan=False)
    path.write_text(text + "\n")


def write_folder(report: Mapping[str, Any], folder: Path) -> None:
    """``report.json`` and ``report.md`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(report, folder / "report.json")
    (folder / "report.md").write_text(render_markdown(report))
