"""The synthetic camera's cost: the benchmark's own camera runs beside the pipeline it feeds, on
the same cores, so what it costs is taken from the pipeline.

Case ``render1080p`` (headline keys ``micro.synthetic.render1080p.<key>``): rows for the sensor
pass alone -- background plus brightness plus noise into a padded ring-like slot -- with each
``add_wrapped`` implementation that loads (the NumPy one is the two ``np.add`` passes the camera
used before the kernel), and for a whole frame (``SyntheticCamera.render_into``, objects and
ground truth included, the default kernels), over frames spread across the scene. Headline
keys: ``impl`` (the default implementation), ``ratio_vs_numpy`` (NumPy's sensor pass over the
default one's: > 1 means the kernel is faster) and ``render_ms`` (a whole frame's median).
Contenders are measured round-robin (:func:`bench.micro.round_robin`), so a drifting machine
drifts them alike.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from bench.micro import MicroOptions, round_robin
from bench.stats import ratio, summarize
from core.synthetic import SceneConfig, SyntheticCamera
from native import kernels

HEIGHT, WIDTH = 1080, 1920
FRAME_STRIDE = 37
"""Frames rendered in turn, this far apart: a scene's object count changes along it."""


def _render1080p(options: MicroOptions) -> dict[str, Any]:
    camera = SyntheticCamera(SceneConfig(width=WIDTH, height=HEIGHT))
    slot = np.empty((HEIGHT, WIDTH + 64, 3), np.uint8)[:, :WIDTH]  # rows padded like a ring's
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    field = rng.integers(0, 256, (HEIGHT + 64, WIDTH + 64, 3), dtype=np.uint8)
    noise = field[5 : 5 + HEIGHT, 9 : 9 + WIDTH]  # a window, as the camera reads its noise
    frames = itertools.count(0, FRAME_STRIDE)
    contenders: list[tuple[str, str | None, Any]] = []
    for impl in kernels.available_implementations():
        add = kernels.get("add_wrapped", impl)
        contenders.append(
            (
                f"sensor pass, add_wrapped ({impl})",
                impl,
                lambda add=add: add(background, 17, noise, slot),
            )
        )
    contenders.append(
        (
            "whole frame, SyntheticCamera.render_into",
            None,
            lambda: camera.render_into(next(frames), slot),
        )
    )
    runs = [(name, fn) for name, _, fn in contenders]
    samples = round_robin(runs, options, "synthetic: render1080p")
    rows = []
    for name, which, _ in contenders:
        s = summarize(samples[name], unit="ms")
        row: dict[str, Any] = {"name": name}
        if which is not None:
            row["impl"] = which
        row.update(median_ms=s["median_ms"], p99_ms=s["p99_ms"], cv=s["cv"], n=s["n"])
        rows.append(row)
    default = kernels.implementation_for("add_wrapped")
    mine = next(r for r in rows if r.get("impl") == default)
    numpy_row = next(r for r in rows if r.get("impl") == "numpy")
    return {
        "rows": rows,
        "impl": default,
        "ratio_vs_numpy": ratio(numpy_row["median_ms"], mine["median_ms"]),
        "render_ms": rows[-1]["median_ms"],
    }


def run(options: MicroOptions) -> dict[str, Any]:
    """Every case of the suite (see the module docstring)."""
    result: dict[str, Any] = {"frame": f"{WIDTH}x{HEIGHT} BGR uint8, default SceneConfig"}
    if options.wants("render1080p"):
        result["render1080p"] = _render1080p(options)
    return result
