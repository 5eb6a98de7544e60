"""Preparing a model for the devices: an int8 copy by ONNX Runtime's static quantization (QDQ),
calibrated on the user's own frames, with what it costs in accuracy and gains in speed.

What is quantized: every operator that feeds a convolution or a matrix product, and those
themselves, which is where a detector spends its time. What is left in float: the *decode
tail*, every operator after the last of them (reshapes, sigmoids, the box arithmetic, the final
concatenation). Quantized, that tail puts box coordinates in pixels and scores in 0..1 into
one 8-bit tensor. On the reference detector that cost 0.029 mAP@0.5; left in float it costs
0.0001, and the int8 model still runs twice as fast
(docs/decisions/0037-int8-leaves-the-decode-tail-in-float.md).

The calibration frames are a folder of JPEG or PNG images (``--calibration DIR``), read in name
order and prepared as the pipeline prepares frames for the model (its format's preprocessing
at its input size). They should be what the cameras see: the ranges of the activations are
taken from them.

:func:`int8_model` writes the model; :func:`speed_ratio` times both, interleaved on one thread;
:func:`accuracy_change` scores both on the synthetic set where the model detects its classes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError, SourceError, SourceFrameError

__all__ = [
    "CALIBRATION_FRAMES",
    "AccuracyChange",
    "accuracy_change",
    "decode_tail",
    "int8_model",
    "speed_ratio",
]

CALIBRATION_FRAMES = 200
"""Images read from the calibration folder at most (in name order)."""
MIN_CALIBRATION_FRAMES = 8
"""Fewer images than this give ranges that do not describe the cameras: refused."""
HEAVY_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
SPEED_RUNS = 20
"""Calls of each model :func:`speed_ratio` times, interleaved."""


def decode_tail(model: Any) -> list[str]:
    """The names of the nodes of ``model`` (an ``onnx.ModelProto``) after its last heavy
    operator (:data:`HEAVY_OPS`): those whose outputs reach no convolution or matrix product."""
    producers = {output: node for node in model.graph.node for output in node.output}
    feeds: set[str] = set()
    stack = [node for node in model.graph.node if node.op_type in HEAVY_OPS]
    while stack:
        node = stack.pop()
        for name in node.input:
            producer = producers.get(name)
            if producer is not None and producer.name not in feeds:
                feeds.add(producer.name)
                stack.append(producer)
    return [
        node.name
        for node in model.graph.node
        if node.op_type not in HEAVY_OPS and node.name not in feeds
    ]


def _calibration_inputs(model: Path, folder: Path, labels: str | None) -> list[np.ndarray]:
    """Up to :data:`CALIBRATION_FRAMES` images of ``folder``, each prepared for ``model`` as
    the pipeline would: a ``(1, 3, H, W)`` float array each."""
    from core.models.manifest import loaded_model  # noqa: PLC0415 - heavy, on demand
    from core.preprocess import preprocess_into  # noqa: PLC0415
    from core.sources import SourceConfig, open_source  # noqa: PLC0415

    if not folder.is_dir():
        raise ModelError(f"--calibration {folder}: no such folder of images")
    with loaded_model(model, labels) as (backend, choice):
        spec = backend.preprocess_spec(choice.preprocess())
        dtype = backend.input_dtype
    inputs: list[np.ndarray] = []
    skipped = 0
    source = open_source(SourceConfig(kind="images", uri=str(folder)), 0)
    try:
        height, width = source.open()
        image = np.empty((height, width, 3), np.uint8)
        while len(inputs) < CALIBRATION_FRAMES:
            try:
                if source.read_into(image) is None:
                    break
            except SourceFrameError:  # another size, or it does not decode: the next one
                skipped += 1
                continue
            tensor = np.zeros((1, 3, *spec.size), dtype)
            preprocess_into(image, tensor[0], spec)
            inputs.append(tensor)
    except SourceError as exc:
        raise ModelError(f"--calibration {folder}: {exc}") from exc
    finally:
        source.close()
    if len(inputs) < MIN_CALIBRATION_FRAMES:
        raise ModelError(
            f"--calibration {folder}: {len(inputs)} usable image(s) ({skipped} skipped: "
            f"another size than the first, or not decodable); calibrating needs at least "
            f"{MIN_CALIBRATION_FRAMES} of what the cameras see (JPEG or PNG, one size)"
        )
    return inputs


def int8_model(model: Path, out: Path, calibration: Path, labels: str | None = None) -> int:
    """Write ``model`` quantized to int8 (QDQ, weights per channel, the decode tail in float)
    to ``out``, calibrated on the images of ``calibration``; how many images it used.
    :class:`ModelError` naming the cause for a folder without enough images or a model ONNX
    Runtime cannot quantize."""
    import onnx  # noqa: PLC0415 - heavy, on demand
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    inputs = _calibration_inputs(model, calibration, labels)
    proto = onnx.load(str(model))
    input_name = proto.graph.input[0].name

    class Frames(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._next: Iterator[np.ndarray] = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._next, None)
            return None if tensor is None else {input_name: tensor}

    out.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process, on the root logger, every call
    try:
        quantize_static(
            str(model),
            str(out),
            Frames(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=decode_tail(proto),
        )
    except Exception as exc:  # ONNX Runtime's own errors, whatever their class
        out.unlink(missing_ok=True)
        raise ModelError(f"{model.name}: ONNX Runtime cannot quantize it: {exc}") from exc
    finally:
        root.setLevel(level)
    return len(inputs)


def speed_ratio(fp32: Path, int8: Path, runs: int = SPEED_RUNS) -> dict[str, float]:
    """Both models' time per frame here, on one thread, calls interleaved (A B A B ...) so
    that the machine's drift falls on both: their medians in ms and ``speedup`` (fp32 over
    int8) and ``latency_ratio`` (int8 over fp32)."""
    from core.backends import open_backend  # noqa: PLC0415 - heavy, on demand

    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    with (
        open_backend(fp32, "onnxruntime", threads=1) as a,
        open_backend(int8, "onnxruntime", threads=1) as b,
    ):
        for _ in range(runs):
            for key, backend in (("fp32", a), ("int8", b)):
                start = time.perf_counter()
                backend.infer(1, 0)
                times[key].append(time.perf_counter() - start)
    fp32_ms = float(np.median(times["fp32"])) * 1e3
    int8_ms = float(np.median(times["int8"])) * 1e3
    return {
        "fp32_ms": round(fp32_ms, 3),
        "int8_ms": round(int8_ms, 3),
        "speedup": round(fp32_ms / int8_ms, 3),
        "latency_ratio": round(int8_ms / fp32_ms, 3),
    }


@dataclass(frozen=True)
class AccuracyChange:
    """mAP@0.5 of both on the synthetic set, or why it could not be measured."""

    fp32: float | None
    int8: float | None
    frames: int
    why_not: str | None = None

    @property
    def drop(self) -> float | None:
        if self.fp32 is None or self.int8 is None:
            return None
        return self.fp32 - self.int8


def accuracy_change(
    fp32: Path, int8: Path, frames: int, labels: str | None = None
) -> AccuracyChange:
    """Both models scored on ``frames`` synthetic frames
    (:func:`core.models.manifest.evaluate_model`); a model that is not a detector of the
    scene's classes cannot be scored there (``why_not``)."""
    from core.models.manifest import evaluate_model  # noqa: PLC0415

    try:
        before = evaluate_model(fp32, frames=frames, labels=labels)["map50"]
    except ModelError as exc:
        return AccuracyChange(None, None, frames, why_not=str(exc))
    after = evaluate_model(int8, frames=frames, labels=labels)["map50"]
    return AccuracyChange(float(before), float(after), frames)
