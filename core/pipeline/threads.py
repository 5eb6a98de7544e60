"""How many intra-op threads inference gets when ``model.threads`` is left to the pipeline.

Measured, not fixed: with one thread, each stage is timed alone on a few frames of the first
source (:mod:`core.pipeline.costs`), and inference gets its share of the cores -- its CPU per
frame over every stage's, times the cores, rounded down unless at least 0.6 of a core more (so
that measuring noise near the middle keeps one) -- but no more than keeps it as fast as the
slowest other stage (a 16-core host need not run ten inference processes behind one source
thread). A light model beside a costly source (the reference detector on 1080p synthetic frames:
inference about two thirds of a frame's CPU, on 2 cores 1.3 of them) keeps one thread, and the
other core for the stages; a heavy one (a YOLOv8n-sized model at 640 x 640: most of a frame's
CPU) gets the cores (docs/decisions/0027-inference-gets-its-share-of-the-cores.md).

>>> threads_for(infer_cpu_ms=4.6, other_cpu_ms=2.1, cores=2)[0]
1
>>> threads_for(infer_cpu_ms=60.0, other_cpu_ms=8.0, cores=2)
(2, "inference is 88 % of a frame's CPU (60.0 of 68.0 ms) on 2 cores: 1.8 of them")
>>> threads, why = threads_for(infer_cpu_ms=4.6, other_cpu_ms=2.1, cores=16, slowest_other_ms=1.3)
>>> threads, why.split(": ")[1]
(4, '3.5 of them keep up with the slowest other stage (1.3 ms a frame)')
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from core.backends import Backend
from core.formats.model import ModelChoice
from core.pipeline.config import PipelineConfig
from core.pipeline.costs import measure_stage_costs
from core.pipeline.placement import usable_cores
from core.pipeline.stages import LIVE_KINDS  # not read twice to choose: a camera may refuse
from core.sources import Source, SourceConfig

log = logging.getLogger("edgeloop.pipeline")

PROBE_FRAMES = 8
"""Frames each stage is timed on to choose: a start-up cost, kept small."""
ROUND_UP_FROM = 0.6
"""A share of the cores this far past a whole number takes the next thread."""


def threads_for(
    *,
    infer_cpu_ms: float,
    other_cpu_ms: float,
    cores: int,
    slowest_other_ms: float | None = None,
) -> tuple[int, str]:
    """(threads, why) for inference whose CPU per frame is ``infer_cpu_ms`` beside the other
    stages' ``other_cpu_ms`` on ``cores``, the slowest other stage taking ``slowest_other_ms``
    a frame with its workers (see the module docstring)."""
    total = infer_cpu_ms + other_cpu_ms
    share = infer_cpu_ms / total if total > 0 else 0.0
    wanted = share * cores
    why = (
        f"inference is {share * 100:.0f} % of a frame's CPU ({infer_cpu_ms:.1f} of "
        f"{total:.1f} ms) on {cores} cores: "
    )
    pace = infer_cpu_ms / slowest_other_ms if slowest_other_ms else math.inf
    if pace < wanted:  # enough to keep up with that stage: rounded up
        threads = math.ceil(pace)
        why += (
            f"{pace:.1f} of them keep up with the slowest other stage "
            f"({slowest_other_ms:.1f} ms a frame)"
        )
    else:
        threads = math.floor(wanted + 1 - ROUND_UP_FROM)
        why += f"{wanted:.1f} of them"
    return max(1, min(cores, threads)), why


def choose_threads(
    config: PipelineConfig,
    backend: Backend,
    source_factory: Callable[[SourceConfig, int], Source],
    *,
    cores: int | None = None,
    model: ModelChoice | None = None,
) -> tuple[int, str]:
    """(threads, why) for the pipeline ``config`` runs with ``backend`` loaded on one thread
    (``model``: its settled format, when the caller has it); 1 with the reason where it
    cannot be measured (a live camera, a source that fails)."""
    cores = cores if cores is not None else usable_cores()
    if cores < 2:
        return 1, "one core"
    if config.sources[0].kind in LIVE_KINDS:
        return 1, f"not measured on a live source ({config.sources[0].kind}): set model.threads"
    try:
        costs = measure_stage_costs(
            config, backend, source_factory, PROBE_FRAMES, sink_given=True, model=model
        )
    except Exception as exc:  # the run itself reports a source or model that fails
        log.debug("threads not measured: %s", exc)
        return 1, f"not measured ({type(exc).__name__}): one thread"
    infer = costs["infer"].cpu_ns / 1e6
    others = {name: c for name, c in costs.items() if name != "infer"}
    other = sum(c.cpu_ns for c in others.values()) / 1e6
    slowest = max((c.service_ns / c.workers for c in others.values()), default=0.0) / 1e6
    return threads_for(
        infer_cpu_ms=infer, other_cpu_ms=other, cores=cores, slowest_other_ms=slowest or None
    )
