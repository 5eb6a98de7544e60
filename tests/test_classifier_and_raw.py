"""Models the pipeline does not decode into boxes: a ``classifier`` (its classes become
whole-frame detections, so the filter works on them as on a detector's) and ``raw`` (a
probability map: its outputs' summary figures are sent, the filter's score and class steps
are off with a warning at start), through the pipeline and through ``bench pipeline``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main as bench_main
from core.detections import Detections, OutputSummary
from core.errors import ConfigError
from core.filter import FilterConfig, ResultFilter
from core.formats import DecodeOptions
from core.formats.other import decode_classes
from core.pipeline import Pipeline, PipelineReport
from core.preprocess import LetterboxTransform
from tests import format_models as fm
from tests.pipeline_doubles import RecordingSink, send_everything, small_config

FRAME = (120, 200)  # (height, width)
LOGITS = np.array([2.0, -1.0, 1.5, 0.0], np.float32)


def _softmax(values: np.ndarray) -> np.ndarray:
    exp = np.exp(values.astype(np.float64) - values.max())
    return exp / exp.sum()


def _run(model: Path, *overrides: str, sink: RecordingSink, frames: int = 3) -> PipelineReport:
    config = small_config(
        *send_everything(f"model.model={model}", *overrides), width=FRAME[1], height=FRAME[0]
    )
    with Pipeline(config, sink=sink) as pipeline:
        return pipeline.run(max_frames=frames)


# -- the classifier ------------------------------------------------------------------------------


def test_a_classifier_decodes_to_whole_frame_detections_best_first() -> None:
    transform = LetterboxTransform(0.3, 0.3, 0, 0, FRAME)
    found = decode_classes(LOGITS, transform, ("a", "b", "c", "d"), DecodeOptions(0.25))
    expected = _softmax(LOGITS)
    kept = [c for c in np.argsort(-expected) if expected[c] >= 0.25]
    assert found.classes.tolist() == kept == [0, 2]
    assert found.scores == pytest.approx(expected[kept], rel=1e-6)
    assert found.boxes.tolist() == [[0, 0, FRAME[1], FRAME[0]]] * 2
    assert found.labels() == ["a", "c"]
    one = decode_classes(LOGITS, transform, None, DecodeOptions(0.0, top_k=1))
    assert one.classes.tolist() == [0]
    probabilities = np.array([0.1, 0.6, 0.3], np.float32)  # they sum to 1: kept as they are
    kept = decode_classes(probabilities, transform, None, DecodeOptions(0.25))
    assert kept.classes.tolist() == [1, 2] and kept.scores == pytest.approx([0.6, 0.3])
    broken = decode_classes(
        np.array([np.nan, 3.0, 0.2], np.float32), transform, None, DecodeOptions()
    )
    assert broken.nonfinite == 1 and broken.classes.tolist() == [1]


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_a_classifier_runs_through_the_pipeline(worker: str, tmp_path: Path) -> None:
    model = fm.classifier_model(tmp_path / "cls.onnx", LOGITS)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nfox\nowl\n")
    sink = RecordingSink()
    report = _run(
        model,
        f"infer_worker={worker}",
        f"model.labels={labels}",
        "filter.classes=[fox]",
        "filter.transmission=crops",
        sink=sink,
    )
    assert report.model["format"] == "classifier"  # type: ignore[index]
    assert report.frames == 3 and len(sink.records) == 3
    expected = _softmax(LOGITS)
    for record in sink.records:
        assert record.detections.labels() == ["fox"]  # the allow-list, as for a detector
        assert record.detections.scores == pytest.approx([expected[2]], rel=1e-5)
        assert record.detections.boxes.tolist() == [[0, 0, FRAME[1], FRAME[0]]]
        assert [image.kind for image in record.images] == ["crop"]


def test_a_classifiers_crops_of_the_same_frame_are_encoded_once() -> None:
    names = ("a", "b")
    dets = Detections(np.array([[0, 0, 40, 30]] * 2), np.array([0.6, 0.4]), np.array([0, 1]))
    result_filter = ResultFilter(FilterConfig(score_threshold=0.3, cooldown_s=0), names)
    decision = result_filter.decide(0, 0, dets, motion_passed=True)
    assert len(decision.detections) == 2
    images = result_filter.encode(np.zeros((30, 40, 3), np.uint8), decision)
    assert len(images) == 1 and images[0].box == (0.0, 0.0, 40.0, 30.0)


# -- raw -----------------------------------------------------------------------------------------


def _map_values(size: tuple[int, int] = fm.SIZE) -> np.ndarray:
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width]
    return ((xs + ys) % 7 / 6.0).astype(np.float32)[None]  # as fm.probability_map_model


def test_output_summaries_leave_non_finite_values_out_and_count_them() -> None:
    values = np.array([[1.0, np.nan], [np.inf, -2.0]], np.float32)
    summary = OutputSummary.of("out", values)
    assert summary == OutputSummary("out", (2, 2), -2.0, 1.0, -0.5, 2)
    assert OutputSummary.of("none", np.full(3, np.nan, np.float32)).mean is None
    assert OutputSummary.of("ints", np.array([3, 5], np.int64)).to_dict()["mean"] == 4.0


def test_a_raw_model_runs_through_the_pipeline_with_its_outputs_summarised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = fm.probability_map_model(tmp_path / "map.onnx")
    sink = RecordingSink()
    with caplog.at_level(logging.WARNING, logger="edgeloop.pipeline"):
        report = _run(model, "filter.transmission=crops", "filter.cooldown_s=5", sink=sink)
    assert report.model["format"] == "raw"  # type: ignore[index]
    assert report.frames == 3 and len(sink.records) == 3  # no cooldown: every frame is sent
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("map.onnx is raw: score_threshold and cooldown are off" in w for w in warnings)
    assert any("transmission crops sends metadata" in w for w in warnings)
    values = _map_values()[0]
    for record in sink.records:
        assert record.level == "metadata" and record.images == ()
        sent = record.to_dict()
        assert sent["detections"] == []
        (summary,) = sent["outputs"]
        assert summary["name"] == "maps" and summary["shape"] == [1, *fm.SIZE]
        assert summary["min"] == 0.0 and summary["max"] == 1.0
        assert summary["mean"] == pytest.approx(float(values.mean()), abs=1e-6)
        assert summary["nonfinite"] == 0
    assert "outputs" not in Detections(np.empty((0, 4)), np.empty(0), np.empty(0, int)).to_dict()


def test_a_raw_model_sends_the_frame_when_asked(tmp_path: Path) -> None:
    model = fm.probability_map_model(tmp_path / "map.onnx")
    sink = RecordingSink()
    _run(model, "filter.transmission=frame", sink=sink, frames=2)
    assert [[i.kind for i in r.images] for r in sink.records] == [["frame"], ["frame"]]


def test_a_raw_model_refuses_a_class_allow_list() -> None:
    with pytest.raises(ConfigError, match="classes: 'car': the model gives no detections"):
        ResultFilter(FilterConfig(classes=("car",)), (), detections=False)


def test_bench_pipeline_runs_a_probability_map_model_as_raw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = fm.probability_map_model(tmp_path / "map.onnx")
    out = tmp_path / "report.json"
    argv = ["pipeline", "--model", str(model), "--quick", "--quiet", "--json", str(out)]
    assert bench_main([*argv, "--duration", "1"]) == 0, capsys.readouterr().err
    pipeline = json.loads(out.read_text())["pipeline"]
    assert pipeline["model"]["format"] == "raw" and pipeline["model"]["task"] == "raw"
    assert pipeline["naive_fps"] > 0 and "accuracy" not in pipeline
