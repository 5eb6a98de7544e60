"""A video file as a source: H.264, H.265, MJPEG (anything the bundled FFmpeg decodes).

Frames come as fast as they are asked for (the pipeline paces; :attr:`FileSource.nominal_fps`
is the file's own rate). ``start_index`` seeks by timestamp to the key frame before it and
decodes up to it; ``loop`` starts again at the file's first frame after the last one, the index
counting on. A packet that does not decode raises :class:`~core.errors.SourceFrameError` and
the next read goes on after it; a file that is missing, empty, not a video, or truncated before
its index (an MP4 without its ``moov`` atom) fails :meth:`FileSource.open` with the cause.
With ``truth`` (a sidecar, :mod:`core.sources.truth`), each frame carries the truth of its
position in the file; a sidecar made for another frame size fails the open, one that covers
fewer frames than the file fails the read past its end.
"""

from __future__ import annotations

import errno
import os

import numpy as np

from core.errors import SourceError
from core.sources.base import Source, SourceConfig, SourceFrame
from core.sources.decoders import Decoder, open_decoder
from core.sources.truth import TruthTrack


class FileSource(Source):
    """Decodes ``config.uri`` with :func:`core.sources.decoders.open_decoder`."""

    def __init__(self, config: SourceConfig, stream_id: int) -> None:
        super().__init__(config, stream_id)
        self.path = str(config.uri)
        self.decoder: Decoder | None = None
        self.track: TruthTrack | None = None
        self._position = 0
        """The next frame's position in the file (the index less the frames of earlier loops)."""

    def open(self) -> tuple[int, int]:
        self.close()
        if not os.path.isfile(self.path):
            found = os.path.exists(self.path)
            code, what = (errno.EISDIR, "not a file") if found else (errno.ENOENT, "no such file")
            raise SourceError(code, f"{self.name}: {what}", self.path)
        if os.path.getsize(self.path) == 0:
            raise SourceError(f"{self.name}: the file is empty (0 bytes); copy or record it again")
        cfg = self.config
        track = TruthTrack.load(cfg.truth) if cfg.truth is not None else None
        decoder = open_decoder(
            self.path,
            name=self.name,
            prefer=cfg.decoder,
            timeout_s=cfg.timeout_s,
            threads=cfg.decode_threads,
            hwaccel=cfg.hwaccel,
        )
        try:
            if track is not None and (track.width, track.height) != (decoder.width, decoder.height):
                raise self.error(
                    f"truth {track.path} is for {track.width}x{track.height} frames, the video's "
                    f"are {decoder.width}x{decoder.height} (a sidecar of another recording)"
                )
            if cfg.start_index:
                decoder.seek(cfg.start_index)
        except BaseException:
            decoder.close()
            raise
        self.decoder, self.track, self._position = decoder, track, cfg.start_index
        return self._opened((decoder.height, decoder.width))

    @property
    def nominal_fps(self) -> float | None:
        return self.decoder.fps if self.decoder is not None else None

    def read_into(self, out: np.ndarray) -> SourceFrame | None:
        self._check_out(out)
        assert self.decoder is not None  # _check_out raised otherwise
        if not self.decoder.read_into(out):
            if not self.config.loop or self._next_index == self.config.start_index:
                return None  # the end (or a file with no frame to loop over)
            self.decoder.seek(0)
            self.loops += 1
            self._position = 0
            if not self.decoder.read_into(out):
                return None
        position = self.decoder.position
        if position is None:  # no timestamps: count
            position = self._position
        self._position = position + 1
        truth = self.track.at(position) if self.track is not None else None
        return self._delivered(truth=truth, concealed=self.decoder.concealed)

    def has_ground_truth(self) -> bool:
        return self.config.truth is not None

    def active_decoder(self) -> Decoder | None:
        return self.decoder

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None
