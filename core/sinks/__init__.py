"""Sinks: where the pipeline's results go. :class:`NullSink` (nowhere: for measuring),
:class:`FileSink` (JSON Lines and JPEG files), :class:`TeeSink` (several at once), and the
:class:`Sink` interface the outbox/MQTT sink implements (the rules in :mod:`core.sinks.base`)."""

from __future__ import annotations

from core.sinks.base import EncodedImage, NullSink, ResultRecord, Sink, SinkConfig
from core.sinks.file import FileSink
from core.sinks.tee import TeeSink

__all__ = [
    "EncodedImage",
    "FileSink",
    "NullSink",
    "ResultRecord",
    "Sink",
    "SinkConfig",
    "TeeSink",
    "open_sink",
]


def open_sink(config: SinkConfig) -> Sink:
    """The sink ``config`` describes (not opened yet: call :meth:`Sink.open`)."""
    if config.kind == "file":
        return FileSink(config.path)
    return NullSink()
