"""Micro-benchmarks: one module per suite, each with ``run(options) -> dict``.

A suite's dict holds one entry per *case* (``"1080p"``, ``"resize224"``...). A case holds
``rows`` -- a list of dicts, one per contender, with unit-suffixed figures -- plus the headline
figures CI reads at fixed keys (``micro.ring.1080p.ratio_vs_mp_queue``...). Ratios > 1 mean
edgeloop is faster unless the key says otherwise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.timing import Budget, measure

SUITES: dict[str, str] = {
    "ring": "bench.micro.ring",
    "preprocess": "bench.micro.preprocess",
    "jpeg": "bench.micro.jpeg",
    "inference": "bench.micro.inference",
    "outbox": "bench.micro.outbox",
    "metrics": "bench.micro.metrics",
    "synthetic": "bench.micro.synthetic",
    "motion": "bench.micro.motion",
}


SUMMARY_CASES = frozenset(
    {
        "1080p",
        "letterbox640",
        "encode1080q85",
        "detector-s",
        "write_ack",
        "sample1hz",
        "render1080p",
        "gate1080p",
    }
)
"""The standard suite's micro summary: one case per suite, the one its headline is about
(``python -m bench micro`` runs them all)."""
SUMMARY_BUDGET = Budget(warmup_s=0.01, warmup_count=2, min_s=0.05, min_count=5, max_count=1000)
"""The summary's budget: a glance in about 7 s on two cores, not a measurement to quote
(``python -m bench micro`` is)."""
SUMMARY_THREADS = (1,)


def _no_progress(message: str) -> None:
    del message


@dataclass
class MicroOptions:
    """What every suite receives: the measuring budget, a progress callback, and the choices
    the inference suite reads (``--backend``, ``--threads``)."""

    budget: Budget = field(default_factory=Budget)
    quick: bool = False
    progress: Callable[[str], None] = _no_progress
    backend: str = "auto"
    """``auto``, ``onnxruntime`` or ``tensorrt``."""
    threads: tuple[int, ...] = ()
    """Intra-op thread counts to measure (empty: the suite's default)."""
    cases: frozenset[str] = frozenset()
    """Only these cases of each suite (empty: every case); the standard suite's short summary
    takes :data:`SUMMARY_CASES`."""

    def wants(self, case: str) -> bool:
        """Whether case ``case`` is to be measured."""
        return not self.cases or case in self.cases


ROUNDS = 3
"""Rounds of a suite's round-robin (1 with ``--quick``)."""


def round_robin(
    contenders: Sequence[tuple[str, Callable[[], object]]], options: MicroOptions, label: str
) -> dict[str, np.ndarray]:
    """Every contender's samples (ns), measured in turn for :data:`ROUNDS` rounds of a share of
    the budget each: a machine whose speed drifts drifts them alike, so their ratios hold.
    Progress says ``<label>: <name>, round i/n``."""
    rounds = 1 if options.quick else ROUNDS
    budget = options.budget.scaled(1.0 / rounds)
    samples: dict[str, list[np.ndarray]] = {name: [] for name, _ in contenders}
    for i in range(rounds):
        for name, fn in contenders:
            options.progress(f"{label}: {name}, round {i + 1}/{rounds}")
            samples[name].append(measure(fn, budget))
    return {name: np.concatenate(parts) for name, parts in samples.items()}


def run_suite(name: str, options: MicroOptions) -> dict[str, Any]:
    """Run one suite by name."""
    if name not in SUITES:
        raise ValueError(f"unknown micro suite {name!r}; suites are {', '.join(SUITES)}")
    module = importlib.import_module(SUITES[name])
    result: dict[str, Any] = module.run(options)
    return result
