"""The stages between the rings and the sink, each with a lifecycle and a declared policy.

======== ================================================================ ===========
stage    what it does for a frame                                          runs in
======== ================================================================ ===========
source   reads into a ring slot (:mod:`core.pipeline.streams`)             source worker
preprocess  motion gate, then letterbox straight into the backend's input  ingest worker
infer    one backend call per batch (input slot ``s``: ``infer(n, s)``)    inference worker
postprocess decodes the slot's output rows (the model's format: detections)  output worker
filter   score, allow-list, cooldown, transmission level                   output worker
compress JPEG crops / frame from the ring slot's view (only what is sent)  output worker
sink     the :class:`~core.sinks.ResultRecord` to the sink                 output worker
======== ================================================================ ===========

A stage is started (``on_start``), processes work (``process``) and is stopped (``on_stop``)
by its worker; a ``process`` that raises is counted in the stage's errors, logged with its
cause, and the frame goes on (without detections, decision or images, as the case may be).
``policy`` says what the stage does when the next one is slower: ``block`` waits
(back-pressure, which reaches the source through the ring), ``drop_oldest`` lets the ring
overwrite the oldest frame nobody took yet (live cameras). Only the ring in front of the
pipeline drops; every later stage blocks, and frames in flight are bounded by the ring's slots.

:func:`build_stages` makes every stage of a run, and of a cost measure
(:mod:`core.pipeline.costs`), in one place, each work call passed through the caller's
:data:`StageCallWrapper` when it gives one.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import numpy as np

from core.backends import Backend, Outputs
from core.errors import FrameError
from core.filter import (
    FilterConfig,
    FilterDecision,
    MotionGate,
    ResultFilter,
    without_detections,
)
from core.formats import DecodeOptions, Decoder, backend_facts
from core.formats.model import ModelChoice, settle_model
from core.pipeline.batcher import Batch, WorkItem
from core.preprocess import PreprocessSpec, preprocess_into
from core.sinks import ResultRecord, Sink
from core.sources import SourceConfig

if TYPE_CHECKING:
    from core.pipeline.config import PipelineConfig

Policy = Literal["block", "drop_oldest"]
STAGES = ("source", "preprocess", "infer", "postprocess", "filter", "compress", "sink")
"""Every stage, in order (the report's and the metrics' names)."""
LIVE_KINDS = ("v4l2", "rtsp")
In = TypeVar("In")
Out = TypeVar("Out")
StageCallWrapper = Callable[[str, Callable[..., Any]], Callable[..., Any]]
"""``wrap(stage_name, call) -> call``: gives a stage's work call (``process``, and the
preprocess stage's ``gate``) back wrapped in one that does the same work and returns its result;
the wrapper runs inside the time the worker records. For instrumentation: a tracer, or the
bench's known slowdown that proves ``bench compare`` flags a regression. For inference in a
process of its own the pipeline sends ``partial(wrap, "infer")`` to the child, so it must
pickle."""


def stage_workers(streams: int, compress_workers: int, infer_workers: int = 1) -> dict[str, int]:
    """Workers per stage: a source and an ingest (preprocess) thread per stream,
    ``infer_workers`` inference processes (or one thread), one output thread for postprocess,
    filter and sink, ``compress_workers`` JPEG encoders (the output thread itself when 1)."""
    return {
        "source": streams,
        "preprocess": streams,
        "infer": infer_workers,
        "postprocess": 1,
        "filter": 1,
        "compress": compress_workers,
        "sink": 1,
    }


def source_policy(config: SourceConfig) -> Policy:
    """A live camera never waits for the pipeline (``drop_oldest``); a file, a folder or the
    synthetic camera waits for it (``block``): nothing is lost, the pipeline sets the pace."""
    return "drop_oldest" if config.kind in LIVE_KINDS else "block"


class Stage(abc.ABC, Generic[In, Out]):
    """A pipeline stage: ``on_start``, ``process`` (per frame or batch), ``on_stop``."""

    name: ClassVar[str]
    policy: ClassVar[Policy] = "block"

    def on_start(self) -> None:
        """Before the first ``process``, in the worker that runs the stage."""

    @abc.abstractmethod
    def process(self, work: In) -> Out:
        """Do the stage's work; raising counts an error for this frame (the pipeline goes on)."""

    def on_stop(self) -> None:
        """After the last ``process`` (also after an error)."""


class PreprocessStage(Stage[tuple[WorkItem, np.ndarray], None]):
    """Motion gate (:meth:`gate`), then ``preprocess_into`` the backend's input row."""

    name = "preprocess"

    def __init__(self, gate: MotionGate, spec: PreprocessSpec) -> None:
        self.motion = gate
        self.spec = spec

    def gate(self, item: WorkItem) -> bool:
        """Whether the frame moved enough to be inferred (recorded on the item)."""
        result = self.motion.check(item.stream_id, item.frame.data)
        item.motion_passed = passed = self.motion.passes(result)
        return passed

    def process(self, work: tuple[WorkItem, np.ndarray]) -> None:
        item, row = work
        item.transform = preprocess_into(item.frame.data, row, self.spec)


class InferStage(Stage[Batch, Outputs]):
    """One ``backend.infer(rows, slot)`` per batch (ONNX Runtime and TensorRT release the GIL)."""

    name = "infer"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def process(self, work: Batch) -> Outputs:
        return self.backend.infer(work.rows, work.slot)


class PostprocessStage(Stage[tuple[WorkItem, Sequence[np.ndarray]], None]):
    """Decode one image's outputs (each output's row for it) into frame-pixel detections,
    with the model format's decoder (:mod:`core.formats`).

    Candidates holding NaN or infinite values (a broken model, an fp16 overflow) are counted
    as an error of this stage with how many there were; the finite ones are kept.
    """

    name = "postprocess"

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder

    def process(self, work: tuple[WorkItem, Sequence[np.ndarray]]) -> None:
        item, outputs = work
        if item.transform is None:
            return  # its preprocessing failed (counted there): nothing to decode
        detections = self.decoder(outputs, item.transform)
        item.detections = detections
        if detections.nonfinite:
            raise FrameError(
                f"stream {item.stream_id} frame {item.index}: the model output "
                f"{detections.nonfinite} non-finite candidates (NaN/inf), left out"
            )


class FilterStage(Stage[WorkItem, None]):
    """:meth:`core.filter.ResultFilter.decide` for the frame."""

    name = "filter"

    def __init__(self, result_filter: ResultFilter) -> None:
        self.filter = result_filter
        self._nothing = result_filter.decide(0, 0, None, motion_passed=False)

    def process(self, work: WorkItem) -> None:
        work.decision = self._nothing  # what stands if decide raises
        work.decision = self.filter.decide(
            work.stream_id, work.capture_ns, work.detections, work.motion_passed
        )

    @property
    def nothing(self) -> FilterDecision:
        """The decision that sends nothing (for frames whose filtering failed)."""
        return self._nothing


class CompressStage(Stage[WorkItem, None]):
    """JPEG what the decision sends (crops or the frame), straight from the ring slot's view:
    nothing is encoded for a frame that is not sent."""

    name = "compress"

    def __init__(self, result_filter: ResultFilter) -> None:
        self.filter = result_filter

    def process(self, work: WorkItem) -> None:
        decision: FilterDecision = work.decision
        if decision.send and decision.level in ("crops", "frame"):
            work.images = self.filter.encode(work.frame.data, decision)


class SinkStage(Stage[WorkItem, int]):
    """Make the frame's :class:`ResultRecord` and emit it; returns the bytes sent (0 when the
    filter sent nothing). Record ``seq`` numbers count records per stream."""

    name = "sink"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._seq: dict[int, int] = {}

    def on_start(self) -> None:
        self.sink.open()

    def process(self, work: WorkItem) -> int:
        decision: FilterDecision = work.decision
        if not decision.send:
            return 0
        seq = self._seq.get(work.stream_id, 0) + 1
        self._seq[work.stream_id] = seq
        record = ResultRecord(
            work.stream_id,
            seq,
            work.index,
            work.capture_ns,
            time.monotonic_ns(),
            decision.level,
            decision.detections,
            work.images,
            work.version,
        )
        self.sink.emit(record)
        return record.payload_bytes

    def flush(self) -> None:
        self.sink.flush()

    def on_stop(self) -> None:
        self.sink.close()


@dataclass
class StageSet:
    """Every stage of one run (or one cost measure) but the per-stream preprocessing, which
    :meth:`preprocess` makes (each stream has a motion gate of its own)."""

    config: PipelineConfig
    spec: PreprocessSpec
    model: ModelChoice
    result_filter: ResultFilter
    infer: InferStage
    postprocess: PostprocessStage
    filter: FilterStage
    compress: CompressStage
    sink: SinkStage
    wrap: StageCallWrapper | None = None

    def preprocess(self) -> PreprocessStage:
        """A new preprocessing stage with a motion gate of its own (one per stream)."""
        stage = PreprocessStage(MotionGate(self.config.filter.motion), self.spec)
        return _wrapped(stage, self.wrap, "gate", "process")


def build_stages(
    config: PipelineConfig,
    backend: Backend,
    sink: Sink,
    model: ModelChoice,
    wrap: StageCallWrapper | None = None,
) -> StageSet:
    """The stages for ``config`` around a loaded ``backend`` whose format and class names
    ``model`` settled (:func:`settle_backend`), sinking into ``sink``; each work call wrapped
    by ``wrap`` (see :data:`StageCallWrapper`)."""
    result_filter = ResultFilter(
        config.filter, model.class_names, detections=model.format.task != "raw"
    )
    spec, infer, postprocess = model_stages(config, backend, model, wrap)
    return StageSet(
        config=config,
        spec=spec,
        model=model,
        result_filter=result_filter,
        infer=infer,
        postprocess=postprocess,
        filter=_wrapped(FilterStage(result_filter), wrap, "process"),
        compress=_wrapped(CompressStage(result_filter), wrap, "process"),
        sink=_wrapped(SinkStage(sink), wrap, "process"),
        wrap=wrap,
    )


def model_stages(
    config: PipelineConfig,
    backend: Backend,
    model: ModelChoice,
    wrap: StageCallWrapper | None = None,
) -> tuple[PreprocessSpec, InferStage, PostprocessStage]:
    """What depends on the model itself: the preprocessing its input needs, the stage that
    infers on ``backend`` and the one that decodes its outputs (a model swapped in while
    running gets its own: :mod:`core.pipeline.serving`)."""
    m = config.model
    options = DecodeOptions(score_floor=m.score_floor, iou_threshold=m.iou_threshold)
    return (
        backend.preprocess_spec(model.preprocess(m.preprocess.changes())),
        _wrapped(InferStage(backend), wrap, "process"),
        _wrapped(PostprocessStage(model.decoder(options)), wrap, "process"),
    )


def settle_backend(
    backend: Backend, wanted: str = "auto", labels: str | None = None
) -> ModelChoice:
    """The format and class names of the model ``backend`` runs (:mod:`core.formats`)."""
    return settle_model(backend_facts(backend), wanted, labels)


def filter_changes(model: ModelChoice, config: FilterConfig) -> list[str]:
    """What the filter does otherwise for ``model`` than ``config`` says (the pipeline logs
    them as warnings at start): a ``raw`` model has no scores, classes or boxes."""
    return without_detections(config)[1] if model.format.task == "raw" else []


StageT = TypeVar("StageT", bound=Stage[Any, Any])


def _wrapped(stage: StageT, wrap: StageCallWrapper | None, *calls: str) -> StageT:
    """``stage`` with each of its ``calls`` replaced by ``wrap(stage.name, call)``."""
    if wrap is not None:
        for call in calls:
            setattr(stage, call, wrap(stage.name, getattr(stage, call)))
    return stage


def describe_exception(exc: BaseException) -> str:
    """``Type: message``, the cause a log line and a report give."""
    return f"{type(exc).__name__}: {exc}"
