"""What every frame source provides: its typed config, what one read returns, the interface.

A source writes frames into memory the pipeline owns -- a :class:`~core.ring.FrameRing` slot,
handed over as a NumPy view that may have padded rows -- so a decoder that can write in place
(libjpeg-turbo, OpenCV, the synthetic camera) costs no copy at all, and one that cannot
(PyAV's swscale output, a live stream's reader thread) costs exactly one.

The rules every kind follows, so the pipeline can treat them alike:

* :meth:`Source.open` returns the frame size ``(height, width)``: the pipeline sizes its ring
  from it. What cannot be opened raises :class:`~core.errors.SourceError` naming the cause.
* :meth:`Source.read_into` never blocks longer than ``timeout_s``: a source that stalls raises
  :class:`~core.errors.SourceStalledError`, one frame that cannot be used raises
  :class:`~core.errors.SourceFrameError` (the next read moves past it), anything else wrong a
  :class:`~core.errors.SourceError`; all start with the source's :attr:`Source.name`. ``None``
  means the stream ended: the pipeline reports it and stops reading that stream.
* Pacing is the pipeline's job: files and the synthetic camera deliver as fast as they are
  asked; live sources (V4L2, network streams) deliver at the camera's rate.
* A source is used by one thread at a time (the pipeline's source worker for its stream).
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from core.config import at_least, checked, in_range, positive, validate
from core.detections import GroundTruth
from core.errors import ConfigError, FrameError, SourceError
from core.frame import MAX_PIXELS
from core.preprocess import check_frame
from core.sources.hwdecode import HwAccelName

__all__ = ["DecoderName", "Source", "SourceConfig", "SourceFrame", "SourceKind"]

SourceKind = Literal["synthetic", "file", "images", "v4l2", "rtsp"]
DecoderName = Literal["auto", "pyav", "opencv"]

_URI_HELP: dict[str, str] = {
    "file": "the path of a video file",
    "images": "a directory of JPEG/PNG images",
    "v4l2": "a device such as /dev/video0",
    "rtsp": "a stream URL such as rtsp://camera/stream",
}


@dataclass(frozen=True)
class SourceConfig:
    """One stream: which kind of source, where, and how to read it.

    As YAML (one item of a pipeline's ``sources`` list)::

        - kind: file                # synthetic | file | images | v4l2 | rtsp
          uri: clips/gate.mp4       # path, directory, /dev/videoN or rtsp://... URL
          loop: true                # files and image folders: start again at the end
          timeout_s: 5.0            # a read that takes longer raises SourceStalledError

    ``width``/``height``/``fps``/``seed``/``quiet_fraction``/``max_objects`` describe the
    synthetic scene (:class:`core.synthetic.SceneConfig`); a V4L2 camera is asked for that
    ``width``/``height``/``fps`` (it may pick its nearest mode); other kinds take their size and
    rate from the stream, and nothing here resizes. ``decoder`` picks the video library for
    files and network streams (``auto``: PyAV, else OpenCV), ``decode_threads`` its decoding
    threads (0: FFmpeg's choice, or the pipeline's: :mod:`core.pipeline.placement`), and
    ``hwaccel`` the hardware that decodes them (``auto``: what the device has, else the CPU;
    ``cpu``, ``cuda``, ``vaapi``, ``nvv4l2``: :mod:`core.sources.hwdecode`).
    ``reconnect_attempts``: how many consecutive failed
    reconnects a live source (V4L2, network) makes before its stream counts as ended
    (-1: forever); see :mod:`core.sources.live`. ``max_pixels``: the largest frame a source
    may open (width x height; default 8192 x 8192): the ring is sized from the first frame's
    header, and a damaged or hostile one (a JPEG whose header says 30000 x 30000) would
    otherwise reserve gigabytes of shared memory per slot. ``truth``: a file source's
    ground-truth sidecar (:mod:`core.sources.truth`), so accuracy can be measured on a
    recording as on the synthetic camera.
    """

    kind: SourceKind = "synthetic"
    uri: str | None = None
    width: int = checked(1920, in_range(32, 16384))
    height: int = checked(1080, in_range(32, 16384))
    fps: float = checked(30.0, in_range(1e-3, 1e4))
    seed: int = checked(0, at_least(0))
    quiet_fraction: float | None = checked(None, in_range(0.0, 1.0))
    max_objects: int = checked(5, in_range(0, 64))
    loop: bool = False
    timeout_s: float = checked(5.0, positive)
    start_index: int = checked(0, at_least(0))
    decoder: DecoderName = "auto"
    decode_threads: int = checked(0, in_range(0, 64))
    reconnect_attempts: int = checked(10, at_least(-1))
    max_pixels: int = checked(MAX_PIXELS, in_range(1024, 1 << 30))
    truth: str | None = None
    hwaccel: HwAccelName = "auto"

    def __post_init__(self) -> None:
        validate(self)
        if self.kind != "synthetic" and not self.uri:
            raise ConfigError(f"uri: a {self.kind!r} source needs one ({_URI_HELP[self.kind]})")
        if self.truth is not None and self.kind != "file":
            raise ConfigError(
                f"truth: a ground-truth sidecar is read for a file source, not {self.kind!r}"
            )


@dataclass(frozen=True)
class SourceFrame:
    """What one read delivered besides the pixels (those went into the caller's ``out``)."""

    index: int
    """Frame number in the stream: ``start_index`` for the first, then +1 per frame delivered
    (a looping file or folder keeps counting)."""
    capture_ns: int
    """``time.monotonic_ns()`` when the frame was captured: for live sources when the reader
    thread had it decoded, for files and the synthetic camera when it was read (and, paced by
    the pipeline, when it was published on its tick)."""
    truth: GroundTruth | None = None
    """The objects really in the frame (the synthetic camera, a file with a truth sidecar)."""
    concealed: bool = False
    """The decoder concealed errors in it (:attr:`core.sources.decoders.Decoder.concealed`):
    delivered as decoded, counted by the pipeline (``StreamReport.concealed``)."""


class DecoderFacts(Protocol):
    """What :meth:`Source.facts` asks of a decoder (:class:`core.sources.decoders.Decoder`)."""

    def facts(self) -> dict[str, Any]: ...


class Source(abc.ABC):
    """A stream of HxWx3 uint8 BGR frames; see the module docstring for the rules."""

    live = False
    """Whether frames come from the world as it happens (a camera, RTSP) rather than being
    replayed (the synthetic camera, a file, a folder): a replayed frame paced by the pipeline
    is stamped captured when the pacing publishes it (:mod:`core.pipeline.streams`)."""
    loops = 0
    """Times a looping source went back to its start (``loop``); the pipeline counts them."""

    def __init__(self, config: SourceConfig, stream_id: int) -> None:
        self.config = config
        self.stream_id = stream_id
        self.name = self.describe()
        self._shape: tuple[int, int] | None = None
        self._next_index = config.start_index

    def describe(self) -> str:
        """The name errors and logs use (``kind:uri``; URLs without their password)."""
        return f"{self.config.kind}:{self.config.uri}"

    @abc.abstractmethod
    def open(self) -> tuple[int, int]:
        """Get ready to read; return the frame size ``(height, width)``."""

    @property
    def nominal_fps(self) -> float | None:
        """The stream's own frame rate where it has one (None: unknown)."""
        return None

    @abc.abstractmethod
    def read_into(self, out: np.ndarray) -> SourceFrame | None:
        """Write the next frame into ``out`` (HxWx3 uint8, rows may be padded); None at the end."""

    def seek(self, index: int) -> bool:
        """Make the next read deliver frame ``index``, where the source has cheap random access
        (the synthetic camera, an image folder); False where it has not (live streams, files:
        decoding from a key frame is not cheap). ``Pipeline.stage_costs`` samples a run's
        frames this way."""
        del index
        return False

    def close(self) -> None:  # noqa: B027 - most sources have something to release, not all
        """Release files, devices, connections and threads (idempotent)."""

    def facts(self) -> dict[str, Any]:
        """What it reads and how, for reports (after :meth:`open`): ``kind``, ``width``,
        ``height``, and ``decoder``, ``codec``, ``threads`` where a decoder runs
        (:meth:`core.sources.decoders.Decoder.facts`; None otherwise)."""
        height, width = self._shape if self._shape is not None else (None, None)
        facts: dict[str, Any] = {
            "kind": self.config.kind,
            "width": width,
            "height": height,
            "decoder": None,
            "codec": None,
            "threads": None,
        }
        decoder = self.active_decoder()
        if decoder is not None:
            facts.update(decoder.facts())
        return facts

    def active_decoder(self) -> DecoderFacts | None:
        """The decoder reading the stream now, where one does (files, network, V4L2)."""
        return None

    def has_ground_truth(self) -> bool:
        """Whether frames carry :attr:`SourceFrame.truth` (the synthetic camera's do, and a
        file's with a truth sidecar)."""
        return False

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers for the implementations ----------------------------------------------------

    def error(self, message: str, kind: type[SourceError] = SourceError) -> SourceError:
        """A ``kind`` error whose message starts with this source's name."""
        return kind(f"{self.name}: {message}")

    def _opened(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Record the opened size; a frame over ``max_pixels`` is refused (the source closed)."""
        height, width = int(shape[0]), int(shape[1])
        if height * width > self.config.max_pixels:
            self.close()
            raise self.error(
                f"its frames are {width}x{height} ({height * width / 1e6:.0f} MP), over "
                f"max_pixels ({self.config.max_pixels:,}); raise max_pixels if that is real"
            )
        self._shape = (height, width)
        return self._shape

    def _check_out(self, out: np.ndarray) -> np.ndarray:
        """``out`` checked against the opened size: a wrong buffer is the caller's bug."""
        if self._shape is None:
            raise SourceError(f"{self.name}: read_into before open()")
        check_frame(out)
        if out.shape[:2] != self._shape:
            raise FrameError(
                f"{self.name}: out is {out.shape[1]}x{out.shape[0]}, the stream is "
                f"{self._shape[1]}x{self._shape[0]} (size the ring from open())"
            )
        if not out.flags.writeable:
            raise FrameError(f"{self.name}: out must be writeable")
        return out

    def _delivered(
        self,
        capture_ns: int | None = None,
        truth: GroundTruth | None = None,
        *,
        concealed: bool = False,
    ) -> SourceFrame:
        """The :class:`SourceFrame` for the frame just written, advancing the index."""
        index, self._next_index = self._next_index, self._next_index + 1
        when = time.monotonic_ns() if capture_ns is None else capture_ns
        return SourceFrame(index, when, truth, concealed)
