"""The reference detector (``core/models/detector-s.onnx``) re-exported in the layouts of
:mod:`core.formats`, by appending ONNX ops after its ``detections`` output -- the way real
exporters end their graphs -- for the end-to-end format tests.

The reference gives ``(N, A, 4 + C)``: x1, y1, x2, y2 in input pixels, then C class scores,
``A`` = 960 candidates at 192 x 320 (one per stride-8 cell: a one-scale head). Each layout:

============== ============================================================================
``yolov8``     ``output0 (N, 4 + C, 1260)``: cx, cy, w, h, class scores, channels first;
               Ultralytics metadata (``task``, ``names`` as a dict literal, ``stride``,
               ``imgsz``), no ``edgeloop`` key
``yolov5``     ``output0 (N, 3780, 5 + C)``: cx, cy, w, h, objectness (the best class score),
               class scores divided by it; YOLOv5 metadata (``stride``, ``names``)
``rows6``      ``output0 (N, 100, 6)``: x1, y1, x2, y2, score, class after in-graph
               ``NonMaxSuppression``, zero rows after the last detection; the metadata of
               an Ultralytics ``nms=True`` export (``task=detect``, ``names``...)
``four``       EfficientNMS's ``num_dets (N, 1)`` int32, ``det_boxes (N, 100, 4)``,
               ``det_scores (N, 100)``, ``det_classes (N, 100)`` int32, from the same NMS;
               ``names`` metadata only
``queries``    ``pred (N, 100, 4 + C)``: normalized cx, cy, w, h and class scores of 100
               queries (RT-DETR style), ``names`` metadata
============== ============================================================================

Graph tricks (what makes each layout honest for a network it was not trained as):

* **Padding.** ``yolov8`` wants one candidate per cell of the stride 8/16/32 maps (960 + 240 +
  60 = 1260 at 192 x 320) and ``yolov5`` three (3780), which is how ``auto`` tells them from
  each other and from end-to-end outputs. The reference head has only the stride-8 cells: the
  graph pads the missing stride-16/32 rows with zeros (``Pad``), i.e. candidates whose every
  score (and objectness) is 0, which every decoder drops under its score floor.
* **Best class only.** The pipeline's NMS keeps each candidate's best class
  (:func:`core.postprocess.decode_detections`). The in-graph NMS is class-aware (scores
  ``(N, C, A)``, one NMS per class) on scores masked to each candidate's best class
  (``ArgMax`` + ``OneHot``), so it keeps the same set; ``NonMaxSuppression`` keeps up to 100
  per class, ``ScatterND`` + ``TopK`` then take the 100 best over all classes, best first,
  for every image of the batch at once (no loop).
* **Queries without duplicates.** A set predictor (RT-DETR) gives one query per object; a
  dense head's top 100 candidates are mostly duplicates of a few objects, which the
  ``queries`` decoder (no NMS, by design) would keep as false positives. So the queries are
  the top 100 candidates by best score *after the same in-graph NMS* (the suppressed ones
  score 0 in the ``TopK``); their rows carry all C class scores of the candidate (zeros for a
  padding query). ``queries_nms=False`` builds the naive top-100 instead.

Every file is deterministic (no dates, fixed names), checked with ``onnx.checker``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.formats.base import STRIDE_SETS
from core.models.detector import METADATA_KEY, detector_path

LAYOUTS = ("yolov8", "yolov5", "rows6", "four", "queries")
"""Every layout :func:`export` builds."""
FORMAT_OF = {
    "yolov8": "yolov8",
    "yolov5": "yolov5",
    "rows6": "end2end",
    "four": "end2end",
    "queries": "end2end",
}
"""The :mod:`core.formats` format ``auto`` should pick for each layout."""
DETECTIONS = 100
"""K: rows (or queries) of the end-to-end layouts."""
IOU_THRESHOLD = 0.45
SCORE_THRESHOLD = 0.25
"""The in-graph NMS's, the pipeline's defaults (``core.pipeline.config.ModelConfig``)."""
PREFIX = "reexport/"
"""Every added tensor's and node's name starts with it (no clash with the network's)."""


def reference_model(name: str = "detector-s") -> onnx.ModelProto:
    """The committed reference detector's graph."""
    return onnx.load(str(detector_path(name)))


def class_names(model: onnx.ModelProto) -> tuple[str, ...]:
    """The class names in the reference's ``edgeloop`` metadata."""
    meta = {p.key: p.value for p in model.metadata_props}
    return tuple(json.loads(meta[METADATA_KEY])["class_names"])


def input_size(model: onnx.ModelProto) -> tuple[int, int]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return int(dims[2].dim_value), int(dims[3].dim_value)


def grid_cells(size: tuple[int, int], strides: Sequence[int] = STRIDE_SETS[0]) -> int:
    """Cells of the feature maps at strides ``strides`` for an input ``size`` (height, width)."""
    height, width = size
    return sum(-(-height // s) * -(-width // s) for s in strides)


def reference_candidates(model: onnx.ModelProto) -> tuple[int, int]:
    """(A, C) of the reference output, from one ONNX Runtime run on a blank image."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    height, width = input_size(model)
    out = session.run(None, {"images": np.zeros((1, 3, height, width), np.float32)})[0]
    return int(out.shape[1]), int(out.shape[2]) - 4


def _names_literal(names: Sequence[str]) -> str:
    """Ultralytics' and YOLOv5's ``names`` value: ``str`` of a dict, ``{0: 'circle', ...}``."""
    return str(dict(enumerate(names)))


class _Builder:
    """Ops appended after the reference's output, each with a fresh prefixed name."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0
        self.source = model.graph.output[0].name

    def _name(self, hint: str) -> str:
        self.count += 1
        return f"{PREFIX}{hint}_{self.count}"

    def const(self, value: Any, dtype: Any, hint: str = "const") -> str:
        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, name: str = "", **attrs: Any) -> str:
        """Add a one-output node; its output's name (``name``: a graph output's)."""
        return self.ops(op_type, *inputs, outputs=[name or self._name(op_type)], **attrs)[0]

    def ops(
        self, op_type: str, *inputs: str, outputs: int | list[str] = 1, **attrs: Any
    ) -> list[str]:
        """Add one node with ``outputs`` outputs (a count, or their names); their names."""
        if isinstance(outputs, int):
            outputs = [self._name(op_type) for _ in range(outputs)]
        node = self._name(f"{op_type}_node")
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=node, **attrs))
        return outputs

    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        i64 = np.int64
        return self.op(
            "Slice",
            x,
            self.const([start], i64, "start"),
            self.const([end], i64, "end"),
            self.const([axis], i64, "axis"),
        )

    def finish(
        self,
        outputs: Sequence[tuple[str, int, Sequence[int | str]]],
        metadata: dict[str, str],
        path: Path,
    ) -> Path:
        """Replace the graph's outputs with ``outputs`` (name, element type, shape), the
        metadata with ``metadata``; check and write it to ``path``."""
        graph = self.model.graph
        graph.node.extend(self.nodes)
        graph.initializer.extend(self.inits)
        del graph.output[:]
        graph.output.extend(
            helper.make_tensor_value_info(name, elem, list(shape)) for name, elem, shape in outputs
        )
        del self.model.metadata_props[:]
        for key, value in metadata.items():
            self.model.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(self.model, full_check=True)
        path.write_bytes(self.model.SerializeToString())
        return path


def _ultralytics(size: tuple[int, int], names: Sequence[str], what: str) -> dict[str, str]:
    """The metadata an Ultralytics export writes (less its date and version)."""
    return {
        "description": f"edgeloop detector-s re-exported in the Ultralytics {what} layout",
        "author": "edgeloop tests",
        "stride": str(max(STRIDE_SETS[0])),
        "task": "detect",
        "batch": "1",
        "imgsz": str(list(size)),
        "names": _names_literal(names),
    }


def _split(b: _Builder) -> tuple[str, str]:
    """The reference output's boxes (N, A, 4) and class scores (N, A, C)."""
    return b.slice(b.source, 0, 4, 2), b.slice(b.source, 4, 2**31 - 1, 2)


def _center(b: _Builder, boxes: str) -> tuple[str, str]:
    """x1, y1, x2, y2 to (cx, cy) and (w, h), each (N, A, 2)."""
    first, second = b.slice(boxes, 0, 2, 2), b.slice(boxes, 2, 4, 2)
    center = b.op("Mul", b.op("Add", first, second), b.const(0.5, np.float32, "half"))
    return center, b.op("Sub", second, first)


def _pad_rows(b: _Builder, rows: str, extra: int) -> str:
    """``extra`` rows of zeros after the candidates of ``rows`` (N, A, W)."""
    pads = b.const([0, 0, 0, 0, extra, 0], np.int64, "pads")
    return b.op("Pad", rows, pads, b.const(0.0, np.float32, "zero"), mode="constant")


def export_yolov8(path: Path, *, center: bool = True) -> Path:
    """Ultralytics' layout (``center=False`` leaves the corners as they are: a broken export,
    for showing that the end-to-end test notices)."""
    model = reference_model()
    size, names = input_size(model), class_names(model)
    candidates, classes = reference_candidates(model)
    cells = grid_cells(size)
    b = _Builder(model)
    boxes, scores = _split(b)
    parts = list(_center(b, boxes)) if center else [boxes]
    rows = _pad_rows(b, b.op("Concat", *parts, scores, axis=2), cells - candidates)
    b.op("Transpose", rows, perm=[0, 2, 1], name="output0")
    metadata = _ultralytics(size, names, "YOLOv8")
    return b.finish([("output0", TensorProto.FLOAT, ["batch", 4 + classes, cells])], metadata, path)


def export_yolov5(path: Path) -> Path:
    """YOLOv5's layout: objectness x class score = the reference's score (exactly, for the
    best class: x / x is 1)."""
    model = reference_model()
    size, names = input_size(model), class_names(model)
    candidates, classes = reference_candidates(model)
    rows_out = 3 * grid_cells(size)
    b = _Builder(model)
    boxes, scores = _split(b)
    center, wh = _center(b, boxes)
    objectness = b.op("ReduceMax", scores, axes=[2], keepdims=1)
    guarded = b.op("Max", objectness, b.const([[[1e-12]]], np.float32, "eps"))
    conditional = b.op("Div", scores, guarded)  # 0 / eps = 0 where every score is 0
    rows = b.op("Concat", center, wh, objectness, conditional, axis=2)
    b.op("Identity", _pad_rows(b, rows, rows_out - candidates), name="output0")
    metadata = {"stride": str(max(STRIDE_SETS[0])), "names": _names_literal(names)}
    return b.finish(
        [("output0", TensorProto.FLOAT, ["batch", rows_out, 5 + classes])], metadata, path
    )


def _nms(b: _Builder, boxes: str, scores: str, candidates: int) -> tuple[str, str, str, str]:
    """Class-aware in-graph NMS on each candidate's best class; the K best kept over all
    classes: (their candidate index (N, K) int64, class (N, K) int64, score (N, K), valid
    (N, K) bool). A padding slot has score 0."""
    classes = b.op("Shape", scores)
    depth = b.slice(classes, 2, 3, 0)
    best = b.op("ArgMax", scores, axis=2, keepdims=0)  # (N, A): the first best, as argmax
    onehot = b.op("OneHot", best, depth, b.const([0.0, 1.0], np.float32, "onoff"), axis=-1)
    per_class = b.op("Transpose", b.op("Mul", scores, onehot), perm=[0, 2, 1])  # (N, C, A)
    selected = b.op(
        "NonMaxSuppression",
        boxes,  # x1, y1, x2, y2: NMS takes any two diagonal corners (center_point_box=0)
        per_class,
        b.const([DETECTIONS], np.int64, "max_per_class"),
        b.const([IOU_THRESHOLD], np.float32, "iou"),
        b.const([SCORE_THRESHOLD], np.float32, "score"),
    )  # (M, 3): image, class, candidate
    kept_scores = b.op("GatherND", per_class, selected)
    zeros = b.op(
        "ConstantOfShape",
        b.op("Shape", per_class),
        value=helper.make_tensor("z", TensorProto.FLOAT, [1], [0.0]),
    )
    kept = b.op("ScatterND", zeros, selected, kept_scores)  # (N, C, A): 0 where suppressed
    flat = b.op("Reshape", kept, b.const([0, -1], np.int64, "flat"))
    score, index = b.ops("TopK", flat, b.const([DETECTIONS], np.int64, "k"), outputs=2, axis=1)
    a = b.const(candidates, np.int64, "candidates")
    cls, candidate = b.op("Div", index, a), b.op("Mod", index, a)
    valid = b.op("Greater", score, b.const(0.0, np.float32, "zero"))
    return candidate, cls, score, valid


def _gather_rows(b: _Builder, rows: str, candidate: str, width: int) -> str:
    """Rows (N, K, width) of ``rows`` (N, A, width) at ``candidate`` (N, K)."""
    at = b.op("Unsqueeze", candidate, b.const([2], np.int64, "axis"))
    at = b.op("Expand", at, b.const([1, 1, width], np.int64, "width"))
    return b.op("GatherElements", rows, at, axis=1)


def _detections(b: _Builder) -> tuple[str, str, str, str]:
    """The in-graph NMS's K detections, zeros in the padding slots: boxes (N, K, 4), scores
    (N, K), classes (N, K) int64, and valid (N, K) bool."""
    candidates, _ = reference_candidates(b.model)
    boxes, scores = _split(b)
    candidate, cls, score, valid = _nms(b, boxes, scores, candidates)
    axis2 = b.const([2], np.int64, "axis")
    picked = _gather_rows(b, boxes, candidate, 4)
    zero = b.const(0.0, np.float32, "zero")
    picked = b.op("Where", b.op("Unsqueeze", valid, axis2), picked, zero)
    cls = b.op("Where", valid, cls, b.const(0, np.int64, "zero"))
    return picked, score, cls, valid


def export_rows6(path: Path) -> Path:
    """(N, K, 6) rows after in-graph NMS, with the metadata of an Ultralytics ``nms=True``
    export (``task=detect``: claimed by both ``yolov8`` and ``end2end``, only the latter fits)."""
    model = reference_model()
    b = _Builder(model)
    boxes, score, cls, _ = _detections(b)
    axis2 = b.const([2], np.int64, "axis")
    columns = [
        boxes,
        b.op("Unsqueeze", score, axis2),
        b.op("Unsqueeze", b.op("Cast", cls, to=TensorProto.FLOAT), axis2),
    ]
    b.op("Concat", *columns, axis=2, name="output0")
    metadata = _ultralytics(input_size(model), class_names(model), "end-to-end (nms=True)")
    return b.finish([("output0", TensorProto.FLOAT, ["batch", DETECTIONS, 6])], metadata, path)


def export_four(path: Path) -> Path:
    """EfficientNMS's four outputs from the same NMS; metadata: ``names`` only (no format
    claims it: ``auto`` picks it by its outputs)."""
    model = reference_model()
    b = _Builder(model)
    boxes, score, cls, valid = _detections(b)
    count = b.op("Cast", valid, to=TensorProto.INT32)
    b.op("ReduceSum", count, b.const([1], np.int64, "axes"), keepdims=1, name="num_dets")
    b.op("Identity", boxes, name="det_boxes")
    b.op("Identity", score, name="det_scores")
    b.op("Cast", cls, to=TensorProto.INT32, name="det_classes")
    outputs: list[tuple[str, int, Sequence[int | str]]] = [
        ("num_dets", TensorProto.INT32, ["batch", 1]),
        ("det_boxes", TensorProto.FLOAT, ["batch", DETECTIONS, 4]),
        ("det_scores", TensorProto.FLOAT, ["batch", DETECTIONS]),
        ("det_classes", TensorProto.INT32, ["batch", DETECTIONS]),
    ]
    metadata = {"names": _names_literal(class_names(model))}
    return b.finish(outputs, metadata, path)


def export_queries(path: Path, *, queries_nms: bool = True) -> Path:
    """RT-DETR's layout: (N, K, 4 + C), normalized cx, cy, w, h, class scores; the queries
    are the K best candidates after the in-graph NMS (``queries_nms=False``: before it)."""
    model = reference_model()
    height, width = input_size(model)
    candidates, classes = reference_candidates(model)
    b = _Builder(model)
    boxes, scores = _split(b)
    center, wh = _center(b, boxes)
    scale = b.const([[[1 / width, 1 / height]]], np.float32, "scale")
    rows = b.op("Concat", b.op("Mul", center, scale), b.op("Mul", wh, scale), scores, axis=2)
    if queries_nms:
        candidate, _, _, valid = _nms(b, boxes, scores, candidates)
        valid = b.op("Unsqueeze", valid, b.const([2], np.int64, "axis"))
    else:
        best = b.op("ReduceMax", scores, axes=[2], keepdims=0)
        _, candidate = b.ops("TopK", best, b.const([DETECTIONS], np.int64, "k"), outputs=2, axis=1)
        valid = b.const(True, np.bool_, "all")
    picked = _gather_rows(b, rows, candidate, 4 + classes)
    b.op("Where", valid, picked, b.const(0.0, np.float32, "zero"), name="pred")
    metadata = {"names": _names_literal(class_names(model))}
    return b.finish(
        [("pred", TensorProto.FLOAT, ["batch", DETECTIONS, 4 + classes])], metadata, path
    )


EXPORTS: dict[str, Callable[[Path], Path]] = {
    "yolov8": export_yolov8,
    "yolov5": export_yolov5,
    "rows6": export_rows6,
    "four": export_four,
    "queries": export_queries,
}


def export(layout: str, directory: Path) -> Path:
    """The reference detector in ``layout`` (one of :data:`LAYOUTS`), as
    ``directory/detector-s-<layout>.onnx``."""
    return EXPORTS[layout](directory / f"detector-s-{layout}.onnx")


def run(path: Path, images: np.ndarray) -> list[np.ndarray]:
    """Every output of the model at ``path`` for ``images`` (ONNX Runtime, CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(None, {"images": images}))
