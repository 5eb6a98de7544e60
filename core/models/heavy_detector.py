"""The benchmark's heavy detector: a YOLOv8n-sized network in Ultralytics' exported layout,
built here with fixed-seed random weights, so that every machine benchmarks the same graph.

Why: the pipeline's gain over a naive loop shows where inference costs what a deployed detector
costs (tens of milliseconds a frame on one core), which the small trained reference detectors do
not. Random weights make its detections meaningless; its arithmetic, its output's layout and its
decode cost are a real detector's.

The network (640x640 RGB, values 0..1; Conv + SiLU throughout, batch norm folded in):

* a backbone of stride-2 3x3 convolutions, each followed by :data:`STAGE_DEPTH` 3x3
  convolutions, to 16, 32, 64, 128 and 256 channels (YOLOv8n's widths); P3, P4 and P5 (strides
  8, 16, 32) feed the head;
* YOLOv8's decoupled head on each of the three: a box branch (two 3x3 convolutions to 64
  channels, a 1x1 to 4) and a class branch (two 3x3 to 80, a 1x1 to 80);
* the decode inside the graph, as Ultralytics exports it (without DFL): a cell's centre plus
  ``sigmoid - 0.5`` of a stride for cx, cy; ``exp`` of the clamped prediction times the stride
  for w, h; sigmoid class scores.

Its one output ``output0`` is ``(batch, 84, 8400)``: cx, cy, w, h in input pixels, then the 80
COCO class scores, for the 80x80 + 40x40 + 20x20 cells of strides 8, 16 and 32 in that order,
each row-major. Its metadata is what an Ultralytics export writes (``task``, ``names``,
``stride``, ``imgsz``), so :mod:`core.formats` reads it as ``yolov8`` with COCO's names. About
8 GFLOPs (:func:`flops`; YOLOv8n: 8.7) and 3 M parameters (12 MB, float32).

Class-logit biases start from Ultralytics' initial prior, raised so that tens of candidates a
frame clear the default score floor (0.25): the decoder and NMS see a detector's load, neither
none nor 8400 boxes. The file is the same bytes on every run and machine with the same ``onnx``
(``tests/test_heavy_detector.py``), cached (:func:`heavy_detector_path`) under
``<cache>/models/`` with its SHA-256 beside it; a missing, truncated or altered file is rebuilt.

>>> model = build_model()
>>> [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
['batch', 3, 640, 640]
>>> [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
['batch', 84, 8400]
>>> 6e9 < flops(model) < 10e9
True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from core.cache import built, cache_dir, write_built
from core.coco import COCO
from core.models.graph import GraphBuilder

NAME = "yolov8-heavy"
VERSION = 1
"""Bump when the network or its weights change: the cache file name carries it."""
SEED = 20240807
INPUT_NAME = "images"
OUTPUT_NAME = "output0"
INPUT_SIZE = 640
NUM_CLASSES = len(COCO)
STRIDES = (8, 16, 32)
OPSET = 13
"""Opset 13 / IR 7: what TensorRT 8.x, ONNX Runtime >= 1.8 and JetPack 4.6+ all read."""
IR_VERSION = 7
STEM_CHANNELS = 16
STAGE_CHANNELS = (32, 64, 128, 256)
"""Each stage's width after its stride-2 convolution (strides 4, 8, 16, 32)."""
STAGE_DEPTH = 2
"""3x3 convolutions after each stage's stride-2 one."""
BOX_CHANNELS = 64
"""The box branch's width (YOLOv8n: max(16, P3 channels / 4, 64))."""
CLASS_CHANNELS = 80
"""The class branch's width (YOLOv8n: max(P3 channels, min(classes, 100)))."""
WH_CLAMP = 4.0
"""w, h predictions are clamped to +-this before ``exp`` (boxes stay finite and plausible)."""
WH_PRIOR = 4.0
"""A typical box is this many strides wide: the w, h biases start at its log."""
OBJECTS_PRIOR = 5.0
"""Ultralytics' class-bias prior (``log(5 / classes / cells)``): objects expected a frame."""
LOGIT_SPREAD = 1.0
"""Standard deviation of the class logits from cell to cell (random weights give the spread)."""
FEATURE_SCALE = {8: 0.7, 16: 1.6, 32: 2.4}
"""Root-mean-square of each level's class-branch features on the synthetic scene, measured:
random SiLU stacks drift in scale with depth, so the last class layer divides by it."""
LOGIT_OFFSET = 1.0
"""Class biases sit this far above Ultralytics' prior (tuned: tens of candidates a frame)."""
DESCRIPTION = "edgeloop heavy detector (YOLOv8 layout, random weights)"


class _GraphBuilder(GraphBuilder):
    """Appends nodes and fixed-seed initialisers; names are sequential, so bytes are stable."""

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attributes))
        return out

    def conv(
        self,
        x: str,
        c_in: int,
        c_out: int,
        *,
        kernel: int = 3,
        stride: int = 1,
        silu: bool = True,
        std: float | None = None,
        bias: np.ndarray | None = None,
    ) -> str:
        """Conv (batch norm folded into the bias), then SiLU (``x * sigmoid(x)``) unless linear;
        He-scaled weights keep activations in range through the depth."""
        name = self.name("conv")
        fan_in = c_in * kernel * kernel
        scale = std if std is not None else np.sqrt((3.0 if silu else 1.0) / fan_in)
        self.constant(f"{name}.weight", self.uniform((c_out, c_in, kernel, kernel), scale))
        self.constant(f"{name}.bias", bias if bias is not None else self.uniform((c_out,), 0.05))
        pad = kernel // 2
        y = f"{name}.out"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.weight", f"{name}.bias"],
                [y],
                name=name,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
            )
        )
        if not silu:
            return y
        return self.node("Mul", [y, self.node("Sigmoid", [y])])


def _cells(size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's cell centre (1, 2, A) in input pixels and its stride (1, 1, A), in the
    output's order: stride by stride, each grid row-major."""
    centres, strides = [], []
    for s in STRIDES:
        n = size // s
        ys, xs = np.mgrid[0:n, 0:n]
        centres.append(np.stack([xs.ravel(), ys.ravel()]).astype(np.float64) * s + s / 2)
        strides.append(np.full(n * n, s, np.float64))
    return (
        np.concatenate(centres, axis=1)[None].astype(np.float32),
        np.concatenate(strides)[None, None].astype(np.float32),
    )


def _head(g: _GraphBuilder, x: str, channels: int, stride: int) -> tuple[str, str]:
    """One level's decoupled head: raw box values (N, 4, cells) and class logits (N, C, cells)."""
    box = g.conv(x, channels, BOX_CHANNELS)
    box = g.conv(box, BOX_CHANNELS, BOX_CHANNELS)
    box_bias = np.array([0.0, 0.0, math.log(WH_PRIOR), math.log(WH_PRIOR)], np.float32)
    box = g.conv(box, BOX_CHANNELS, 4, kernel=1, silu=False, std=0.5 / BOX_CHANNELS, bias=box_bias)
    cls = g.conv(x, channels, CLASS_CHANNELS)
    cls = g.conv(cls, CLASS_CHANNELS, CLASS_CHANNELS)
    cells = (INPUT_SIZE // stride) ** 2
    prior = math.log(OBJECTS_PRIOR / NUM_CLASSES / cells)
    cls_bias = np.full(NUM_CLASSES, prior + LOGIT_OFFSET, np.float32)
    cls = g.conv(
        cls,
        CLASS_CHANNELS,
        NUM_CLASSES,
        kernel=1,
        silu=False,
        std=LOGIT_SPREAD / math.sqrt(CLASS_CHANNELS) / FEATURE_SCALE[stride],
        bias=cls_bias,
    )
    flat = g.constant(f"flat.{stride}", np.array([0, 0, -1], np.int64))
    return g.node("Reshape", [box, flat]), g.node("Reshape", [cls, flat])


def build_model(seed: int = SEED) -> onnx.ModelProto:
    """The heavy detector as an in-memory ``ModelProto`` (deterministic for a given ``seed``)."""
    g = _GraphBuilder(seed)
    x = g.conv(INPUT_NAME, 3, STEM_CHANNELS, stride=2)
    channels = STEM_CHANNELS
    levels: list[tuple[str, int, int]] = []
    for stage, width in enumerate(STAGE_CHANNELS):
        x = g.conv(x, channels, width, stride=2)
        for _ in range(STAGE_DEPTH):
            x = g.conv(x, width, width)
        channels = width
        if stage >= 1:  # strides 8, 16, 32
            levels.append((x, width, STRIDES[stage - 1]))
    heads = [_head(g, feature, width, stride) for feature, width, stride in levels]
    box = g.node("Concat", [b for b, _ in heads], axis=2)
    cls = g.node("Concat", [c for _, c in heads], axis=2)
    centres, strides = _cells()
    g.constant("decode.centres", centres)
    g.constant("decode.strides", strides)
    g.constant("decode.half", np.array(0.5, np.float32))
    g.constant("decode.clamp_min", np.array(-WH_CLAMP, np.float32))
    g.constant("decode.clamp_max", np.array(WH_CLAMP, np.float32))
    g.constant("decode.split", np.array([2, 2], np.int64))
    xy_raw, wh_raw = f"{box}.xy", f"{box}.wh"
    g.nodes.append(
        helper.make_node(
            "Split", [box, "decode.split"], [xy_raw, wh_raw], name="decode_split", axis=1
        )
    )
    offset = g.node("Sub", [g.node("Sigmoid", [xy_raw]), "decode.half"])
    xy = g.node("Add", ["decode.centres", g.node("Mul", [offset, "decode.strides"])])
    clamped = g.node("Clip", [wh_raw, "decode.clamp_min", "decode.clamp_max"])
    wh = g.node("Mul", [g.node("Exp", [clamped]), "decode.strides"])
    scores = g.node("Sigmoid", [cls])
    g.nodes.append(
        helper.make_node("Concat", [xy, wh, scores], [OUTPUT_NAME], name="decode_out", axis=1)
    )
    candidates = sum((INPUT_SIZE // s) ** 2 for s in STRIDES)
    graph = helper.make_graph(
        g.nodes,
        "edgeloop_heavy_detector",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE]
            )
        ],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, ["batch", 4 + NUM_CLASSES, candidates]
            )
        ],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="edgeloop",
        producer_version=f"{NAME}-v{VERSION}",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=(
            f"{DESCRIPTION} v{VERSION}: {INPUT_SIZE}x{INPUT_SIZE} RGB -> {OUTPUT_NAME} "
            f"(batch, {4 + NUM_CLASSES}, {candidates}), fixed-seed weights (seed {seed}); "
            "for speed work, its detections mean nothing"
        ),
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model,
        {
            "description": DESCRIPTION,
            "author": "edgeloop",
            "version": str(VERSION),
            "task": "detect",
            "stride": str(max(STRIDES)),
            "batch": "1",
            "imgsz": str([INPUT_SIZE, INPUT_SIZE]),
            "names": str(dict(enumerate(COCO))),
        },
    )
    return model


def flops(model: onnx.ModelProto) -> int:
    """Floating-point operations for one image, counted as Ultralytics does: two per
    multiply-add of every convolution (the decode's element-wise work is left out)."""
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    sizes = {INPUT_NAME: INPUT_SIZE}
    total = 0
    for node in model.graph.node:
        here = next((sizes[i] for i in node.input if i in sizes), None)
        if here is None:
            continue
        if node.op_type == "Conv":
            stride = next(
                helper.get_attribute_value(a) for a in node.attribute if a.name == "strides"
            )
            here = here // stride[0]
            c_out, c_in, kh, kw = inits[node.input[1]]
            total += 2 * c_out * c_in * kh * kw * here * here
        for out in node.output:
            sizes[out] = here
    return total


def build_heavy_detector(path: Path) -> Path:
    """Build the detector and write it to ``path`` atomically; returns ``path``."""
    return write_built(path, build_model().SerializeToString())


def heavy_detector_path(folder: Path | None = None) -> Path:
    """Path of the cached detector (``yolov8-heavy-v1.onnx``), built or rebuilt when needed."""
    path = (folder or cache_dir("models")) / f"{NAME}-v{VERSION}.onnx"
    return built(path, lambda: build_model().SerializeToString())
