"""JPEG encode/decode of a 1080p frame: edgeloop against libjpeg-turbo's own ``tjbench`` and the
libraries a user would otherwise pick.

Cases (headline keys are ``micro.jpeg.<case>.<key>``):

``encode1080q85``
    ``core.jpeg.encode`` of ``scene_image(1080, 1920)`` (BGR, quality 85, 4:2:0, accurate DCT)
    against ``tjbench -accuratedct`` on the same pixels, simplejpeg, OpenCV ``imencode``, Pillow
    and PyTurboJPEG. ``ratio_vs_tjbench`` is edgeloop's median time over tjbench's (target
    <= 1.02: the binding costs next to nothing). Then throughput with one and two encoder threads,
    each with its own encoder (``threads2_speedup``, target >= 1.8: the GIL is released).
``decode1080``
    Decoding those bytes to BGR: ``core.jpeg.decode`` against ``tjbench`` (into a preallocated
    buffer, as ``decode_into`` does), simplejpeg, OpenCV ``imdecode``, Pillow and PyTurboJPEG,
    plus edgeloop's DCT-domain scaling to 1/2 and 1/4 (and tjbench's ``-scale`` for each).

Like for like: every contender gets the same image, 4:2:0 and quality 85, single-threaded
(``cv2.setNumThreads(1)``), with the accurate integer DCT. TurboJPEG's C API (so ``tjbench``
without flags, and PyTurboJPEG's default) compresses with the *fast* DCT below quality 96, so
tjbench runs with ``-accuratedct`` and PyTurboJPEG with ``TJFLAG_ACCURATEDCT``; the fast-DCT pair
(``tjbench`` default against ``encode(fast_dct=True)``) is reported as extra rows. Each library is
given its native pixel order (Pillow RGB, the others BGR), converted outside the timing. tjbench
reports a mean per run, so it runs ``ROUNDS`` times interleaved with edgeloop's measurements (a
noisy machine drifts both alike) and its row holds the median of those means.
"""

from __future__ import annotations

import importlib
import io
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.micro import MicroOptions, tjbench
from bench.stats import ratio, summarize
from bench.timing import measure
from core import jpeg
from core.sample_media import scene_image

HEIGHT, WIDTH = 1080, 1920
QUALITY = 85
ROUNDS = 3  # interleaved edgeloop/tjbench rounds (1 with --quick)

U8Image = npt.NDArray[np.uint8]
Contender = tuple[str, Callable[[], Any]]


def _row(name: str, samples: np.ndarray, **extra: Any) -> dict[str, Any]:
    s = summarize(samples, unit="ms")
    return {
        "name": name,
        "median_ms": s["median_ms"],
        "p99_ms": s["p99_ms"],
        "mean_ms": s["mean_ms"],
        "cv": s["cv"],
        "n": s["n"],
        **extra,
    }


def _tjbench_row(name: str, runs: list[tjbench.TjbenchRun], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "median_ms": statistics.median(r.mean_ms for r in runs),
        "p99_ms": None,
        "runs_mean_ms": [r.mean_ms for r in runs],
        "n": len(runs),
        "note": "tjbench reports a mean per run; median_ms is the median of those run means",
        **extra,
    }


class _Tjbench:
    """Runs tjbench for one case, remembering why not when it cannot."""

    def __init__(self, options: MicroOptions) -> None:
        self.executable = tjbench.find()
        self.options = options
        self.problem: str | None = None if self.executable else tjbench.INSTALL_HINT

    def __call__(self, source: Path, operation: str, **kwargs: Any) -> tjbench.TjbenchRun | None:
        if self.executable is None or self.problem is not None:
            return None
        budget = self.options.budget
        try:
            return tjbench.run(
                self.executable,
                source,
                operation,
                bench_s=budget.min_s,
                warmup_s=budget.warmup_s,
                **kwargs,
            )
        except (tjbench.TjbenchError, OSError, ValueError) as exc:
            self.problem = str(exc)
            return None

    def skipped(self, name: str) -> dict[str, Any]:
        return {"name": name, "skipped": self.problem, "median_ms": None}


def _interleaved(
    fn: Callable[[], Any],
    reference: Callable[[], tjbench.TjbenchRun | None],
    label: str,
    options: MicroOptions,
) -> tuple[np.ndarray, list[tjbench.TjbenchRun]]:
    """Alternate tjbench runs with edgeloop measurements; all edgeloop samples, all tjbench runs."""
    rounds = 1 if options.quick else ROUNDS
    samples: list[np.ndarray] = []
    runs: list[tjbench.TjbenchRun] = []
    for i in range(rounds):
        options.progress(f"jpeg: {label}, round {i + 1}/{rounds}")
        run = reference()
        if run is not None:
            runs.append(run)
        samples.append(measure(fn, options.budget))
    return np.concatenate(samples), runs


def _measure_all(
    contenders: list[Contender], options: MicroOptions, tj_ms: float | None, label: str
) -> list[dict[str, Any]]:
    rows = []
    for name, fn in contenders:
        options.progress(f"jpeg: {label}: {name}")
        try:
            out = fn()
        except Exception as exc:  # a comparator that does not work here is reported, not fatal
            rows.append({"name": name, "skipped": f"{type(exc).__name__}: {exc}"})
            continue
        row = _row(name, measure(fn, options.budget))
        if isinstance(out, bytes | bytearray | memoryview):
            row["bytes"] = len(out)
        elif isinstance(out, np.ndarray):
            row["shape"] = list(out.shape)
        row["ratio_vs_tjbench"] = ratio(row["median_ms"], tj_ms or 0.0)
        rows.append(row)
    return rows


# --- comparators --------------------------------------------------------------------------------


def _turbojpeg() -> tuple[Any, Any]:
    """PyTurboJPEG's module and a TurboJPEG instance, or Nones (not installed, or no library)."""
    module = _optional("turbojpeg")
    if module is None:
        return None, None
    try:
        return module, module.TurboJPEG()
    except (OSError, RuntimeError):
        return None, None


def _optional(name: str) -> Any:
    """The module ``name``, or None where it is not installed (its rows are then left out)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _encode_comparators(bgr: U8Image) -> list[Contender]:
    out: list[Contender] = []
    simplejpeg = _optional("simplejpeg")
    if simplejpeg is not None:
        out.append(
            (
                "simplejpeg",
                partial(
                    simplejpeg.encode_jpeg,
                    bgr,
                    quality=QUALITY,
                    colorspace="BGR",
                    colorsubsampling="420",
                ),
            )
        )
    cv2 = _optional("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)
        params = [
            cv2.IMWRITE_JPEG_QUALITY,
            QUALITY,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
        ]

        def opencv() -> bytes:
            return bytes(cv2.imencode(".jpg", bgr, params)[1])

        out.append(("OpenCV imencode", opencv))
    pil_image = _optional("PIL.Image")
    if pil_image is not None:
        picture = pil_image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))

        def pillow() -> bytes:
            buf = io.BytesIO()
            picture.save(buf, "JPEG", quality=QUALITY, subsampling=2)  # 2: 4:2:0
            return buf.getvalue()

        out.append(("Pillow (RGB)", pillow))
    turbojpeg, tj = _turbojpeg()
    if tj is not None:
        out.append(
            (
                "PyTurboJPEG (accurate DCT)",
                partial(
                    tj.encode,
                    bgr,
                    quality=QUALITY,
                    pixel_format=turbojpeg.TJPF_BGR,
                    jpeg_subsample=turbojpeg.TJSAMP_420,
                    flags=turbojpeg.TJFLAG_ACCURATEDCT,
                ),
            )
        )
    return out


def _decode_comparators(data: bytes) -> list[Contender]:
    out: list[Contender] = []
    simplejpeg = _optional("simplejpeg")
    if simplejpeg is not None:
        out.append(("simplejpeg", partial(simplejpeg.decode_jpeg, data, colorspace="BGR")))
    cv2 = _optional("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)
        encoded = np.frombuffer(data, np.uint8)
        out.append(("OpenCV imdecode", partial(cv2.imdecode, encoded, cv2.IMREAD_COLOR)))
    pil_image = _optional("PIL.Image")
    if pil_image is not None:

        def pillow() -> U8Image:
            return np.asarray(pil_image.open(io.BytesIO(data)))

        out.append(("Pillow (RGB, to NumPy)", pillow))
    turbojpeg, tj = _turbojpeg()
    if tj is not None:
        out.append(("PyTurboJPEG", partial(tj.decode, data, pixel_format=turbojpeg.TJPF_BGR)))
    return out


# --- threads ------------------------------------------------------------------------------------


def _throughput(image: U8Image, threads: int, duration_s: float) -> float:
    """Frames/s of ``threads`` threads encoding ``image`` flat out for ``duration_s``, each
    with its own (thread-local) encoder, created before the clock starts."""
    barrier = threading.Barrier(threads)

    def worker() -> tuple[float, float, int]:
        jpeg.encode(image, quality=QUALITY)
        barrier.wait()
        start = now = time.perf_counter()
        count = 0
        while now - start < duration_s:
            jpeg.encode(image, quality=QUALITY)
            count += 1
            now = time.perf_counter()
        return start, now, count

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        spans = [f.result() for f in futures]
    wall = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return sum(count for _, _, count in spans) / wall


def _thread_scaling(image: U8Image, options: MicroOptions) -> dict[str, Any]:
    rounds = 1 if options.quick else ROUNDS
    fps: dict[int, list[float]] = {1: [], 2: []}
    for i in range(rounds):
        for threads in (1, 2):
            options.progress(f"jpeg: encode throughput, {threads} thread(s), round {i + 1}")
            fps[threads].append(_throughput(image, threads, options.budget.min_s))
    one, two = statistics.median(fps[1]), statistics.median(fps[2])
    return {
        "threads1_fps": one,
        "threads2_fps": two,
        "threads2_speedup": ratio(two, one),
        "threads_rounds_fps": {str(k): v for k, v in fps.items()},
        "cpus_available": len(os.sched_getaffinity(0)),
    }


# --- cases --------------------------------------------------------------------------------------


def _encode_case(image: U8Image, folder: Path, options: MicroOptions) -> dict[str, Any]:
    ppm = tjbench.write_ppm(image, folder / "scene.ppm")
    tj = _Tjbench(options)
    ours = jpeg.encode(image, quality=QUALITY)
    samples, runs = _interleaved(
        lambda: jpeg.encode(image, quality=QUALITY),
        lambda: tj(ppm, "compress", quality=QUALITY, extra=("-accuratedct",)),
        "encode 1080p q85 (edgeloop, tjbench -accuratedct)",
        options,
    )
    edgeloop = _row("edgeloop core.jpeg.encode", samples, bytes=len(ours))
    rows = [edgeloop]
    tj_ms: float | None = None
    tj_bytes: int | None = None
    if runs:
        rows.append(_tjbench_row("tjbench -accuratedct", runs, bytes=runs[0].jpeg_bytes))
        tj_ms, tj_bytes = rows[-1]["median_ms"], runs[0].jpeg_bytes
    else:
        rows.append(tj.skipped("tjbench -accuratedct"))
    edgeloop["ratio_vs_tjbench"] = ratio(edgeloop["median_ms"], tj_ms or 0.0)

    # The fast-DCT pair: TurboJPEG's own default below quality 96.
    options.progress("jpeg: encode 1080p q85, fast DCT (edgeloop, tjbench default)")
    fast_bytes = len(jpeg.encode(image, quality=QUALITY, fast_dct=True))
    fast = _row(
        "edgeloop core.jpeg.encode fast_dct=True",
        measure(lambda: jpeg.encode(image, quality=QUALITY, fast_dct=True), options.budget),
        bytes=fast_bytes,
    )
    rows.append(fast)
    fast_tj = tj(ppm, "compress", quality=QUALITY)
    fast_tj_ms = fast_tj.mean_ms if fast_tj else None
    if fast_tj is not None:
        rows.append(
            _tjbench_row("tjbench (default: fast DCT)", [fast_tj], bytes=fast_tj.jpeg_bytes)
        )
    fast["ratio_vs_tjbench"] = ratio(fast["median_ms"], fast_tj_ms or 0.0)

    rows += _measure_all(_encode_comparators(image), options, tj_ms, "encode 1080p q85")
    case: dict[str, Any] = {
        "rows": rows,
        "ratio_vs_tjbench": edgeloop["ratio_vs_tjbench"],
        "ratio_vs_tjbench_mean": ratio(edgeloop["mean_ms"], tj_ms or 0.0),
        "fast_dct_ratio_vs_tjbench": fast["ratio_vs_tjbench"],
        "same_size_as_tjbench": tj_bytes == len(ours) if tj_bytes is not None else None,
        "tjbench": tj.executable,
        "tjbench_problem": tj.problem,
    }
    case.update(_thread_scaling(image, options))
    return case


def _decode_case(image: U8Image, folder: Path, options: MicroOptions) -> dict[str, Any]:
    data = jpeg.encode(image, quality=QUALITY)
    source = folder / "scene.jpg"
    source.write_bytes(data)
    tj = _Tjbench(options)
    samples, runs = _interleaved(
        lambda: jpeg.decode(data),
        lambda: tj(source, "decompress"),
        "decode 1080p (edgeloop, tjbench)",
        options,
    )
    edgeloop = _row("edgeloop core.jpeg.decode", samples)
    rows = [edgeloop]
    tj_ms: float | None = None
    if runs:
        rows.append(_tjbench_row("tjbench", runs))
        tj_ms = rows[-1]["median_ms"]
    else:
        rows.append(tj.skipped("tjbench"))
    edgeloop["ratio_vs_tjbench"] = ratio(edgeloop["median_ms"], tj_ms or 0.0)

    out = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    options.progress("jpeg: decode 1080p: edgeloop decode_into")
    into = _row(
        "edgeloop core.jpeg.decode_into (preallocated)",
        measure(lambda: jpeg.decode_into(data, out), options.budget),
    )
    into["ratio_vs_tjbench"] = ratio(into["median_ms"], tj_ms or 0.0)
    rows.append(into)
    for scale, fraction in ((0.5, "1/2"), (0.25, "1/4")):
        options.progress(f"jpeg: decode 1080p at {fraction} (edgeloop, tjbench)")
        scaled = _row(
            f"edgeloop core.jpeg.decode scale={scale}",
            measure(partial(jpeg.decode, data, scale=scale), options.budget),
            shape=list(jpeg.decoded_shape(data, scale=scale)),
        )
        reference = tj(source, "decompress", scale=fraction)
        scaled["ratio_vs_tjbench"] = ratio(
            scaled["median_ms"], reference.mean_ms if reference else 0
        )
        rows.append(scaled)
        if reference is not None:
            rows.append(_tjbench_row(f"tjbench -scale {fraction}", [reference]))
    rows += _measure_all(_decode_comparators(data), options, tj_ms, "decode 1080p")
    return {
        "rows": rows,
        "jpeg_bytes": len(data),
        "ratio_vs_tjbench": edgeloop["ratio_vs_tjbench"],
        "decode_into_ratio_vs_tjbench": into["ratio_vs_tjbench"],
        "ratio_vs_tjbench_mean": ratio(edgeloop["mean_ms"], tj_ms or 0.0),
        "tjbench": tj.executable,
        "tjbench_problem": tj.problem,
    }


def run(options: MicroOptions) -> dict[str, Any]:
    """Both cases on ``scene_image(1080, 1920)``; tjbench's files live in a temporary folder."""
    options.progress("jpeg: rendering the 1080p test image")
    image = scene_image(HEIGHT, WIDTH)
    with tempfile.TemporaryDirectory(prefix="edgeloop-jpeg-") as tmp:
        folder = Path(tmp)
        cases = {"encode1080q85": _encode_case, "decode1080": _decode_case}
        return {
            name: case(image, folder, options)
            for name, case in cases.items()
            if options.wants(name)
        }
