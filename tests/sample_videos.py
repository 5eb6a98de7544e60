"""Video files, image folders and a stream server made in the tests from synthetic-camera
frames: the one helper for source media, as ``core.sample_media`` is for images.

Video is encoded with PyAV (its wheels bundle FFmpeg with libx264, libx265 and MJPEG), small
(320x192) and short, so a test costs milliseconds. PyAV and those encoders come with the video
extra ``make test`` installs: where either is missing the test fails, never skips.
``StreamServer`` serves bytes over HTTP or bare TCP from a local socket, then stalls or hangs
up: the network path of a live source, byte by byte (the RTSP server is
:mod:`tests.rtsp_server`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from core.synthetic import SceneConfig, SyntheticCamera
from tests.required_tools import require_module

WIDTH, HEIGHT, FPS = 320, 192, 30
SCENE = SceneConfig(width=WIDTH, height=HEIGHT, fps=FPS, seed=3)

# codec, pixel format, encoder options, container format
CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "h264": ("libx264", "yuv420p", {"preset": "ultrafast"}),
    "h264-live": ("libx264", "yuv420p", {"preset": "ultrafast", "tune": "zerolatency"}),
    "h265": ("libx265", "yuv420p", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    "mjpeg": ("mjpeg", "yuvj420p", {}),
}


def frames(count: int, start: int = 0) -> Iterator[np.ndarray]:
    """Synthetic-camera frames ``start .. start + count - 1`` (320x192 BGR)."""
    camera = SyntheticCamera(SCENE)
    for index in range(start, start + count):
        yield camera.frame(index)[0]


def encoder_available(codec: str) -> bool:
    av = require_module("av")
    try:
        av.codec.Codec(CODECS[codec][0], "w")
    except Exception:
        return False
    return True


def write_video(path: Path, codec: str = "h264", count: int = 30, fmt: str | None = None) -> Path:
    """Encode ``count`` synthetic frames into ``path`` (the container from its suffix or
    ``fmt``); fails the test where PyAV or the encoder is missing (the video extra's PyAV
    wheels bundle every encoder in :data:`CODECS`)."""
    av = require_module("av")
    if not encoder_available(codec):
        pytest.fail(
            f"this PyAV's FFmpeg has no {CODECS[codec][0]} encoder: `make test` installs PyAV's "
            "wheel, which bundles it, with the video extra (or run: pip install -e '.[video]')",
            pytrace=False,
        )
    name, pix_fmt, options = CODECS[codec]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(name, rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        for image in frames(count):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in grey levels (lossy codecs: compare, don't equal)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def claiming_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` (a baseline JPEG) with its frame header claiming another size: a hostile or
    damaged header, for the size guards that must refuse it before allocating."""
    out = bytearray(data)
    sof = out.find(b"\xff\xc0")
    out[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    out[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(out)


def padded(height: int, width: int, pad: int = 8) -> np.ndarray:
    """An HxWx3 view with padded rows, like a ring slot that is wider than the frame."""
    return np.zeros((height, width + pad, 3), np.uint8)[:, :width]


class StreamServer:
    """Serves ``payload`` to each client on 127.0.0.1, then ``after`` it: ``stall`` keeps the
    connection open sending nothing (until :meth:`close`), ``close`` hangs up."""

    def __init__(
        self,
        payload: bytes,
        *,
        http: bool = True,
        after: Literal["stall", "close"] = "stall",
    ) -> None:
        self.payload, self.http, self.after = payload, http, after
        self.clients = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        port = self._listener.getsockname()[1]
        return f"{'http' if self.http else 'tcp'}://127.0.0.1:{port}/stream.ts"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.clients += 1
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.http:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n")
                conn.sendall(self.payload)
            except OSError:
                return
            if self.after == "stall":
                self._stop.wait()

    def close(self) -> None:
        """Stop serving: clients are released, new connections refused."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone doesn't)
        self._listener.close()
        self._thread.join(5)
