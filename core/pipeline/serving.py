"""The model version a run serves, and changing it between two batches (a hot swap).

A :class:`Serving` is one loaded model as the pipeline uses it: the input its frames are
prepared for, the backend that infers a batch, the stage that decodes its rows, and the
version label its results carry. The batcher stamps each batch with the serving current when
the batch opens, and that batch is prepared, inferred and decoded for that serving to the end,
whatever happens meanwhile: a swap
(:meth:`~core.pipeline.batcher.Batcher.switch`) seals the open batch and the next one opens on
the new model, so no frame is dropped and none is inferred twice, and the old model finishes
the batches it holds while the new one takes the next.

Models of other input sizes and formats swap freely (each batch is prepared and decoded for
its own). A candidate can only take over where nothing else has to change with it
(:func:`check_swappable`): the same task and the same class names, which the filter's class
rules and the records' class ids mean. Anything else is a new configuration: a restart
applies it (docs/decisions/0035-hot-swap-at-a-batch-boundary.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from core.backends import Backend
from core.backends.pool import REMOTE_BACKENDS, ProcessPool
from core.backends.process import ProcessBackend
from core.errors import ModelError
from core.formats.model import ModelChoice
from core.pipeline.stages import InferStage, PostprocessStage
from core.preprocess import PreprocessSpec

__all__ = [
    "COST_RUNS",
    "CallCosts",
    "Candidate",
    "Serving",
    "Tally",
    "check_swappable",
    "measure_row_cost",
]

COST_RUNS = 8
"""Calls a candidate's cost per frame is measured on before it may serve."""
LATENCY_SAMPLES = 10_000
"""The latest calls whose time per frame a serving model keeps (for p50 and p99)."""
IDLE_TIMEOUT_S = 10.0
IDLE_POLL_S = 0.01


@dataclass
class CallCosts:
    """Inference calls of one serving model: rows and cost summed (an inference process's own
    CPU time; a thread backend's wall time, since a GPU's time is not the thread's CPU), the
    latest calls' wall time per frame; and the frames decoded from its outputs, with how many
    failed (the call failed, or the outputs could not be decoded: NaN, a wrong shape)."""

    rows: int = 0
    cost_ns: int = 0
    frames: int = 0
    errors: int = 0
    latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    """The latest calls' wall time per frame (seconds): their p50 and p99."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def p99_s(self, minimum: int) -> float | None:
        """The p99 of :attr:`latency_s`, once it holds ``minimum`` calls (None before)."""
        samples = np.array(list(self.latency_s), np.float64)
        return float(np.percentile(samples, 99)) if samples.size >= minimum else None

    def decoded(self, frames: int, errors: int) -> None:
        with self._lock:
            self.frames += frames
            self.errors += errors

    def add(self, rows: int, wall_ns: int, cost_ns: int) -> None:
        with self._lock:
            self.rows += rows
            self.cost_ns += cost_ns
        self.latency_s.append(wall_ns / 1e9 / max(1, rows))

    def per_row_s(self) -> float | None:
        """Seconds of cost per frame so far (None before the first call)."""
        with self._lock:
            return self.cost_ns / self.rows / 1e9 if self.rows else None


CONFIDENCE_BINS = 20
"""Bins of the confidence histogram a serving model keeps (0.05 wide, over 0..1)."""


class Tally:
    """What a serving model's decoded frames held, for an A/B comparison: detections per
    class and a histogram of their confidences."""

    def __init__(self, classes: int) -> None:
        self.detections = np.zeros(classes, np.int64)
        self.confidence = np.zeros(CONFIDENCE_BINS, np.int64)
        self._lock = threading.Lock()

    def frame(self, classes: np.ndarray, scores: np.ndarray) -> None:
        if not len(scores):
            return
        counts = np.bincount(classes, minlength=len(self.detections))[: len(self.detections)]
        bins = np.minimum((scores * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)
        hist = np.bincount(np.maximum(bins, 0), minlength=CONFIDENCE_BINS)
        with self._lock:
            self.detections += counts
            self.confidence += hist

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(detections per class, confidence histogram), copies."""
        with self._lock:
            return self.detections.copy(), self.confidence.copy()


@dataclass(eq=False)
class Serving:
    """One loaded model version as a run uses it (see the module docstring)."""

    backend: Backend
    model: ModelChoice
    infer: InferStage
    post: PostprocessStage
    spec: PreprocessSpec
    version: str
    costs: CallCosts = field(default_factory=CallCosts)
    tally: Tally | None = None
    """Set for the models of an A/B test (:meth:`keep_tally`): what their frames held."""
    _inflight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hold(self) -> None:
        """A batch opened on this model (the batcher calls it)."""
        with self._lock:
            self._inflight += 1

    def release(self) -> None:
        """A batch of this model was decoded and its input slot freed."""
        with self._lock:
            self._inflight -= 1

    def idle(self) -> bool:
        """Whether no batch of this model is in flight: its backend can close."""
        with self._lock:
            return self._inflight <= 0

    def close_when_idle(self, timeout_s: float = IDLE_TIMEOUT_S) -> bool:
        """Close the backend once the batches it holds are done (at most ``timeout_s``: a run
        that stopped leaves none in flight); whether it was idle by then."""
        deadline = time.monotonic() + timeout_s
        while not self.idle() and time.monotonic() < deadline:
            time.sleep(IDLE_POLL_S)
        idle = self.idle()
        self.backend.close()
        return idle

    @property
    def remote(self) -> ProcessBackend | ProcessPool | None:
        """The backend when its calls run in another process (``submit`` / ``collect``)."""
        return self.backend if isinstance(self.backend, REMOTE_BACKENDS) else None

    def record_call(self, rows: int, wall_ns: int, cpu_ns: int) -> None:
        """One call's cost: CPU time for an inference process, wall time otherwise."""
        self.costs.add(rows, wall_ns, cpu_ns if self.remote is not None else wall_ns)

    def keep_tally(self) -> Tally:
        """Start keeping what this model's frames hold (an A/B test compares two tallies)."""
        self.tally = Tally(len(self.model.class_names))
        return self.tally


@dataclass(frozen=True)
class Candidate:
    """A model loaded, checked swappable and warmed up, not serving yet
    (:meth:`core.pipeline.Pipeline.prepare`): its cost per frame, measured as it loaded, and
    the serving model's on the same terms (from the running run's calls; None when it has
    made none), for the caller to judge before :meth:`~core.pipeline.Pipeline.swap`."""

    serving: Serving
    cost_s: float
    current_cost_s: float | None

    @property
    def cost_ratio(self) -> float | None:
        """The candidate's cost per frame over the serving model's (None: no figure)."""
        if not self.current_cost_s:
            return None
        return self.cost_s / self.current_cost_s


def check_swappable(current: Serving, candidate: Serving) -> None:
    """:class:`ModelError` naming what differs when ``candidate`` cannot take over from
    ``current`` between two batches (the module docstring says why each must match)."""
    where = f"model {candidate.version}"
    if candidate.model.format.task != current.model.format.task:
        raise ModelError(
            f"{where}: a {candidate.model.format.task} model cannot take over from a "
            f"{current.model.format.task} model while running"
        )
    if tuple(candidate.model.class_names) != tuple(current.model.class_names):
        new, old = candidate.model.class_names, current.model.class_names
        raise ModelError(
            f"{where}: its {len(new)} classes are not the serving model's {len(old)} "
            f"({_class_change(old, new)}): the filter's class rules and the records' class ids "
            "would change meaning; a restart with the new model applies it"
        )


def measure_row_cost(serving: Serving, runs: int = COST_RUNS) -> float:
    """Seconds of cost per frame of ``serving``'s model over ``runs`` full batches, measured
    as a run records them (:meth:`Serving.record_call`): the child's CPU time for an
    inference process, so that the load of a running pipeline on the same cores does not
    count against it; wall time for a backend in this process."""
    backend = serving.backend
    rows = backend.capacity
    costs = CallCosts()
    remote = serving.remote
    for _ in range(runs):
        if remote is not None:
            remote.submit(rows, 0)
            reply = remote.collect(0)
            if reply.error is not None:
                raise ModelError(f"model {serving.version}: a warm-up call failed: {reply.error}")
            costs.add(rows, reply.cost.end_ns - reply.cost.start_ns, reply.cost.cpu_ns)
        else:
            start = time.perf_counter_ns()
            backend.infer(rows, 0)
            wall = time.perf_counter_ns() - start
            costs.add(rows, wall, wall)
    cost = costs.per_row_s()
    assert cost is not None
    return cost


def _class_change(old: tuple[str, ...] | list[str], new: tuple[str, ...] | list[str]) -> str:
    missing = [name for name in old if name not in new]
    extra = [name for name in new if name not in old]
    parts = []
    if missing:
        parts.append(f"without {', '.join(missing[:5])}")
    if extra:
        parts.append(f"with {', '.join(extra[:5])}")
    return "; ".join(parts) or "in another order"
