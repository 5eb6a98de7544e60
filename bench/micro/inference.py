"""Inference: edgeloop's backends side by side with bare ONNX Runtime (and ``trtexec`` on a GPU).

One case per model, ``micro.inference.<model>``: ``classifier`` (the reference MobileNetV2,
224x224), ``detector-s`` and ``detector-m`` (when :mod:`core.models` has them; otherwise a
skipped row says why). Per model and per ``--threads`` setting (default 1 and 2):

``edgeloop onnxruntime``
    :class:`~core.backends.onnxruntime.OnnxRuntimeBackend`: ``load_ms``, ``first_inference_ms``,
    ``warmup_ms`` (its :class:`~core.backends.LoadTimings`), batch-1 latency ``median_ms``,
    ``p90_ms``, ``p99_ms``, throughput ``fps_b1``/``fps_b4``/``fps_b8`` (images per second at
    batch 1, 4, 8), ``overhead_vs_bare_ort``; for the detectors ``map50`` on fresh synthetic
    frames (``core.accuracy``).
``bare InferenceSession.run``
    What a user writes without edgeloop: ``session.run(None, {name: batch})`` with the same
    ``SessionOptions``, providers and input array. Its load and first-inference times come from
    a fresh session of its own; its latency and throughput from the backend's own session, so
    that both contenders use the same weights in memory and the same thread pool, and differ
    only by the call path (``run_with_iobinding`` into preallocated outputs, or ``run``).

Load times are those of a warm process (a first, discarded load pays ONNX Runtime's one-off
set-up, whoever comes first) with the file in the page cache. Latencies and throughputs are
measured *interleaved*, one call of each in alternation (A B B A
...), so drift on this shared machine hits both alike. ``overhead_vs_bare_ort`` is
``median(ours) / median(bare) - 1`` at batch 1 (a fraction: 0.012 is 1.2 % slower, negative is
faster), with a paired-bootstrap 95 % interval (``overhead_ci95_low``/``_high``); the case's
headline is the one at ``overhead_threads`` (1 when measured). Target: <= 0.02.

With the tensorrt backend (``--backend tensorrt``, or ``auto`` on a GPU with TensorRT) the case
also gets one row per precision (fp32, fp16, int8 calibrated on synthetic frames) with
``engine_build_ms`` and ``map50`` -- what fp16 and int8 cost in accuracy -- and a ``trtexec``
row running the same cached engine, when ``trtexec`` is installed.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.micro import MicroOptions, trtexec
from bench.stats import relative_difference_ci, summarize
from bench.timing import Budget, interleave, measure
from core.backends import Backend, LoadTimings
from core.backends.model_file import check_model_file, load_failure, load_onnx
from core.backends.onnxruntime import OnnxRuntimeBackend, import_onnxruntime, session_options
from core.device import BackendChoice, DeviceProbe, choose_backend, probe
from core.errors import EdgeloopError
from core.models import reference_model_path
from core.preprocess import PreprocessSpec, preprocess_into
from core.sample_media import scene_image

MODELS = ("classifier", "detector-s", "detector-m")
THREADS = (1, 2)
BATCHES = (1, 4, 8)
TRT_PRECISIONS = ("fp32", "fp16", "int8")
EVAL_FRAMES = 48
"""Synthetic 1080p frames per detector accuracy figure (8 with ``--quick``)."""
EVAL_SCORE_THRESHOLD = 0.01
"""Low, as for COCO's AP: the precision/recall curve must be complete."""
CALIBRATION_FRAMES = 32
CALIBRATION_SEED = 31
"""Scene of the int8 calibration frames: not a training (1000..1023) nor an evaluation scene."""
SETTLE_S = 0.2
"""Pause before the bare session loads: the backend's intra-op threads spin for a while after
its warm-up, and on two cores they would slow the other load down
(docs/decisions/0015-several-inference-processes-opt-in.md)."""
FRAME_SIZE = (720, 1280)
"""The frames preprocessed into the input buffers (content does not change the speed)."""


def _recipe(model: str) -> PreprocessSpec:
    """The model family's preprocessing: letterbox for detectors, ImageNet for the rest."""
    return PreprocessSpec.yolo() if model.startswith("detector") else PreprocessSpec.imagenet()


@cache
def _frame() -> np.ndarray:
    return scene_image(*FRAME_SIZE)


def _fill(backend: Backend, model: str) -> None:
    spec = backend.preprocess_spec(_recipe(model))
    for image in backend.input_buffer():
        preprocess_into(_frame(), image, spec)


def _load_fields(timings: LoadTimings) -> dict[str, Any]:
    row = {
        "load_ms": timings.load_s * 1e3,
        "first_inference_ms": timings.first_inference_s * 1e3,
        "warmup_ms": timings.warmup_s * 1e3,
    }
    if timings.engine_build_s is not None:
        row["engine_build_ms"] = timings.engine_build_s * 1e3
    return row


def _latency_fields(samples_ns: np.ndarray) -> dict[str, Any]:
    s = summarize(samples_ns, unit="ms")
    return {"median_ms": s["median_ms"], "p90_ms": s["p90_ms"], "p99_ms": s["p99_ms"], "n": s["n"]}


def _fps(batch: int, samples_ns: np.ndarray) -> float:
    return float(batch * samples_ns.size / (samples_ns.sum() / 1e9))


def _throughput_budget(budget: Budget) -> Budget:
    """Half the latency budget per batch size, and few calls: batch 8 of a detector is slow."""
    return replace(budget.scaled(0.5), warmup_count=1, min_count=min(budget.min_count, 5))


def _bare_load(path: Path, backend: OnnxRuntimeBackend, threads: int) -> dict[str, Any]:
    """A fresh bare session: load, first inference and warm-up as a user's code pays them."""
    ort = import_onnxruntime()
    path = check_model_file(path)  # ModelError naming the cause, as the backend's
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    try:
        bare = ort.InferenceSession(
            str(path), session_options(threads), providers=backend.provider_chain
        )
    except Exception as exc:  # ONNX Runtime's errors derive from Exception only
        raise load_failure(path, exc) from exc
    load_s = time.perf_counter() - start
    name = backend.input_spec.name
    batch = backend.input_buffer()
    start = time.perf_counter()
    bare.run(None, {name: batch[:1]})
    first_s = time.perf_counter() - start
    runs = backend.timings.warmup_runs
    start = time.perf_counter()
    for _ in range(runs):  # the backend's warm-up: full batch, then batch 1
        bare.run(None, {name: batch})
        if batch.shape[0] > 1:
            bare.run(None, {name: batch[:1]})
    del bare  # its thread pool must not spin while the others are measured
    return _load_fields(LoadTimings(load_s, first_s, time.perf_counter() - start, runs))


def _ort_pair(
    model: str, path: Path, choice: BackendChoice, threads: int, options: MicroOptions
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The edgeloop and bare rows for one threads setting, and the overhead figures."""
    backend = OnnxRuntimeBackend(
        path, threads=threads, providers=choice.providers, batch_size=max(BATCHES)
    )
    _fill(backend, model)
    ours: dict[str, Any] = {"name": "edgeloop onnxruntime", "threads": threads}
    bare: dict[str, Any] = {"name": "bare InferenceSession.run", "threads": threads}
    ours.update(_load_fields(backend.timings))
    bare.update(_bare_load(path, backend, threads))
    run, name, batch = backend.session.run, backend.input_spec.name, backend.input_buffer()
    feeds = {b: {name: batch[:b]} for b in BATCHES}

    def pair(b: int) -> tuple[Callable[[], object], Callable[[], object]]:
        feed = feeds[b]
        return (lambda: backend.infer(b)), (lambda: run(None, feed))

    options.progress(f"inference: {model}: threads {threads}: batch-1 latency, interleaved")
    mine_ns, bare_ns = interleave(*pair(1), options.budget)
    ours.update(_latency_fields(mine_ns))
    bare.update(_latency_fields(bare_ns))
    point, low, high = relative_difference_ci(mine_ns, bare_ns)
    for b in BATCHES:
        options.progress(f"inference: {model}: threads {threads}: throughput at batch {b}")
        mine_b, bare_b = interleave(*pair(b), _throughput_budget(options.budget))
        ours[f"fps_b{b}"] = _fps(b, mine_b)
        bare[f"fps_b{b}"] = _fps(b, bare_b)
    ours["overhead_vs_bare_ort"] = point
    ours["overhead_ci95"] = [low, high]  # a list: in the JSON, not in the table
    ours["provider"] = backend.describe().provider
    if model.startswith("detector") and threads == min(options.threads or THREADS):
        ours["map50"] = _map50(backend, model, path, options)
    backend.close()
    figures = {
        "overhead_vs_bare_ort": point,
        "overhead_ci95_low": low,
        "overhead_ci95_high": high,
        "overhead_pairs": int(mine_ns.size),
        "overhead_threads": threads,
    }
    return [ours, bare], figures


# -- detector accuracy --------------------------------------------------------------------------


def _map50(backend: Backend, model: str, path: Path, options: MicroOptions) -> float | str:
    """mAP@0.5 of ``backend`` on fresh synthetic 1080p frames, or why it could not be had."""
    try:
        from core.accuracy import map50  # noqa: PLC0415 - written alongside, may be absent
        from core.models.detector import METADATA_KEY, evaluation_frames  # noqa: PLC0415
        from core.models.model_card import EVAL_SEED  # noqa: PLC0415
        from core.postprocess import decode_batch  # noqa: PLC0415
        from core.synthetic import SceneConfig  # noqa: PLC0415
    except ImportError as exc:
        return f"skipped: accuracy tools not available ({exc})"
    meta = {p.key: p.value for p in load_onnx(check_model_file(path)).metadata_props}
    names = tuple(json.loads(meta.get(METADATA_KEY, "{}")).get("class_names", ()))
    if not names:
        return f"skipped: {path.name} has no class names in its {METADATA_KEY!r} metadata"
    count = 8 if options.quick else EVAL_FRAMES
    options.progress(f"inference: {model}: mAP@0.5 on {count} synthetic frames")
    spec = backend.preprocess_spec(_recipe(model))
    buffer = backend.input_buffer()
    predictions: list[Any] = []
    truths: list[Any] = []
    transforms: list[Any] = []

    def flush() -> None:
        (raw, *_) = backend.infer(len(transforms))
        found = decode_batch(
            raw, transforms, score_threshold=EVAL_SCORE_THRESHOLD, class_names=names
        )
        predictions.extend(found)
        transforms.clear()

    for frame, truth in evaluation_frames(SceneConfig(seed=EVAL_SEED), count):
        transforms.append(preprocess_into(frame, buffer[len(transforms)], spec))
        truths.append(truth)
        if len(transforms) == backend.capacity:
            flush()
    if transforms:
        flush()
    return float(map50(predictions, truths, len(names)))


# -- TensorRT -----------------------------------------------------------------------------------


def _calibration_folder(model: str, folder: Path) -> Path:
    """Sample frames like the ones the model will see: synthetic camera frames (of a scene
    neither training nor evaluation uses) for the detectors, varied scenes otherwise."""
    frames: list[np.ndarray] = []
    if model.startswith("detector"):
        try:
            from core.models.detector import evaluation_frames  # noqa: PLC0415
            from core.synthetic import SceneConfig  # noqa: PLC0415

            config = SceneConfig(seed=CALIBRATION_SEED)
            frames = [f for f, _ in evaluation_frames(config, CALIBRATION_FRAMES)]
        except ImportError:
            frames = []
    if not frames:
        frames = [scene_image(360, 640, seed=1000 + i) for i in range(CALIBRATION_FRAMES)]
    for i, frame in enumerate(frames):
        np.save(folder / f"{i:03d}.npy", frame)
    return folder


def _tensorrt_rows(
    model: str, path: Path, device: DeviceProbe, options: MicroOptions
) -> list[dict[str, Any]]:
    """One row per precision, then trtexec on each cached engine when installed."""
    from core.backends.tensorrt import TensorRTBackend  # noqa: PLC0415 - GPU only

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgeloop-calib-") as tmp:
        frames = _calibration_folder(model, Path(tmp))
        for precision in TRT_PRECISIONS:
            name = f"edgeloop tensorrt {precision}"
            options.progress(f"inference: {model}: {name}")
            try:
                backend = TensorRTBackend(
                    path,
                    batch_size=max(BATCHES),
                    precision=precision,
                    opt_batch=1,
                    calibration_frames=frames if precision == "int8" else None,
                    calibration_spec=_recipe(model),
                )
            except EdgeloopError as exc:
                rows.append({"name": name, "skipped": str(exc)})
                continue
            _fill(backend, model)
            row: dict[str, Any] = {"name": name, "provider": backend.describe().provider}
            row.update(_load_fields(backend.timings))
            row.update(_latency_fields(measure(partial(backend.infer, 1), options.budget)))
            for b in BATCHES:
                samples = measure(partial(backend.infer, b), _throughput_budget(options.budget))
                row[f"fps_b{b}"] = _fps(b, samples)
            if model.startswith("detector"):
                row["map50"] = _map50(backend, model, path, options)
            rows.append(row)
            rows.append(_trtexec_row(backend, precision, device, options))
            backend.close()
    return rows


def _trtexec_row(
    backend: Any, precision: str, device: DeviceProbe, options: MicroOptions
) -> dict[str, Any]:
    name = f"trtexec {precision} (same engine)"
    executable = device.runtimes.trtexec
    if executable is None:
        return {"name": name, "skipped": "trtexec not found (TensorRT's bin folder on PATH)"}
    height, width = backend.input_size
    try:
        result = trtexec.run(
            executable,
            backend.engine_file,
            backend.input_spec.name,
            (backend.plan.chunks(1)[0][1], 3, height, width),
            seconds=max(1.0, options.budget.min_s),
        )
    except (trtexec.TrtexecError, OSError) as exc:
        return {"name": name, "skipped": str(exc)}
    return {
        "name": name,
        "median_ms": result.latency_median_ms,
        "p99_ms": result.latency_p99_ms,
        "gpu_compute_median_ms": result.compute_median_ms,
        "fps_b1": result.throughput_qps,
    }


# -- the suite ----------------------------------------------------------------------------------


def _model_case(
    model: str,
    path: Path,
    *,
    choice: BackendChoice,
    device: DeviceProbe,
    threads: Sequence[int],
    options: MicroOptions,
) -> dict[str, Any]:
    ort_choice = choice
    if choice.backend != "onnxruntime":  # the overhead is ONNX Runtime's, on its best provider
        ort_choice = choose_backend("onnxruntime", device)
    # A process's first session pays ONNX Runtime's one-off set-up (tens of ms): not the model's.
    OnnxRuntimeBackend(path, threads=1, providers=ort_choice.providers, warmup_runs=0).close()
    rows: list[dict[str, Any]] = []
    headline: dict[str, Any] = {}
    for t in threads:
        pair, figures = _ort_pair(model, path, ort_choice, t, options)
        rows += pair
        if not headline or t == 1:
            headline = figures
    if choice.backend == "tensorrt":
        rows += _tensorrt_rows(model, path, device, options)
    maps = [r["map50"] for r in rows if isinstance(r.get("map50"), float)]
    case: dict[str, Any] = {"rows": rows, "model": str(path), **headline}
    if maps:
        case["map50"] = maps[0]
    return case


def run(options: MicroOptions) -> dict[str, Any]:
    """Every case of the suite (see the module docstring)."""
    device = probe()
    choice = choose_backend(options.backend, device)
    threads = tuple(options.threads) or THREADS
    result: dict[str, Any] = {
        "backend": choice.backend,
        "choice": str(choice),
        "threads": list(threads),
        "batches": list(BATCHES),
    }
    for model in MODELS:
        if not options.wants(model):
            continue
        try:
            path = reference_model_path(model)
        except EdgeloopError as exc:
            result[model] = {"rows": [{"name": model, "skipped": str(exc)}]}
            continue
        options.progress(f"inference: {model}: {path}")
        result[model] = _model_case(
            model, path, choice=choice, device=device, threads=threads, options=options
        )
    return result
