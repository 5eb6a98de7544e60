"""The committed reference detectors really detect: mAP@0.5 on frames rendered now, from a
scene no training frame came from, decoded through ``core.postprocess`` (CI never retrains).

The bar is the issue's: mAP@0.5 >= 0.8 on fresh 1080p frames. The committed files reach 0.963
(detector-s) and 0.970 (detector-m) on these 80 frames (MODEL_CARD.md: 0.978 and 0.984 on 500
frames of another scene), a margin of 0.16 for ONNX Runtime versions and CPU kinds, not for a
worse model.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from core.accuracy import box_iou
from core.errors import ModelError, ModelNotFoundError
from core.models import reference_model_path
from core.models.detector import (
    DETECTORS,
    INPUT_NAME,
    METADATA_KEY,
    LoadedDetector,
    evaluate_detector,
    load_detector,
)
from core.synthetic import CLASS_NAMES, SceneConfig, SyntheticCamera

TEST_SEED = 7
"""Training uses scene seeds 1000..1023 and the model card 2024: this scene is new to both."""
FRAMES = 80
MAP_BAR = 0.8


@functools.cache
def detector(name: str) -> LoadedDetector:
    return load_detector(reference_model_path(name), threads=2)


def test_names_resolve_to_committed_files() -> None:
    assert reference_model_path("detector") == reference_model_path("detector-s")
    for name in DETECTORS:
        path = reference_model_path(name)
        assert path.suffix == ".onnx" and path.stat().st_size < 8_000_000  # a few MB
    with pytest.raises(ModelNotFoundError, match="detector-m") as info:
        reference_model_path("detector-xl")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("name", DETECTORS)
def test_model_declares_its_input_and_classes(name: str) -> None:
    session = detector(name).session
    (image,) = session.get_inputs()
    assert image.name == INPUT_NAME and image.type == "tensor(float)"
    assert image.shape[1:] == [3, *detector(name).spec.size] and isinstance(image.shape[0], str)
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert tuple(meta["class_names"]) == CLASS_NAMES == detector(name).class_names


@pytest.mark.parametrize("name", DETECTORS)
def test_map50_on_fresh_frames(name: str) -> None:
    report, _, _ = evaluate_detector(detector(name), SceneConfig(seed=TEST_SEED), FRAMES)
    print(f"{name}: mAP@0.5 {report.map:.3f} on {FRAMES} frames; {report.to_dict()}")
    assert report.map >= MAP_BAR, report.to_dict()
    assert min(report.per_class_ap) >= 0.6, report.to_dict()  # no class left behind


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (640, 480)])
def test_boxes_land_in_source_pixels(width: int, height: int) -> None:
    """Confident boxes sit on real objects in *frame* pixels, for a frame that fills the input
    (16:9) and one that is padded left and right (4:3)."""
    camera = SyntheticCamera(SceneConfig(width=width, height=height, seed=TEST_SEED + 1))
    frames, truths = zip(*(camera.frame(i * 53) for i in range(12)), strict=True)
    found, transforms = detector("detector-s").detect(list(frames), score_threshold=0.5)
    assert transforms[0].src_size == (height, width)
    overlaps = []
    for dets, truth in zip(found, truths, strict=True):
        assert dets.class_names == CLASS_NAMES
        assert (dets.boxes >= 0).all()
        assert (dets.boxes[:, [0, 2]] <= width).all() and (dets.boxes[:, [1, 3]] <= height).all()
        overlaps.extend(box_iou(dets.boxes, truth.boxes).max(axis=1, initial=0.0))
    best = np.array(overlaps)
    assert len(best) >= 20
    assert np.mean(best >= 0.5) >= 0.9, best  # on an object, not shifted or scaled by the pad
    assert np.median(best) >= 0.8, best


def test_batch_axis_is_dynamic() -> None:
    det = detector("detector-s")
    batch = np.random.default_rng(0).random(det.spec.batch_shape(3), dtype=np.float32)
    together = det.infer(batch)
    apart = np.concatenate([det.infer(batch[i : i + 1]) for i in range(3)])
    assert together.shape == (3, (192 // 8) * (320 // 8), 4 + len(CLASS_NAMES))
    np.testing.assert_allclose(together, apart, rtol=1e-4, atol=1e-3)


def test_not_a_detector(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load"):
        load_detector(bad)
