"""The ``rtsp`` source against a real RTSP server (:mod:`tests.rtsp_server`): DESCRIBE, SETUP
and PLAY over TCP with interleaved RTP, H.264 in real time, the way an IP camera serves it.
Frames must come back as the camera's (synthetic, so the originals are known), a missing
stream must fail with the server's answer, a camera that reboots must be reconnected, and the
pipeline must run on it with every frame accounted for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.errors import SourceError
from core.pipeline import Pipeline, load_pipeline_config
from core.sources import Source, SourceConfig, open_source
from tests.required_tools import require_module
from tests.rtsp_server import RtspServer
from tests.sample_videos import HEIGHT, WIDTH, frames, mean_abs_diff, write_video

CLIP_FRAMES = 45  # 1.5 s at 30 fps: the server paces it in real time
TIMEOUT_S = 3.0


def _camera(folder: Path) -> RtspServer:
    """An RTSP camera serving ``folder`` (started); fails, never skips, where PyAV (the video
    extra: the clip, and the rtsp source reads through it) or the server (dev) is missing."""
    require_module("aio_rtsp_toolkit")
    # The live encoder's settings (no B-frames): the camera's stream, put in an MP4 to serve.
    write_video(folder / "camera.mp4", "h264-live", CLIP_FRAMES)
    return RtspServer(folder).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    served = _camera(tmp_path_factory.mktemp("rtsp"))
    yield served
    served.stop()


def _source(url: str, reconnect_attempts: int = 0) -> Source:
    config = SourceConfig(
        kind="rtsp", uri=url, timeout_s=TIMEOUT_S, reconnect_attempts=reconnect_attempts
    )
    return open_source(config, 0)


def test_an_rtsp_camera_is_read_frame_by_frame(server: RtspServer) -> None:
    source = _source(server.url("camera.mp4"))
    assert source.open() == (HEIGHT, WIDTH)
    out = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    originals = list(frames(CLIP_FRAMES))
    got, stamps = 0, []
    while (frame := source.read_into(out)) is not None:
        # each frame is the camera's next one (lossy H.264: close, not equal), none skipped
        assert mean_abs_diff(out, originals[got + source.dropped_frames]) < 6.0, got
        stamps.append(frame.capture_ns)
        got += 1
    assert got + source.dropped_frames == CLIP_FRAMES  # then the server ended the session
    assert stamps == sorted(stamps)  # stamped as decoded: a live source's capture time
    source.close()


def test_a_stream_the_server_does_not_have_fails_to_open_with_its_answer(
    server: RtspServer,
) -> None:
    with pytest.raises(SourceError, match=r"cannot open: .*(404|[Nn]ot [Ff]ound)"):
        _source(server.url("no-such-camera.mp4")).open()


def test_a_camera_that_reboots_is_reconnected(tmp_path: Path) -> None:
    camera = _camera(tmp_path)
    try:
        source = _source(camera.url("camera.mp4", plays=0), reconnect_attempts=3)
        out = np.empty((*source.open(), 3), np.uint8)
        for _ in range(5):
            assert source.read_into(out) is not None
        camera.stop()  # the camera goes away mid-stream...
        with pytest.raises(SourceError, match="reconnecting on the next read"):
            for _ in range(CLIP_FRAMES):  # (frames already queued come first)
                source.read_into(out)
        camera.start()  # ...and comes back on the same address
        frame = source.read_into(out)  # the stream again, from its start (the reader keeps
        assert frame is not None  # the newest two frames: under load, it may have moved on)
        assert min(mean_abs_diff(out, original) for original in frames(5)) < 6.0
        source.close()
    finally:
        camera.stop()


def test_the_pipeline_runs_on_an_rtsp_camera(server: RtspServer) -> None:
    config = load_pipeline_config(
        overrides=[
            f"sources=[{{kind: rtsp, uri: '{server.url('camera.mp4')}', timeout_s: {TIMEOUT_S}, "
            "reconnect_attempts: 0}]",  # the stream ends with its one play
            "model.backend=onnxruntime",
        ]
    )
    with Pipeline(config) as pipeline:
        report = pipeline.run(duration_s=20.0)  # ends with the stream, long before
    stream = report.streams[0]
    assert stream.state == "ended", stream
    assert stream.policy == "drop_oldest"  # a camera never waits for the pipeline
    assert stream.produced == stream.delivered + sum(stream.dropped.values())
    assert stream.delivered > 0 and stream.occupancy_end == 0
    assert report.errors == dict.fromkeys(report.errors, 0)
