"""Bad input and failing parts: counted by stage, logged with the cause, the pipeline runs on,
every slot comes back; sources that stall or hang are reported, not waited on; configuration
errors name the key."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from core.errors import ConfigError, FrameError, PipelineError
from core.pipeline import Pipeline, PipelineReport, load_pipeline_config
from tests.onnx_models import nan_detector
from tests.pipeline_doubles import RecordingSink, factory, send_everything, small_config


def _clean(report: PipelineReport) -> None:
    for stream in report.streams:
        assert stream.occupancy_end == 0, stream
        assert stream.produced == stream.delivered + sum(stream.dropped.values()), stream


def test_source_errors_and_wrong_shapes_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    make, made = factory(frames=20, errors=(3, 7), wrong_shape=(5,))
    with Pipeline(small_config(), source_factory=make) as pipeline:
        report = pipeline.run()
    stream = report.streams[0]
    assert stream.state == "ended" and stream.read_errors == 3
    assert report.errors["source"] == 3 and report.frames == 20
    assert "corrupt packet at read 3" in caplog.text
    assert made[0].closed
    _clean(report)


def test_a_source_that_keeps_failing_is_given_up() -> None:
    make, _ = factory(errors=range(100))
    with Pipeline(small_config("source_error_limit=4"), source_factory=make) as pipeline:
        report = pipeline.run()
    stream = report.streams[0]
    assert stream.state == "failed" and stream.read_errors == 4
    assert "4 failed reads in a row" in stream.message and report.frames == 0


def test_stalls_are_counted_apart() -> None:
    make, _ = factory(frames=10, stalls=(2, 4))
    with Pipeline(small_config(), source_factory=make) as pipeline:
        report = pipeline.run()
    assert report.streams[0].stalls == 2 and report.streams[0].read_errors == 0
    assert report.errors["source"] == 2 and report.frames == 10


def test_a_hung_source_is_reported_not_waited_on() -> None:
    release = threading.Event()
    make, _ = factory(hang_at=3, release=release)
    config = small_config("stop_timeout_s=0.5", timeout_s=0.2)
    try:
        with Pipeline(config, source_factory=make) as pipeline:
            report = pipeline.run()  # no duration: it ends because the only source hangs
    finally:
        release.set()
    stream = report.streams[0]
    assert stream.state == "stalled"
    assert "read_into has not returned" in stream.message
    assert report.frames == 3
    assert stream.occupancy_end == 0


def test_a_hung_source_beside_a_healthy_one(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    make, _ = factory(hang_at=2, release=release)
    config = small_config("stop_timeout_s=0.5", timeout_s=0.2, streams=2)
    try:
        with Pipeline(config, source_factory=make) as pipeline:
            report = pipeline.run(duration_s=1.6)
    finally:
        release.set()
    assert [s.state for s in report.streams] == ["stalled", "stalled"]
    assert "has not returned" in caplog.text


def test_preprocess_failures_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.pipeline import stages

    real = stages.preprocess_into
    calls = [0]

    def flaky(frame: object, out: object, spec: object) -> object:
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise FrameError("frame is 0x0 (on cue)")
        return real(frame, out, spec)  # type: ignore[arg-type]

    monkeypatch.setattr(stages, "preprocess_into", flaky)
    report = _run_small(*send_everything(), max_frames=15)
    assert report.errors["preprocess"] == 5 and report.frames == 15
    assert report.errors["postprocess"] == 0  # nothing decoded for the failed rows
    _clean(report)


def _run_small(*overrides: str, sink: RecordingSink | None = None, **run: object) -> PipelineReport:
    with Pipeline(small_config(*overrides), sink=sink) as pipeline:
        return pipeline.run(**run)  # type: ignore[arg-type]


def test_nan_model_outputs_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = nan_detector(tmp_path / "nan.onnx")
    sink = RecordingSink()
    report = _run_small(*send_everything(f"model.model={model}"), sink=sink, max_frames=10)
    assert report.frames == 10
    assert report.errors["postprocess"] == 10
    assert "non-finite" in caplog.text
    assert sink.records == []  # nothing finite was detected, nothing sent
    _clean(report)


def test_a_failing_sink_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    sink = RecordingSink(fail_every=2)
    report = _run_small(*send_everything(), sink=sink, max_frames=20)
    assert report.frames == 20
    assert report.errors["sink"] == sink.attempts - len(sink.records) > 0
    assert report.bytes["sent"] == sum(r.payload_bytes for r in sink.records)
    assert "refusing record" in caplog.text
    _clean(report)


def test_a_sink_that_cannot_open_fails_the_run_cleanly() -> None:
    class Broken(RecordingSink):
        def open(self) -> None:
            raise PipelineError("cannot reach the outbox")

    with Pipeline(small_config(), sink=Broken()) as pipeline, pytest.raises(PipelineError):
        pipeline.run(max_frames=5)


def test_a_worker_that_crashes_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.pipeline import workers

    def broken(self: object, item: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(workers.OutputWorker, "finish", broken)
    with Pipeline(small_config()) as pipeline, pytest.raises(PipelineError, match="crashed"):
        pipeline.run(max_frames=10)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.batch_size=0"], "model.batch_size"),
        (["rate=-2"], "rate"),
        (["sources=[{kind: file}]"], r"sources\[0\]\.uri"),
        (["filter.transmission=video"], "filter.transmission"),
        (["modle.batch_size=2"], "modle"),
        (["source_workers=fiber"], "source_workers"),
        (["ring_slots=1"], "ring_slots"),
        (["sources=[]"], "sources"),
    ],
)
def test_config_errors_point_at_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        load_pipeline_config(overrides=overrides)


def test_yaml_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "sources:\n  - {kind: synthetic, quiet_fraction: 0.05}\nmodel: {batch_size: 4}\nrate: 25\n"
    )
    config = load_pipeline_config(path, ["model.batch_timeout_ms=2"])
    assert config.sources[0].quiet_fraction == 0.05
    assert (config.model.batch_size, config.model.batch_timeout_ms, config.rate) == (4, 2.0, 25.0)


def test_an_unknown_filter_class_is_refused_before_anything_runs() -> None:
    config = small_config("filter.classes=[unicorn]")
    with Pipeline(config) as pipeline, pytest.raises(ConfigError, match="unicorn"):
        pipeline.run(max_frames=1)
