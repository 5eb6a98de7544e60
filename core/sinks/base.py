"""What the pipeline hands a sink -- one :class:`ResultRecord` per frame the filter let through --
and the :class:`Sink` interface every destination implements.

:class:`Sink` is the plug-in point for destinations beyond the file sink: the outbox/MQTT issue
implements it (``emit`` spools the record to the SQLite outbox, from where it goes to the
broker; ``flush`` commits the spool). What a sink promises:

* ``open`` before the first ``emit``; ``close`` last, idempotent, and it makes what was emitted
  durable (the file sink fsyncs).
* ``emit`` may buffer; ``flush`` (called by the pipeline after each batch) hands what was
  buffered on. Both are called from one thread at a time.
* A failure to take a record raises :class:`~core.errors.SinkError` naming the path or endpoint
  and the cause (errno for OS errors): the pipeline counts it per sink, logs it and goes on with
  the next record. Nothing else may escape ``emit``.

A record's wire form is :meth:`ResultRecord.to_json` (compact JSON of :meth:`ResultRecord.to_dict`)
plus its JPEG images; :attr:`ResultRecord.payload_bytes` is their total, what the bandwidth
ledger counts as sent.

>>> import numpy as np
>>> from core.detections import Detections
>>> dets = Detections(np.array([[1, 2, 30, 40]]), np.array([0.9]), np.array([0]), ("person",))
>>> record = ResultRecord(0, 7, 42, 1_000, 2_000, "crops", dets,
...                       (EncodedImage("crop", (0.0, 0.0, 32.0, 44.0), b"\\xff\\xd8..."),))
>>> record.to_dict()["images"]
[{'kind': 'crop', 'box': [0.0, 0.0, 32.0, 44.0], 'bytes': 5}]
>>> record.payload_bytes == len(record.to_json()) + 5
True
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from core.detections import Detections
from core.encoded_image import EncodedImage

__all__ = ["EncodedImage", "NullSink", "ResultRecord", "Sink", "SinkConfig"]

SCHEMA = "edgeloop.result/1"
"""The ``schema`` field of every record's JSON: consumers check it before reading on."""


@dataclass(frozen=True)
class ResultRecord:
    """What the pipeline sends for one frame: its detections and, by level, JPEG images."""

    stream_id: int
    seq: int
    """Per-stream sequence number of records (not frames): gaps mean lost records."""
    frame_index: int
    capture_ns: int
    """``time.monotonic_ns()`` at capture (the source's clock, for latency on this device)."""
    emitted_ns: int
    """``time.monotonic_ns()`` when the record was made (before the sink took it)."""
    level: str
    """The transmission level: ``metadata``, ``crops`` or ``frame``."""
    detections: Detections
    images: tuple[EncodedImage, ...] = ()
    model_version: str = ""
    """The model version that inferred the frame (a registry version, or the first 12 hex
    digits of the file's SHA-256): results of an A/B test or across a swap tell apart."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready metadata; images as ``{"kind", "box", "bytes": length}`` (where their
        bytes go is the sink's business: files, an MQTT payload, S3 objects)."""
        return {
            "schema": SCHEMA,
            "stream_id": self.stream_id,
            "seq": self.seq,
            "frame_index": self.frame_index,
            "capture_ns": self.capture_ns,
            "emitted_ns": self.emitted_ns,
            "level": self.level,
            "model_version": self.model_version,
            **self.detections.to_dict(),
            "images": [
                {
                    "kind": image.kind,
                    "box": None if image.box is None else [round(v, 1) for v in image.box],
                    "bytes": len(image.jpeg),
                }
                for image in self.images
            ],
        }

    def to_json(self) -> bytes:
        """:meth:`to_dict` as compact UTF-8 JSON (no spaces: these bytes go on the wire)."""
        return self._json

    @cached_property
    def _json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @property
    def payload_bytes(self) -> int:
        """Bytes on the wire: the JSON metadata plus every JPEG."""
        return len(self._json) + sum(len(image.jpeg) for image in self.images)


@dataclass(frozen=True)
class SinkConfig:
    """Where results go. As YAML::

    sink:
      kind: file              # null | file
      path: edgeloop-results  # the file sink's folder
    """

    kind: Literal["null", "file"] = "null"
    path: Path = Path("edgeloop-results")


class Sink(abc.ABC):
    """A destination for :class:`ResultRecord`; the rules are in the module docstring."""

    name: str = "sink"

    def open(self) -> None:  # noqa: B027 - optional for sinks with nothing to set up
        """Get ready (create folders, connect); :class:`~core.errors.SinkError` if it cannot."""

    @abc.abstractmethod
    def emit(self, record: ResultRecord) -> None:
        """Take one record (may buffer it); :class:`~core.errors.SinkError` on failure."""

    def flush(self) -> None:  # noqa: B027 - optional for sinks that never buffer
        """Hand on what :meth:`emit` buffered."""

    def close(self) -> None:  # noqa: B027 - optional for sinks with nothing to release
        """Flush, make durable, release (idempotent)."""

    def __enter__(self) -> Sink:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class NullSink(Sink):
    """Takes every record and keeps nothing: the pipeline's cost without a destination's.
    Counts what it was given, for tests and sanity checks."""

    name = "null"

    def __init__(self) -> None:
        self.records = 0
        self.payload_bytes = 0

    def emit(self, record: ResultRecord) -> None:
        self.records += 1
        self.payload_bytes += record.payload_bytes
