"""Degraded versions of a model, for measuring what a device does with a bad update
(``python -m bench swap``, the model manager's tests): built from the model itself, so they
load, have its inputs, metadata and classes, and pass or fail exactly the checks meant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["batched_nan_variant", "nan_variant"]


def _opened(source: Path) -> tuple[onnx.ModelProto, str]:
    """``source`` loaded, its (one) output renamed ``<name>_raw`` inside the graph, so that a
    node added after it can produce the output under its old name; and that name."""
    model = onnx.load(str(source))
    output = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{name}_raw" if name == output else name for name in node.output]
        node.input[:] = [f"{name}_raw" if name == output else name for name in node.input]
    return model, output


def _saved(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def nan_variant(source: Path, path: Path) -> Path:
    """``source`` whose output is multiplied by a NaN constant: every value it gives is NaN
    (the golden check refuses it)."""
    model, output = _opened(source)
    model.graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nan"))
    model.graph.node.append(helper.make_node("Mul", [f"{output}_raw", "nan"], [output]))
    return _saved(model, path)


def batched_nan_variant(source: Path, path: Path) -> Path:
    """``source`` (one output) whose output is NaN for every image but the first of a batch:
    one image at a time (a golden check) it gives the source's outputs exactly, in batches it
    fails -- a model that passes its checks and breaks on the live stream."""
    model, output = _opened(source)
    graph = model.graph
    image = graph.input[0].name
    constants: dict[str, np.ndarray] = {
        "zero": np.array(0, np.int64),
        "step": np.array(1, np.int64),
        "nan": np.array(np.nan, np.float32),
        "one": np.array(1.0, np.float32),
        "column": np.array([-1, 1, 1], np.int64),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    graph.node.extend(
        [
            helper.make_node("Shape", [image], ["input_shape"]),
            helper.make_node("Gather", ["input_shape", "zero"], ["rows"], axis=0),
            helper.make_node("Range", ["zero", "rows", "step"], ["row_index"]),
            helper.make_node("Greater", ["row_index", "zero"], ["not_first"]),
            helper.make_node("Where", ["not_first", "nan", "one"], ["row_factor"]),
            helper.make_node("Reshape", ["row_factor", "column"], ["row_factor3"]),
            helper.make_node("Mul", [f"{output}_raw", "row_factor3"], [output]),
        ]
    )
    return _saved(model, path)
