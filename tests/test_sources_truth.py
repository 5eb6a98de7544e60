"""Ground truth beside a recording: the sidecar format, its checks, and a file source that
carries each frame's truth by its position in the file (through loops, seeks and a start
index), so accuracy is measured on an encoded clip as on the synthetic camera."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import media
from bench.pipeline_run import source_config, truth_classes
from core.detections import GroundTruth
from core.errors import ConfigError, SourceError
from core.pipeline import PipelineConfig
from core.sources import SourceConfig, open_source
from core.sources.truth import SCHEMA, TruthTrack, truth_path_for, write_truth
from core.synthetic import CLASS_NAMES, SceneConfig, SyntheticCamera

TINY: dict[str, Any] = {
    "width": 160,
    "height": 96,
    "fps": 10,
    "seconds": 2,
    "gop": 5,
    "bitrate": 200_000,
}
"""Twenty frames, a key frame every five."""


def _truth(*boxes: tuple[float, float, float, float]) -> GroundTruth:
    return GroundTruth(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.zeros(len(boxes), np.int64),
        np.zeros(len(boxes), np.float32),
    )


def _sidecar(tmp_path: Path, **changes: Any) -> Path:
    doc = {
        "schema": SCHEMA,
        "classes": ["person"],
        "width": 64,
        "height": 48,
        "frames": 2,
        "objects": [[1, 0, 1, 2, 30, 40, 0.0]],
        **changes,
    }
    path = tmp_path / "clip.truth.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_sidecar_gives_each_position_its_objects_and_refuses_one_past_its_end(
    tmp_path: Path,
) -> None:
    path = write_truth(
        tmp_path / "a.truth.json", ("person", "car"), (64, 48), [_truth(), _truth((1, 2, 3, 4))]
    )
    track = TruthTrack.load(path)
    assert (track.frames, track.classes, (track.width, track.height)) == (
        2,
        ("person", "car"),
        (64, 48),
    )
    assert len(track.at(0).classes) == 0
    assert track.at(1).boxes.tolist() == [[1, 2, 3, 4]]
    with pytest.raises(SourceError, match=r"covers 2 frames.*position 2"):
        track.at(2)


@pytest.mark.parametrize(
    ("changes", "cause"),
    [
        ({"schema": "other/1"}, "schema 'other/1'"),
        ({"frames": 0}, "frames must be at least 1"),
        ({"objects": [[2, 0, 1, 2, 3, 4, 0]]}, "frame position outside 0..1"),
        ({"objects": [[0, 1, 1, 2, 3, 4, 0]]}, "class id outside 0..0"),
        ({"objects": [[0, 0, 5, 2, 3, 4, 0]]}, "x2 < x1"),
        ({"objects": [[0, 0, 1, 2, 3, 4, 1.5]]}, "occluded fraction"),
        ({"objects": [[0, 0, 1, 2]]}, "rows of 7 numbers"),
        ({"classes": None}, "needs classes"),
    ],
)
def test_a_broken_sidecar_is_refused_naming_what_is_wrong(
    tmp_path: Path, changes: dict[str, Any], cause: str
) -> None:
    with pytest.raises(SourceError, match=cause):
        TruthTrack.load(_sidecar(tmp_path, **changes))


def test_a_sidecar_that_is_not_json_or_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read it"):
        TruthTrack.load(tmp_path / "missing.truth.json")
    (tmp_path / "bad.truth.json").write_text("{not json")
    with pytest.raises(SourceError, match="not JSON"):
        TruthTrack.load(tmp_path / "bad.truth.json")


def test_truth_is_read_for_a_file_source_only() -> None:
    with pytest.raises(ConfigError, match=r"truth: .* not 'synthetic'"):
        SourceConfig(kind="synthetic", truth="x.truth.json")
    assert truth_path_for("clips/gate.mp4") == Path("clips/gate.truth.json")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return media.synthetic_clip(**TINY, folder=tmp_path)


def test_a_clip_has_its_truth_beside_it_remade_when_lost(clip: Path) -> None:
    camera = SyntheticCamera(SceneConfig(width=160, height=96, fps=10))
    sidecar = truth_path_for(clip)
    track = TruthTrack.load(sidecar)
    assert (track.frames, track.classes) == (20, tuple(CLASS_NAMES))
    for position in (0, 7, 19):
        assert np.allclose(track.at(position).boxes, camera.frame(position)[1].boxes, atol=0.01)
    sidecar.write_text("{}")  # damaged: made again from the scene, the clip kept
    before = clip.stat().st_mtime_ns
    media.synthetic_clip(**TINY, folder=clip.parent)
    assert TruthTrack.load(sidecar).frames == 20 and clip.stat().st_mtime_ns == before


def test_a_looping_file_carries_the_truth_of_each_frames_position(clip: Path) -> None:
    camera = SyntheticCamera(SceneConfig(width=160, height=96, fps=10))
    config = SourceConfig(
        kind="file", uri=str(clip), loop=True, start_index=7, truth=str(truth_path_for(clip))
    )
    with open_source(config, 0) as source:
        assert source.has_ground_truth()
        out = np.empty((*source.open(), 3), np.uint8)
        for i in range(50):  # 13 to the end, then twice round from the start
            frame = source.read_into(out)
            assert frame is not None and frame.truth is not None
            expected = camera.frame((7 + i) % 20)[1]
            assert np.allclose(frame.truth.boxes, expected.boxes, atol=0.01), i
            assert frame.truth.classes.tolist() == expected.classes.tolist()
        assert (frame.index, source.loops) == (56, 2)


def test_a_sidecar_of_another_size_or_too_few_frames_is_refused(clip: Path, tmp_path: Path) -> None:
    other = write_truth(tmp_path / "other.truth.json", CLASS_NAMES, (320, 240), [_truth()])
    config = SourceConfig(kind="file", uri=str(clip), truth=str(other))
    with open_source(config, 0) as source, pytest.raises(SourceError, match="for 320x240 frames"):
        source.open()
    short = write_truth(tmp_path / "short.truth.json", CLASS_NAMES, (160, 96), [_truth()] * 3)
    config = SourceConfig(kind="file", uri=str(clip), truth=str(short))
    with open_source(config, 0) as source:
        out = np.empty((*source.open(), 3), np.uint8)
        for _ in range(3):
            source.read_into(out)
        with pytest.raises(SourceError, match="covers 3 frames"):
            source.read_into(out)


def test_bench_reads_a_named_clip_or_a_file_with_its_truth(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clip: Path
) -> None:
    monkeypatch.setenv("EDGELOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(media.CLIPS, "clip1080p", TINY)  # the real one takes seconds
    named = source_config("clip1080p")
    assert named.truth is not None and Path(named.truth).is_file()
    assert source_config(str(clip)).truth == str(truth_path_for(clip))
    bare = tmp_path / "bare.mp4"
    bare.write_bytes(clip.read_bytes())
    assert source_config(str(bare)).truth is None
    with_truth = PipelineConfig(sources=(named, SourceConfig(kind="synthetic")))
    assert truth_classes(with_truth) == tuple(CLASS_NAMES)
    assert truth_classes(PipelineConfig(sources=(source_config(str(bare)),))) is None
