"""The reference classifier: deterministic bytes, the declared shapes, it runs, the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from core.errors import ModelNotFoundError
from core.models import reference_model_path
from core.models.classifier import build_classifier, build_model, classifier_path


def test_the_build_is_deterministic(tmp_path: Path) -> None:
    a = build_classifier(tmp_path / "a.onnx").read_bytes()
    b = build_classifier(tmp_path / "b.onnx").read_bytes()
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    assert (tmp_path / "a.onnx.sha256").read_text().strip() == hashlib.sha256(a).hexdigest()


def test_shape_and_size() -> None:
    model = build_model()
    onnx.checker.check_model(model)
    graph = model.graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 224, 224]
    assert [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [
        "batch",
        1000,
    ]
    params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    assert 3_000_000 < params < 4_000_000  # MobileNetV2 1.0 class
    groups = [
        onnx.helper.get_attribute_value(a)
        for n in graph.node
        if n.op_type == "Conv"
        for a in n.attribute
        if a.name == "group"
    ]
    assert sum(g > 1 for g in groups) == 17  # one depthwise convolution per inverted residual


def test_it_runs_and_gives_varied_finite_logits(tmp_path: Path) -> None:
    path = classifier_path(tmp_path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    (logits,) = session.run(None, {"images": images})
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()
    assert 0.1 < float(logits.std()) < 100  # activations neither vanish nor explode
    assert not np.array_equal(logits[0], logits[1])


def test_the_cached_file_is_rebuilt_when_damaged(tmp_path: Path) -> None:
    path = classifier_path(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[:1000])  # truncated
    assert classifier_path(tmp_path).read_bytes() == good
    path.unlink()
    assert classifier_path(tmp_path).read_bytes() == good


def test_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGELOOP_CACHE", str(tmp_path))
    assert reference_model_path("classifier") == tmp_path / "models" / "classifier-v1.onnx"
    with pytest.raises(ModelNotFoundError, match="no reference model named 'resnet'"):
        reference_model_path("resnet")
