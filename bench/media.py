"""Benchmark clips: the synthetic camera's scene encoded to H.264 in MP4, built once and cached.

A pipeline benchmark on a video file measures decoding as a deployment pays it; the clip is
made here from :mod:`core.synthetic`, so every machine decodes the same scene at the same
bitrate with no download. ``--source clip720p`` (:data:`CLIPS`) names the standard one.

:func:`synthetic_clip` encodes with PyAV's libx264 (yuv420p, ``preset`` :data:`PRESET`,
average bitrate ``bitrate``, a keyframe every ``gop`` frames and no others: scene-cut detection
is off). The file lives under ``<cache>/clips/`` by a name that spells out every parameter and
:data:`VERSION`, with its SHA-256 beside it (``.sha256``, written last: a clip without it is
unfinished) and a JSON file of the scene (``.json``: :class:`core.synthetic.SceneConfig`'s
fields, frame count, codec settings) and the ground truth of every frame in a sidecar
(``.truth.json``, :mod:`core.sources.truth`: what a file source reads to measure accuracy on
the clip as on the synthetic camera). A present, intact clip is reused (its sidecar made again
when missing or unreadable); a missing, truncated or altered one is encoded again. Files are
written atomically, so two processes making the same clip never leave half a file.

Encoding prints nothing: a caller that wants to show progress passes ``progress``.

>>> clip_name(1280, 720, 30, 20, gop=30, bitrate=4_000_000)
'synthetic-v1-1280x720-30fps-20s-gop30-4000000bps-seed0.mp4'
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.cache import atomic_write_bytes, cache_dir, intact, write_built
from core.detections import GroundTruth
from core.errors import ConfigError, SourceError
from core.sources.truth import TruthTrack, truth_path_for, write_truth
from core.synthetic import CLASS_NAMES, SceneConfig, SyntheticCamera

VERSION = 1
"""Bump when the encoding or the scene changes: the file name carries it."""
CODEC = "libx264"
PIX_FMT = "yuv420p"
PRESET = "veryfast"
"""x264's preset: a file the size and structure a camera sends, made in seconds."""
CLIPS: dict[str, dict[str, Any]] = {
    "clip1080p": {
        "width": 1920,
        "height": 1080,
        "fps": 30,
        "seconds": 10,
        "gop": 30,
        "bitrate": 6_000_000,
    },
    "clip720p": {
        "width": 1280,
        "height": 720,
        "fps": 30,
        "seconds": 20,
        "gop": 30,
        "bitrate": 4_000_000,
    },
}
"""Clips ``--source`` knows by name -> :func:`synthetic_clip`'s arguments. ``clip1080p`` is
what a camera sends (1080p30, a key frame a second, 6 Mbit/s) and the standard suite's main
stream; ten seconds keep its first encoding to seconds, and a file source loops it."""
Progress = Callable[[float, str], None]


def clip_name(
    width: int, height: int, fps: float, seconds: float, *, gop: int, bitrate: int, seed: int = 0
) -> str:
    """The cached clip's file name: every parameter and :data:`VERSION`."""
    return (
        f"synthetic-v{VERSION}-{width}x{height}-{fps:g}fps-{seconds:g}s-gop{gop}-"
        f"{bitrate}bps-seed{seed}.mp4"
    )


def synthetic_clip(
    width: int,
    height: int,
    fps: float,
    seconds: float,
    *,
    gop: int,
    bitrate: int,
    seed: int = 0,
    folder: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Path of the synthetic scene (``seed``) at ``width`` x ``height`` and ``fps`` for
    ``seconds``, encoded to H.264 in MP4 with a keyframe every ``gop`` frames at ``bitrate``
    bits a second; encoded now unless an intact copy is cached (in ``folder``, default
    ``<cache>/clips``). ``progress(fraction, message)`` is called as frames are encoded.

    Raises :class:`ConfigError` for a parameter out of range (odd sizes: yuv420p halves them)
    and :class:`SourceError` where PyAV or its libx264 encoder is missing."""
    scene = SceneConfig(width=width, height=height, fps=fps, seed=seed)
    frames = round(fps * seconds)
    if width % 2 or height % 2:
        raise ConfigError(f"clip size {width}x{height}: {PIX_FMT} needs even width and height")
    if frames < 1:
        raise ConfigError(f"a clip of {seconds:g} s at {fps:g} fps has no frame")
    if not isinstance(gop, int) or gop < 1:
        raise ConfigError(f"gop must be a positive int (frames between keyframes), got {gop!r}")
    if not isinstance(bitrate, int) or bitrate < 1000:
        raise ConfigError(f"bitrate must be an int of at least 1000 bits/s, got {bitrate!r}")
    path = (folder or cache_dir("clips")) / clip_name(
        width, height, fps, seconds, gop=gop, bitrate=bitrate, seed=seed
    )
    facts = {
        "version": VERSION,
        "scene": dataclasses.asdict(scene),
        "frames": frames,
        "seconds": seconds,
        "codec": "h264",
        "encoder": CODEC,
        "preset": PRESET,
        "pix_fmt": PIX_FMT,
        "gop": gop,
        "bitrate": bitrate,
    }
    facts_data = (json.dumps(facts, indent=2, sort_keys=True) + "\n").encode()
    truth = truth_path_for(path)
    if not intact(path):
        data, truths = _encode(scene, frames, gop, bitrate, progress or _no_progress)
        atomic_write_bytes(_json_path(path), facts_data)
        write_truth(truth, CLASS_NAMES, (width, height), truths)
        write_built(path, data)  # its digest last: a clip without one is encoded again
        return path
    if _read(_json_path(path)) != facts_data:
        atomic_write_bytes(_json_path(path), facts_data)
    if not _truth_fits(truth, frames):
        camera = SyntheticCamera(scene)
        truths = [camera.frame(i)[1] for i in range(frames)]
        write_truth(truth, CLASS_NAMES, (width, height), truths)
    return path


def named_clip(name: str, *, progress: Progress | None = None) -> Path:
    """The clip :data:`CLIPS` calls ``name``, made if needed (:class:`KeyError` for another)."""
    return synthetic_clip(**CLIPS[name], progress=progress)


def _truth_fits(path: Path, frames: int) -> bool:
    try:
        return TruthTrack.load(path).frames == frames
    except SourceError:
        return False


def _encode(
    scene: SceneConfig, frames: int, gop: int, bitrate: int, progress: Progress
) -> tuple[bytes, list[GroundTruth]]:
    try:
        import av  # noqa: PLC0415 - optional (the video extra), heavy

        av.codec.Codec(CODEC, "w")
    except Exception as exc:  # ImportError, or a PyAV built without the encoder
        raise SourceError(
            f"encoding a benchmark clip needs PyAV with {CODEC} ({exc}): "
            "pip install 'edgeloop[video]' (PyAV's wheels bundle it)"
        ) from exc
    camera = SyntheticCamera(scene)
    truths: list[GroundTruth] = []
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(
            CODEC,
            rate=Fraction(scene.fps).limit_denominator(1001),
            options={"preset": PRESET, "x264-params": "scenecut=0"},
        )
        stream.width, stream.height, stream.pix_fmt = scene.width, scene.height, PIX_FMT
        stream.codec_context.gop_size = gop
        stream.codec_context.bit_rate = bitrate
        for index in range(frames):
            image, truth = camera.frame(index)
            truths.append(truth)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
            if index % 30 == 29:
                progress((index + 1) / frames, f"encoding clip: frame {index + 1}/{frames}")
        for packet in stream.encode():
            container.mux(packet)
    progress(1.0, f"encoding clip: {frames} frames")
    return buffer.getvalue(), truths


def _no_progress(fraction: float, message: str) -> None:
    del fraction, message


def _json_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
