"""The reference classifier: a MobileNetV2 (224x224 RGB -> 1000 logits) built here, with
fixed-seed weights, so every machine benchmarks the very same network without a download.

Why MobileNetV2: it is the edge classifier people deploy (depthwise-separable convolutions,
inverted residuals, ReLU6), about 300 MFLOPs and 3.5 M parameters at width 1.0 -- small enough
for a 2-core gateway, real enough that backend overhead is measured against honest work. Batch
norm is folded into the convolutions' biases, as exporters do for inference.

The weights are uniform random (``numpy.random.Generator.random``, whose stream NumPy keeps
stable) scaled like He initialisation, so activations stay in ReLU6's range through the depth:
the logits mean nothing, the arithmetic is the same as a trained model's. The file is the same
bytes on every run and machine with the same ``onnx`` (``tests/test_classifier_model.py``).

The built file is cached (:func:`classifier_path`) under ``<cache>/models/`` with its SHA-256
beside it; a missing, truncated or altered file is rebuilt (about a second).

>>> from onnx import ModelProto
>>> model = build_model()
>>> [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
['batch', 3, 224, 224]
>>> model.graph.output[0].name
'logits'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from core.cache import built, cache_dir, write_built
from core.models.graph import GraphBuilder

NAME = "classifier"
VERSION = 1
"""Bump when the network or its weights change: the cache file name carries it."""
SEED = 20240611
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
INPUT_SIZE = 224
NUM_CLASSES = 1000
OPSET = 13
"""Opset 13 / IR 7: what TensorRT 8.x, ONNX Runtime >= 1.8 and JetPack 4.6+ all read."""
IR_VERSION = 7
# MobileNetV2's inverted residual stages: (expansion t, output channels c, repeats n, stride s).
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
STAGES_TAIL = ((6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


class _GraphBuilder(GraphBuilder):
    """Appends nodes and fixed-seed initialisers; names are sequential, so bytes are stable."""

    def conv(
        self,
        x: str,
        c_in: int,
        c_out: int,
        *,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        relu6: bool = True,
    ) -> str:
        """Conv (batch norm folded into the bias), then ReLU6 (Clip 0..6) unless linear."""
        name = self.name("conv")
        fan_in = (c_in // groups) * kernel * kernel
        gain = 2.0 if relu6 else 1.0  # He for ReLU layers, LeCun for the linear projections
        weight = self.uniform((c_out, c_in // groups, kernel, kernel), np.sqrt(gain / fan_in))
        bias = self.uniform((c_out,), 0.05)
        self.constant(f"{name}.weight", weight)
        self.constant(f"{name}.bias", bias)
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
                group=groups,
            )
        )
        if not relu6:
            return y
        out = f"{name}.relu6"
        self.nodes.append(
            helper.make_node("Clip", [y, "relu6.min", "relu6.max"], [out], name=f"{name}_clip")
        )
        return out

    def inverted_residual(self, x: str, c_in: int, c_out: int, t: int, stride: int) -> str:
        hidden = c_in * t
        y = self.conv(x, c_in, hidden) if t != 1 else x
        y = self.conv(y, hidden, hidden, kernel=3, stride=stride, groups=hidden)
        y = self.conv(y, hidden, c_out, relu6=False)
        if stride == 1 and c_in == c_out:
            out = self.name("add")
            self.nodes.append(helper.make_node("Add", [x, y], [out], name=out))
            return out
        return y


def build_model(seed: int = SEED) -> onnx.ModelProto:
    """The classifier as an in-memory ``ModelProto`` (deterministic for a given ``seed``)."""
    g = _GraphBuilder(seed)
    g.constant("relu6.min", np.array(0.0, np.float32))
    g.constant("relu6.max", np.array(6.0, np.float32))
    x = g.conv(INPUT_NAME, 3, STEM_CHANNELS, kernel=3, stride=2)
    channels = STEM_CHANNELS
    for t, c, n, s in STAGES + STAGES_TAIL:
        for i in range(n):
            x = g.inverted_residual(x, channels, c, t, s if i == 0 else 1)
            channels = c
    x = g.conv(x, channels, HEAD_CHANNELS)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], name="flatten", axis=1))
    fc_weight = g.uniform((NUM_CLASSES, HEAD_CHANNELS), np.sqrt(1.0 / HEAD_CHANNELS))
    g.constant("fc.weight", fc_weight)
    g.constant("fc.bias", np.zeros(NUM_CLASSES, np.float32))
    g.nodes.append(
        helper.make_node(
            "Gemm", ["features", "fc.weight", "fc.bias"], [OUTPUT_NAME], name="fc", transB=1
        )
    )
    graph = helper.make_graph(
        g.nodes,
        "edgeloop_classifier",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", NUM_CLASSES])],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="edgeloop",
        producer_version=f"classifier-v{VERSION}",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=(
            f"edgeloop reference classifier v{VERSION}: MobileNetV2 1.0, 224x224 RGB -> "
            f"{NUM_CLASSES} logits, fixed-seed random weights (seed {SEED}); for speed work"
        ),
    )
    model.ir_version = IR_VERSION
    return model


def build_classifier(path: Path) -> Path:
    """Build the classifier and write it to ``path`` atomically; returns ``path``."""
    return write_built(path, build_model().SerializeToString())


def classifier_path(folder: Path | None = None) -> Path:
    """Path of the cached classifier (``classifier-v1.onnx``), built or rebuilt when needed."""
    path = (folder or cache_dir("models")) / f"{NAME}-v{VERSION}.onnx"
    return built(path, lambda: build_model().SerializeToString())
