"""Test doubles for the pipeline: sources that misbehave on cue, a sink that records (and fails
on cue), and small configurations that run in a fraction of a second."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.errors import SinkError, SourceError, SourceStalledError
from core.pipeline import PipelineConfig, load_pipeline_config
from core.sinks import ResultRecord, Sink
from core.sources import Source, SourceConfig, SourceFrame
from core.sources.synthetic import SyntheticSource

WIDTH, HEIGHT = 320, 180
"""Small synthetic frames: the detector letterboxes them like 1080p ones, at a fraction of the
rendering cost."""


def small_config(*overrides: str, streams: int = 1, **source: Any) -> PipelineConfig:
    """A pipeline on ``streams`` small synthetic streams (seeds 0, 1, ...), ONNX Runtime, one
    inference thread: on frames this small the reference detector sits near the boundary where
    the measured choice gives inference a second core (:mod:`core.pipeline.threads`), so tests
    that count workers pin it (``model.threads=null`` measures)."""
    fields = {"width": WIDTH, "height": HEIGHT, **source}
    items = ", ".join(f"{k}: {v}" for k, v in fields.items())
    sources = ", ".join(f"{{{items}, seed: {i}}}" for i in range(streams))
    return load_pipeline_config(
        overrides=[
            f"sources=[{sources}]",
            "model.backend=onnxruntime",
            "model.threads=1",
            "stop_timeout_s=3",
            *overrides,
        ]
    )


def send_everything(*overrides: str) -> tuple[str, ...]:
    """Overrides that make the filter send every frame with a detection (and infer all)."""
    return (
        "filter.motion.enabled=false",
        "filter.cooldown_s=0",
        "filter.score_threshold=0.25",
        *overrides,
    )


class RecordingSink(Sink):
    """Keeps every record; ``fail_every`` > 0 raises SinkError on every n-th emit."""

    name = "recording"

    def __init__(self, fail_every: int = 0) -> None:
        self.records: list[ResultRecord] = []
        self.fail_every = fail_every
        self.attempts = 0
        self.opened = self.closed = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        self.opened += 1

    def emit(self, record: ResultRecord) -> None:
        with self._lock:
            self.attempts += 1
            if self.fail_every and self.attempts % self.fail_every == 0:
                raise SinkError(f"recording sink: refusing record {self.attempts} (on cue)")
            self.records.append(record)

    def close(self) -> None:
        self.closed += 1


class ScriptedSource(SyntheticSource):
    """A small synthetic stream with trouble on cue, read by index of the read call:
    ``errors`` raise SourceError, ``wrong_shape`` writes a frame of the wrong size into the
    slot (NumPy refuses), ``stalls`` raise SourceStalledError, ``hang_at`` blocks that read
    until ``release`` is set; the stream ends after ``frames`` good frames."""

    def __init__(
        self,
        config: SourceConfig,
        stream_id: int,
        *,
        frames: int | None = None,
        errors: Sequence[int] = (),
        wrong_shape: Sequence[int] = (),
        stalls: Sequence[int] = (),
        hang_at: int | None = None,
        release: threading.Event | None = None,
    ) -> None:
        super().__init__(config, stream_id)
        self.frames = frames
        self.errors, self.wrong_shape, self.stalls = set(errors), set(wrong_shape), set(stalls)
        self.hang_at = hang_at
        self.release = release or threading.Event()
        self.reads = 0
        self.good = 0
        self.closed = False

    def read_into(self, out: np.ndarray) -> SourceFrame | None:
        call = self.reads
        self.reads += 1
        if self.frames is not None and self.good >= self.frames:
            return None
        if call == self.hang_at:
            self.release.wait(30.0)  # ignores its timeout_s: the pipeline must not wait
        if call in self.errors:
            raise SourceError(f"{self.name}: corrupt packet at read {call} (on cue)")
        if call in self.stalls:
            raise SourceStalledError(f"{self.name}: no frame within timeout (on cue)")
        if call in self.wrong_shape:
            out[:] = np.zeros((HEIGHT // 2, WIDTH // 2, 3), np.uint8)  # ValueError: broadcast
        frame = super().read_into(out)
        self.good += 1
        return frame

    def close(self) -> None:
        self.closed = True
        super().close()


def factory(**script: Any) -> tuple[Callable[[SourceConfig, int], Source], list[ScriptedSource]]:
    """A source factory making :class:`ScriptedSource` streams, and the list it fills."""
    made: list[ScriptedSource] = []

    def make(config: SourceConfig, stream_id: int) -> Source:
        source = ScriptedSource(config, stream_id, **script)
        made.append(source)
        return source

    return make, made
