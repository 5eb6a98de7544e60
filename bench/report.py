"""Report formats: the JSON contract (``schema`` ``edgeloop.bench/1``), terminal tables and a
Markdown copy of them. Figures keep their unit in their key; tables show it in the header.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import SCHEMA

# Columns never shown in tables (identifiers or bulky raw data).
_HIDDEN = {"contender", "impl_forced", "samples_ns", "skipped"}


def new_report(env: dict[str, Any]) -> dict[str, Any]:
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


def render_text(report: dict[str, Any]) -> str:
    out: list[str] = []
    for title, lines in micro_sections(report.get("micro", {})):
        out.append(f"\n== {title}")
        out.extend(lines)
    return "\n".join(out) + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    env = report.get("env", {})
    cpu = env.get("cpu", {})
    out = [
        "# edgeloop bench report",
        "",
        f"- schema: `{report.get('schema')}`",
        f"- host: `{env.get('host')}`, CPU: {cpu.get('model')} ({cpu.get('usable_cores')} usable "
        f"cores), commit `{env.get('git_commit')}`",
        f"- kernels: {env.get('kernels')}",
    ]
    for title, lines in micro_sections(report.get("micro", {})):
        out += ["", f"## {title}", "", "```", *lines, "```"]
    return "\n".join(out) + "\n"


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")


def write_folder(report: dict[str, Any], folder: Path) -> None:
    """``report.json`` and ``report.md`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(report, folder / "report.json")
    (folder / "report.md").write_text(render_markdown(report))
