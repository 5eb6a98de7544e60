"""Typed results: classification top-k and detection decoding (letterbox mapping, NMS,
non-finite outputs), and their plain-dict form."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.detections import Detections
from core.errors import ConfigError, FrameError
from core.postprocess import classify_topk, decode_batch, decode_detections
from core.preprocess import PreprocessSpec
from tests.kernel_params import each_impl

SPEC = PreprocessSpec.yolo((192, 320))
# A 4:3 frame letterboxed into 16:9: padding left and right (the harder direction to get right).
_, TRANSFORM = SPEC.layout(480, 640)
NAMES = ("circle", "square", "triangle")


def raw_for(source_boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Detector rows for boxes given in frame pixels (the inverse of what decoding does)."""
    return np.concatenate([TRANSFORM.to_network(source_boxes), scores], 1).astype(np.float32)


@each_impl
def test_boxes_come_back_in_frame_pixels_through_the_letterbox(impl: str) -> None:
    assert TRANSFORM.pad_x > 0 and TRANSFORM.pad_y == 0
    boxes = np.array([[100, 50, 200, 150], [400, 300, 640, 480], [0, 0, 40, 40]], np.float32)
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.0, 0.8], [0.0, 0.6, 0.1]], np.float32)
    dets = decode_detections(raw_for(boxes, scores), TRANSFORM, class_names=NAMES, impl=impl)
    np.testing.assert_allclose(dets.boxes, boxes[[0, 1, 2]], atol=1e-3)
    np.testing.assert_allclose(dets.scores, [0.9, 0.8, 0.6])
    assert dets.classes.tolist() == [0, 2, 1]
    assert dets.labels() == ["circle", "triangle", "square"]
    assert dets.nonfinite == 0


def test_threshold_nms_top_k_and_batch_axis() -> None:
    boxes = np.array([[100, 100, 200, 200], [102, 100, 202, 200], [300, 300, 350, 350]] * 2)
    scores = np.zeros((6, 3), np.float32)
    scores[:, 0] = [0.9, 0.85, 0.3, 0.2, 0.1, 0.05]
    raw = raw_for(boxes.astype(np.float32), scores)[None]  # (1, A, 4 + C) as ONNX gives it
    dets = decode_detections(raw, TRANSFORM, score_threshold=0.25)
    assert dets.scores.tolist() == pytest.approx([0.9, 0.3])  # the overlapping 0.85 is gone
    assert len(decode_detections(raw, TRANSFORM, score_threshold=0.25, top_k=1)) == 1
    assert len(decode_detections(raw, TRANSFORM, score_threshold=0.25, iou_threshold=1.0)) == 3
    both = decode_batch(np.concatenate([raw, raw]), [TRANSFORM, TRANSFORM], score_threshold=0.25)
    assert [len(d) for d in both] == [2, 2]


def test_nonfinite_outputs_are_dropped_and_counted() -> None:
    boxes = np.array([[100, 100, 200, 200], [300, 300, 350, 350], [0, 0, 10, 10]], np.float32)
    scores = np.array([[0.9, 0, 0], [0.8, 0, 0], [0.7, 0, 0]], np.float32)
    raw = raw_for(boxes, scores)
    raw[1, 2] = np.inf
    raw[2, 5] = np.nan
    dets = decode_detections(raw, TRANSFORM)
    assert len(dets) == 1 and dets.nonfinite == 2
    assert dets.to_dict()["nonfinite"] == 2
    everything_broken = np.full_like(raw, np.nan)
    empty = decode_detections(everything_broken, TRANSFORM)
    assert len(empty) == 0 and empty.nonfinite == 3


def test_empty_and_bad_outputs() -> None:
    assert len(decode_detections(np.zeros((0, 8), np.float32), TRANSFORM)) == 0
    with pytest.raises(FrameError, match="decode a batch one image at a time"):
        decode_detections(np.zeros((2, 10, 8), np.float32), TRANSFORM)
    with pytest.raises(FrameError):
        decode_detections(np.zeros((10, 4), np.float32), TRANSFORM)  # no class score
    with pytest.raises(ConfigError, match="3 class names"):
        decode_detections(np.zeros((10, 9), np.float32), TRANSFORM, class_names=NAMES)
    with pytest.raises(ConfigError):
        decode_detections(np.zeros((10, 8), np.float32), TRANSFORM, score_threshold=np.nan)


def test_detections_to_dict_is_json_and_names_survive_nms() -> None:
    dets = Detections(
        np.array([[1.234, 2, 3, 4], [1, 2, 3, 4.5]]),
        np.array([0.5, 0.123456]),
        np.array([1, 0]),
        class_names=("a", "b"),
    )
    kept = dets.nms(iou_threshold=0.5, score_threshold=0.0, class_aware=False)
    assert kept.class_names == ("a", "b") and len(kept) == 1
    assert json.loads(json.dumps(dets.to_dict())) == {
        "detections": [
            {"box": [1.2, 2.0, 3.0, 4.0], "score": 0.5, "class_id": 1, "label": "b"},
            {"box": [1.0, 2.0, 3.0, 4.5], "score": 0.1235, "class_id": 0, "label": "a"},
        ],
        "nonfinite": 0,
    }
    assert Detections(dets.boxes, dets.scores, dets.classes).labels() == ["1", "0"]
    with pytest.raises(FrameError, match="class ids must be in"):
        Detections(dets.boxes, dets.scores, np.array([0, 2]), class_names=("a", "b"))


def test_classify_topk_logits_and_probabilities() -> None:
    logits = np.array([1.0, 3.0, 2.0, 3.0])
    top = classify_topk(logits, 3, class_names=["w", "x", "y", "z"])
    assert top.class_ids.tolist() == [1, 3, 2]  # tie: lower id first
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(top.scores, expected[[1, 3, 2]], rtol=1e-6)
    assert top.labels() == ["x", "z", "y"]
    probs = np.array([[0.1, 0.6, 0.3]], np.float32)  # (1, C) and already probabilities
    auto = classify_topk(probs, 2)
    assert auto.class_ids.tolist() == [1, 2] and auto.scores.tolist() == pytest.approx([0.6, 0.3])
    forced = classify_topk(probs, 1, activation="softmax")
    assert forced.scores[0] == pytest.approx(np.exp(0.6) / np.exp(probs).sum())
    assert len(classify_topk(probs, 10)) == 3
    assert json.loads(json.dumps(top.to_dict()))["classes"][0] == {
        "class_id": 1,
        "label": "x",
        "score": round(float(expected[1]), 4),
    }


def test_classify_topk_nonfinite_and_bad_arguments() -> None:
    top = classify_topk(np.array([np.nan, 1.0, np.inf, 0.0]), 5)
    assert top.class_ids.tolist() == [1, 3] and top.nonfinite == 2
    assert top.scores.sum() == pytest.approx(1.0)
    assert len(classify_topk(np.full(4, np.nan), 2)) == 0
    with pytest.raises(ConfigError):
        classify_topk(np.zeros(3), 0)
    with pytest.raises(ConfigError, match="2 class names"):
        classify_topk(np.zeros(3), class_names=["a", "b"])
    with pytest.raises(ConfigError):
        classify_topk(np.zeros(3), activation="sigmoid")  # type: ignore[arg-type]
