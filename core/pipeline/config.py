"""The pipeline's typed configuration: one schema, loaded from YAML plus ``key=value``
overrides by :func:`core.config.load`, validated before anything starts (errors name the key).

Every default runs on a 2-core machine with no GPU: the reference detector on ONNX Runtime,
one synthetic 1080p stream, the motion gate on, crops for what the filter sends, a null sink.

A complete YAML file (every key optional)::

    sources:                    # one item per stream (core.sources.SourceConfig)
      - kind: synthetic
        quiet_fraction: 0.05
      - kind: file
        uri: clips/gate.mp4
        loop: true
    model:
      model: detector           # a reference model's name or an ONNX path
      backend: auto             # auto | onnxruntime | tensorrt
      threads: 1                # ONNX Runtime intra-op threads (null: the pipeline's choice)
      batch_size: 4             # frames per inference, across streams
      batch_timeout_ms: 5       # a partial batch goes after this long
    filter:                     # core.filter.FilterConfig
      transmission: crops
    sink:                       # core.sinks.SinkConfig
      kind: file
      path: results
    ring_slots: 8
    rate: 25                    # pace every source (frames/s); null: as fast as it goes
    source_workers: auto        # auto | thread | process
    infer_worker: auto          # auto | thread | process
    infer_workers: 1            # inference processes side by side (infer_worker: process)
    stage_nice: 5               # how much nicer than inference ingest and compress run
    critical_slice_us: 100      # the time slice inference and output ask for (0: the default)

>>> config = load_pipeline_config(overrides=["model.batch_size=4", "rate=20"])
>>> config.model.batch_size, config.rate, config.sources[0].kind
(4, 20.0, 'synthetic')
>>> load_pipeline_config(overrides=["model.batch_size=0"])
Traceback (most recent call last):
...
core.errors.ConfigError: model.batch_size: must be between 1 and 256, got 0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.config import checked, in_range, load, positive, validate
from core.errors import ConfigError
from core.filter import FilterConfig
from core.formats.choose import format_named
from core.pipeline.priority import CRITICAL_SLICE_US
from core.sinks import SinkConfig
from core.sources import SourceConfig

__all__ = ["ModelConfig", "PipelineConfig", "load_pipeline_config"]


@dataclass(frozen=True)
class PreprocessConfig:
    """``model.preprocess``: what to change of the model format's own preprocessing
    (:meth:`core.formats.ModelFormat.preprocess`); a field left ``None`` keeps the format's.

    ``mode``: ``letterbox`` (aspect kept, padded with ``pad_value``) or ``resize``
    (stretched); ``order``: the channel order the network takes; ``scale`` multiplies every
    pixel first (``0.00392156862745098`` for 0..1, ``1`` for 0..255), then ``mean`` is
    subtracted and ``std`` divides, per channel (one number is taken for all three)::

        model:
          preprocess: {order: BGR, scale: 1.0}   # YOLOX's own 0..255 BGR
    """

    mode: Literal["letterbox", "resize"] | None = None
    order: Literal["RGB", "BGR"] | None = None
    scale: float | None = checked(None, positive)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    pad_value: float | None = checked(None, in_range(0.0, 255.0))

    def __post_init__(self) -> None:
        validate(self)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) not in (1, 3):
                raise ConfigError(f"preprocess.{name}: one number or three, got {len(value)}")
        if self.std is not None and 0.0 in self.std:
            raise ConfigError("preprocess.std: every value must be non-zero")

    def changes(self) -> dict[str, object]:
        """The fields set, as :class:`core.preprocess.PreprocessSpec` names them."""
        renamed = {"order": "output_order"}
        return {
            renamed.get(name, name): value[0]
            if isinstance(value, tuple) and len(value) == 1
            else value
            for name, value in dataclasses.asdict(self).items()
            if value is not None
        }


@dataclass(frozen=True)
class ModelConfig:
    """The model and how inference runs.

    ``threads``: ONNX Runtime's intra-op threads; ``None`` lets the pipeline measure (each
    stage timed alone on a few frames) and give inference its share of the cores
    (:mod:`core.pipeline.threads`): one thread for a light model beside a costly source,
    whose other core renders, gates and preprocesses the next frames
    (docs/decisions/0015-several-inference-processes-opt-in.md), one process a core for a
    heavy model (docs/decisions/0027-inference-gets-its-share-of-the-cores.md).
    ``batch_size`` frames go to one inference, taken across streams in arrival order; a
    partial batch goes ``batch_timeout_ms`` after its first frame (nvstreammux's
    ``batched-push-timeout``). ``score_floor`` and ``iou_threshold`` are the
    decoder's (what the filter sees at most); the filter's ``score_threshold`` decides what is
    sent. ``format`` is the model's output layout (:mod:`core.formats`: ``auto`` reads its
    metadata, then its output shapes, and refuses rather than guesses); ``labels`` names its
    classes, one a line in a file, or ``coco`` (else its metadata's names, else the ids);
    ``preprocess`` changes the format's own preprocessing (:class:`PreprocessConfig`).
    ``input_size`` (height, width) is what a model with a dynamic input is fed at (640 x 640
    when None), rounded up to its stride (its metadata's ``stride``, else 32) so that every
    feature map has whole cells; a model with a fixed input takes only its own.
    """

    model: str = "detector"
    backend: Literal["auto", "onnxruntime", "tensorrt"] = "auto"
    threads: int | None = checked(None, in_range(1, 256))
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    batch_size: int = checked(1, in_range(1, 256))
    batch_timeout_ms: float = checked(5.0, in_range(0.0, 60_000.0))
    score_floor: float = checked(0.25, in_range(0.0, 1.0))
    iou_threshold: float = checked(0.45, in_range(0.0, 1.0))
    format: str = "auto"
    labels: str | None = None
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        validate(self)
        if self.format != "auto":
            format_named(self.format)  # a ConfigError listing the names
        if self.input_size is not None and min(self.input_size) < 1:
            raise ConfigError(f"model.input_size: (height, width) > 0, got {self.input_size}")


@dataclass(frozen=True)
class PipelineConfig:
    """Streams, model, filter, sink, and how the runtime runs them.

    ``ring_slots``: frames each stream's ring holds (1080p: 6.2 MB a slot); frames in flight
    per stream are bounded by it, so it is the back-pressure window -- keep it at least
    ``2 * batch_size + 4``. ``rate`` paces every source at that many frames/s (sleeping, never
    spinning); ``None`` reads as fast as back-pressure allows. ``source_workers``: a source
    runs in a thread of this process (``thread``: it starts instantly) or in a process of its
    own writing into the shared-memory ring (``process``: its decoding never competes for the
    GIL); ``auto`` (the default) runs what decodes a compressed stream (a video file, a network
    stream) in a process and the rest in threads, and gives a decoder in a process the cores
    inference leaves (:mod:`core.pipeline.placement`). ``infer_worker``: inference runs
    in a thread of this process (``thread``) or in a process of its own whose buffers are
    shared memory (``process``, ONNX Runtime only: :mod:`core.backends.process`), where it
    never waits for the GIL the other stages hold; ``auto`` (the default) is a process for
    ONNX Runtime, a thread for TensorRT. ``infer_workers``: that many inference processes run
    batches side by side, each its own session (Triton's ``instance_group`` count;
    :mod:`core.backends.pool`): more frames per second where inference is the slowest stage and
    cores are left; a process worker only. ``stage_nice``: every worker but inference and
    output runs that many steps nicer, so that on a machine whose cores the stages share the
    bottleneck keeps its core (:mod:`core.pipeline.priority`; 0 turns it off).
    ``critical_slice_us``: inference and output ask Linux for that short a time slice, so
    that when they wake they take a core at once rather than after a niced stage's slice
    (kernel 6.12 and later; 0 keeps the kernel's default slice).
    ``compress_workers`` threads encode JPEG (the encoder releases the GIL); results still
    reach the sink in order.
    ``source_error_limit`` consecutive failed reads (errors or stalls) end a stream as failed.
    ``stop_timeout_s`` bounds how long stopping waits for each worker.
    """

    sources: tuple[SourceConfig, ...] = (SourceConfig(),)
    model: ModelConfig = field(default_factory=ModelConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    ring_slots: int = checked(8, in_range(2, 1024))
    rate: float | None = checked(None, positive)
    source_workers: Literal["auto", "thread", "process"] = "auto"
    infer_worker: Literal["auto", "thread", "process"] = "auto"
    infer_workers: int = checked(1, in_range(1, 16))
    stage_nice: int = checked(5, in_range(0, 19))
    critical_slice_us: int = checked(CRITICAL_SLICE_US, in_range(0, 100_000))
    compress_workers: int = checked(1, in_range(1, 16))
    source_error_limit: int = checked(10, in_range(1, 1_000_000))
    stop_timeout_s: float = checked(5.0, positive)

    def __post_init__(self) -> None:
        validate(self)
        if not self.sources:
            raise ConfigError("sources: at least one source is needed")
        if len(self.sources) > MAX_STREAMS:
            raise ConfigError(f"sources: at most {MAX_STREAMS} streams, got {len(self.sources)}")


MAX_STREAMS = 64
"""Streams one pipeline takes (each has a ring, a source worker and an ingest thread)."""


def load_pipeline_config(
    path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = ()
) -> PipelineConfig:
    """Defaults, then the YAML file ``path``, then ``key.path=value`` overrides, validated.

    ``sources[0].kind`` style overrides are not supported (lists are replaced whole:
    ``sources=[{kind: synthetic}, {kind: synthetic, seed: 1}]``).
    """
    return load(PipelineConfig, Path(path) if path is not None else None, overrides)
