"""Network streams: RTSP cameras first, and any stream URL FFmpeg reads (HTTP, TCP, RTMP, SRT).

The kind is called ``rtsp`` because that is what IP cameras speak; the same source reads an
MPEG-TS or MJPEG stream over HTTP or plain TCP. The tests read RTSP from a real server
(``aio-rtsp-toolkit``'s: TCP, interleaved RTP, H.264 in real time) and exercise stalls and
hang-ups over HTTP and TCP, where a test controls every byte. It is a
:class:`~core.sources.live.LiveSource`: a reader thread, reads bounded by ``timeout_s``, the
reconnect policy described there.

FFmpeg options (:func:`stream_options`): RTSP goes over TCP (``rtsp_transport=tcp``: no lost
UDP packets smearing frames, and it passes NAT and firewalls) and sets up only the video
track; every network read is bounded by ``timeout_s`` twice over, by the protocol's own
timeout (``rw_timeout``, and RTSP's socket ``timeout``, both in microseconds) and by PyAV's
interrupt callback. Names shown in logs and errors hide the URL's password (:func:`redact`).

>>> redact("rtsp://admin:s3cret@10.0.0.7:554/stream1")
'rtsp://admin:***@10.0.0.7:554/stream1'
>>> stream_options("rtsp://10.0.0.7/stream1", timeout_s=2.5)
{'rw_timeout': '2500000', 'rtsp_transport': 'tcp', 'timeout': '2500000', \
'allowed_media_types': 'video'}
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from core.errors import ConfigError
from core.sources.base import SourceConfig
from core.sources.decoders import Decoder, open_decoder
from core.sources.live import LiveSource

__all__ = ["STREAM_SCHEMES", "NetworkSource", "redact", "stream_options"]

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "tcp", "udp", "rtmp", "rtmps", "srt")
"""URL schemes the source takes (what FFmpeg's network protocols read)."""


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (user names stay: they help debugging)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def check_url(url: str) -> str:
    """``url``'s scheme in lower case; :class:`ConfigError` for anything not a stream URL."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in STREAM_SCHEMES or not urlsplit(url).netloc:
        raise ConfigError(
            f"uri: {redact(url)!r} is not a stream URL; use one of "
            f"{', '.join(s + '://' for s in STREAM_SCHEMES)} (files: kind 'file')"
        )
    return scheme


def stream_options(url: str, *, timeout_s: float) -> dict[str, str]:
    """The FFmpeg options for reading ``url`` (see the module docstring for why each)."""
    scheme = check_url(url)
    micros = str(round(timeout_s * 1_000_000))
    options = {"rw_timeout": micros}
    if scheme in ("rtsp", "rtsps"):
        # FFmpeg >= 5 names RTSP's socket I/O timeout "timeout" (it was "stimeout" before).
        options.update(rtsp_transport="tcp", timeout=micros, allowed_media_types="video")
    return options


class NetworkSource(LiveSource):
    """Reads the stream at ``config.uri`` through PyAV (OpenCV's FFmpeg backend as fallback)."""

    def __init__(self, config: SourceConfig, stream_id: int) -> None:
        self.url = str(config.uri)
        check_url(self.url)
        super().__init__(config, stream_id)

    def describe(self) -> str:
        return redact(self.url)

    def connect(self) -> Decoder:
        cfg = self.config
        return open_decoder(
            self.url,
            name=self.name,
            prefer=cfg.decoder,
            timeout_s=cfg.timeout_s,
            threads=cfg.decode_threads,
            options=stream_options(self.url, timeout_s=cfg.timeout_s),
            live=True,
            hwaccel=cfg.hwaccel,
        )
