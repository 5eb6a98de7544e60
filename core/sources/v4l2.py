"""A V4L2 camera (USB, CSI through a V4L2 driver) through OpenCV's V4L2 backend.

OpenCV, not PyAV: PyAV's wheels leave FFmpeg's ``video4linux2`` input out. The camera is asked
for ``width`` x ``height`` at ``fps`` and picks its nearest mode; :meth:`V4L2Source.open`
returns the size it chose. ``uri`` is ``/dev/videoN``, a stable link to one
(``/dev/v4l/by-id/...``, resolved), or just ``N``. A
:class:`~core.sources.live.LiveSource`: a reader thread, reads bounded by ``timeout_s``, the
reconnect policy described there (a camera unplugged and plugged back in comes back).

Tested here only for the error when the device does not exist (CI has no camera).

>>> device_path("2"), device_path("/dev/video0")
('/dev/video2', '/dev/video0')
"""

from __future__ import annotations

import errno
import os
import re

from core.errors import ConfigError, SourceError
from core.sources.base import SourceConfig
from core.sources.decoders import Decoder, OpenCvDecoder
from core.sources.live import LiveSource

__all__ = ["V4L2Source", "device_path"]

_DEVICE = re.compile(r"/dev/video(\d+)")


def device_path(uri: str) -> str:
    """``/dev/videoN`` for ``N``, for ``/dev/videoN`` itself, or for a link to one."""
    if uri.isdigit():
        return f"/dev/video{int(uri)}"
    if not uri.startswith("/dev/"):
        raise ConfigError(f"uri: {uri!r} is not a V4L2 device; use /dev/videoN or N")
    return os.path.realpath(uri) if os.path.islink(uri) else uri


class V4L2Source(LiveSource):
    """Frames of the V4L2 device ``config.uri``."""

    def __init__(self, config: SourceConfig, stream_id: int) -> None:
        self.device = device_path(str(config.uri))
        super().__init__(config, stream_id)

    def describe(self) -> str:
        return f"v4l2:{self.device}"

    def connect(self) -> Decoder:
        cfg = self.config
        if not os.path.exists(self.device):
            raise SourceError(
                errno.ENOENT,
                f"{self.name}: no such device (is the camera plugged in? "
                "`v4l2-ctl --list-devices` lists them)",
                self.device,
            )
        match = _DEVICE.fullmatch(self.device)
        if match is None:
            raise SourceError(f"{self.name}: not a /dev/videoN device")
        return OpenCvDecoder(
            int(match.group(1)),
            name=self.name,
            timeout_s=cfg.timeout_s,
            api="v4l2",
            request=(cfg.width, cfg.height, cfg.fps),
            live=True,
        )
