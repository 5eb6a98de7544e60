"""Frame sources: the synthetic camera, video files, image folders, V4L2 cameras, network streams.

One interface (:class:`Source`, rules in :mod:`core.sources.base`) and one factory,
:func:`open_source`, which imports a kind's module only when asked for it: the synthetic camera
needs neither PyAV nor OpenCV.

=============  =====================================  ===================================
kind           module                                 reads with
=============  =====================================  ===================================
``synthetic``  :mod:`core.sources.synthetic`          :class:`core.synthetic.SyntheticCamera`
``file``       :mod:`core.sources.file`               PyAV, else OpenCV (FFmpeg)
``images``     :mod:`core.sources.images`             libjpeg-turbo; PNG: OpenCV or Pillow
``v4l2``       :mod:`core.sources.v4l2`               OpenCV's V4L2 backend, reader thread
``rtsp``       :mod:`core.sources.rtsp`               PyAV, else OpenCV; reader thread
=============  =====================================  ===================================
"""

from __future__ import annotations

import importlib

from core.sources.base import DecoderName, Source, SourceConfig, SourceFrame, SourceKind

__all__ = [
    "DecoderName",
    "Source",
    "SourceConfig",
    "SourceFrame",
    "SourceKind",
    "check_source",
    "open_source",
]

_KINDS: dict[str, tuple[str, str]] = {
    "synthetic": ("core.sources.synthetic", "SyntheticSource"),
    "file": ("core.sources.file", "FileSource"),
    "images": ("core.sources.images", "ImageDirSource"),
    "v4l2": ("core.sources.v4l2", "V4L2Source"),
    "rtsp": ("core.sources.rtsp", "NetworkSource"),
}


def open_source(config: SourceConfig, stream_id: int) -> Source:
    """The source ``config`` describes, as stream ``stream_id`` (not opened yet: call
    :meth:`Source.open`). A ``uri`` that cannot be of its kind raises ConfigError here."""
    module, name = _KINDS[config.kind]
    cls: type[Source] = getattr(importlib.import_module(module), name)
    return cls(config, stream_id)


def check_source(config: SourceConfig) -> str:
    """Open the source ``config`` describes and close it again; return its name (the prefix of
    its errors). What cannot be opened raises the :class:`~core.errors.SourceError` the
    pipeline would, naming the source and the cause. For code that reads a source its own way
    (bench's naive loop) or must refuse one before a long run starts."""
    with open_source(config, 0) as source:
        source.open()
        return source.name
