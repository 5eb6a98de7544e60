"""Preprocessing a 1080p BGR frame into a network input: edgeloop against what a user would
otherwise write.

Cases (headline keys are ``micro.preprocess.<case>.<key>``):

``resize224``
    ``scene_image(1080, 1920)`` -> ``1x3x224x224`` float32, RGB, ImageNet mean and std
    (classification). Contenders: edgeloop with each kernel implementation that loads; plain
    NumPy; ``cv2.resize`` + ``cvtColor`` + ``astype`` + arithmetic + transpose; and
    ``cv2.dnn.blobFromImage`` (scale and mean in the call, then the division by std).
``letterbox640``
    The same frame -> ``1x3x640x640`` float32, RGB, 0..1, letterboxed with grey 114 (YOLO).
    OpenCV: ``resize`` + ``copyMakeBorder`` + ``blobFromImage``, and ``resize`` +
    ``blobFromImage`` copied into the image region of a preallocated tensor whose padding is
    filled on each call.
``area224``
    Informational: ``resize224`` with area (box) filtering, against ``cv2.INTER_AREA``.

Headline keys per case: ``impl`` (the implementation edgeloop uses by default here),
``ratio_vs_best_cv2`` (the fastest OpenCV median over edgeloop's default median: > 1 means
edgeloop is faster) and ``ratio_vs_numpy``; ``max_diff_vs_cv2_grey`` says that the work was the
same (the largest difference from OpenCV's output, in grey levels).

Like for like: one thread for everyone (``cv2.setNumThreads(1)``, restored afterwards), the same
input, the same normalisation, edgeloop writing into a preallocated batch (so does the manual
OpenCV path; ``blobFromImage`` allocates its own, which only helps it). Contenders are measured
round-robin (:func:`bench.micro.round_robin`) so that a noisy machine drifts them alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from bench.micro import MicroOptions, round_robin
from bench.stats import ratio, summarize
from core.preprocess import PreprocessSpec, preprocess_into
from core.sample_media import scene_image
from native import kernels, numpy_kernels

HEIGHT, WIDTH = 1080, 1920

Run = Callable[[], object]


class Contender:
    """One way to do the case's work: a callable, its output (to compare), its row's labels."""

    def __init__(self, name: str, family: str, fn: Run, output: Callable[[], np.ndarray]) -> None:
        self.name = name
        self.family = family  # "edgeloop", "numpy" or "cv2"
        self.fn = fn
        self.output = output
        self.samples: list[np.ndarray] = []
        self.impl: str | None = None


def _returns(array: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: array


def _optional_cv2() -> Any:
    try:
        import cv2  # noqa: PLC0415 - an optional comparator
    except ImportError:
        return None
    return cv2


def _edgeloop(frame: np.ndarray, spec: PreprocessSpec) -> list[Contender]:
    rows = []
    for impl in kernels.available_implementations():
        batch = spec.empty_batch(1)

        def run(batch: np.ndarray = batch, impl: str = impl) -> object:
            return preprocess_into(frame, batch[0], spec, impl=impl)

        row = Contender(f"edgeloop preprocess_into ({impl})", "edgeloop", run, _returns(batch))
        row.impl = impl
        rows.append(row)
    return rows


def _numpy(frame: np.ndarray, spec: PreprocessSpec) -> Contender:
    """Plain NumPy (vectorised gathers and float32 arithmetic, as native.numpy_kernels does it)."""
    batch = spec.empty_batch(1)
    region, _ = spec.layout(HEIGHT, WIDTH)
    interpolation = kernels.AREA if spec.interpolation == "area" else kernels.BILINEAR
    constants = (spec.channel_scale, spec.channel_bias, spec.normalised_pad)

    def run() -> object:
        numpy_kernels.preprocess_into(frame, batch[0], region, *constants, True, interpolation)
        return batch

    return Contender("numpy (native.numpy_kernels, no wrapper)", "numpy", run, lambda: batch)


def _cv2_manual(cv2: Any, frame: np.ndarray, spec: PreprocessSpec, flag: int) -> Contender:
    """resize, cvtColor, astype, normalise in HWC, transpose into the batch."""
    batch = spec.empty_batch(1)
    height, width = spec.size
    mean = np.asarray(spec.mean, np.float32)
    inv_std = np.float32(1.0) / np.asarray(spec.std, np.float32)

    def run() -> object:
        small = cv2.resize(frame, (width, height), interpolation=flag)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32)
        rgb *= np.float32(spec.scale)
        rgb -= mean
        rgb *= inv_std
        batch[0] = rgb.transpose(2, 0, 1)
        return batch

    name = (
        "cv2.resize(INTER_AREA) + cvtColor + arithmetic"
        if flag == cv2.INTER_AREA
        else ("cv2.resize + cvtColor + arithmetic")
    )
    return Contender(name, "cv2", run, lambda: batch)


def _cv2_blob(cv2: Any, frame: np.ndarray, spec: PreprocessSpec) -> Contender:
    """blobFromImage with scale and mean (in pixel units), then the division by std."""
    height, width = spec.size
    mean_pixels = tuple(float(m) for m in np.asarray(spec.mean, np.float64) / spec.scale)
    std = np.asarray(spec.std, np.float32)[:, None, None]
    out: list[np.ndarray] = []

    def run() -> object:
        blob = cv2.dnn.blobFromImage(frame, spec.scale, (width, height), mean_pixels, swapRB=True)
        blob[0] /= std
        out[:] = [blob]
        return blob

    return Contender("cv2.dnn.blobFromImage (+ /std)", "cv2", run, lambda: out[0])


def _cv2_letterbox(cv2: Any, frame: np.ndarray, spec: PreprocessSpec) -> list[Contender]:
    (x0, y0, w, h), _ = spec.layout(HEIGHT, WIDTH)
    out_h, out_w = spec.size
    pad_rgb = np.asarray(spec.pad_value, np.float64)
    pad_bgr = tuple(float(v) for v in pad_rgb[::-1])  # the frame's channel order
    border = (y0, out_h - y0 - h, x0, out_w - x0 - w)
    blobs: list[np.ndarray] = []

    def bordered() -> object:
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        padded = cv2.copyMakeBorder(small, *border, cv2.BORDER_CONSTANT, value=pad_bgr)
        blobs[:] = [cv2.dnn.blobFromImage(padded, spec.scale, swapRB=True)]
        return blobs

    batch = spec.empty_batch(1)
    pad_value = (pad_rgb * spec.scale).astype(np.float32)[:, None, None]

    def into_region() -> object:
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        image = batch[0]
        image[:, :y0] = pad_value
        image[:, y0 + h :] = pad_value
        image[:, y0 : y0 + h, :x0] = pad_value
        image[:, y0 : y0 + h, x0 + w :] = pad_value
        image[:, y0 : y0 + h, x0 : x0 + w] = cv2.dnn.blobFromImage(small, spec.scale, swapRB=True)[
            0
        ]
        return batch

    return [
        Contender("cv2 resize + copyMakeBorder + blobFromImage", "cv2", bordered, lambda: blobs[0]),
        Contender(
            "cv2 resize + blobFromImage into a padded tensor", "cv2", into_region, lambda: batch
        ),
    ]


def _measure(contenders: list[Contender], case: str, options: MicroOptions) -> None:
    samples = round_robin([(c.name, c.fn) for c in contenders], options, f"preprocess: {case}")
    for c in contenders:
        c.samples.append(samples[c.name])


def _row(c: Contender) -> dict[str, Any]:
    s = summarize(np.concatenate(c.samples), unit="ms")
    row: dict[str, Any] = {"name": c.name}
    if c.impl is not None:
        row["impl"] = c.impl
    row.update(median_ms=s["median_ms"], p99_ms=s["p99_ms"], cv=s["cv"], n=s["n"])
    return row


def _case(
    case: str,
    spec: PreprocessSpec,
    extra: list[Contender],
    frame: np.ndarray,
    options: MicroOptions,
) -> dict[str, Any]:
    edgeloop = _edgeloop(frame, spec)
    contenders = [*edgeloop, _numpy(frame, spec), *extra]
    _measure(contenders, case, options)
    rows = [_row(c) for c in contenders]
    default = kernels.implementation_for("preprocess_into")
    mine = next(r for r in rows if r.get("impl") == default)
    cv2_rows = [r for r, c in zip(rows, contenders, strict=True) if c.family == "cv2"]
    numpy_row = next(r for r, c in zip(rows, contenders, strict=True) if c.family == "numpy")
    best_cv2 = min((r["median_ms"] for r in cv2_rows), default=0.0)
    reference = next((c for c in contenders if c.family == "cv2"), None)
    mine_out = next(c for c in edgeloop if c.impl == default).output()
    diff = None
    if reference is not None:
        scale = spec.channel_scale[:, None, None]
        diff = float(np.max(np.abs(mine_out[0] - reference.output()[0]) / scale))
    return {
        "rows": rows,
        "output": f"1x3x{spec.size[0]}x{spec.size[1]} {spec.dtype}",
        "impl": default,
        "ratio_vs_best_cv2": ratio(best_cv2, mine["median_ms"]),
        "ratio_vs_numpy": ratio(numpy_row["median_ms"], mine["median_ms"]),
        "max_diff_vs_cv2_grey": diff,
    }


def run(options: MicroOptions) -> dict[str, Any]:
    """Every case of the suite (see the module docstring)."""
    frame = scene_image(HEIGHT, WIDTH)
    cv2 = _optional_cv2()
    threads = cv2.getNumThreads() if cv2 is not None else None
    if cv2 is not None:
        cv2.setNumThreads(1)
    try:
        resize = PreprocessSpec.imagenet((224, 224))
        letterbox = PreprocessSpec.yolo((640, 640))
        area = PreprocessSpec.imagenet((224, 224), interpolation="area")
        cases: dict[str, tuple[PreprocessSpec, Callable[[], list[Contender]]]] = {
            "resize224": (
                resize,
                lambda: [
                    _cv2_manual(cv2, frame, resize, cv2.INTER_LINEAR),
                    _cv2_blob(cv2, frame, resize),
                ],
            ),
            "letterbox640": (letterbox, lambda: _cv2_letterbox(cv2, frame, letterbox)),
            "area224": (area, lambda: [_cv2_manual(cv2, frame, area, cv2.INTER_AREA)]),
        }
        result: dict[str, Any] = {
            "input": f"core.sample_media.scene_image({HEIGHT}, {WIDTH}), BGR uint8",
            "threads": 1,
            "kernels": kernels.describe(),
        }
        if "cython" in kernels.available_implementations():
            vector_isa = kernels.load_implementation("cython").vector_isa
            result["vector_isa"] = cast(Callable[[], str], vector_isa)()
        for name, (spec, comparators) in cases.items():
            if not options.wants(name):
                continue
            extra = comparators() if cv2 is not None else []
            result[name] = _case(name, spec, extra, frame, options)
        return result
    finally:
        if cv2 is not None:
            cv2.setNumThreads(threads)
