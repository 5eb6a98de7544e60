"""The ``multistream`` blocks: several streams of the main source at once, flat out (each
stream's fps and their ``fairness``, min over max) and paced past capacity (how the loss is
shared between the streams, and how long a frame waits against what the rings allow).
"""

from __future__ import annotations

from typing import Any, cast

from bench import schema
from bench.pipeline_run import Measured, bound, common_block, source_block, stages_block


def per_stream_fps(report: Any) -> list[float]:
    """Each stream's delivered frames per measured second."""
    seconds = report.duration_s or 0.0
    return [s.delivered / seconds if seconds > 0 else 0.0 for s in report.streams]


def fairness(values: list[float]) -> float | None:
    """``min / max`` of per-stream figures (1.0: even); None without a positive maximum.

    >>> fairness([30.0, 27.0, 29.0]), fairness([0.0, 0.0])
    (0.9, None)
    """
    top = max(values, default=0.0)
    return min(values) / top if top > 0 else None


def multistream_block(measured: Measured, cores: float) -> schema.MultistreamBlock:
    """``multistream``: the streams flat out at once, against the CPU bound of this run's own
    stage costs (each stage alone, on the first stream's frames)."""
    report = measured.report
    limits = bound(measured.costs, cores) if measured.costs else None
    block = cast(schema.MultistreamBlock, common_block(measured, judge_latency=False))
    per_stream = per_stream_fps(report)
    block["streams"] = len(report.streams)
    block["cpu_efficiency"] = block["fps"] / limits["cpu_fps"] if limits else None
    block["fairness"] = fairness(per_stream)
    block["per_stream_fps"] = per_stream
    block["dropped_by_stream"] = [int(sum(s.dropped.values())) for s in report.streams]
    block["bound"] = limits
    block["source"] = source_block(report)
    block["stages"] = stages_block(
        report, measured.costs, limits["stage_bound_fps"] if limits else {}
    )
    return block


def multistream_rate(capacity_fps: float, streams: int, camera_fps: float = 30.0) -> float:
    """The pace per stream for the overload run: a camera's ``camera_fps``, or more where the
    streams together could take that (a quarter past their flat-out share), so the run always
    asks more than the machine can do.

    >>> multistream_rate(60.0, 3), multistream_rate(120.0, 3)
    (30.0, 50.0)
    """
    return max(camera_fps, 1.25 * capacity_fps / streams)


def multistream_paced_block(measured: Measured, capacity_fps: float) -> schema.MultistreamPaced:
    """``multistream.paced``: the streams paced past capacity; the loss per stream (ring drops
    and missed ticks), the delivered fps' fairness, and the latency against what the rings
    allow (a frame waits behind at most ``ring_slots`` frames of its stream)."""
    report = measured.report
    block = cast(schema.MultistreamPaced, common_block(measured, judge_latency=False))
    per_stream = per_stream_fps(report)
    dropped = [int(sum(s.dropped.values())) for s in report.streams]
    missed = [int(s.missed_ticks) for s in report.streams]
    slowest = min(per_stream, default=0.0)
    block["rate_per_stream"] = float(measured.config.rate)
    block["capacity_fps"] = capacity_fps
    block["per_stream_fps"] = per_stream
    block["fairness"] = fairness(per_stream)
    block["dropped_by_stream"] = dropped
    block["missed_by_stream"] = missed
    block["lost_by_stream"] = [d + m for d, m in zip(dropped, missed, strict=True)]
    slots = int(measured.config.ring_slots)
    block["latency_bound_ms"] = 1e3 * (slots + 1) / slowest if slowest > 0 else None
    return block
