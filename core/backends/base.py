"""The contract every inference backend keeps, and the parts they share.

A backend owns one preallocated input tensor ``(rows, 3, H, W)`` and one preallocated array
per model output. The pipeline writes images straight into ``input_buffer(n)`` (the
``core.preprocess`` kernels take ``buffer[i]``), calls ``infer(n)``, and reads the returned
views of the output arrays -- valid until the next call. Nothing is copied between
preprocessing and inference and, once loaded, a call allocates nothing: every view an ``infer``
or ``input_buffer`` call returns was made at load time.

**Input slots.** Opened with ``input_slots=k``, a backend holds ``k`` such sets of input and
output buffers: ``input_buffer(n, slot=s)`` and ``infer(n, slot=s)``. A pipeline preprocesses
batch ``i + 1`` into one slot while batch ``i`` runs from the other (the preprocess kernels and
the runtimes release the GIL, so the two overlap on two cores), and reads a slot's outputs
until it runs that slot again. ``infer`` calls themselves must not overlap (one caller thread).

Models come with a fixed batch or a dynamic one. :class:`BatchPlan` says how a batch of ``n``
images maps onto runs of the model: one run of ``n`` for a dynamic batch; for a fixed batch
``b``, ``ceil(n / b)`` runs over consecutive slices of the buffer, the last one padded with
whatever rows it holds (their outputs are not returned).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from core.backends.model_file import file_sha256, fixed_batch, image_input, resolve_input_size
from core.backends.tensor_spec import TensorSpec
from core.errors import ConfigError, FrameError
from core.preprocess import PreprocessSpec

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class LoadTimings:
    """How long the model took to become useful, in seconds (metrics and bench read these).

    ``load_s`` runs from the model file to a ready session or engine (for TensorRT: building
    or deserialising the engine, allocating buffers); ``first_inference_s`` is the first call,
    which pays lazy initialisation; ``warmup_s`` is the total of ``warmup_runs`` further calls.
    """

    load_s: float
    first_inference_s: float
    warmup_s: float
    warmup_runs: int
    engine_build_s: float | None = None
    """TensorRT: time spent building the engine (None when it came from the cache)."""


@dataclass(frozen=True)
class BackendInfo:
    """What ``describe()`` returns: enough to reproduce, compare or report a run."""

    name: str
    version: str
    provider: str
    """Where it runs: an ONNX Runtime execution provider, ``cuda:0``, ``dla:1``..."""
    precision: str
    model: str
    model_sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_shape: tuple[int, ...]
    """The input buffer's shape, ``(capacity, 3, H, W)``."""
    output_shapes: tuple[tuple[int, ...], ...]
    """The output arrays' shapes at full capacity."""
    model_batch: int | None
    """The model's fixed batch size, or None when its batch axis is dynamic."""
    threads: int | None
    extra: dict[str, Any] = field(default_factory=dict)
    """Backend-specific facts: engine cache file, DLA core, unified memory..."""
    input_slots: int = 1
    """Sets of input and output buffers (``input_buffer(n, slot)``, ``infer(n, slot)``)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tensor specs as ``{"name", "shape", "dtype"}``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BatchPlan:
    """How up to ``capacity`` images map onto runs of a model whose batch is ``model_batch``.

    >>> plan = BatchPlan(model_batch=4, capacity=6)
    >>> plan.rows, plan.chunks(5)        # two runs of 4; rows 5..7 are padding
    (8, ((0, 4), (4, 4)))
    >>> BatchPlan(model_batch=None, capacity=8).chunks(3)
    ((0, 3),)
    """

    model_batch: int | None
    capacity: int

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.capacity}")
        if self.model_batch is not None and self.model_batch < 1:
            raise ConfigError(f"a fixed model batch must be >= 1, got {self.model_batch}")

    @property
    def rows(self) -> int:
        """Rows of the input buffer: the capacity, rounded up to whole model batches."""
        if self.model_batch is None:
            return self.capacity
        return -(-self.capacity // self.model_batch) * self.model_batch

    @property
    def run_sizes(self) -> tuple[int, ...]:
        """Every batch size the runtime will be given."""
        if self.model_batch is None:
            return tuple(range(1, self.capacity + 1))
        return (self.model_batch,)

    def chunks(self, n: int) -> tuple[tuple[int, int], ...]:
        """``(start, size)`` of each model run for ``n`` valid images."""
        if not 1 <= n <= self.capacity:
            raise FrameError(f"a batch of {n} images does not fit a capacity of {self.capacity}")
        if self.model_batch is None:
            return ((0, n),)
        b = self.model_batch
        return tuple((start, b) for start in range(0, n, b))


Outputs = tuple[np.ndarray, ...]
Allocator = Callable[[tuple[int, ...], np.dtype[Any]], np.ndarray]
"""Makes a zero-filled array of a shape and dtype (``np.zeros``, or one in shared memory)."""


class Backend(abc.ABC):
    """Load, warm up, infer into preallocated outputs, describe. See the module docstring.

    Subclasses allocate their buffers (pageable, pinned or unified memory), then call
    :meth:`_adopt_buffers` and :meth:`_finish_loading`; they implement :meth:`_run` (run the
    model over ``plan.chunks(n)``) and :meth:`describe`.
    """

    name: ClassVar[str]

    def __init__(
        self,
        model_path: Path,
        *,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        batch_size: int,
        input_size: tuple[int, int] | int | None,
        input_slots: int = 1,
    ) -> None:
        self.model_path = model_path
        self.inputs, self.outputs = inputs, outputs
        self.input_spec = image_input(inputs, model_path)
        self.input_size = resolve_input_size(self.input_spec, input_size)
        self.plan = BatchPlan(fixed_batch(self.input_spec), batch_size)
        if isinstance(input_slots, bool) or not isinstance(input_slots, int) or input_slots < 1:
            raise ConfigError(f"input_slots must be an int >= 1, got {input_slots!r}")
        self.input_slots = input_slots
        """How many sets of input and output buffers this backend holds (see the module)."""
        self._sha256: str | None = None
        self._input = np.empty(0)  # slot 0's whole input array (describe(), dtype)
        self._input_views: list[list[np.ndarray]] = []  # [slot][n - 1]
        self._results: list[list[Outputs]] = []  # [slot][n - 1]
        self._slot_arrays: list[tuple[np.ndarray, Outputs]] = []  # [slot]: whole arrays
        self._timings: LoadTimings | None = None

    # -- what the pipeline calls ------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """The most images one ``infer`` call takes (the ``batch_size`` it was opened with)."""
        return self.plan.capacity

    @property
    def input_dtype(self) -> np.dtype[Any]:
        """dtype of the input buffer (what the preprocess spec must produce)."""
        return self._input.dtype

    @property
    def timings(self) -> LoadTimings:
        """Model load, first inference and warm-up times (see :class:`LoadTimings`)."""
        if self._timings is None:
            raise RuntimeError(f"{type(self).__name__} has not finished loading")
        return self._timings

    def input_buffer(self, n: int | None = None, slot: int = 0) -> np.ndarray:
        """The first ``n`` images (default: all) of input slot ``slot``, ``(n, 3, H, W)``.

        Write image ``i`` with ``preprocess_into(frame, buffer[i], spec)``; then
        ``infer(n, slot)``.
        """
        return self._input_views[self._slot(slot)][self._count(n) - 1]

    def infer(self, n: int | None = None, slot: int = 0) -> Outputs:
        """Run the model on the first ``n`` images of input slot ``slot`` (default: all).

        Returns one array per model output (in ``describe().outputs`` order), each a view of
        its first ``n`` rows of the slot's preallocated array: overwritten by the next call on
        the same slot.
        """
        count = self._count(n)
        index = self._slot(slot)
        self._run(count, index)
        return self._results[index][count - 1]

    def preprocess_spec(self, base: PreprocessSpec) -> PreprocessSpec:
        """``base`` (the model's recipe: ``PreprocessSpec.imagenet()``, ``.yolo()``...) with
        the size and dtype this backend's input needs."""
        return dataclasses.replace(base, size=self.input_size, dtype=self._input.dtype.name)

    def warmup(self, runs: int = 3) -> float:
        """Run ``runs`` full batches (and a batch of one, when the capacity is larger): seconds."""
        start = time.perf_counter()
        for run in range(runs):
            slot = run % self.input_slots
            self.infer(self.capacity, slot)
            if self.capacity > 1:
                self.infer(1, slot)
        for slot in range(runs, self.input_slots):  # every slot's buffers run at least once
            self.infer(self.capacity, slot)
        return time.perf_counter() - start

    def slot_buffers(self, slot: int = 0) -> tuple[np.ndarray, Outputs]:
        """Input slot ``slot``'s whole input array and output arrays, the memory that
        ``input_buffer`` and ``infer`` return views of (for a process that maps them)."""
        index = self._slot(slot)
        return self._slot_arrays[index]

    @abc.abstractmethod
    def describe(self) -> BackendInfo:
        """Name, versions, where it runs, precision, tensors and buffer shapes."""

    @property
    def model_sha256(self) -> str:
        """SHA-256 of the model file (read once, when first asked)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.model_path)
        return self._sha256

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release runtime resources (sessions, engines, device memory)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for subclasses -----------------------------------------------------------------------

    def _count(self, n: int | None) -> int:
        count = self.capacity if n is None else n
        if not 1 <= count <= self.capacity:
            raise FrameError(
                f"a batch of {count} images does not fit this backend (1..{self.capacity})"
            )
        return count

    def _slot(self, slot: int) -> int:
        if not 0 <= slot < self.input_slots:
            raise FrameError(
                f"input slot {slot} does not exist: this backend has {self.input_slots} "
                f"(0..{self.input_slots - 1}; open_backend(..., input_slots=k) for more)"
            )
        return slot

    @abc.abstractmethod
    def _run(self, n: int, slot: int) -> None:
        """Run the model over ``plan.chunks(n)`` of input slot ``slot``, writing into that
        slot's output arrays."""

    def _adopt_buffers(
        self, inputs: Sequence[np.ndarray], outputs: Sequence[Sequence[np.ndarray]]
    ) -> None:
        """Take the allocated buffers -- one input array and one list of output arrays per
        input slot -- and make every view ``infer``/``input_buffer`` returns."""
        if len(inputs) != self.input_slots or len(outputs) != self.input_slots:
            raise RuntimeError(f"{type(self).__name__} allocated buffers for the wrong slots")
        self._input = inputs[0]
        self._slot_arrays = [(i, tuple(o)) for i, o in zip(inputs, outputs, strict=True)]
        sizes = range(1, self.capacity + 1)
        self._input_views = [[array[:n] for n in sizes] for array in inputs]
        self._results = [[tuple(o[:n] for o in outs) for n in sizes] for outs in outputs]

    def _info(
        self,
        *,
        version: str,
        provider: str,
        precision: str,
        threads: int | None,
        extra: dict[str, Any],
    ) -> BackendInfo:
        """:class:`BackendInfo` with the fields every backend fills the same way."""
        return BackendInfo(
            name=self.name,
            version=version,
            provider=provider,
            precision=precision,
            model=str(self.model_path),
            model_sha256=self.model_sha256,
            inputs=self.inputs,
            outputs=self.outputs,
            input_shape=tuple(self._input.shape),
            output_shapes=tuple(tuple(o.shape) for o in self._results[0][-1]),
            model_batch=self.plan.model_batch,
            threads=threads,
            extra=extra,
            input_slots=self.input_slots,
        )

    def _finish_loading(
        self,
        load_s: float,
        first_inference: Callable[[], object],
        warmup_runs: int,
        engine_build_s: float | None = None,
    ) -> None:
        """Time the first inference and the warm-up; record :class:`LoadTimings`."""
        start = time.perf_counter()
        first_inference()
        first_s = time.perf_counter() - start
        warmup_s = self.warmup(warmup_runs)
        self._timings = LoadTimings(load_s, first_s, warmup_s, warmup_runs, engine_build_s)
