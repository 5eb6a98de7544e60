"""Tiny ONNX models built in the tests (onnx.helper, fixed-seed weights): the one helper for
model files, as ``core.sample_media`` is for images.

``conv_model`` is a 3x3 stride-2 convolution (3 -> 4 channels) then a global average pool: two
outputs, ``features (N, 4, H/2, W/2)`` and ``pooled (N, 4)``, per-image independent (so batch
padding cannot leak between images). The input's declared shape is whatever the test needs:
dynamic or fixed batch, dynamic or fixed height and width, even shapes the pipeline refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Dim = int | str


def _save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 7
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def conv_model(
    path: Path, shape: Sequence[Dim] = ("batch", 3, 32, 32), *, float16: bool = False
) -> Path:
    """The conv + pool model with input ``images`` declared as ``shape`` (NCHW)."""
    rng = np.random.default_rng(7)
    dtype = np.float16 if float16 else np.float32
    elem = TensorProto.FLOAT16 if float16 else TensorProto.FLOAT
    weight = (rng.random((4, 3, 3, 3)) - 0.5).astype(dtype)
    bias = (rng.random(4) - 0.5).astype(dtype)
    batch, height, width = shape[0], shape[2], shape[3]
    half = [d // 2 if isinstance(d, int) else f"{d}_half" for d in (height, width)]
    nodes = [
        helper.make_node(
            "Conv", ["images", "w", "b"], ["features"], pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        helper.make_node("GlobalAveragePool", ["features"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["pooled"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_conv",
        [helper.make_tensor_value_info("images", elem, list(shape))],
        [
            helper.make_tensor_value_info("features", elem, [batch, 4, *half]),
            helper.make_tensor_value_info("pooled", elem, [batch, 4]),
        ],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def identity_model(
    path: Path,
    inputs: Sequence[tuple[str, Sequence[Dim]]],
    *,
    elem_type: int = TensorProto.FLOAT,
) -> Path:
    """A model passing each input through (``Identity``): loads anywhere, for input checks."""
    nodes = [helper.make_node("Identity", [name], [f"{name}_out"]) for name, _ in inputs]
    graph = helper.make_graph(
        nodes,
        "identity",
        [helper.make_tensor_value_info(name, elem_type, list(s)) for name, s in inputs],
        [helper.make_tensor_value_info(f"{name}_out", elem_type, list(s)) for name, s in inputs],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def random_images(shape: Sequence[int], seed: int = 0, dtype: type = np.float32) -> np.ndarray:
    """Inputs in 0..1, as preprocessed images are."""
    return np.random.default_rng(seed).random(tuple(shape)).astype(dtype)


def nan_detector(path: Path, anchors: int = 16, classes: int = 5) -> Path:
    """A "detector" with a YOLO-style output ``(N, anchors, 4 + classes)`` that is all NaN:
    the input's mean times a NaN constant (so the output depends on the input and the batch)."""
    nan = np.full((1, anchors, 4 + classes), np.nan, np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "nan"], ["detections"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nan_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [
            helper.make_tensor_value_info(
                "detections", TensorProto.FLOAT, ["batch", anchors, 4 + classes]
            )
        ],
        [
            numpy_helper.from_array(nan, "nan"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
        ],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
