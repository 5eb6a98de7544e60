"""Batches across streams, like DeepStream's nvstreammux: frames join the open batch in the
order they arrive, whatever their stream; a batch goes to inference when it holds
``batch_size`` frames or ``batch_timeout`` after its first frame, whichever comes first.

Each batch owns one of the backend's *input slots* (``Backend.input_buffer(n, slot)``): ingest
workers preprocess straight into the slot's rows while the inference worker runs another slot,
and the slot returns to the pool when the post-processing worker has decoded its outputs. Three
slots keep the three apart (filling, inferring, decoding); with no free slot an ingest worker
waits -- that is the back-pressure on the rings.

Frames that need no inference (the motion gate found nothing new) still travel in a batch, as
items without a row, so that every stream's frames leave in the order they came: a batch with
no rows goes at once, without waiting for its timeout.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from core.errors import PipelineError

Serving = Any
"""A :class:`core.pipeline.serving.Serving` (not imported: that module imports the stages,
which import this one): the batcher reads only ``serving.backend.input_buffer``."""


class WorkItem:
    """One frame on its way through the pipeline (slot indices and results, never pixels
    copied: ``frame`` is the ring's view). A plain ``__slots__`` class: one is made per frame."""

    __slots__ = (
        "capture_ns",
        "decision",
        "detections",
        "frame",
        "images",
        "index",
        "motion_passed",
        "row",
        "seq",
        "stream_id",
        "transform",
        "truth",
        "version",
    )

    def __init__(  # noqa: PLR0917 - one per frame: positional is the cheap call
        self, frame: Any, stream_id: int, seq: int, index: int, capture_ns: int, truth: Any
    ) -> None:
        self.frame = frame
        self.stream_id = stream_id
        self.seq = seq
        self.index = index
        self.capture_ns = capture_ns
        self.truth = truth
        self.motion_passed = True
        self.row = -1  # row of the batch's input slot; -1: not inferred
        self.transform: Any = None  # set when preprocessing succeeded
        self.detections: Any = None
        self.decision: Any = None
        self.images: tuple[Any, ...] = ()
        self.version = ""  # the model version that inferred it (set when decoded)


class Batch:
    """Items in arrival order; ``rows`` of them are in input slot ``slot`` (-1: no rows) of
    ``serving``'s backend, which infers and decodes them (:mod:`core.pipeline.serving`)."""

    __slots__ = ("done", "first_ns", "items", "rows", "sealed", "serving", "slot")

    def __init__(self, slot: int, first_ns: int, serving: Serving) -> None:
        self.slot = slot
        self.serving = serving
        self.first_ns = first_ns
        self.items: list[WorkItem] = []
        self.rows = 0  # rows reserved
        self.done = 0  # rows written (or given up)
        self.sealed = False

    @property
    def ready(self) -> bool:
        return self.sealed and self.done == self.rows


class Split:
    """Which model each frame goes to during an A/B test: the candidate takes ``fraction`` of
    the streams (``by="stream"``: every frame of a stream goes to one model) or of each
    stream's frames (``by="frame"``). Units are spread evenly and deterministically: unit
    ``u`` (a stream id, or a frame's sequence number in its stream) goes to the candidate when
    ``floor((u + 1) * fraction) > floor(u * fraction)``, so any run of units splits as close
    to ``fraction`` as whole units allow, the same on every run: a hash could give every
    camera of a small site to one model
    (docs/decisions/0036-ab-tests-split-evenly-and-judge-by-significance.md).

    >>> split = Split("B", 0.5, "stream")
    >>> [split.takes(stream, 0) for stream in range(4)]
    [False, True, False, True]
    >>> sum(Split("B", 0.1, "frame").takes(0, seq) for seq in range(1000))
    100
    """

    def __init__(self, candidate: Serving, fraction: float, by: str) -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
        if by not in ("stream", "frame"):
            raise ValueError(f"by must be stream or frame, got {by!r}")
        self.candidate = candidate
        self.fraction = fraction
        self.by = by

    def takes(self, stream_id: int, seq: int) -> bool:
        unit = stream_id if self.by == "stream" else seq
        return math.floor((unit + 1) * self.fraction) > math.floor(unit * self.fraction)


class Batcher:
    """The meeting point of the ingest workers (many) and the inference worker (one).

    Batches queue in the order they were opened and leave in that order. A batch is *sealed*
    when full or timed out, and *ready* once every row it reserved was written. Each batch is
    opened on one model (:class:`~core.pipeline.serving.Serving`): the serving one, or during
    an A/B test (:meth:`split`) the candidate for the frames the :class:`Split` gives it, so
    there is an open batch per model. A frame never joins an open batch when a batch queued
    after it holds a frame of its stream: it opens a new one instead, so every stream's frames
    still leave in order.
    """

    def __init__(
        self,
        serving: Serving,
        batch_size: int,
        timeout_s: float,
        slots: int,
    ) -> None:
        self.serving = serving
        """The model new batches open on (:meth:`switch` changes it)."""
        self.ab: Split | None = None
        """The A/B split under way (:meth:`split`), None when there is none."""
        self.batch_size = batch_size
        self.timeout_ns = int(timeout_s * 1e9)
        self._free = deque(range(slots))
        """Free slots, the longest free first: slots go round in turn, so an inference pool's
        children (``core.backends.pool``, slot ``s`` in child ``s % workers``) take turns."""
        self._queue: deque[Batch] = deque()
        self._open: dict[Serving, Batch] = {}
        """The open batch of each model (at most two: the serving one and a candidate)."""
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)  # ingest workers wait for a free slot
        self._work = threading.Condition(self._lock)  # the inference worker waits for a batch
        self._closed = False
        self.batches = 0
        self.partial = 0  # batches with rows that went before they were full
        self.sizes = [0] * (batch_size + 1)  # sizes[n]: batches of n rows so far

    def reserve(self, item: WorkItem, timeout: float) -> tuple[Batch, np.ndarray]:
        """A row for ``item`` in its model's open batch (opening one when needed, waiting up
        to ``timeout`` s for a free input slot): the batch, and the row to preprocess into."""
        deadline = time.monotonic() + timeout
        with self._lock:
            ab = self.ab
            serving = ab.candidate if ab and ab.takes(item.stream_id, item.seq) else self.serving
            batch = self._open.get(serving)
            if batch is not None and self._overtaken(batch, item.stream_id):
                self._seal(serving)
                batch = None
            while batch is None:
                if self._closed:
                    raise PipelineError("the batcher is closed")
                if self._free:
                    batch = Batch(self._free.popleft(), time.monotonic_ns(), serving)
                    serving.hold()  # released when the output worker frees the slot
                    self._queue.append(batch)
                    self._open[serving] = batch
                    if self.batch_size > 1:
                        self._work.notify()  # its timeout starts now
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._space.wait(remaining):
                    raise TimeoutError(f"no free input slot within {timeout} s")
                batch = self._open.get(serving)
            item.row = batch.rows
            batch.rows += 1
            batch.items.append(item)
            if batch.rows == self.batch_size:
                self._seal(serving)  # full: it goes as soon as its rows are written
            buffer = serving.backend.input_buffer(self.batch_size, batch.slot)
            return batch, buffer[item.row]

    def _overtaken(self, batch: Batch, stream_id: int) -> bool:
        """Whether a batch queued after ``batch`` (open or sealed) holds a frame of
        ``stream_id``: then a later frame of the stream must not join ``batch``, which leaves
        first. Only an A/B split puts another model's batches after an open one (without one,
        the open batch is the last queued and this returns at once)."""
        for other in reversed(self._queue):
            if other is batch:
                return False
            if any(i.stream_id == stream_id for i in other.items):
                return True
        return False

    def _seal(self, serving: Serving) -> None:
        """Seal ``serving``'s open batch, if any (under the lock)."""
        batch = self._open.pop(serving, None)
        if batch is not None:
            batch.sealed = True
            self._work.notify()

    def written(self, batch: Batch) -> None:
        """A reserved row was written (or its preprocessing failed: the row is then ignored)."""
        with self._lock:
            batch.done += 1
            if batch.ready and self._queue[0] is batch:
                self._work.notify()

    def skip(self, item: WorkItem) -> None:
        """``item`` needs no inference: it joins the last queued batch, so it leaves after the
        frames that came before it, or goes at once when nothing is queued."""
        with self._lock:
            if self._queue:
                self._queue[-1].items.append(item)
                return
            batch = Batch(-1, time.monotonic_ns(), self.serving)
            batch.items.append(item)
            batch.sealed = True
            self._queue.append(batch)
            self._work.notify()

    def next_batch(self, poll_s: float = 0.1) -> Batch | None:
        """The next batch for inference, in order; None once closed and drained."""
        with self._lock:
            while True:
                now = time.monotonic_ns()
                for serving, batch in list(self._open.items()):
                    if self._closed or now - batch.first_ns >= self.timeout_ns:
                        self._seal(serving)  # goes once its reserved rows are written
                if self._queue and self._queue[0].ready:
                    batch = self._queue.popleft()
                    self.batches += 1
                    self.sizes[batch.rows] += 1
                    if 0 < batch.rows < self.batch_size:
                        self.partial += 1
                    return batch
                if self._closed and not self._queue:
                    return None
                wait_s = poll_s
                for batch in self._open.values():
                    wait_s = min(wait_s, (batch.first_ns + self.timeout_ns - now) / 1e9)
                self._work.wait(max(wait_s, 0.0))

    def switch(self, serving: Serving) -> Serving:
        """Open every later batch on ``serving``, ending an A/B split; the open batches are
        sealed first, so each goes to the model it was opened on (a batch boundary). Returns
        the serving it replaced."""
        with self._lock:
            for model in list(self._open):
                self._seal(model)
            old, self.serving, self.ab = self.serving, serving, None
            return old

    def split(self, ab: Split | None) -> None:
        """Start an A/B split (``ab``), or end the one under way (None: the candidate's open
        batch is sealed, later frames all go to the serving model)."""
        with self._lock:
            old, self.ab = self.ab, ab
            if old is not None and (ab is None or ab.candidate is not old.candidate):
                self._seal(old.candidate)

    def free(self, slot: int) -> None:
        """The batch in ``slot`` was decoded: the slot takes a new batch."""
        if slot < 0:
            return
        with self._lock:
            self._free.append(slot)
            self._space.notify()

    def close(self) -> None:
        """No more frames: the open batch goes as it is; waiting workers wake up."""
        with self._lock:
            self._closed = True
            self._space.notify_all()
            self._work.notify_all()
