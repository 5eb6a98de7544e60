"""``python -m deploy model optimize --int8``: an int8 copy calibrated on a folder of frames,
the decode tail left in float, both timed and scored; published with what it changed, or not
published when its mAP dropped too far (calibrated on black frames) or cannot be measured;
a folder without enough frames refused naming why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from core.jpeg import encode
from core.models import reference_model_path
from core.models.classifier import classifier_path
from core.synthetic import SceneConfig, SyntheticCamera
from deploy.cli import main
from deploy.models.optimize import decode_tail

SMALL = reference_model_path("detector-s")


def _frames(folder: Path, count: int, *, black: bool = False) -> Path:
    folder.mkdir()
    camera = SyntheticCamera(SceneConfig(width=640, height=360, seed=99))
    for i in range(count):
        image = np.full((360, 640, 3), 3, np.uint8) if black else camera.frame(i * 11)[0]
        (folder / f"f{i:03d}.jpg").write_bytes(encode(image, quality=90))
    return folder


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    status = main(["model", "optimize", *argv, "--json", "--eval-frames", "100"])
    out, err = capsys.readouterr()
    return status, json.loads(out) if status == 0 else None, err


def test_an_int8_copy_keeps_its_accuracy_and_is_published_with_what_it_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = _frames(tmp_path / "frames", 24)
    out = tmp_path / "gate.int8.onnx"
    registry = f"file://{tmp_path / 'registry'}"
    status, result, err = _cli(
        capsys,
        str(SMALL),
        "--int8",
        "--calibration",
        str(frames),
        "--out",
        str(out),
        "--name",
        "gate",
        "--version",
        "1.0.1",
        "--registry",
        registry,
    )
    assert status == 0, err
    assert result["published"] and result["model"] == str(out)
    quantized = onnx.load(str(out))
    ops = {node.op_type for node in quantized.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    producer = {o: n for n in quantized.graph.node for o in n.output}["detections"]
    assert producer.op_type == "Concat"  # the decode tail stays in float
    optimization = result["manifest"]["optimization"]
    assert optimization["kind"] == "int8-qdq" and optimization["calibration_frames"] == 24
    accuracy = optimization["accuracy"]
    assert accuracy["map_drop"] == pytest.approx(
        accuracy["map50_fp32"] - accuracy["map50_int8"], abs=1e-4
    )
    assert accuracy["map_drop"] <= 0.02
    speed = optimization["speed"]
    assert speed["fp32_ms"] > 0 and speed["int8_ms"] > 0
    assert speed["latency_ratio"] == pytest.approx(speed["int8_ms"] / speed["fp32_ms"], abs=2e-3)


def test_the_decode_tail_is_what_follows_the_last_convolution() -> None:
    model = onnx.load(str(SMALL))
    tail = set(decode_tail(model))
    by_name = {node.name: node for node in model.graph.node}
    assert {by_name[name].op_type for name in tail} >= {"Sigmoid", "Concat", "Sub", "Add"}
    assert not any(by_name[name].op_type == "Conv" for name in tail)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(n.name not in tail for n in convs)


def test_a_copy_calibrated_on_the_wrong_frames_is_not_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    black = _frames(tmp_path / "black", 12, black=True)
    out = tmp_path / "bad.int8.onnx"
    registry = tmp_path / "registry"
    status, _, err = _cli(
        capsys,
        str(SMALL),
        "--int8",
        "--calibration",
        str(black),
        "--out",
        str(out),
        "--name",
        "gate",
        "--version",
        "1.0.2",
        "--registry",
        f"file://{registry}",
    )
    assert status == 1
    assert "bad.int8.onnx is not published: its mAP@0.5 dropped by" in err
    assert "over --max-map-drop 0.02" in err and out.is_file()
    assert not registry.exists() or not list(registry.rglob("manifest.json"))


def test_a_model_whose_accuracy_cannot_be_measured_is_made_but_not_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = _frames(tmp_path / "frames", 10)
    out = tmp_path / "classifier.int8.onnx"
    status, result, err = _cli(
        capsys, str(classifier_path()), "--int8", "--calibration", str(frames), "--out", str(out)
    )
    assert status == 0, err
    assert result["optimization"]["accuracy"]["map_drop"] is None and not result["published"]
    status, _, err = _cli(
        capsys,
        str(classifier_path()),
        "--int8",
        "--calibration",
        str(frames),
        "--out",
        str(out),
        "--name",
        "cls",
        "--version",
        "1.0.0",
        "--registry",
        f"file://{tmp_path / 'reg'}",
    )
    assert status == 1 and "its accuracy drop cannot be measured on the synthetic set" in err


@pytest.mark.parametrize(
    ("count", "cause"),
    [(0, "no .jpg, .jpeg or .png file in"), (3, "3 usable image(s) (0 skipped")],
)
def test_a_folder_without_enough_frames_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: int, cause: str
) -> None:
    frames = _frames(tmp_path / "frames", count)
    status, _, err = _cli(capsys, str(SMALL), "--int8", "--calibration", str(frames))
    assert status == 2
    assert f"--calibration {frames}: " in err and cause in err
