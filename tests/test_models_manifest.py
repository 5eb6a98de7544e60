"""A device's check of a downloaded model against its manifest, before it serves: the bytes,
the facts the pipeline reads, and the golden outputs; each failure names its cause."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from core.errors import ModelError
from core.models import reference_model_path
from core.models.manifest import (
    Manifest,
    evaluate_model,
    golden_set,
    inspect_model,
    verify_model,
)

SMALL = reference_model_path("detector")
LARGER = reference_model_path("detector-m")


def _manifest(path: Path, version: str = "1.0.0") -> Manifest:
    data = path.read_bytes()
    facts = inspect_model(path)
    return Manifest(
        name="gate",
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        format=facts.format,
        task=facts.task,
        input_size=facts.input_size,
        class_names=facts.class_names,
        created="2026-01-01T00:00:00Z",
    )


@pytest.fixture(scope="module")
def golden() -> bytes:
    return golden_set(SMALL)


def test_the_published_file_passes(golden: bytes) -> None:
    facts = verify_model(SMALL, _manifest(SMALL), golden)
    assert facts.format == "edgeloop" and facts.input_size == _manifest(SMALL).input_size


def test_other_bytes_are_a_corrupt_or_other_download(golden: bytes, tmp_path: Path) -> None:
    damaged = tmp_path / "model.onnx"
    data = bytearray(SMALL.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="a corrupt or other download"):
        verify_model(damaged, _manifest(SMALL), golden)


def test_facts_other_than_the_manifests_are_named(golden: bytes) -> None:
    manifest = dataclasses.replace(_manifest(LARGER), input_size=(192, 320))
    with pytest.raises(ModelError, match=r"its input_size is \(256, 448\), the manifest says"):
        verify_model(LARGER, manifest, golden)


def test_outputs_off_the_golden_set_are_not_the_published_model(golden: bytes) -> None:
    arrays = dict(np.load(io.BytesIO(golden)))
    arrays["output_0"] = arrays["output_0"] + 0.5
    shifted = io.BytesIO()
    np.savez_compressed(shifted, **arrays)
    with pytest.raises(ModelError, match="output 0 differs from the golden set"):
        verify_model(SMALL, _manifest(SMALL), shifted.getvalue())
    with pytest.raises(ModelError, match="the golden set cannot be read"):
        verify_model(SMALL, _manifest(SMALL), b"not an npz")


def test_a_model_that_outputs_nan_is_refused(golden: bytes, tmp_path: Path) -> None:
    """The reference detector with its output multiplied by a NaN constant: it loads, its
    facts are the detector's, and it must still not serve."""
    model = onnx.load(str(SMALL))
    graph = model.graph
    out = graph.output[0].name
    for node in graph.node:  # the last node now writes an inner tensor
        node.output[:] = [f"{o}_clean" if o == out else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nan"))
    graph.node.append(helper.make_node("Mul", [f"{out}_clean", "nan"], [out]))
    poisoned = tmp_path / "nan.onnx"
    onnx.save(model, str(poisoned))
    with pytest.raises(ModelError, match="output 0 holds NaN or infinity"):
        verify_model(poisoned, _manifest(poisoned), golden)


def test_a_detector_is_scored_on_the_synthetic_set_and_a_classifier_refused() -> None:
    small = evaluate_model(SMALL, frames=24)
    assert (small["dataset"], small["frames"]) == ("synthetic", 24)
    assert 0.5 < small["map50"] <= 1.0  # the reference detector finds its scene's shapes
    with pytest.raises(ModelError, match="the synthetic set scores detectors of its 5 classes"):
        evaluate_model(reference_model_path("classifier"), frames=4)
