"""The motion gate's cost per 1080p frame: edgeloop against what a user would otherwise write.

Case ``gate1080p`` (headline keys ``micro.motion.gate1080p.<key>``): one
``MotionDetector.update`` -- the cell grid of the frame (each channel's mean over 8x8 blocks)
and its comparison with the previous frame's -- on consecutive synthetic-camera frames, with
each kernel implementation that loads, against OpenCV: ``cv2.resize(INTER_AREA)`` to the same
cells, ``cv2.absdiff`` and the channels' maximum (the same per-channel gate), and the grey gate
most examples show (``cvtColor`` to grey, then the same), which is blind to an object as bright
as its background (:mod:`core.motion`). Headline keys: ``impl`` (the default implementation),
``ratio_vs_cv2`` and ``ratio_vs_cv2_grey`` (OpenCV's median over ours: > 1 means edgeloop is
faster), ``ratio_vs_numpy``, and ``changed_cells`` against ``changed_cells_cv2`` for the same
pair of frames (OpenCV rounds the block mean where edgeloop floors it: a cell at the threshold
may differ). One thread for OpenCV; contenders measured round-robin
(:func:`bench.micro.round_robin`), so a drifting machine drifts them alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.micro import MicroOptions, round_robin
from bench.stats import ratio, summarize
from core.motion import MotionDetector
from core.synthetic import SceneConfig, SyntheticCamera
from native import kernels

HEIGHT, WIDTH = 1080, 1920
FACTOR, THRESHOLD = 8, 12  # the gate's defaults (core.filter.MotionGateConfig)
FIRST_FRAME = 300
"""Frames of the synthetic scene compared: two consecutive ones with objects moving."""


def _optional_cv2() -> Any:
    try:
        import cv2  # noqa: PLC0415 - optional
    except ImportError:
        return None
    return cv2


def _alternating(
    frames: list[np.ndarray], update: Callable[[np.ndarray], object]
) -> Callable[[], object]:
    """A call that feeds the next of ``frames`` in turn (every call compares two different)."""
    turn = [0]

    def call() -> object:
        turn[0] ^= 1
        return update(frames[turn[0]])

    return call


def _cv2_gate(cv2: Any, grey: bool) -> Callable[[np.ndarray], int]:
    """OpenCV's gate: cells by area resize, absdiff with the last frame's, count the changed."""
    size = (WIDTH // FACTOR, HEIGHT // FACTOR)
    last: list[np.ndarray] = []

    def update(frame: np.ndarray) -> int:
        image = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if grey else frame
        cells = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        changed = 0
        if last:
            diff = cv2.absdiff(cells, last[0])
            moved = diff if grey else diff.max(axis=2)
            changed = int(cv2.countNonZero((moved > THRESHOLD).view(np.uint8)))
        last[:] = [cells]
        return changed

    return update


def _gate1080p(options: MicroOptions) -> dict[str, Any]:
    camera = SyntheticCamera(SceneConfig(width=WIDTH, height=HEIGHT))
    frames = [camera.frame(FIRST_FRAME + i)[0] for i in range(2)]
    contenders: list[tuple[str, str | None, Callable[[], object]]] = []
    for impl in kernels.available_implementations():
        detector = MotionDetector(FACTOR, THRESHOLD, impl=impl)
        contenders.append(
            (f"MotionDetector.update ({impl})", impl, _alternating(frames, detector.update))
        )
    cv2 = _optional_cv2()
    if cv2 is not None:
        for grey in (False, True):
            name = (
                "cv2 grey: cvtColor, resize AREA, absdiff"
                if grey
                else "cv2: resize AREA, absdiff, max"
            )
            contenders.append(
                (name, "cv2-grey" if grey else "cv2", _alternating(frames, _cv2_gate(cv2, grey)))
            )
    threads = cv2.getNumThreads() if cv2 is not None else None
    if cv2 is not None:
        cv2.setNumThreads(1)
    try:
        runs = [(name, fn) for name, _, fn in contenders]
        samples = round_robin(runs, options, "motion: gate1080p")
    finally:
        if cv2 is not None:
            cv2.setNumThreads(threads)
    rows: list[dict[str, Any]] = []
    median: dict[str | None, float] = {}
    for name, which, _ in contenders:
        s = summarize(samples[name], unit="ms")
        row = {"name": name, "impl": which, "median_ms": s["median_ms"], "p99_ms": s["p99_ms"]}
        rows.append({**row, "cv": s["cv"], "n": s["n"]})
        median[which] = s["median_ms"]
    default = kernels.implementation_for("motion_cells")
    pair = MotionDetector(FACTOR, THRESHOLD)
    pair.update(frames[0])
    result: dict[str, Any] = {
        "rows": rows,
        "impl": default,
        "ratio_vs_numpy": ratio(median["numpy"], median[default]),
        "ratio_vs_cv2": ratio(median["cv2"], median[default]) if cv2 is not None else None,
        "ratio_vs_cv2_grey": ratio(median["cv2-grey"], median[default])
        if cv2 is not None
        else None,
        "changed_cells": pair.update(frames[1]).changed_cells,
        "changed_cells_cv2": None,
    }
    if cv2 is not None:
        gate = _cv2_gate(cv2, grey=False)
        gate(frames[0])
        result["changed_cells_cv2"] = gate(frames[1])
    return result


def run(options: MicroOptions) -> dict[str, Any]:
    """Every case of the suite (see the module docstring)."""
    result: dict[str, Any] = {
        "frame": f"{WIDTH}x{HEIGHT} BGR uint8, synthetic frames {FIRST_FRAME} and after",
        "factor": FACTOR,
        "threshold": THRESHOLD,
    }
    if options.wants("gate1080p"):
        result["gate1080p"] = _gate1080p(options)
    return result
