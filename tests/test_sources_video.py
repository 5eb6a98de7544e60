"""Video files read back through PyAV and through OpenCV: H.264, H.265, MJPEG and MPEG-TS made
at test time from synthetic-camera frames; seeking, looping, and files that are missing,
truncated or not video at all."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import SourceError
from core.pipeline import Pipeline, load_pipeline_config
from core.sources import SourceConfig, check_source, open_source
from core.sources.decoders import OpenCvDecoder, PyAvDecoder, available_decoders
from core.sources.file import FileSource
from tests.required_tools import require_module
from tests.sample_videos import FPS, HEIGHT, WIDTH, frames, mean_abs_diff, padded, write_video

DECODERS = {"pyav": "av", "opencv": "cv2"}
"""Decoder -> the module it needs (both installed by the video extra: a test fails without)."""

# file name, codec, container format (None: from the suffix)
FILES = {
    "h264": ("clip.mp4", "h264", None),
    "h265": ("clip.mkv", "h265", None),
    "mjpeg": ("clip.avi", "mjpeg", None),
    "mpegts": ("clip.ts", "h264", "mpegts"),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 30-frame clip per kind, written once for the module with PyAV (fails, never skips,
    where PyAV or one of its bundled encoders is missing: the video extra installs them)."""
    folder = tmp_path_factory.mktemp("videos")
    return {
        kind: write_video(folder / name, codec, 30, fmt)
        for kind, (name, codec, fmt) in FILES.items()
    }


@pytest.fixture(params=list(DECODERS))
def decoder(request: pytest.FixtureRequest) -> str:
    """Each decoding library in turn; fails where its module does not import."""
    name: str = request.param
    require_module(DECODERS[name])
    return name


def _read_all(path: Path, decoder: str, **settings: object) -> list[tuple[int, np.ndarray]]:
    config = SourceConfig(kind="file", uri=str(path), decoder=decoder, **settings)  # type: ignore[arg-type]
    with open_source(config, 0) as source:
        assert source.open() == (HEIGHT, WIDTH)
        assert source.nominal_fps == pytest.approx(FPS)
        out = padded(HEIGHT, WIDTH)
        read = []
        while (frame := source.read_into(out)) is not None:
            read.append((frame.index, out.copy()))
    return read


@pytest.mark.parametrize("kind", list(FILES))
def test_every_frame_comes_back_close_to_what_was_encoded(
    videos: dict[str, Path], kind: str, decoder: str
) -> None:
    read = _read_all(videos[kind], decoder)
    assert [index for index, _ in read] == list(range(30))
    for (_, image), original in zip(read, frames(30), strict=True):
        assert mean_abs_diff(image, original) < 6.0  # lossy, but the same picture


@pytest.mark.parametrize("kind", ["h264", "mpegts"])  # MP4 has an index, MPEG-TS has none
def test_start_index_seeks_to_the_same_frame_as_reading_up_to_it(
    videos: dict[str, Path], kind: str, decoder: str
) -> None:
    path = videos[kind]
    everything = _read_all(path, decoder)
    for start in (1, 17, 29):
        read = _read_all(path, decoder, start_index=start)
        assert [index for index, _ in read] == list(range(start, 30))
        assert np.array_equal(read[0][1], everything[start][1])
    assert _read_all(path, decoder, start_index=40) == []


def test_loop_starts_again_and_the_index_counts_on(videos: dict[str, Path], decoder: str) -> None:
    path = videos["h264"]
    config = SourceConfig(kind="file", uri=str(path), decoder=decoder, loop=True)
    with open_source(config, 0) as source:
        out = np.empty((*source.open(), 3), np.uint8)
        read = [source.read_into(out) for _ in range(65)]
    assert [f.index for f in read if f is not None] == list(range(65))
    assert np.array_equal(out, _read_all(path, decoder)[64 % 30][1])  # the third pass's 5th


def test_decode_threads_are_passed_to_ffmpeg(videos: dict[str, Path]) -> None:
    require_module("av")
    config = SourceConfig(kind="file", uri=str(videos["h264"]), decode_threads=2)
    with open_source(config, 0) as source:
        source.open()
        assert isinstance(source, FileSource) and isinstance(source.decoder, PyAvDecoder)
        assert source.decoder._stream.codec_context.thread_count == 2


def test_auto_falls_back_to_opencv_without_pyav(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_module("cv2")
    path = videos["h264"]
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    assert available_decoders() == ["opencv"]
    with open_source(SourceConfig(kind="file", uri=str(path)), 0) as source:
        source.open()
        assert isinstance(source, FileSource) and isinstance(source.decoder, OpenCvDecoder)
    with pytest.raises(SourceError, match=r"decoder 'pyav' is not installed: pip install"):
        open_source(SourceConfig(kind="file", uri=str(path), decoder="pyav"), 0).open()


def test_a_missing_file_names_the_path(tmp_path: Path, decoder: str) -> None:
    path = tmp_path / "nowhere.mp4"
    source = open_source(SourceConfig(kind="file", uri=str(path), decoder=decoder), 0)
    with pytest.raises(SourceError, match=r"nowhere\.mp4: no such file") as caught:
        source.open()
    assert caught.value.errno == errno.ENOENT and caught.value.filename == str(path)
    with pytest.raises(SourceError, match="not a file"):
        open_source(SourceConfig(kind="file", uri=str(tmp_path)), 0).open()


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        ("truncated-mp4", r"cannot open: .*(Invalid data|moov)"),
        ("not-video", r"cannot open: .*Invalid data"),
    ],
)
def test_a_file_that_cannot_be_decoded_says_why(
    videos: dict[str, Path], tmp_path: Path, damage: str, cause: str
) -> None:
    require_module("av")
    path = tmp_path / "damaged.mp4"
    if damage == "truncated-mp4":  # MP4 keeps its index (moov) at the end: cut, it is lost
        data = videos["h264"].read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    else:
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    source = open_source(SourceConfig(kind="file", uri=str(path)), 0)
    with pytest.raises(SourceError, match=rf"^file:{path}: {cause}"):
        source.open()


def test_an_empty_file_says_so_before_any_decoder_tries(tmp_path: Path, decoder: str) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    source = open_source(SourceConfig(kind="file", uri=str(path), decoder=decoder), 0)
    with pytest.raises(SourceError, match=rf"^file:{path}: the file is empty \(0 bytes\)"):
        source.open()


def test_check_source_opens_and_closes_or_raises_what_opening_raises(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    good = videos["h264"]
    assert check_source(SourceConfig(kind="file", uri=str(good))) == f"file:{good}"
    with pytest.raises(SourceError, match="no such file"):
        check_source(SourceConfig(kind="file", uri=str(tmp_path / "nowhere.mp4")))


@pytest.mark.parametrize("damage", ["cut-mpegts", "zeroed-mjpeg"])
def test_damage_mid_file_costs_frames_never_the_stream(
    videos: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    """FFmpeg conceals what it can; what it cannot is a SourceError and the reading goes on."""
    require_module("av")
    kind, suffix = ("mpegts", ".ts") if damage == "cut-mpegts" else ("mjpeg", ".avi")
    data = bytearray(videos[kind].read_bytes())
    if damage == "cut-mpegts":
        data = data[: len(data) // 2]
    else:
        for k in (1, 2, 3):
            data[len(data) * k // 4 : len(data) * k // 4 + 3000] = bytes(3000)
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    with open_source(SourceConfig(kind="file", uri=str(path)), 0) as source:
        out = np.empty((*source.open(), 3), np.uint8)
        delivered, errors = 0, []
        for _ in range(40):  # bounded: a source that ends must say so, not loop
            try:
                frame = source.read_into(out)
            except SourceError as exc:
                errors.append(exc)
                continue
            if frame is None:
                break
            delivered += 1
        else:
            pytest.fail("the damaged file never ended")
    assert 0 < delivered < 30
    assert all(str(e).startswith(f"file:{path}: ") for e in errors)


def _bit_flipped(videos: dict[str, Path], folder: Path, flips: int = 40) -> Path:
    """The MPEG-TS clip with ``flips`` bytes inverted in its middle third (seeded): damage
    FFmpeg's H.264 decoder conceals, as it does a corrupted or lost packet on a camera link."""
    data = bytearray(videos["mpegts"].read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(data) // 3, 2 * len(data) // 3, flips):
        data[pos] ^= 0xFF
    path = folder / "flipped.ts"
    path.write_bytes(bytes(data))
    return path


def test_frames_the_decoder_concealed_errors_in_are_delivered_and_marked(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    """Flipped bits in an H.264 stream do not stop it: FFmpeg conceals them and marks the
    frames corrupt; they are delivered, each marked ``concealed``, and a clean clip has none."""
    require_module("av")
    counts = {}
    for name, path in (
        ("clean", videos["mpegts"]),
        ("flipped", _bit_flipped(videos, tmp_path)),
    ):
        config = SourceConfig(kind="file", uri=str(path), decoder="pyav")
        delivered, concealed = 0, 0
        with open_source(config, 0) as source:
            out = np.empty((*source.open(), 3), np.uint8)
            for _ in range(60):  # bounded: the source must end
                try:
                    frame = source.read_into(out)
                except SourceError:
                    continue  # a packet that did not decode at all: counted by the pipeline
                if frame is None:
                    break
                delivered += 1
                concealed += frame.concealed
        counts[name] = (delivered, concealed)
    assert counts["clean"] == (30, 0)
    delivered, concealed = counts["flipped"]
    assert delivered >= 28 and 0 < concealed < delivered, counts


def test_the_pipeline_counts_concealed_frames_and_loses_none(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    """Through the pipeline: every frame of the damaged clip delivered, the concealed ones
    counted in the stream's report and the metrics."""
    path = _bit_flipped(videos, tmp_path)
    config = load_pipeline_config(
        overrides=[
            f"sources=[{{kind: file, uri: '{path}', decoder: pyav}}]",
            "model.backend=onnxruntime",
            "filter.motion.enabled=false",
        ]
    )
    with Pipeline(config) as pipeline:
        report = pipeline.run()
    (stream,) = report.streams
    assert stream.state == "ended" and stream.produced + stream.read_errors >= 28
    assert stream.produced == stream.delivered and stream.occupancy_end == 0
    assert 0 < stream.concealed < stream.produced
    (counted,) = report.metrics["edgeloop_frames_concealed_total"]["samples"]
    assert counted["labels"] == {"stream": "0"} and counted["value"] == stream.concealed


@pytest.mark.parametrize("workers", ["thread", "process", "auto"])
def test_the_report_says_what_was_read_and_counts_the_loops(
    videos: dict[str, Path], decoder: str, workers: str
) -> None:
    """A looping 30-frame clip read 75 frames: two loop points counted (from a source process
    too, through the stream's shared block), and the stream's report names the kind, size,
    codec, decoder and workers (``auto``: a file decodes in a process, with the decoder
    threads the cores leave)."""
    path = videos["h264"]
    config = load_pipeline_config(
        overrides=[
            f"sources=[{{kind: file, uri: '{path}', decoder: {decoder}, loop: true}}]",
            f"source_workers={workers}",
            "model.backend=onnxruntime",
        ]
    )
    with Pipeline(config) as pipeline:
        report = pipeline.run(max_frames=75)
    stream = report.streams[0]
    assert stream.produced == 75 and stream.loops == 2
    facts = stream.source
    assert (facts["kind"], facts["width"], facts["height"]) == ("file", WIDTH, HEIGHT)
    assert facts["decoder"] == decoder
    assert facts["workers"] == ("process" if workers == "auto" else workers)
    assert facts["codec"] == "h264", facts
    if workers == "auto" and decoder == "pyav":  # OpenCV does not say its threads
        assert facts["threads"] >= 1
