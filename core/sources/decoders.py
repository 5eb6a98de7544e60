"""Video decoding for files and network streams: PyAV first, OpenCV's FFmpeg backend second.

Why PyAV first (``pip install 'edgeloop[video]'``; its wheels bundle FFmpeg with H.264, H.265
and MJPEG): its errors carry FFmpeg's cause ("Invalid data found when processing input",
"moov atom not found") where OpenCV's ``VideoCapture`` only says it could not open, and
``read()`` returns ``False`` alike at the end and on an error; decode threads are settable;
seeking is by timestamp; and FFmpeg's interrupt callback bounds every blocking read by
``timeout_s``. OpenCV stays the fallback (and the only way to a V4L2 camera: PyAV's wheels
leave ``video4linux2`` out). ``SourceConfig.decoder`` forces one.

Copies. OpenCV decodes and converts straight into the caller's buffer, padded rows and all
(``VideoCapture.read(out)``). PyAV cannot convert into a buffer it did not allocate: swscale
writes a new BGR frame (``VideoFrame.to_ndarray(format="bgr24")``, a view of it, no second
allocation) and one ``np.copyto`` moves it into the slot. At 1080p that copy is a small part of
a frame's decoding (docs/decisions/0020-pyav-first-decoder.md).

Errors are :mod:`core.errors` ones whose message starts with the source's name: a packet that
does not decode is a :class:`~core.errors.SourceFrameError` (the next read goes on with the next
packet), a read that FFmpeg's timeout interrupted a :class:`~core.errors.SourceStalledError`,
anything else a :class:`~core.errors.SourceError`.
"""

from __future__ import annotations

import abc
import importlib
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from core.errors import SourceError, SourceFrameError, SourceStalledError
from core.sources.base import DecoderName
from core.sources.hwdecode import choose_hwaccel, decode_probe, gstreamer_pipeline

__all__ = [
    "Decoder",
    "OpenCvDecoder",
    "PyAvDecoder",
    "available_decoders",
    "open_decoder",
    "optional_module",
]

OpenCvApi = Literal["ffmpeg", "v4l2", "gstreamer"]
FOURCC_CODECS = {
    "avc1": "h264",
    "h264": "h264",
    "x264": "h264",
    "hev1": "hevc",
    "hvc1": "hevc",
    "hevc": "hevc",
    "h265": "hevc",
    "mjpg": "mjpeg",
}
"""OpenCV reports a FourCC: the FFmpeg codec names PyAV reports, for the same report key."""

_INSTALL = "pip install 'edgeloop[video]'"
log = logging.getLogger("edgeloop.sources")


def optional_module(name: str) -> Any | None:
    """The module ``name``, or None where it is not installed: PyAV (``av``), OpenCV (``cv2``)
    and Pillow are optional (the ``video`` extra), and a source imports them only when used."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def available_decoders() -> list[str]:
    """The decoding libraries that import here, in the order ``decoder: auto`` tries them."""
    return [lib for lib, module in (("pyav", "av"), ("opencv", "cv2")) if optional_module(module)]


class Decoder(abc.ABC):
    """One opened video stream, decoded frame by frame into HxWx3 uint8 BGR."""

    library: str
    """``"pyav"`` or ``"opencv"``."""
    width: int
    height: int
    fps: float | None
    """The stream's frame rate where it declares one."""

    concealed = False
    """Whether the frame the last read returned was marked corrupt by the decoder: FFmpeg
    concealed errors in it (damaged data it decoded around, e.g. flipped bits or a lost
    packet) and the frame comes as decoded, artefacts and all. PyAV says so; OpenCV cannot."""
    position: int | None = None
    """The position in the stream (0: its first frame) of the frame the last read returned,
    from its timestamp where the stream has one (None: unknown): a packet that did not decode
    leaves a gap rather than shifting every later frame's number (what a truth sidecar is
    matched by). PyAV says so; OpenCV counts frames."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def read_into(self, out: np.ndarray) -> bool:
        """Decode the next frame into ``out`` (the stream's size); False at the end."""

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame in a new array (for reader threads); None at the end."""

    @abc.abstractmethod
    def seek(self, index: int) -> None:
        """Make frame ``index`` (0: the first) the next one read."""

    def facts(self) -> dict[str, Any]:
        """What decodes it: ``decoder`` (the library), ``codec`` (FFmpeg's decoder name, or
        the FourCC where only that is known; None when unknown), ``threads`` (0: the
        library chooses) and ``hwaccel`` (``cpu``, or the hardware that decodes:
        :mod:`core.sources.hwdecode`), for the bench report."""
        return {"decoder": self.library, "codec": None, "threads": None, "hwaccel": "cpu"}

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file, device or connection (idempotent)."""

    def _wrong_size(self, width: int, height: int) -> SourceFrameError:
        return SourceFrameError(
            f"{self.name}: a {width}x{height} frame in a {self.width}x{self.height} stream "
            "(the stream changed its size mid-way); skipped"
        )


class PyAvDecoder(Decoder):
    """FFmpeg through PyAV: demux, decode (``threads``; 0 lets FFmpeg choose), swscale to BGR.

    ``options`` go to FFmpeg's demuxer and protocol (``{"rtsp_transport": "tcp"}``); every
    open and every packet read is bounded by ``timeout_s`` through FFmpeg's interrupt callback.
    ``live``: decode with slice threads only, since frame threads hold back one frame per
    thread (latency a file does not mind, but a live stream does: and when the sender stalls,
    those frames would wait for the next packet).
    """

    library = "pyav"

    def __init__(
        self,
        uri: str,
        *,
        name: str,
        timeout_s: float,
        threads: int = 0,
        options: Mapping[str, str] | None = None,
        live: bool = False,
        hwaccel: str = "cpu",
    ) -> None:
        super().__init__(name)
        av = optional_module("av")
        if av is None:
            raise SourceError(f"{name}: decoder 'pyav' is not installed: {_INSTALL}")
        self._av_error: Any = av.error
        self.hwaccel = hwaccel
        extra: dict[str, Any] = {}
        if hwaccel != "cpu":  # decoded on the device, each frame copied back to system memory
            from av.codec.hwaccel import HWAccel  # noqa: PLC0415 - PyAV 14 and later

            extra["hwaccel"] = HWAccel(hwaccel, allow_software_fallback=False)
        try:
            self._container: Any = av.open(
                uri, options=dict(options or {}), timeout=(timeout_s, timeout_s), **extra
            )
        except (av.error.FFmpegError, OSError) as exc:  # no device: PermissionError, ENODEV
            what = "cannot open" if hwaccel == "cpu" else f"cannot open the {hwaccel} decoder"
            raise self._failure(what, exc) from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{name}: holds no video stream")
        stream = self._stream = self._container.streams.video[0]
        stream.thread_type = "SLICE" if live else "AUTO"
        stream.codec_context.thread_count = threads
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        if not self.width or not self.height:
            self._container.close()
            raise SourceError(f"{name}: the video stream declares no frame size")
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self._rate: Fraction | None = Fraction(rate) if rate else None
        self._start = stream.start_time or 0
        self._pending: deque[Any] = deque()
        self._packets: Iterator[Any] = self._container.demux(stream)
        self._ended = False
        self._deferred: SourceError | None = None
        self._closed = False

    def _failure(
        self, what: str, exc: BaseException, kind: type[SourceError] = SourceError
    ) -> SourceError:
        """The error for an FFmpeg failure: stalled when FFmpeg's timeout interrupted it."""
        cause = getattr(exc, "strerror", None) or str(exc)
        if isinstance(exc, self._av_error.ExitError):
            return SourceStalledError(f"{self.name}: {what}: no data within the timeout ({cause})")
        return kind(f"{self.name}: {what}: {cause}")

    def _next_frame(self) -> Any:
        """The next decoded frame, None at the end (the demuxer's last packets flush the codec)."""
        while not self._pending:
            if self._ended:
                error, self._deferred = self._deferred, None
                if error is not None:
                    raise error
                return None
            try:
                packet = next(self._packets)
            except StopIteration:
                self._ended = True
                return None
            except self._av_error.FFmpegError as exc:
                # The demuxer cannot go on (truncated file, connection lost): deliver what the
                # decoder still holds, then this error, then the end.
                self._ended = True
                self._deferred = self._failure("reading stopped", exc)
                self._deferred.__cause__ = exc
                packet = None
            try:
                self._pending.extend(self._stream.codec_context.decode(packet))
            except self._av_error.FFmpegError as exc:
                raise self._failure("a packet does not decode", exc, SourceFrameError) from exc
        return self._pending.popleft()

    def _bgr(self) -> np.ndarray | None:
        frame = self._next_frame()
        if frame is None:
            return None
        if (frame.width, frame.height) != (self.width, self.height):
            raise self._wrong_size(frame.width, frame.height)
        self.concealed = bool(frame.is_corrupt)
        self.position = self._index_of(frame)
        array: np.ndarray = frame.to_ndarray(format="bgr24")
        return array

    def read_into(self, out: np.ndarray) -> bool:
        array = self._bgr()
        if array is None:
            return False
        np.copyto(out, array)
        return True

    def read(self) -> np.ndarray | None:
        return self._bgr()

    def _index_of(self, frame: Any) -> int | None:
        if frame.pts is None or self._rate is None or self._stream.time_base is None:
            return None
        index: int = round((frame.pts - self._start) * self._stream.time_base * self._rate)
        return index

    def facts(self) -> dict[str, Any]:
        context = self._stream.codec_context
        return {
            "decoder": self.library,
            "codec": context.name,
            "threads": context.thread_count,
            "hwaccel": self.hwaccel,
        }

    def seek(self, index: int) -> None:
        """Seek by timestamp to the key frame at or before ``index``, then decode up to it.

        Where the demuxer lands off a key frame (MPEG-TS has no index: decoding would start
        with broken references) or the stream has no rate, decode from the start instead.
        """
        target = None
        if index > 0 and self._rate is not None and self._stream.time_base is not None:
            target = self._start + int(Fraction(index) / self._rate / self._stream.time_base)
        self._restart(self._start if target is None else target)
        if target is not None and not self._at_key_frame():
            target = None
            self._restart(self._start)
        counted = 0
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            position = self._index_of(frame)
            if position is None:  # no timestamp: count frames (exact only from the start)
                position = index if target is not None else counted
            if position >= index:
                self._pending.appendleft(frame)
                return
            counted += 1

    def _restart(self, pts: int) -> None:
        try:
            self._container.seek(pts, stream=self._stream)
        except self._av_error.FFmpegError as exc:
            raise self._failure("cannot seek", exc) from exc
        self._stream.codec_context.flush_buffers()
        self._pending.clear()
        self._packets = self._container.demux(self._stream)
        self._ended = False
        self._deferred = None

    def _at_key_frame(self) -> bool:
        """Whether the next packet starts a key frame (then decoded into the pending frames)."""
        try:
            packet = next(self._packets, None)
            if packet is None or not packet.is_keyframe:
                return packet is None
            self._pending.extend(self._stream.codec_context.decode(packet))
        except self._av_error.FFmpegError:
            return False  # from the start, then: that reports a real problem with its cause
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.close()


_opencv_env_lock = threading.Lock()


class OpenCvDecoder(Decoder):
    """OpenCV's ``VideoCapture``: the FFmpeg backend for files and URLs, V4L2 for cameras.

    OpenCV cannot tell the end of a stream from a failed read: for a file both end it; for a
    ``live`` stream both raise :class:`~core.errors.SourceError` (a live source reconnects),
    and OpenCV's own read timeout is twice ``timeout_s``, so the reader's bounded wait reports
    a stall first. ``options`` reach its FFmpeg backend through
    ``OPENCV_FFMPEG_CAPTURE_OPTIONS``, set only around the open (OpenCV reads no other way),
    unless the user already set it.
    """

    library = "opencv"

    def __init__(
        self,
        uri: str | int,
        *,
        name: str,
        timeout_s: float,
        threads: int = 0,
        api: OpenCvApi = "ffmpeg",
        options: Mapping[str, str] | None = None,
        request: tuple[int, int, float] | None = None,
        live: bool = False,
    ) -> None:
        super().__init__(name)
        self._live = live
        cv2 = optional_module("cv2")
        if cv2 is None:
            raise SourceError(f"{name}: decoder 'opencv' is not installed: {_INSTALL}")
        self._cv2: Any = cv2
        backend = {"ffmpeg": cv2.CAP_FFMPEG, "v4l2": cv2.CAP_V4L2}.get(api, cv2.CAP_GSTREAMER)
        self.hwaccel = "nvv4l2" if api == "gstreamer" else "cpu"
        ms = max(1, round(timeout_s * 1000))
        read_ms = 2 * ms if live else ms
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
        if api == "gstreamer":
            params = []  # the pipeline string says it all; GStreamer takes no such properties
        elif threads:
            params += [cv2.CAP_PROP_N_THREADS, threads]
        with _opencv_env_lock:
            saved = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
            if options and saved is None:
                pairs = "|".join(f"{key};{value}" for key, value in options.items())
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = pairs
            try:
                self._cap: Any = cv2.VideoCapture(uri, backend, params)
            finally:
                if options and saved is None:
                    del os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"]
        if not self._cap.isOpened():
            raise SourceError(
                f"{name}: OpenCV's {api} backend could not open it (OpenCV gives no cause; "
                "PyAV does: pip install 'edgeloop[video]')"
            )
        if request is not None:  # a camera picks its nearest mode; read back what it chose
            width, height, fps = request
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if fps > 0 else None

    def _check(self, image: np.ndarray) -> None:
        if image.shape[:2] != (self.height, self.width):
            raise self._wrong_size(image.shape[1], image.shape[0])

    def read_into(self, out: np.ndarray) -> bool:
        ok, image = self._cap.read(out)  # decodes into out itself when sizes match
        if not ok:
            return False
        if not np.shares_memory(image, out):
            self._check(image)
            np.copyto(out, image)
        return True

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok:
            if self._live:
                raise SourceError(
                    f"{self.name}: OpenCV's read failed (the sender ended the stream or sent "
                    "nothing within the read timeout: OpenCV does not say which)"
                )
            return None
        self._check(image)
        result: np.ndarray = image
        return result

    def facts(self) -> dict[str, Any]:
        fourcc = int(self._cap.get(self._cv2.CAP_PROP_FOURCC))
        tag = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ").lower()
        return {
            "decoder": self.library,
            "codec": FOURCC_CODECS.get(tag, tag or None),
            "threads": None,
            "hwaccel": self.hwaccel,
        }

    def seek(self, index: int) -> None:
        if not self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, index):
            raise SourceError(f"{self.name}: OpenCV cannot seek to frame {index}")

    def close(self) -> None:
        self._cap.release()


def open_decoder(
    uri: str,
    *,
    name: str,
    prefer: DecoderName = "auto",
    timeout_s: float = 5.0,
    threads: int = 0,
    options: Mapping[str, str] | None = None,
    live: bool = False,
    hwaccel: str = "auto",
) -> Decoder:
    """Open ``uri`` (a path or URL) on the decoder ``hwaccel`` names or ``auto`` chooses
    (:mod:`core.sources.hwdecode`); in software with PyAV, or OpenCV where PyAV is missing or
    not wanted. A hardware decoder ``auto`` chose that fails to open falls back to software,
    with a warning."""
    choice = choose_hwaccel(hwaccel, decode_probe(), prefer)
    if choice.hwaccel != "cpu":
        try:
            if choice.hwaccel == "nvv4l2":
                return OpenCvDecoder(
                    gstreamer_pipeline(uri, live=live),
                    name=name,
                    timeout_s=timeout_s,
                    api="gstreamer",
                    live=live,
                )
            return PyAvDecoder(
                uri,
                name=name,
                timeout_s=timeout_s,
                threads=threads,
                options=options,
                live=live,
                hwaccel=choice.hwaccel,
            )
        except SourceError as exc:
            if not choice.chosen:
                raise
            log.warning("%s: %s chosen, but it failed (%s): decoding on the CPU", name, choice, exc)
    if prefer == "pyav" or (prefer == "auto" and optional_module("av") is not None):
        return PyAvDecoder(
            uri, name=name, timeout_s=timeout_s, threads=threads, options=options, live=live
        )
    if prefer == "auto" and optional_module("cv2") is None:
        raise SourceError(f"{name}: no video decoder here (PyAV or OpenCV): {_INSTALL}")
    return OpenCvDecoder(
        uri, name=name, timeout_s=timeout_s, threads=threads, options=options, live=live
    )
