"""A model swapped while the pipeline runs (core.pipeline.serving): at a batch boundary, every
frame served by exactly one model, none dropped or inferred twice, results labelled with the
version that served them; a candidate the frames were not prepared for is refused, naming why,
with the serving model untouched."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.errors import ModelError
from core.models import reference_model_path
from core.models.classifier import classifier_path
from core.pipeline import FrameOutcome, Pipeline, PipelineReport, RunObserver
from tests.pipeline_doubles import RecordingSink, send_everything, small_config


class _Frames(RunObserver):
    def __init__(self) -> None:
        self.frames: list[FrameOutcome] = []

    def on_frame(self, frame: FrameOutcome) -> None:
        self.frames.append(frame)


def _run_and_swap(worker: str, candidate: Path) -> tuple[PipelineReport, _Frames, RecordingSink]:
    config = small_config(
        *send_everything(), f"infer_worker={worker}", "model.batch_size=2", "rate=40", streams=2
    )
    seen, sink = _Frames(), RecordingSink()
    result: list[PipelineReport] = []
    with Pipeline(config, sink=sink, model_version="1.0.0") as pipeline:
        _ = pipeline.backend
        stop = threading.Event()
        runner = threading.Thread(
            target=lambda: result.append(pipeline.run(observers=[seen], stop=stop))
        )
        runner.start()
        try:
            deadline = time.monotonic() + 30
            while len(seen.frames) < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
            prepared = pipeline.prepare(candidate, "2.0.0")
            assert prepared.cost_s > 0 and prepared.current_cost_s is not None
            previous = pipeline.swap(prepared.serving)
            assert previous.version == "1.0.0" and pipeline.model_version == "2.0.0"
            swapped_at = len(seen.frames)
            while len(seen.frames) < swapped_at + 30 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            runner.join(30)
        previous.backend.close()
    return result[0], seen, sink


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_a_swap_serves_every_frame_once_with_the_version_that_served_it(worker: str) -> None:
    report, seen, sink = _run_and_swap(worker, reference_model_path("detector-m"))
    for stream in report.streams:
        assert stream.produced == stream.delivered and not any(stream.dropped.values()), stream
    for stream_id in (0, 1):
        frames = [f for f in seen.frames if f.stream_id == stream_id]
        indices = [f.frame_index for f in frames]
        assert indices == list(range(indices[0], indices[0] + len(indices))), "a gap or a repeat"
        versions = [f.model_version for f in frames]
        switch = versions.index("2.0.0")
        assert set(versions[:switch]) == {"1.0.0"} and set(versions[switch:]) == {"2.0.0"}
    assert {r.model_version for r in sink.records} == {"1.0.0", "2.0.0"}
    assert sink.records[-1].to_dict()["model_version"] == "2.0.0"


def test_a_candidate_with_another_input_is_refused_and_the_model_keeps_serving() -> None:
    config = small_config("infer_worker=thread")
    with Pipeline(config, model_version="1.0.0") as pipeline:
        serving = pipeline.backend
        with pytest.raises(
            ModelError,
            match=r"model 2\.0\.0: a classify model cannot take over from a detect model",
        ):
            pipeline.prepare(classifier_path(), "2.0.0")
        assert pipeline.backend is serving and pipeline.model_version == "1.0.0"
        assert pipeline.run(max_frames=4).frames == 4
