"""Model output formats (:mod:`core.formats`) on small ONNX models whose outputs the tests choose
(:mod:`tests.format_models`), run by real ONNX Runtime sessions: which format ``auto`` picks and
why it refuses, each decoder against the plain NumPy reference (:mod:`tests.reference_formats`),
every detection format through the pipeline, and ``python -m core.models inspect``.

One scene serves every detection format: the boxes of :data:`OBJECTS` (network pixels of a
64x96 input) encoded in each layout, with what a decoder must get right -- a candidate under the
score floor and one exactly at it, overlapping boxes NMS drops (same class) and keeps (another
class, or overlap under the threshold), boxes running into the letterbox padding and off the
image (clipped), NaN and infinity (dropped and counted). The frame is 120x200 (height x width),
so the letterbox scales by 0.48 and pads 3 rows above.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto

from core.backends import open_backend
from core.detections import Detections
from core.errors import ConfigError, ModelError
from core.formats import DecodeOptions, backend_facts
from core.formats.model import ModelChoice, settle_model
from core.models.__main__ import main as models_main
from core.pipeline import Pipeline, PipelineReport, load_pipeline_config
from core.preprocess import LetterboxTransform, preprocess_into
from core.sample_media import scene_image
from tests import format_models as fm
from tests import reference_formats as ref
from tests.pipeline_doubles import RecordingSink, send_everything, small_config

SIZE = fm.SIZE  # (64, 96): 126 anchor-free candidates, 378 for YOLOv5
FRAME = (120, 200)  # (height, width)
NAMES = ("person", "car", "dog")
IDS = ("0", "1", "2")
OBJECTS = (  # cx, cy, w, h (network pixels), class, score
    (20.0, 20.0, 16.0, 12.0, 1, 0.9),
    (21.0, 21.0, 16.0, 12.0, 1, 0.8),  # IoU ~0.78 with the first, same class: suppressed
    (21.0, 20.0, 16.0, 12.0, 2, 0.7),  # as much overlap, another class: kept
    (60.0, 30.0, 20.0, 20.0, 0, 0.6),
    (70.0, 30.0, 20.0, 20.0, 0, 0.55),  # IoU 1/3 with the previous: kept at 0.45
    (50.0, 50.0, 10.0, 10.0, 0, 0.2),  # under the floor
    (80.0, 60.0, 30.0, 12.0, 2, 0.25),  # at the floor; runs off the image: clipped
    (40.0, 2.0, 10.0, 6.0, 1, 0.5),  # in the top padding: clipped to the frame
)
OPTIONS = {
    "default": DecodeOptions(),
    "strict": DecodeOptions(score_floor=0.5, iou_threshold=0.3, top_k=3),
}


def _scores(cls: int, score: float, classes: int = len(NAMES)) -> list[float]:
    """A score per class: ``score`` for ``cls``, less for the others (so argmax matters)."""
    return [score if k == cls else round(score * (0.3 + 0.2 * k), 3) for k in range(classes)]


def _xyxy(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


# -- the scene in each layout ------------------------------------------------------------------

DENSE_AT = (3, 10, 11, 50, 97, 110, 121, 125)
"""Where the objects sit among the 126 candidates: strides 8, 16 and 32 (YOLOX's cells)."""
NAN_AT, INF_AT = 30, 31


def yolov8_rows() -> np.ndarray:
    rows = np.zeros((4 + len(NAMES), 126), np.float32)
    for at, (cx, cy, w, h, cls, score) in zip(DENSE_AT, OBJECTS, strict=True):
        rows[:, at] = [cx, cy, w, h, *_scores(cls, score)]
    rows[:, NAN_AT] = [np.nan, 30, 10, 10, 0.95, 0, 0]
    rows[:, INF_AT] = [30, 30, 10, 10, 0, 0, np.inf]
    return rows


def yolov5_rows() -> np.ndarray:
    rows = np.zeros((378, 5 + len(NAMES)), np.float32)
    at = (3, 10, 11, 150, 151, 300, 377, 200)
    for i, (cx, cy, w, h, cls, score) in zip(at, OBJECTS, strict=True):
        rows[i] = [cx, cy, w, h, 0.95, *_scores(cls, score / 0.95)]
    rows[40] = [30, 40, 10, 10, 0.9, 0.2, 0.1, 0.05]  # objectness high, product 0.18: dropped
    rows[41] = [30, 40, 10, 10, 0.2, 1.0, 0.1, 0.05]  # objectness under the floor: dropped
    rows[NAN_AT] = [30, 30, 10, 10, np.nan, 0.9, 0, 0]
    rows[INF_AT] = [30, 30, np.inf, 10, 0.9, 0.9, 0, 0]
    return rows


def yolox_rows() -> np.ndarray:
    rows = np.zeros((126, 5 + len(NAMES)), np.float32)
    cells = ref.yolox_cells(SIZE, 126)
    for at, (cx, cy, w, h, cls, score) in zip(DENSE_AT, OBJECTS, strict=True):
        col, line, s = cells[at]
        offsets = [cx / s - col, cy / s - line, math.log(w / s), math.log(h / s)]
        rows[at] = [*offsets, 0.95, *_scores(cls, score / 0.95)]
    rows[NAN_AT] = [0.5, 0.5, 0, 0, 0.9, np.nan, 0.5, 0]
    rows[INF_AT] = [0.5, -np.inf, 0, 0, 0.9, 0.9, 0, 0]
    return rows


def edgeloop_rows() -> np.ndarray:
    return np.concatenate([_to_corners(yolov8_rows().T[:, :4]), yolov8_rows().T[:, 4:]], axis=1)


def _to_corners(cxcywh: np.ndarray) -> np.ndarray:
    return np.array([_xyxy(*(float(v) for v in row)) for row in cxcywh], np.float32)


E2E_ORDER = (3, 0, 6, 1, 7, 2, 5, 4)
"""The order an end-to-end model gives the objects in (not best first)."""


def rows6_rows() -> np.ndarray:
    rows = np.zeros((12, 6), np.float32)
    for i, k in enumerate(E2E_ORDER):
        cx, cy, w, h, cls, score = OBJECTS[k]
        rows[i] = [*_xyxy(cx, cy, w, h), score, float(cls)]
    rows[8] = [10, np.nan, 20, 20, 0.99, 0]
    rows[9] = [10, 10, 20, 20, np.inf, 1]
    return rows


def queries_rows() -> np.ndarray:
    height, width = SIZE
    rows = np.zeros((20, 4 + len(NAMES)), np.float32)
    for i, k in enumerate(E2E_ORDER):
        cx, cy, w, h, cls, score = OBJECTS[k]
        rows[i] = [cx / width, cy / height, w / width, h / height, *_scores(cls, score)]
    rows[8] = [0.5, 0.5, 0.1, 0.1, 0.99, np.nan, 0]
    rows[9] = [np.inf, 0.5, 0.1, 0.1, 0.99, 0, 0]
    rows[10:] = [0.5, 0.5, 0.2, 0.2, 0.1, 0.05, 0.01]  # unmatched queries: low scores
    return rows


def rtdetr6_rows() -> np.ndarray:
    height, width = SIZE
    rows = np.zeros((20, 6), np.float32)
    for i, k in enumerate(E2E_ORDER):
        cx, cy, w, h, cls, score = OBJECTS[k]
        rows[i] = [cx / width, cy / height, w / width, h / height, score, float(cls)]
    rows[8] = [0.5, np.nan, 0.1, 0.1, 0.99, 0]
    return rows


RTDETR = fm.ultralytics_metadata(NAMES, model="rtdetr-l")
"""What Ultralytics' RT-DETR export writes (its description names it)."""

FOUR_COUNT = 8


def four_outputs() -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.zeros((10, 4), np.float32)
    scores = np.zeros(10, np.float32)
    classes = np.zeros(10, np.int32)
    for i, k in enumerate(E2E_ORDER[:7]):
        cx, cy, w, h, cls, score = OBJECTS[k]
        boxes[i], scores[i], classes[i] = _xyxy(cx, cy, w, h), score, cls
    boxes[7], scores[7] = [np.nan, 0, 10, 10], 0.9
    boxes[8:], scores[8:], classes[8:] = [1, 1, 30, 30], 0.99, 1  # past the count: padding
    return FOUR_COUNT, boxes, scores, classes


SSD_COUNT = 7.0


def ssd_outputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    height, width = SIZE
    boxes = np.zeros((10, 4), np.float32)
    scores = np.zeros(10, np.float32)
    classes = np.ones(10, np.float32)
    for i, k in enumerate(E2E_ORDER[:6]):
        cx, cy, w, h, cls, score = OBJECTS[k]
        x1, y1, x2, y2 = _xyxy(cx, cy, w, h)
        boxes[i] = [y1 / height, x1 / width, y2 / height, x2 / width]
        scores[i], classes[i] = score, cls + 1
    boxes[6], scores[6] = [0.1, 0.1, 0.2, np.nan], 0.9
    boxes[7:], scores[7:], classes[7:] = [0.1, 0.1, 0.5, 0.5], 0.99, 2  # past the count
    return boxes, scores, classes, SSD_COUNT


# -- one case per detection format --------------------------------------------------------------


def _dense(o: DecodeOptions) -> dict[str, Any]:
    """A dense reference's options."""
    return {"score_floor": o.score_floor, "iou": o.iou_threshold, "top_k": o.top_k}


def _e2e(o: DecodeOptions) -> dict[str, Any]:
    """An end-to-end reference's options (no NMS after the model's)."""
    return {"score_floor": o.score_floor, "top_k": o.top_k}


Reference = Callable[[Sequence[np.ndarray], ref.Placement, DecodeOptions], ref.Expected]


@dataclass(frozen=True)
class Case:
    format: str
    """What ``auto`` picks (``yolox``: what must be named)."""
    build: Callable[[Path], Path]
    reference: Reference
    names: tuple[str, ...]
    """The class names settled: the metadata's, else the ids where the layout counts classes."""
    placement: Callable[[tuple[int, int], tuple[int, int]], ref.Placement] = ref.letterbox

    @property
    def wanted(self) -> str:
        return "yolox" if self.format == "yolox" else "auto"


CASES = {
    "yolov8": Case(
        "yolov8",
        lambda p: fm.yolov8_model(p, yolov8_rows()),
        lambda out, at, o: ref.yolov8(out[0], at, **_dense(o)),
        IDS,
    ),
    "yolov5": Case(
        "yolov5",
        lambda p: fm.yolov5_model(p, yolov5_rows(), metadata=fm.yolov5_metadata(NAMES)),
        lambda out, at, o: ref.yolov5(out[0], at, **_dense(o)),
        NAMES,
    ),
    "yolox": Case(
        "yolox",
        lambda p: fm.yolox_model(p, yolox_rows()),
        lambda out, at, o: ref.yolox(out[0], at, size=SIZE, **_dense(o)),
        IDS,
    ),
    "edgeloop": Case(
        "edgeloop",
        lambda p: fm.edgeloop_model(p, edgeloop_rows(), metadata=fm.edgeloop_metadata(NAMES)),
        lambda out, at, o: ref.edgeloop(out[0], at, **_dense(o)),
        NAMES,
    ),
    "end2end-rows6": Case(
        "end2end",
        lambda p: fm.rows6_model(p, rows6_rows()),
        lambda out, at, o: ref.rows6(out[0], at, **_e2e(o)),
        (),
    ),
    "end2end-queries": Case(
        "end2end",
        lambda p: fm.queries_model(p, queries_rows()),
        lambda out, at, o: ref.queries(out[0], at, size=SIZE, **_e2e(o)),
        IDS,
    ),
    "end2end-rtdetr6": Case(
        "end2end",
        lambda p: fm.rows6_model(p, rtdetr6_rows(), metadata=RTDETR),
        lambda out, at, o: ref.rtdetr6(out[0], at, size=SIZE, **_e2e(o)),
        NAMES,
        ref.stretched,
    ),
    "end2end-rtdetr-queries": Case(
        "end2end",
        lambda p: fm.queries_model(p, queries_rows(), metadata=RTDETR),
        lambda out, at, o: ref.queries(out[0], at, size=SIZE, **_e2e(o)),
        NAMES,
        ref.stretched,
    ),
    "end2end-four": Case(
        "end2end",
        lambda p: fm.four_model(p, *four_outputs()),
        lambda out, at, o: ref.four(int(out[0][0]), *out[1:], at, **_e2e(o)),
        (),
    ),
    "ssd": Case(
        "ssd",
        lambda p: fm.ssd_model(p, *ssd_outputs()),
        lambda out, at, o: ref.ssd(*out, at, size=SIZE, **_e2e(o)),
        (),
        ref.stretched,
    ),
    "ssd-tf2": Case(  # eight outputs, sorted by name: the four are found by theirs
        "ssd",
        lambda p: fm.ssd_model(p, *ssd_outputs(), tf2=True),
        lambda out, at, o: ref.ssd(out[1], out[4], out[2], out[5], at, size=SIZE, **_e2e(o)),
        (),
        ref.stretched,
    ),
    "ssd-uint8": Case(  # as tf2onnx exports it: pixels as they are, uint8
        "ssd",
        lambda p: fm.ssd_model(p, *ssd_outputs(), input_type=TensorProto.UINT8),
        lambda out, at, o: ref.ssd(*out, at, size=SIZE, **_e2e(o)),
        (),
        ref.stretched,
    ),
}


def _settle(model: Path, wanted: str = "auto", labels: str | None = None) -> ModelChoice:
    """The model's format and names, from a real ONNX Runtime session's facts."""
    with open_backend(model, "onnxruntime", threads=1) as backend:
        return settle_model(backend_facts(backend), wanted, labels)


def _run_model(model: Path, choice: ModelChoice) -> tuple[list[np.ndarray], LetterboxTransform]:
    """One 120x200 frame through the format's preprocessing and the real session: the image's
    outputs (each output's row) and the letterbox transform."""
    with open_backend(model, "onnxruntime", threads=1) as backend:
        spec = backend.preprocess_spec(choice.preprocess())
        transform = preprocess_into(scene_image(*FRAME), backend.input_buffer(1)[0], spec)
        outputs = [np.array(o[0]) for o in backend.infer(1)]
    return outputs, transform


def _assert_matches(dets: Detections, expected: ref.Expected) -> None:
    """Same classes and scores in the same order, boxes to 1e-4 pixels, same non-finite count."""
    assert dets.classes.tolist() == expected.classes.tolist()
    np.testing.assert_allclose(dets.scores, expected.scores, rtol=1e-6, atol=0)
    np.testing.assert_allclose(dets.boxes, expected.boxes.reshape(-1, 4), rtol=0, atol=1e-4)
    assert dets.nonfinite == expected.nonfinite


# -- auto: which format -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_auto_picks_each_detection_format(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    model = case.build(tmp_path / f"{name}.onnx")
    choice = _settle(model, case.wanted)
    assert (choice.format.name, choice.class_names) == (case.format, case.names)
    if case.format == "yolox":  # its shape is the anchor-free heads': never guessed
        assert _settle(model).format.name == "raw"


def _ambiguous_rows(candidates: int, width: int) -> np.ndarray:
    return np.zeros((candidates, width), np.float32)


# (builder, metadata, format with it, format without it): the metadata decides where the
# shapes do not (None: without it the shapes fit several formats)
BY_METADATA = {
    "ultralytics-yolov8": (
        lambda p, md: fm.yolov8_model(p, yolov8_rows(), metadata=md),
        fm.ultralytics_metadata(NAMES),
        "yolov8",
        "yolov8",
    ),
    "ultralytics-yolov10": (
        lambda p, md: fm.rows6_model(p, rows6_rows(), metadata=md),
        fm.ultralytics_metadata(NAMES),
        "end2end",
        "end2end",
    ),
    "ultralytics-rtdetr": (
        lambda p, md: fm.queries_model(p, queries_rows(), metadata=md),
        fm.ultralytics_metadata(NAMES),
        "end2end",
        "end2end",
    ),
    "ultralytics-classify": (
        lambda p, md: fm.classifier_model(p, np.arange(5, dtype=np.float32), metadata=md),
        fm.ultralytics_metadata([f"c{i}" for i in range(5)], task="classify"),
        "classifier",
        "classifier",
    ),
    # (1, 252, 6) at 64x64: YOLOv5's 3 x 84 candidates of 1 class, or 252 rows of 6
    "yolov5-not-rows6": (
        lambda p, md: fm.yolov5_model(p, _ambiguous_rows(252, 6), size=(64, 64), metadata=md),
        fm.yolov5_metadata(["person"]),
        "yolov5",
        None,
    ),
    "yolov10-not-yolov5": (
        lambda p, md: fm.rows6_model(p, _ambiguous_rows(252, 6), size=(64, 64), metadata=md),
        fm.ultralytics_metadata(NAMES, size=(64, 64)),
        "end2end",
        None,
    ),
    "edgeloop-by-key": (
        lambda p, md: fm.edgeloop_model(p, _ambiguous_rows(252, 6), size=(64, 64), metadata=md),
        fm.edgeloop_metadata(["person", "car"]),
        "edgeloop",
        None,
    ),
    # (1, 252, 84) at 64x64: YOLOv8's 248 classes of 84 candidates, or YOLOv5's 79 of 252
    "yolov8-not-yolov5": (
        lambda p, md: fm.yolov8_model(p, _ambiguous_rows(252, 84), size=(64, 64), metadata=md),
        fm.ultralytics_metadata([f"c{i}" for i in range(248)], size=(64, 64)),
        "yolov8",
        None,
    ),
    "yolov5-not-yolov8": (
        lambda p, md: fm.yolov5_model(p, _ambiguous_rows(252, 84), size=(64, 64), metadata=md),
        fm.yolov5_metadata([f"c{i}" for i in range(79)]),
        "yolov5",
        None,
    ),
}


@pytest.mark.parametrize("name", list(BY_METADATA))
def test_auto_reads_the_metadata_then_the_shapes(name: str, tmp_path: Path) -> None:
    build, metadata, expected, bare = BY_METADATA[name]
    choice = _settle(build(tmp_path / "m.onnx", metadata))
    assert choice.format.name == expected
    assert choice.names_from == "metadata"
    without = build(tmp_path / "bare.onnx", {})  # the same outputs, no metadata
    if bare is None:
        with pytest.raises(ModelError, match="fit several formats"):
            _settle(without)
    else:
        assert _settle(without).format.name == bare


def test_auto_reads_shapes_alone(tmp_path: Path) -> None:
    """Without metadata: YOLOv8's P6 count, a classifier, a probability map (raw)."""
    p6 = np.zeros((4 + 2, 128), np.float32)  # 126 + the stride-64 cells
    assert _settle(fm.yolov8_model(tmp_path / "p6.onnx", p6)).format.name == "yolov8"
    logits = np.linspace(-1, 1, 10, dtype=np.float32)
    classifier = _settle(fm.classifier_model(tmp_path / "cls.onnx", logits))
    assert (classifier.format.name, classifier.class_names[:2]) == ("classifier", ("0", "1"))
    assert _settle(fm.probability_map_model(tmp_path / "map.onnx")).format.name == "raw"
    # edgeloop's shape without its key fits no layout by shape: raw, not a guess
    bare = _settle(fm.edgeloop_model(tmp_path / "edge.onnx", edgeloop_rows()))
    assert bare.format.name == "raw"


def test_two_named_classes_do_not_make_rows_of_6_queries(tmp_path: Path) -> None:
    """A 2-class YOLOv10 (rows of 6, 2 names in its metadata) is rows of pixel x1, y1, x2, y2,
    score, class; only RT-DETR's metadata makes rows of 6 normalized boxes."""
    rows = rows6_rows()
    rows[:, 5] = np.minimum(rows[:, 5], 1)
    model = fm.rows6_model(
        tmp_path / "v10.onnx", rows, metadata=fm.ultralytics_metadata(NAMES[:2], model="yolov10n")
    )
    choice = _settle(model)
    assert (choice.format.name, choice.class_names) == ("end2end", NAMES[:2])
    outputs, transform = _run_model(model, choice)
    expected = ref.rows6(outputs[0], ref.letterbox(FRAME, SIZE), **_e2e(DecodeOptions()))
    _assert_matches(choice.decoder(DecodeOptions())(outputs, transform), expected)


def test_class_names_come_from_labels_then_metadata_then_ids(tmp_path: Path) -> None:
    model = fm.yolov8_model(tmp_path / "m.onnx", yolov8_rows())
    labels = tmp_path / "labels.txt"
    labels.write_text("# classes\nbus\n\ntram\nferry\n")
    assert _settle(model, labels=str(labels)).class_names == ("bus", "tram", "ferry")
    assert _settle(model).class_names == IDS
    named = fm.yolov8_model(
        tmp_path / "n.onnx", yolov8_rows(), metadata=fm.ultralytics_metadata(NAMES)
    )
    assert (_settle(named).class_names, _settle(named).names_from) == (NAMES, "metadata")


# -- refusals -----------------------------------------------------------------------------------


def test_an_ambiguous_shape_is_refused_naming_output_and_formats(tmp_path: Path) -> None:
    # (1, 84, 6) at 32x40: 3 anchors x 28 cells (YOLOv5, 1 class) or 84 end-to-end rows of 6
    model = fm.rows6_model(tmp_path / "amb.onnx", _ambiguous_rows(84, 6), size=(32, 40))
    with pytest.raises(ModelError) as caught:
        _settle(model)
    message = str(caught.value)
    assert "amb.onnx" in message and "output0 [1, 84, 6]" in message
    assert "fit several formats: yolov5 (" in message and "end2end (" in message
    assert "yolov8" not in message and "set model.format" in message
    assert _settle(model, "yolov5").format.name == "yolov5"  # naming one settles it
    assert _settle(model, "end2end").format.name == "end2end"


def test_metadata_contradicting_the_shapes_is_refused(tmp_path: Path) -> None:
    """Ultralytics says detect, but the output is (1, A, 5 + C) with one candidate a cell."""
    model = fm.yolox_model(
        tmp_path / "liar.onnx", yolox_rows(), metadata=fm.ultralytics_metadata(NAMES)
    )
    with pytest.raises(ModelError) as caught:
        _settle(model)
    message = str(caught.value)
    assert "liar.onnx" in message and "output [1, 126, 8]" in message
    assert "its metadata says yolov8 or end2end" in message
    assert "do not have that layout" in message


@pytest.mark.parametrize(
    ("task", "outputs"),
    [
        ("segment", [("output0", (1, 4 + 3 + 32, 126)), ("output1", (1, 32, 16, 24))]),
        ("pose", [("output0", (1, 4 + 1 + 51, 126))]),
    ],
)
def test_ultralytics_segment_and_pose_are_refused(
    task: str, outputs: list[tuple[str, tuple[int, ...]]], tmp_path: Path
) -> None:
    model = fm.fixed_output_model(
        tmp_path / f"{task}.onnx",
        [(name, np.zeros(shape, np.float32)) for name, shape in outputs],
        metadata=fm.ultralytics_metadata(NAMES[: 3 if task == "segment" else 1], task=task),
    )
    # refused before the shapes are read: the pose output would fit yolov8's layout
    with pytest.raises(ModelError, match=rf"{task}\.onnx: an Ultralytics {task} model"):
        _settle(model)


@pytest.mark.parametrize(
    ("case", "wanted", "words"),
    [
        ("ssd", "yolov5", "it has 4 outputs, not 1"),
        ("yolov8", "ssd", "its outputs are not detection_boxes"),
        ("yolov8", "classifier", "its output has rank 3, not 2"),
        ("end2end-rows6", "yolox", "its 12 candidates are not one per cell of the feature maps"),
        ("end2end-four", "edgeloop", "it has 4 outputs, not 1"),
        ("ssd", "end2end", "the TF Object Detection API's (format ssd)"),
    ],
)
def test_a_named_format_that_does_not_fit_is_refused(
    case: str, wanted: str, words: str, tmp_path: Path
) -> None:
    model = CASES[case].build(tmp_path / "m.onnx")
    with pytest.raises(ModelError) as caught:
        _settle(model, wanted)
    message = str(caught.value)
    assert message.startswith(f"m.onnx: model.format {wanted} reads ")
    assert words in message
    with open_backend(model, "onnxruntime", threads=1) as backend:
        outputs = backend_facts(backend).describe_outputs()
    assert f"(outputs: {outputs})" in message


def _p2_rows() -> np.ndarray:
    """The YOLOv8 scene from a P2 head (strides 4 to 32: 16 x 24 more cells at 64x96)."""
    rows = np.zeros((4 + len(NAMES), 126 + 384), np.float32)
    rows[:, :126] = yolov8_rows()
    return rows


def test_a_named_format_takes_a_head_of_another_candidate_count(tmp_path: Path) -> None:
    """Named, yolov8 reads a P2 head's 510 candidates (the count only tells formats apart)."""
    model = fm.yolov8_model(tmp_path / "p2.onnx", _p2_rows())
    choice = _settle(model, "yolov8")
    outputs, transform = _run_model(model, choice)
    expected = ref.yolov8(outputs[0], ref.letterbox(FRAME, SIZE), **_dense(DecodeOptions()))
    assert len(expected.scores) == 6
    _assert_matches(choice.decoder(DecodeOptions())(outputs, transform), expected)


def test_auto_does_not_read_a_p2_head_as_queries(tmp_path: Path) -> None:
    model = fm.yolov8_model(tmp_path / "p2.onnx", _p2_rows())  # (1, 7, 510): no metadata
    try:
        found = _settle(model).format.name
    except ModelError:
        found = "refused"
    assert found in ("raw", "refused"), f"auto picked {found} for output0 [1, 7, 510]"


def test_labels_whose_count_does_not_match_are_refused(tmp_path: Path) -> None:
    model = fm.yolov8_model(tmp_path / "m.onnx", yolov8_rows())
    labels = tmp_path / "two.txt"
    labels.write_text("person\ncar\n")
    with pytest.raises(ModelError) as caught:
        _settle(model, labels=str(labels))
    message = str(caught.value)
    assert f"model.labels {labels} names 2 classes" in message
    assert "yolov8 outputs (output0 [1, 7, 126]) carry 3" in message
    # the metadata's names, as much as a file's
    wrong = fm.yolov8_model(
        tmp_path / "w.onnx", yolov8_rows(), metadata=fm.ultralytics_metadata(NAMES[:2])
    )
    with pytest.raises(ModelError, match=r"its metadata names 2 classes, but its yolov8"):
        _settle(wrong)
    # and through the pipeline's configuration
    config = small_config(f"model.model={model}", f"model.labels={labels}")
    with Pipeline(config) as pipeline, pytest.raises(ModelError, match="names 2 classes"):
        pipeline.run(max_frames=1)


def test_an_unknown_format_name_is_a_config_error_at_load() -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipeline_config(overrides=["model.format=yolo9000"])
    message = str(caught.value)
    assert "model.format: 'yolo9000' is not a format" in message
    for name in ("auto", "edgeloop", "yolov8", "yolov5", "yolox", "end2end", "ssd", "raw"):
        assert name in message
    assert load_pipeline_config(overrides=["model.format=yolox"]).model.format == "yolox"


# -- decoders against the reference -------------------------------------------------------------


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("name", list(CASES))
def test_each_decoder_equals_the_reference(name: str, options: str, tmp_path: Path) -> None:
    case, opts = CASES[name], OPTIONS[options]
    model = case.build(tmp_path / f"{name}.onnx")
    choice = _settle(model, case.wanted)
    outputs, transform = _run_model(model, choice)
    at = case.placement(FRAME, SIZE)
    assert (transform.scale_x, transform.scale_y) == pytest.approx((at.scale_x, at.scale_y))
    assert (transform.pad_x, transform.pad_y) == (at.pad_x, at.pad_y)
    expected = case.reference(outputs, at, opts)
    assert len(expected.scores) >= 2 and expected.nonfinite >= 1  # the scene is not trivial
    _assert_matches(choice.decoder(opts)(outputs, transform), expected)


def test_the_reference_scene_exercises_floor_nms_and_clipping() -> None:
    """The dense scene's expected decode, by hand: the second object is suppressed, the sixth
    is under the floor, the seventh (at the floor) and eighth are clipped."""
    at = ref.letterbox(FRAME, SIZE)
    assert (at.scale_x, at.pad_x, at.pad_y) == (0.48, 0, 3)
    expected = ref.yolov8(yolov8_rows(), at, score_floor=0.25, iou=0.45)
    assert expected.scores.tolist() == pytest.approx([0.9, 0.7, 0.6, 0.55, 0.5, 0.25])
    assert expected.classes.tolist() == [1, 2, 0, 0, 1, 2]
    assert expected.nonfinite == 2
    assert expected.boxes[4][1] == 0.0  # the top padding
    assert expected.boxes[5][3] == FRAME[0]  # off the bottom of the image


def test_yolox_drops_a_box_whose_log_size_overflows(tmp_path: Path) -> None:
    rows = np.zeros((126, 5 + len(NAMES)), np.float32)
    rows[0] = [0.5, 0.5, 100.0, 100.0, 0.9, 0.9, 0, 0]  # exp(100) overflows float32
    model = fm.yolox_model(tmp_path / "huge.onnx", rows)
    choice = _settle(model, "yolox")
    outputs, transform = _run_model(model, choice)
    expected = ref.yolox(
        outputs[0], ref.letterbox(FRAME, SIZE), size=SIZE, **_dense(DecodeOptions())
    )
    assert len(expected.scores) == 0  # the reference drops it
    dets = choice.decoder(DecodeOptions())(outputs, transform)
    assert dets.boxes.tolist() == [], f"kept {dets.boxes.tolist()} scoring {dets.scores}"


# -- through the pipeline -----------------------------------------------------------------------


def _pipeline(model: Path, *overrides: str, sink: RecordingSink, frames: int) -> PipelineReport:
    config = small_config(
        *send_everything(f"model.model={model}", "filter.transmission=metadata", *overrides),
        width=FRAME[1],
        height=FRAME[0],
    )
    with Pipeline(config, sink=sink) as pipeline:
        return pipeline.run(max_frames=frames)


@pytest.mark.parametrize("worker", ["thread", "process"])
@pytest.mark.parametrize("name", list(CASES))
def test_each_detection_format_runs_through_the_pipeline(
    name: str, worker: str, tmp_path: Path
) -> None:
    case = CASES[name]
    model = case.build(tmp_path / f"{name}.onnx")
    choice = _settle(model, case.wanted)
    outputs, _ = _run_model(model, choice)
    expected = case.reference(outputs, case.placement(FRAME, SIZE), DecodeOptions())
    sink = RecordingSink()
    report = _pipeline(
        model, f"model.format={case.wanted}", f"infer_worker={worker}", sink=sink, frames=3
    )
    assert report.frames == 3 and len(sink.records) == 3
    # a frame with NaN or infinite candidates is a postprocess error; its finite ones go on
    assert report.errors["postprocess"] == 3
    assert report.model["format"] == case.format  # type: ignore[index]
    for record in sink.records:
        _assert_matches(record.detections, expected)


# -- python -m core.models inspect --------------------------------------------------------------


def test_inspect_prints_the_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = fm.yolov8_model(
        tmp_path / "v8.onnx", yolov8_rows(), metadata=fm.ultralytics_metadata(NAMES)
    )
    assert models_main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    lines = {line.split(":", 1)[0]: line for line in out.splitlines()}
    assert lines["format"].startswith("format:     yolov8 (detect): (N, 4 + C, A)")
    assert "3 from metadata: person, car, dog" in lines["classes"]
    assert "output0 [1, 7, 126]" in lines["outputs"]
    assert "fed at 64x96" in lines["input"]


def test_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = fm.ssd_model(tmp_path / "ssd.onnx", *ssd_outputs())
    assert models_main(["inspect", str(model), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["format"], found["task"], found["classes"]) == ("ssd", "detect", None)
    assert found["class_names"] == [] and found["input_size"] == [64, 96]
    assert [o["name"] for o in found["outputs"]] == [
        "detection_boxes",
        "detection_scores",
        "detection_classes",
        "num_detections",
    ]
    assert found["outputs"][0]["shape"] == [1, 10, 4]
    assert found["preprocess"]["mode"] == "resize" and found["preprocess"]["scale"] == 1.0
    logits = np.zeros(5, np.float32)
    classifier = fm.classifier_model(tmp_path / "cls.onnx", logits)
    assert models_main(["inspect", str(classifier), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["format"], found["task"], found["classes"]) == ("classifier", "classify", 5)
    assert found["class_names"] == ["0", "1", "2", "3", "4"]
    assert found["preprocess"]["mean"] == pytest.approx([0.485, 0.456, 0.406])


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_inspect_refuses_an_ambiguous_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = fm.rows6_model(tmp_path / "amb.onnx", _ambiguous_rows(84, 6), size=(32, 40))
    assert models_main(["inspect", str(model)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("core.models: refused: ModelError: amb.onnx: its outputs")
    assert "output0 [1, 84, 6]" in line and "yolov5" in line and "end2end" in line
    assert models_main(["inspect", str(model), "--format", "yolov5"]) == 0
    assert "format:     yolov5" in capsys.readouterr().out


def test_inspect_refuses_a_file_that_is_not_onnx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "notes.onnx"
    model.write_text("a text file renamed to .onnx\n" * 20)
    assert models_main(["inspect", str(model)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("core.models: refused: ModelError: ") and "not an ONNX model" in line


def test_inspect_refuses_labels_that_do_not_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = fm.yolov8_model(tmp_path / "m.onnx", yolov8_rows())
    labels = tmp_path / "four.txt"
    labels.write_text("a\nb\nc\nd\n")
    assert models_main(["inspect", str(model), "--labels", str(labels)]) == 2
    assert "names 4 classes" in _one_error_line(capsys)
    assert models_main(["inspect", str(model), "--format", "nope"]) == 2
    assert "ConfigError: model.format: 'nope' is not a format" in _one_error_line(capsys)


def test_a_query_row_with_any_non_finite_value_is_dropped_and_counted() -> None:
    from core.backends.tensor_spec import TensorSpec
    from core.formats import ModelFacts, OutputShape
    from core.formats.model import settle_model
    from core.preprocess import PreprocessSpec

    facts = ModelFacts(
        "q.onnx",
        TensorSpec("images", (1, 3, 64, 96), "float32"),
        (64, 96),
        (OutputShape("output0", (1, 2, 7)),),
        {"names": "{0: 'a', 1: 'b', 2: 'c'}"},
    )
    choice = settle_model(facts)
    rows = np.array(
        [[0.5, 0.5, 0.2, 0.2, 0.9, -np.inf, 0.1], [0.5, 0.5, 0.2, 0.2, 0.8, 0.1, 0.1]], np.float32
    )
    _, transform = PreprocessSpec(facts.input_size).layout(64, 96)
    dets = choice.decoder(DecodeOptions())([rows], transform)
    assert choice.format.name == "end2end" and dets.scores.tolist() == pytest.approx([0.8])
    assert dets.nonfinite == 1


def test_four_outputs_of_one_detection_are_still_count_boxes_scores_classes() -> None:
    from core.backends.tensor_spec import TensorSpec
    from core.formats import ModelFacts, OutputShape, choose_format

    outputs = (
        OutputShape("num_dets", (1, 1)),
        OutputShape("det_boxes", (1, 1, 4)),
        OutputShape("det_scores", (1, 1)),
        OutputShape("det_classes", (1, 1)),
    )
    facts = ModelFacts(
        "k1.onnx", TensorSpec("images", (1, 3, 64, 96), "float32"), (64, 96), outputs
    )
    assert choose_format(facts).name == "end2end"


def test_model_preprocess_changes_the_formats_own_and_input_size_rounds_to_the_stride(
    tmp_path: Path,
) -> None:
    """``model.preprocess`` overrides what the format sets (here YOLOX's BGR 0..255 back to
    RGB 0..1, and a plain resize); ``model.input_size`` of a dynamic-input model is rounded up
    to whole cells of its stride, and a bad override is a ConfigError naming the key."""
    from core.errors import ConfigError
    from core.pipeline import load_pipeline_config
    from core.pipeline.stages import build_stages

    config = small_config(
        "model.model=detector",
        "model.preprocess={order: BGR, scale: 1.0, mode: resize, mean: [1.0], pad_value: 0}",
        "model.input_size=[180, 300]",
    )
    with Pipeline(config) as pipeline:
        assert pipeline.input_size == (192, 320)  # 180 x 300 in whole cells of 32
        stages = build_stages(config, pipeline.backend, RecordingSink(), pipeline.model)
    spec = stages.spec
    assert (spec.output_order, spec.scale, spec.mode) == ("BGR", 1.0, "resize")
    assert spec.mean == (1.0, 1.0, 1.0) and spec.pad_value == (0.0, 0.0, 0.0)
    plain = small_config("model.model=detector")
    with Pipeline(plain) as pipeline:
        own = build_stages(plain, pipeline.backend, RecordingSink(), pipeline.model).spec
    assert (own.output_order, own.scale, own.mode) == ("RGB", 1 / 255, "letterbox")
    for bad, key in (
        ("model.preprocess={order: GBR}", "order"),
        ("model.preprocess={scale: 0}", "scale"),
        ("model.preprocess={mean: [1, 2]}", "mean"),
        ("model.preprocess={std: [0]}", "std"),
        ("model.input_size=[0, 320]", "input_size"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_pipeline_config(overrides=[bad])


def test_a_dynamic_input_is_fed_at_the_size_asked_rounded_to_whole_stride_cells(
    tmp_path: Path,
) -> None:
    from core.formats.model import aligned_size, stride_of

    assert aligned_size((360, 640), 32) == (384, 640) and aligned_size((64, 64), 32) == (64, 64)
    assert stride_of({"stride": "64"}) == 64 and stride_of({}) == 32
    assert stride_of({"stride": "x"}) == 32
