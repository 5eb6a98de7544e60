"""Small ONNX models whose outputs are tensors the test chooses, one builder per output layout
of :mod:`core.formats` (onnx.helper, opset 17, deterministic: no weights but the outputs).

Every model takes ``images`` float32 ``(1, 3, H, W)`` and gives each output as
``Constant(values) + 0 * ReduceMean(images)`` (cast for integer outputs): the input stays
connected, ONNX Runtime runs a real graph, and every output shape is static. NaN and infinity
in ``values`` come through unchanged (the mean of an image is finite).

The tensors given to a layout's builder are one image's (no batch axis); the builder adds the
batch axis of 1 (:func:`fixed_output_model` takes whole outputs). ``metadata`` becomes the
file's ``metadata_props`` (what exporters write: :func:`ultralytics_metadata`,
:func:`yolov5_metadata`, :func:`edgeloop_metadata`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
SIZE = (64, 96)
"""(height, width) the models take unless told: grid counts stay small (8x12 + 4x6 + 2x3 = 126
anchor-free candidates at strides 8/16/32, 128 with stride 64 too)."""


def ultralytics_metadata(
    names: Sequence[str],
    task: str = "detect",
    size: tuple[int, int] = SIZE,
    model: str = "YOLOv8n",
) -> dict[str, str]:
    """What an Ultralytics (YOLOv8 and later) export writes; ``model`` as its description
    names it (``rtdetr-l`` for RT-DETR)."""
    return {
        "description": f"Ultralytics {model} model",
        "author": "Ultralytics",
        "task": task,
        "stride": "32",
        "batch": "1",
        "imgsz": str(list(size)),
        "names": str(dict(enumerate(names))),
    }


def yolov5_metadata(names: Sequence[str]) -> dict[str, str]:
    """What YOLOv5's ``export.py`` writes: ``stride`` and ``names``, no ``task``."""
    return {"stride": "32", "names": str(dict(enumerate(names)))}


def edgeloop_metadata(names: Sequence[str]) -> dict[str, str]:
    """What edgeloop's own exports write: JSON under the ``edgeloop`` key."""
    return {"edgeloop": json.dumps({"class_names": list(names), "version": 1})}


def fixed_output_model(
    path: Path,
    outputs: Sequence[tuple[str, np.ndarray]],
    *,
    size: tuple[int, int] = SIZE,
    metadata: Mapping[str, str] | None = None,
    input_type: int = TensorProto.FLOAT,
) -> Path:
    """A model giving each ``(name, tensor)`` of ``outputs`` (whole, batch axis included) for
    any input ``(1, 3, *size)`` of ``input_type``. Tensors are float32 or int32."""
    nodes = [
        helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[0, 1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Cast", ["nothing"], ["nothing_int"], to=TensorProto.INT32),
    ]
    infos = []
    for name, tensor in outputs:
        value = np.asarray(tensor)
        if value.dtype == np.float32:
            elem, nothing = TensorProto.FLOAT, "nothing"
        elif value.dtype == np.int32:
            elem, nothing = TensorProto.INT32, "nothing_int"
        else:
            raise TypeError(f"{name}: float32 or int32 outputs only, got {value.dtype}")
        nodes.append(
            helper.make_node(
                "Constant", [], [f"{name}_value"], value=numpy_helper.from_array(value, "v")
            )
        )
        nodes.append(helper.make_node("Add", [f"{name}_value", nothing], [name]))
        infos.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "fixed_outputs",
        [helper.make_tensor_value_info("images", input_type, [1, 3, *size])],
        infos,
        [numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _f32(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, np.float32)[None]


def one_output_model(
    output: str,
    path: Path,
    rows: np.ndarray,
    *,
    size: tuple[int, int] = SIZE,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """A model whose one output ``output`` is ``(1, *rows.shape)``: one image's ``rows``."""
    return fixed_output_model(path, [(output, _f32(rows))], size=size, metadata=metadata)


yolov8_model = partial(one_output_model, "output0")
"""Ultralytics' ``(1, 4 + C, A)``: ``rows`` is one image's ``(4 + C, A)``."""
yolov5_model = partial(one_output_model, "output0")
"""YOLOv5's ``(1, A, 5 + C)``: ``rows`` is one image's ``(A, 5 + C)``."""
yolox_model = partial(one_output_model, "output")
"""YOLOX's raw grid ``(1, A, 5 + C)``: ``rows`` is one image's ``(A, 5 + C)``."""
edgeloop_model = partial(one_output_model, "detections")
"""edgeloop's ``(1, A, 4 + C)`` (x1, y1, x2, y2, class scores)."""
rows6_model = partial(one_output_model, "output0")
"""An end-to-end ``(1, K, 6)``: x1, y1, x2, y2, score, class per row."""
queries_model = partial(one_output_model, "output0")
"""An RT-DETR-style ``(1, K, 4 + C)``: normalized cx, cy, w, h and class scores."""


def four_model(
    path: Path,
    count: int,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    *,
    size: tuple[int, int] = SIZE,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """EfficientNMS's four outputs: ``num_dets (1, 1)`` int32, ``det_boxes (1, K, 4)``,
    ``det_scores (1, K)``, ``det_classes (1, K)`` int32."""
    outputs = [
        ("num_dets", np.array([[count]], np.int32)),
        ("det_boxes", _f32(boxes)),
        ("det_scores", _f32(scores)),
        ("det_classes", np.asarray(classes, np.int32)[None]),
    ]
    return fixed_output_model(path, outputs, size=size, metadata=metadata)


def ssd_model(
    path: Path,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    count: float,
    *,
    size: tuple[int, int] = SIZE,
    metadata: Mapping[str, str] | None = None,
    input_type: int = TensorProto.FLOAT,
    tf2: bool = False,
) -> Path:
    """The TF Object Detection API's four outputs: ``detection_boxes (1, K, 4)`` normalized
    y1, x1, y2, x2, ``detection_scores (1, K)``, ``detection_classes (1, K)`` (1-based, float),
    ``num_detections (1,)`` (float); ``input_type`` ``TensorProto.UINT8`` as tf2onnx exports
    them (with ``--inputs-as-nchw``). ``tf2``: with a TF2 export's four other outputs, all eight
    in its (alphabetical) order."""
    k = len(scores)
    outputs = [
        ("detection_boxes", _f32(boxes)),
        ("detection_scores", _f32(scores)),
        ("detection_classes", _f32(classes)),
        ("num_detections", np.array([count], np.float32)),
    ]
    if tf2:
        outputs += [
            ("detection_anchor_indices", _f32(np.arange(k))),
            ("detection_multiclass_scores", _f32(np.zeros((k, 4)))),
            ("raw_detection_boxes", _f32(np.zeros((20, 4)))),
            ("raw_detection_scores", _f32(np.zeros((20, 4)))),
        ]
        outputs.sort()
    return fixed_output_model(path, outputs, size=size, metadata=metadata, input_type=input_type)


def classifier_model(
    path: Path,
    logits: np.ndarray,
    *,
    size: tuple[int, int] = SIZE,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """A classifier's ``(1, C)``."""
    return fixed_output_model(path, [("logits", _f32(logits))], size=size, metadata=metadata)


def probability_map_model(
    path: Path, *, size: tuple[int, int] = SIZE, metadata: Mapping[str, str] | None = None
) -> Path:
    """A text-detection style raw output ``(1, 1, H, W)``: a fixed probability map."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width]
    prob = ((xs + ys) % 7 / 6.0).astype(np.float32)[None]
    return fixed_output_model(path, [("maps", _f32(prob))], size=size, metadata=metadata)
