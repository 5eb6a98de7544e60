"""Live network sources for real over a local socket: an MPEG-TS stream served over HTTP and
bare TCP, where the test controls every byte: a sender that stalls (SourceStalledError, never
a hang), one that hangs up (reported, then reconnected), one that is gone (reconnects that
give up). RTSP's URL and FFmpeg options are unit-tested here; a real RTSP server is in
``test_sources_rtsp.py``."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from core.errors import ConfigError, SourceError, SourceFrameError, SourceStalledError
from core.sources import Source, SourceConfig, open_source
from core.sources.decoders import available_decoders
from core.sources.live import QUEUED_FRAMES, LiveSource, _End, _Mailbox
from core.sources.rtsp import NetworkSource, redact, stream_options
from tests.sample_videos import HEIGHT, WIDTH, StreamServer, frames, mean_abs_diff, write_video

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """30 frames of H.264 (no B-frames: a live encoder's settings) in MPEG-TS."""
    path = tmp_path_factory.mktemp("stream") / "live.ts"
    return write_video(path, "h264-live", 30, "mpegts").read_bytes()


@pytest.fixture
def served(payload: bytes, request: pytest.FixtureRequest) -> Iterator[StreamServer]:
    http, after = request.param
    server = StreamServer(payload, http=http, after=after)
    yield server
    server.close()


def _source(
    url: str, decoder: str = "auto", reconnect_attempts: int = 0, timeout_s: float = TIMEOUT_S
) -> Source:
    config = SourceConfig(
        kind="rtsp",
        uri=url,
        timeout_s=timeout_s,
        decoder=decoder,  # type: ignore[arg-type]
        reconnect_attempts=reconnect_attempts,
    )
    return open_source(config, 0)


def _read_until_error(source: Source, out: np.ndarray, limit: int = 200) -> tuple[int, Exception]:
    """Frames read before the first error (bounded: the source must raise, not hang)."""
    for delivered in range(limit):
        try:
            if source.read_into(out) is None:
                pytest.fail(f"the stream ended after {delivered} frames without an error")
        except SourceError as exc:
            return delivered, exc
    pytest.fail(f"no error after {limit} frames")


DECODERS = [d for d in ("pyav", "opencv") if d in available_decoders()]


STALLING = [pytest.param((True, "stall"), d, id=f"http-{d}") for d in DECODERS] + [
    pytest.param((False, "stall"), "pyav", id="tcp-pyav") for d in DECODERS if d == "pyav"
]


@pytest.mark.parametrize(("served", "decoder"), STALLING, indirect=["served"])
def test_a_stalled_sender_raises_stalled_instead_of_hanging(
    served: StreamServer, decoder: str
) -> None:
    source = _source(served.url, decoder)
    assert source.open() == (HEIGHT, WIDTH)
    out = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    first = out.copy()
    assert source.read_into(first) is not None
    assert mean_abs_diff(first, next(frames(1))) < 6.0
    delivered, error = _read_until_error(source, out)
    assert delivered > 0  # MPEG-TS holds the last frame or two until more data comes
    if decoder == "pyav":  # whichever timeout fires first, the reader's wait or FFmpeg's read
        assert isinstance(error, SourceStalledError)
        assert re.search(r"no (frame|data) within .*; not reconnecting", str(error))
    else:  # usually the same; but OpenCV's read timeout may report first, without its cause
        assert "not reconnecting" in str(error)
    assert source.read_into(out) is None  # reconnect_attempts=0: the stream has ended
    source.close()


@pytest.mark.parametrize("served", [(True, "close")], indirect=True)
def test_a_sender_that_hangs_up_is_reported_then_reconnected(served: StreamServer) -> None:
    source = _source(served.url, reconnect_attempts=3)
    assert isinstance(source, LiveSource)
    out = np.empty((*source.open(), 3), np.uint8)
    delivered, error = _read_until_error(source, out)
    # The 30 frames come in one burst: a reader that got ahead dropped the oldest (counted).
    assert delivered + source.dropped_frames >= 25 and not isinstance(error, SourceStalledError)
    assert "reconnecting on the next read" in str(error)
    frame = source.read_into(out)  # reconnects, and the stream starts again
    assert frame is not None and frame.index == delivered
    assert served.clients == 2
    source.close()


def _refusing_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.ts"  # closed: connections are refused


def test_a_sender_that_is_gone_fails_to_open_with_the_cause() -> None:
    with pytest.raises(SourceError, match=r"cannot open: .*[Cc]onnection refused"):
        _source(_refusing_url(), "pyav" if "pyav" in DECODERS else "auto").open()


@pytest.mark.parametrize("served", [(True, "close")], indirect=True)
def test_reconnects_back_off_then_give_up(served: StreamServer) -> None:
    source = _source(served.url, reconnect_attempts=2, timeout_s=0.3)  # < the 1 s back-off
    assert isinstance(source, LiveSource)
    out = np.empty((*source.open(), 3), np.uint8)
    _read_until_error(source, out)
    served.close()  # from now on, connections are refused
    with pytest.raises(SourceError, match=r"reconnect 1 failed, next try in 1 s: cannot open"):
        source.read_into(out)
    with pytest.raises(SourceStalledError, match=r"reconnecting in \d"):
        source.read_into(out)  # waits timeout_s of the 1 s back-off, then says so
    source._retry_at = 0.0  # skip the rest of the back-off
    with pytest.raises(SourceError, match=r"reconnect 2/2 failed, giving up"):
        source.read_into(out)
    assert source.read_into(out) is None
    source.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeloop http")]


# -- the reader thread's mailbox --------------------------------------------------------------


def test_the_mailbox_keeps_the_newest_frames_and_never_drops_errors_or_the_end() -> None:
    box = _Mailbox()
    error = SourceFrameError("x: a packet does not decode")
    for i in range(5):
        box.put((np.full(1, i, np.uint8), i))
        if i == 1:
            box.put(error)
    box.put(_End())
    assert box.dropped == 5 - QUEUED_FRAMES
    got = [box.get(0.0) for _ in range(4)]
    assert got[0] is error
    assert [item[1] for item in got[1:3] if isinstance(item, tuple)] == [3, 4]
    assert isinstance(got[3], _End)
    assert box.get(0.0) is None  # empty: nothing within the (zero) timeout


# -- RTSP: URLs and options -----------------------------------------------------------------


def test_rtsp_goes_over_tcp_with_socket_timeouts_and_video_only() -> None:
    options = stream_options("rtsp://cam.local:554/stream1", timeout_s=2.0)
    assert options == {
        "rw_timeout": "2000000",
        "rtsp_transport": "tcp",
        "timeout": "2000000",
        "allowed_media_types": "video",
    }
    assert stream_options("RTSPS://cam/x", timeout_s=0.25)["timeout"] == "250000"
    assert stream_options("http://h/x.ts", timeout_s=1.0) == {"rw_timeout": "1000000"}


def test_passwords_never_reach_names_or_errors() -> None:
    url = "rtsp://admin:hunter2@10.1.2.3:8554/live?channel=1"
    assert redact(url) == "rtsp://admin:***@10.1.2.3:8554/live?channel=1"
    assert redact("rtsp://10.1.2.3/live") == "rtsp://10.1.2.3/live"
    source = open_source(SourceConfig(kind="rtsp", uri=url), 2)
    assert isinstance(source, NetworkSource) and "hunter2" not in source.name
    with pytest.raises(ConfigError) as caught:
        open_source(SourceConfig(kind="rtsp", uri="ftp://admin:hunter2@host/x"), 0)
    assert "hunter2" not in str(caught.value) and "is not a stream URL" in str(caught.value)


@pytest.mark.parametrize("uri", ["rtsp:///nohost", "camera.local/stream", "file:///x.mp4"])
def test_uris_that_are_not_stream_urls_are_config_errors(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"^uri: .* is not a stream URL"):
        open_source(SourceConfig(kind="rtsp", uri=uri), 0)
