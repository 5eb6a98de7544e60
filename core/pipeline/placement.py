"""Where each source runs and how many threads its decoder gets.

``source_workers: auto`` (the default) puts a source that decodes a compressed stream (a video
file, a network stream) in a process of its own, and one that renders or copies (the synthetic
camera, an image folder, a V4L2 camera) in a thread. The measurements behind it
(docs/decisions/0032-the-suite-reads-h264.md): a 1080p H.264 stream decoded in a
thread loses time to the GIL that PyAV's frame conversion and the other stages' Python hold,
and ran 6-8 % fewer frames a second than in a process on two cores; the synthetic camera,
which renders with the GIL released, gains nothing from a process and would pay its start.
A source made by a caller's own factory stays in a thread (the factory may not survive
pickling into a process).

A decoding source in a process with ``decode_threads: 0`` gets the cores inference leaves,
shared between the decoding streams, at least one each (:func:`decode_threads_for`): FFmpeg's
own choice (as many threads as the machine has cores, for every stream) oversubscribes a
small box that inference already keeps busy. In a thread, FFmpeg keeps its own choice: its
frame threads are what decodes outside the GIL there.

>>> decode_threads_for(cores=2, infer_cores=1, decoding_streams=1)
1
>>> decode_threads_for(cores=16, infer_cores=4, decoding_streams=3)
4
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Literal

from core.backends import Backend
from core.pipeline.config import PipelineConfig
from core.sources import Source, SourceConfig, open_source

__all__ = [
    "DECODING_KINDS",
    "WorkerKind",
    "decode_threads_for",
    "place",
    "place_sources",
    "usable_cores",
    "worker_kind",
]

WorkerKind = Literal["thread", "process"]
DECODING_KINDS = ("file", "rtsp")
"""Source kinds whose frames are decoded from a compressed stream by FFmpeg."""
MAX_DECODE_THREADS = 16
"""FFmpeg's H.264 decoder gains nothing past this many threads."""


def worker_kind(setting: str, source: SourceConfig, *, own_factory: bool) -> WorkerKind:
    """``thread`` or ``process`` for ``source`` under ``source_workers: setting``
    (``own_factory``: the pipeline was given a source factory of its own)."""
    if setting in ("thread", "process"):
        return "thread" if setting == "thread" else "process"
    if own_factory or source.kind not in DECODING_KINDS:
        return "thread"
    return "process"


def decode_threads_for(*, cores: int, infer_cores: int, decoding_streams: int) -> int:
    """Decoder threads per decoding stream: the cores inference leaves, shared, at least one."""
    spare = max(1, cores - infer_cores)
    return max(1, min(MAX_DECODE_THREADS, spare // max(1, decoding_streams)))


def place_sources(
    setting: str,
    sources: tuple[SourceConfig, ...],
    *,
    own_factory: bool,
    cores: int,
    infer_cores: int,
) -> list[tuple[SourceConfig, WorkerKind]]:
    """Each source with the worker it runs in, its ``decode_threads`` settled where it
    decodes in a process and left at 0 (see the module docstring)."""
    kinds = [worker_kind(setting, s, own_factory=own_factory) for s in sources]
    decodes = [
        k == "process" and s.kind in DECODING_KINDS for s, k in zip(sources, kinds, strict=True)
    ]
    threads = decode_threads_for(
        cores=cores, infer_cores=infer_cores, decoding_streams=sum(decodes)
    )
    return [
        (dataclasses.replace(s, decode_threads=threads) if d and s.decode_threads == 0 else s, k)
        for s, k, d in zip(sources, kinds, decodes, strict=True)
    ]


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def place(
    config: PipelineConfig,
    backend: Backend,
    factory: Callable[[SourceConfig, int], Source],
) -> list[tuple[SourceConfig, WorkerKind]]:
    """:func:`place_sources` for a pipeline running ``backend`` (its threads, in each of
    ``infer_workers`` processes, are the cores inference takes) with sources from ``factory``:
    what a run starts, and what ``Pipeline.stage_costs`` measures the first source as."""
    infer_cores = (backend.describe().threads or 1) * config.infer_workers
    return place_sources(
        config.source_workers,
        config.sources,
        own_factory=factory is not open_source,
        cores=usable_cores(),
        infer_cores=infer_cores,
    )
