"""Where each source runs under ``source_workers`` and how many threads its decoder gets."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from bench import media
from core.errors import SourceError
from core.pipeline import Pipeline, load_pipeline_config
from core.pipeline.placement import decode_threads_for, place_sources, worker_kind
from core.sources import SourceConfig

FILE = SourceConfig(kind="file", uri="clip.mp4")
RTSP = SourceConfig(kind="rtsp", uri="rtsp://camera/stream")
SYNTHETIC = SourceConfig()
IMAGES = SourceConfig(kind="images", uri="frames/")


@pytest.mark.parametrize(
    ("source", "expected"),
    [(FILE, "process"), (RTSP, "process"), (SYNTHETIC, "thread"), (IMAGES, "thread")],
)
def test_auto_decodes_in_a_process_and_renders_in_a_thread(
    source: SourceConfig, expected: str
) -> None:
    assert worker_kind("auto", source, own_factory=False) == expected
    assert worker_kind("auto", source, own_factory=True) == "thread"  # may not pickle
    assert worker_kind("thread", source, own_factory=False) == "thread"
    assert worker_kind("process", source, own_factory=True) == "process"


def test_decoders_share_the_cores_inference_leaves() -> None:
    assert decode_threads_for(cores=2, infer_cores=1, decoding_streams=1) == 1
    assert decode_threads_for(cores=2, infer_cores=2, decoding_streams=3) == 1  # at least one
    assert decode_threads_for(cores=16, infer_cores=4, decoding_streams=3) == 4
    assert decode_threads_for(cores=64, infer_cores=1, decoding_streams=1) == 16  # capped


def test_only_a_decoder_in_a_process_left_at_zero_threads_is_settled() -> None:
    chosen = SourceConfig(kind="file", uri="b.mp4", decode_threads=3)
    placed = place_sources(
        "auto", (FILE, chosen, SYNTHETIC, RTSP), own_factory=False, cores=8, infer_cores=2
    )
    assert [kind for _, kind in placed] == ["process", "process", "thread", "process"]
    assert [s.decode_threads for s, _ in placed] == [2, 3, 0, 2]  # 6 spare cores, 3 decoders
    threads = place_sources("thread", (FILE,), own_factory=False, cores=8, infer_cores=2)
    assert threads[0][0].decode_threads == 0  # in a thread, FFmpeg's frame threads decode


def test_decoding_sources_start_side_by_side_and_a_bad_one_leaves_no_process(
    tmp_path: Path,
) -> None:
    """Two video files in processes (``auto``) start together; the second is empty, so the
    run fails with its own SourceError, and neither child process outlives it."""
    clip = media.synthetic_clip(160, 96, 10, 1, gop=5, bitrate=200_000, folder=tmp_path)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    config = load_pipeline_config(
        overrides=[
            f"sources=[{{kind: file, uri: '{clip}'}}, {{kind: file, uri: '{empty}'}}]",
            "model.backend=onnxruntime",
        ]
    )
    with Pipeline(config) as pipeline, pytest.raises(SourceError, match="the file is empty"):
        pipeline.run(max_frames=10)
    children = multiprocessing.active_children()
    assert not [p for p in children if p.name.startswith("edgeloop-source")]
