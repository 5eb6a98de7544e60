"""The heavy benchmark detector: deterministic bytes, Ultralytics' output layout and metadata,
how edgeloop reads it, the cache."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from core.formats import COCO
from core.models import heavy_detector, reference_model_path
from core.models.__main__ import inspect_model
from core.models.heavy_detector import (
    DESCRIPTION,
    build_heavy_detector,
    build_model,
    flops,
    heavy_detector_path,
)
from core.synthetic import SceneConfig, SyntheticCamera

CANDIDATES = 80 * 80 + 40 * 40 + 20 * 20


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return heavy_detector_path(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def session(model_file: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


def test_the_build_is_deterministic(tmp_path: Path, model_file: Path) -> None:
    again = build_heavy_detector(tmp_path / "again.onnx").read_bytes()
    assert hashlib.sha256(again).digest() == hashlib.sha256(model_file.read_bytes()).digest()
    assert (tmp_path / "again.onnx.sha256").read_text().strip() == hashlib.sha256(again).hexdigest()


def test_graph_size_and_metadata() -> None:
    assert heavy_detector.COCO is COCO  # the one list
    model = build_model()
    onnx.checker.check_model(model)
    assert (model.ir_version, model.opset_import[0].version) == (7, 13)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert 2_000_000 < params < 3_750_000  # float32: under 15 MB
    assert 6e9 < flops(model) < 10e9  # YOLOv8n: 8.7 GFLOPs
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["task"] == "detect"
    assert meta["stride"] == "32"
    assert ast.literal_eval(meta["imgsz"]) == [640, 640]
    assert ast.literal_eval(meta["names"]) == dict(enumerate(COCO))
    assert meta["description"] == DESCRIPTION


def test_output_layout_and_plausible_boxes(session: ort.InferenceSession) -> None:
    assert [o.name for o in session.get_outputs()] == ["output0"]
    camera = SyntheticCamera(SceneConfig(width=640, height=640, seed=1))
    rgb = camera.frame(10)[0][:, :, ::-1].transpose(2, 0, 1)
    images = np.stack([rgb, rgb[:, ::-1]]).astype(np.float32) / 255  # batch of two
    (out,) = session.run(None, {"images": images})
    assert out.shape == (2, 84, CANDIDATES) and np.isfinite(out).all()
    cx, cy, w, h = out[0, :4]
    # cells of strides 8, 16, 32 in that order, row-major: centres within half a stride
    for start, stride, cells in ((0, 8, 80), (6400, 16, 40), (8000, 32, 20)):
        cols, rows = np.meshgrid(np.arange(cells), np.arange(cells))
        centre_x = (cols.ravel() + 0.5) * stride
        centre_y = (rows.ravel() + 0.5) * stride
        level = slice(start, start + cells * cells)
        assert np.abs(cx[level] - centre_x).max() <= stride / 2
        assert np.abs(cy[level] - centre_y).max() <= stride / 2
        assert (w[level] > 0).all() and (w[level] < 60 * stride).all()
        assert 2 * stride < np.median(h[level]) < 8 * stride
    scores = out[0, 4:]
    assert ((scores >= 0) & (scores <= 1)).all()
    # a detector's load for the decoder: some candidates clear the default floor, not all
    assert 1 <= int((scores.max(axis=0) >= 0.25).sum()) <= 500
    assert not np.array_equal(out[0], out[1])


def test_edgeloop_reads_it_as_yolov8_with_coco_names(model_file: Path) -> None:
    found = inspect_model(str(model_file))
    assert found["format"] == "yolov8"
    assert found["classes"] == 80
    assert found["class_names_from"] == "metadata"
    assert tuple(found["class_names"]) == COCO
    assert found["outputs"] == [{"name": "output0", "shape": [1, 84, CANDIDATES]}]


def test_the_cached_file_is_rebuilt_when_damaged(tmp_path: Path, model_file: Path) -> None:
    good = model_file.read_bytes()
    path = heavy_detector_path(tmp_path)
    corrupted = bytearray(good)
    corrupted[len(good) // 2] ^= 0xFF  # same size, one byte altered
    path.write_bytes(bytes(corrupted))
    assert heavy_detector_path(tmp_path).read_bytes() == good
    path.write_bytes(good[:1000])  # truncated
    assert heavy_detector_path(tmp_path).read_bytes() == good
    path.unlink()
    assert heavy_detector_path(tmp_path).read_bytes() == good


def test_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGELOOP_CACHE", str(tmp_path))
    path = reference_model_path("yolov8-heavy")
    assert path == tmp_path / "models" / "yolov8-heavy-v1.onnx"
    assert path.is_file() and (tmp_path / "models" / "yolov8-heavy-v1.onnx.sha256").is_file()
