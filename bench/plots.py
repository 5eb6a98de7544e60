"""The report folder's pictures (matplotlib, Agg: no display needed, CI draws them too).

* ``stage_latency_cdf.png``: each stage's service latency and the end-to-end latency as
  cumulative distributions on a log time axis -- where the tail comes from.
* ``fps_over_time.png``: frames per second per window, flat out and paced, with the naive
  loop's for scale and the bound as a line -- warm-up leftovers, drift and stalls show here.
* ``latency_over_time.png``: median end-to-end latency per window, flat out and paced.

Each function takes plain data (arrays, ``(t_s, value)`` lists) so the plots can be drawn from
a saved ``report.json`` as well as from a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Series = Sequence[tuple[float, float]]


def _pyplot() -> Any:
    try:
        import matplotlib  # noqa: PLC0415 - optional (bench extra)
    except ImportError as exc:
        raise ImportError(
            "plots need matplotlib: pip install matplotlib (or pip install -e '.[bench]')"
        ) from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def stage_cdf(stage_ms: Mapping[str, np.ndarray], path: Path, title: str = "") -> Path:
    """Cumulative distribution of each named latency sample set (ms), log x axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, samples in stage_ms.items():
        values = np.sort(np.asarray(samples, dtype=np.float64))
        values = values[values > 0]
        if values.size == 0:
            continue
        fraction = np.arange(1, values.size + 1) / values.size
        style = {"linewidth": 2.5, "color": "black"} if name == "end to end" else {}
        ax.step(values, fraction, where="post", label=name, **style)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of frames")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or "Per-stage latency, cumulative")
    ax.legend(loc="lower right", fontsize=8)
    return _save(plt, fig, path)


def over_time(
    series: Mapping[str, Series],
    path: Path,
    *,
    ylabel: str,
    title: str,
    lines: Mapping[str, float] | None = None,
) -> Path:
    """One line per named ``(t_s, value)`` series; ``lines`` are horizontal references."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for name, points in series.items():
        if points:
            t, v = zip(*points, strict=True)
            ax.plot(t, v, marker=".", label=name)
    for name, value in (lines or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax.annotate(name, (0, value), xycoords=("axes fraction", "data"), fontsize=8, va="bottom")
    ax.set_xlabel("time in the measured phase (s)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_all(
    folder: Path,
    *,
    stage_ns: Mapping[str, np.ndarray],
    e2e_ns: np.ndarray,
    fps: Mapping[str, Series],
    latency: Mapping[str, Series],
    bound_fps: float | None,
) -> list[Path]:
    """The three pictures of a standard report into ``folder``; their paths."""
    cdf = {name: np.asarray(v) / 1e6 for name, v in stage_ns.items()}
    cdf["end to end"] = np.asarray(e2e_ns) / 1e6
    return [
        stage_cdf(cdf, folder / "stage_latency_cdf.png"),
        over_time(
            fps,
            folder / "fps_over_time.png",
            ylabel="frames per second",
            title="Throughput per window",
            lines={"bound_fps": bound_fps} if bound_fps else None,
        ),
        over_time(
            latency,
            folder / "latency_over_time.png",
            ylabel="end-to-end latency, median per window (ms)",
            title="Latency per window",
        ),
    ]
