"""Several inference processes behind one backend: Triton's ``instance_group`` count for a CPU.

Why: one ONNX Runtime session on one thread leaves the other cores of a gateway to the rest of
the pipeline, and more intra-op threads split each call's operators across cores, so every
operator waits for the slowest thread (on two cores, for whichever core another stage holds).
Independent sessions in processes of their own scale without that, so a pipeline gets more
frames per second wherever inference is its slowest stage and cores are left
(docs/decisions/0015-several-inference-processes-opt-in.md).

How: :class:`ProcessPool` opens ``workers`` :class:`~core.backends.process.ProcessBackend`
children, each with its own input slots in shared memory, and numbers their slots
interleaved: pool slot ``s`` is child ``s % workers``'s slot ``s // workers``. The pipeline's
batcher hands slots out in turn (first freed, first reused), so consecutive batches go to
consecutive children and run side by side; the output worker collects them in the order they
were submitted, each child answering its own calls in order, so frames keep their order.
(Choosing instead the slot of the child with the fewest calls outstanding measured no better;
the same record.)

One worker stays the default: on two cores every stage then shares both cores, and throughput
rises a little while efficiency against the CPU bound falls (the same record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

from core.backends.base import Backend, BackendInfo
from core.backends.process import ProcessBackend, Reply
from core.errors import ConfigError


class ProcessPool(Backend):
    """``workers`` inference processes as one :class:`Backend` with ``input_slots`` slots in
    all (rounded up to a multiple of ``workers``); the rest of the arguments go to each
    :class:`~core.backends.process.ProcessBackend` (see the module docstring)."""

    name = "onnxruntime"

    def __init__(
        self,
        model: str | os.PathLike[str],
        backend: str = "auto",
        *,
        workers: int,
        input_slots: int = 1,
        **options: Any,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"infer_workers must be an int >= 1, got {workers!r}")
        per_worker = -(-max(1, input_slots) // workers)
        self.members: list[ProcessBackend] = []
        try:
            for _ in range(workers):
                self.members.append(
                    ProcessBackend(model, backend, input_slots=per_worker, **options)
                )
        except BaseException:
            self.close()
            raise
        first = self.members[0]
        super().__init__(
            first.model_path,
            inputs=first.inputs,
            outputs=first.outputs,
            batch_size=first.capacity,
            input_size=first.input_size,
            input_slots=per_worker * workers,
        )
        slots = map(self._member, range(self.input_slots))
        buffers = [member.slot_buffers(local) for member, local in slots]
        self._adopt_buffers([i for i, _ in buffers], [o for _, o in buffers])
        self._sha256 = first.model_sha256
        self._timings = first.timings
        self.pids = [m.pid for m in self.members]
        info = first.describe()
        self._described = dataclasses.replace(
            info,
            input_slots=self.input_slots,
            extra={**info.extra, "process_pid": self.pids[0], "process_pids": self.pids},
        )

    def _member(self, slot: int) -> tuple[ProcessBackend, int]:
        """The child that holds pool slot ``slot``, and its own number for it."""
        index = self._slot(slot)
        workers = len(self.members)
        return self.members[index % workers], index // workers

    def submit(self, n: int, slot: int = 0) -> None:
        """Queue a run on the child holding ``slot``; :meth:`collect` it later, in order."""
        member, local = self._member(slot)
        member.submit(self._count(n), local)

    def collect(self, slot: int = 0) -> Reply:
        """The reply for ``slot`` (the oldest call submitted to its child, which must be it)."""
        member, local = self._member(slot)
        return member.collect(local)

    def _run(self, n: int, slot: int) -> None:
        member, local = self._member(slot)
        member.infer(n, local)

    def describe(self) -> BackendInfo:
        return self._described

    def alive(self) -> bool:
        return all(m.alive() for m in self.members)

    def close(self) -> None:
        """Stop every child (each releases its model; one that does not stop is killed)."""
        for member in self.members:
            with contextlib.suppress(Exception):
                member.close()


REMOTE_BACKENDS = (ProcessBackend, ProcessPool)
"""Backends whose calls run in other processes: ``submit`` now, ``collect`` later, in order."""


def inference_pids(backend: Backend) -> list[int]:
    """The processes that run ``backend``'s model (none when it runs in this one)."""
    return list(backend.pids) if isinstance(backend, REMOTE_BACKENDS) else []
