"""The device app's health: one assessment, read three ways -- ``/healthz`` (liveness),
``/readyz`` (readiness) and the health records on ``edgeloop/{thing}/health``.

=============  ======  =======  ==============================================================
state          live    ready    when
=============  ======  =======  ==============================================================
``starting``   yes     no       before the pipeline runs (the model loads, sources open)
``running``    yes     yes      every stream delivers, every loop ticks, the outbox takes
``degraded``   yes     no       a stream ended or failed, or the outbox refuses records
``stalled``    no      no       a stream without a frame, or a worker stuck in one piece of
                                work, for ``health.stall_s``; a loop's thread died
``stopping``   yes     no       a stop was asked (SIGTERM, ``--duration``, a fatal error)
``stopped``    --      --       the last record of a clean stop
``failed``     --      --       the last record after a fatal error (the app exits 1)
=============  ======  =======  ==============================================================

A health record (JSON; ``schema`` ``edgeloop.health/1``): ``thing``, ``time`` (Unix s),
``state``, ``live``, ``ready``, ``problems`` (one phrase each), ``version`` (edgeloop),
``model`` (path, version: the first 12 hex digits of its SHA-256, format), ``uptime_s``,
``streams`` (id, name, state, frames, last_frame_age_s, error), ``spool`` (records, bytes),
``last_error``, and, for an event (a config change, a refused command, the last crash),
``event``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.pipeline.status import RunStatus

__all__ = ["SCHEMA", "Health", "assess", "health_record", "probe_page"]

SCHEMA = "edgeloop.health/1"


@dataclass(frozen=True)
class Health:
    """One assessment (see the module docstring)."""

    state: str
    live: bool
    ready: bool
    problems: tuple[str, ...] = ()
    status: RunStatus | None = field(default=None, compare=False)


def assess(
    phase: str,
    status: RunStatus | None,
    stall_s: float,
    *,
    dead_loops: Sequence[str] = (),
    outbox_error: str | None = None,
) -> Health:
    """The state from the app's ``phase`` (``starting``, ``running``, ``stopping``,
    ``stopped``, ``failed``), the pipeline's status, the loops whose threads died and the
    outbox's last write error.

    >>> from core.pipeline.status import StreamStatus
    >>> ok = StreamStatus(0, "synthetic", "running", 90, 90, 0.05, None)
    >>> assess("running", RunStatus((ok,), {"infer": 0.01}), 5.0).state
    'running'
    >>> assess("running", RunStatus((ok,), {"infer": 7.5}), 5.0).problems
    ('infer: in one piece of work for 7.5 s (stall_s 5.0)',)
    """
    if phase in ("stopped", "failed"):
        return Health(phase, phase == "stopped", False, (), status)
    stalled: list[str] = [f"{name}: its thread died" for name in dead_loops]
    degraded: list[str] = []
    if status is not None:
        for name, seconds in sorted(status.stuck(stall_s).items()):
            stalled.append(f"{name}: in one piece of work for {seconds:.1f} s (stall_s {stall_s})")
        for stream in status.streams:
            where = f"stream {stream.stream_id} ({stream.name})"
            if stream.state != "running":
                if phase == "running":
                    degraded.append(f"{where}: {stream.state}: {stream.error or 'no cause given'}")
            elif stream.last_frame_age_s > stall_s:
                stalled.append(
                    f"{where}: no frame for {stream.last_frame_age_s:.1f} s (stall_s {stall_s})"
                )
    elif phase == "running":
        degraded.append("the pipeline is not running")
    if outbox_error is not None:
        degraded.append(f"outbox: {outbox_error}")
    problems = tuple(stalled + degraded)
    if phase in ("starting", "stopping"):
        return Health(phase, not stalled, False, problems, status)
    if stalled:
        return Health("stalled", False, False, problems, status)
    if degraded:
        return Health("degraded", True, False, problems, status)
    return Health("running", True, True, (), status)


def health_record(
    health: Health,
    *,
    thing: str,
    version: str,
    model: Mapping[str, Any],
    uptime_s: float,
    spool: Mapping[str, int],
    last_error: str | None,
    event: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON record of ``health`` (the fields are the module docstring's)."""
    streams = [
        {
            "id": s.stream_id,
            "name": s.name,
            "state": s.state,
            "frames": s.frames,
            "last_frame_age_s": round(s.last_frame_age_s, 3),
            "error": s.error,
        }
        for s in (health.status.streams if health.status is not None else ())
    ]
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "thing": thing,
        "time": round(time.time(), 3),
        "state": health.state,
        "live": health.live,
        "ready": health.ready,
        "problems": list(health.problems),
        "version": version,
        "model": dict(model),
        "uptime_s": round(uptime_s, 3),
        "streams": streams,
        "spool": dict(spool),
        "last_error": last_error,
    }
    if event is not None:
        record["event"] = dict(event)
    return json.dumps(record, separators=(",", ":")).encode()


def probe_page(health: Health, ready: bool) -> tuple[int, bytes]:
    """``/readyz`` (``ready``) or ``/healthz``: 200 or 503, and a small JSON body saying why."""
    ok = health.ready if ready else health.live
    body = {"state": health.state, "ok": ok, "problems": list(health.problems)}
    return (200 if ok else 503), (json.dumps(body) + "\n").encode()
