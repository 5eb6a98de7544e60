"""``python -m bench swap``: model updates on a running pipeline, as a device makes them.

The device's model manager (:mod:`core.app.models`) updates a pipeline that reads the suite's
main stream paced like a camera, from a registry folder written here. Both phases use real
model files: the reference detector republished as new versions, like a retrained model of
the same architecture, and a degraded copy of it (:mod:`bench.degraded`).

**Swaps** (one stream, ``--rate``): ``--swaps`` updates, each left to finish its probation
before the next. Per update: the time of each step (download, verify, load, swap); the
end-to-end latency p99 of the frames captured in the 6 s before the command, and of those
captured from the command until 1 s after the swap; and, over the run, the frames dropped
and the ticks missed.

**Rollback** (two streams, batches of two): an update to a copy that gives NaN for every image
but the first of a batch. It passes every check (those run one image at a time) and fails on
the live streams. It becomes detectable by the error-rate rule once it has served
:data:`~core.app.models.MIN_WATCH_FRAMES` frames, and what is measured is the time from then
to the rollback.

Targets: no frame dropped by a swap; the p99 during a swap within 2 x the p99 before it; from
the command to serving, at most the download and the verification plus 2 s; a rollback
within 10 s of its rule being able to see the failure.
"""

from __future__ import annotations

import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SCHEMA", "SwapBenchOptions", "render", "run_swap_bench"]

SCHEMA = "edgeloop.bench.swap/1"
BEFORE_S = 6.0
"""The window before a command whose p99 a swap is compared with."""
AFTER_S = 1.0
"""How long after the swap the frames still count as captured during it."""
WATCH_S = 3.0
"""The probation in these runs (the device default is 60 s): a swap's old model is closed
after it, within the run, so the next swap sees the machine as a device would."""
P99_RATIO_TARGET = 2.0
READY_TARGET_S = 2.0
ROLLBACK_TARGET_S = 10.0
BATCH_WAIT_MS = 200.0
"""The rollback phase's batch timeout: longer than two streams take to bring two frames, so
the version that fails in batches meets batches."""
ROLLBACK_WAIT_S = 60.0
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SwapBenchOptions:
    source: str = "clip1080p"
    rate: float = 30.0
    swaps: int = 3
    model: str = "detector"


class _Frames:
    """Each delivered frame's capture and delivery time (``monotonic_ns``) and model version."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, str]] = []

    def observer(self) -> Any:
        from core.pipeline import FrameOutcome, RunObserver  # noqa: PLC0415

        rows = self.rows

        class Seen(RunObserver):
            def on_frame(self, frame: FrameOutcome) -> None:
                rows.append((frame.capture_ns, time.monotonic_ns(), frame.model_version))

        return Seen()

    def p99_ms(self, start_ns: int, end_ns: int) -> tuple[float | None, int]:
        """The p99 end-to-end latency of the frames captured in [start, end), and how many."""
        e2e = [(done - cap) / 1e6 for cap, done, _ in list(self.rows) if start_ns <= cap < end_ns]
        return (float(np.percentile(e2e, 99)) if e2e else None), len(e2e)


class _Device:
    """A pipeline running on a thread with the model manager, as the device app runs them."""

    def __init__(self, config: Any, state_dir: Path) -> None:
        from core.app.config import ModelsConfig  # noqa: PLC0415
        from core.app.models import ModelManager  # noqa: PLC0415
        from core.metrics import MetricsRegistry  # noqa: PLC0415
        from core.pipeline import Pipeline  # noqa: PLC0415

        self.events: queue.SimpleQueue[tuple[int, dict[str, Any]]] = queue.SimpleQueue()
        self.manager = ModelManager(
            ModelsConfig(watch_s=WATCH_S),
            state_dir,
            MetricsRegistry(),
            lambda event: self.events.put((time.monotonic_ns(), event)),
        )
        pipeline_config, version = self.manager.startup(config)
        self.pipeline = Pipeline(pipeline_config, model_version=version)
        _ = self.pipeline.backend
        self.frames = _Frames()
        self.stop = threading.Event()
        self.reports: list[Any] = []
        self.thread = threading.Thread(
            target=lambda: self.reports.append(
                self.pipeline.run(observers=[self.frames.observer()], stop=self.stop)
            )
        )
        self.thread.start()
        self.manager.attach(self.pipeline)

    def update(self, registry: str, version: str) -> tuple[int, int, dict[str, Any]]:
        """(command sent, answer received, the answer), ``monotonic_ns``."""
        from core.app.models import Update  # noqa: PLC0415

        sent = time.monotonic_ns()
        self.manager.update(Update("gate", version, registry))
        answered, event = self.events.get(timeout=300)
        return sent, answered, event

    def close(self) -> Any:
        self.stop.set()
        self.thread.join(120)
        self.manager.close()
        self.pipeline.close()
        return self.reports[0] if self.reports else None


def _publish(root: Path, model: Path, versions: list[str]) -> str:
    """``versions`` of ``model`` as gate VERSION in a registry folder; its URL."""
    from core.models.manifest import describe_version  # noqa: PLC0415
    from core.models.store import open_store, write_version  # noqa: PLC0415

    url = f"file://{root}"
    store = open_store(url)
    data = model.read_bytes()
    for version in versions:
        manifest, golden = describe_version(model, name="gate", version=version)
        write_version(store, manifest, data, golden)
    return url


def _config(options: SwapBenchOptions, streams: int, batch: int = 1) -> Any:
    """The pipeline: ``streams`` of the source, each paced at ``options.rate``; with ``batch``
    above 1, a batch waits for its frames (:data:`BATCH_WAIT_MS`), so every batch is full."""
    import dataclasses  # noqa: PLC0415

    from bench.pipeline_run import build_config  # noqa: PLC0415

    config = build_config(
        model=options.model,
        source=options.source,
        streams=streams,
        batch=batch,
        rate=options.rate * streams,
    )
    if batch == 1:
        return config
    model = dataclasses.replace(config.model, batch_timeout_ms=BATCH_WAIT_MS)
    return dataclasses.replace(config, model=model)


def _swaps(options: SwapBenchOptions, work: Path, say: Progress) -> dict[str, Any]:
    from core.backends import resolve_model  # noqa: PLC0415

    versions = [f"1.0.{i + 1}" for i in range(options.swaps)]
    registry = _publish(work / "registry", resolve_model(options.model), versions)
    device = _Device(_config(options, 1), work / "state-swaps")
    trials = []
    try:
        time.sleep(BEFORE_S + 2)  # the warm-up, then a full window before the first command
        for i, version in enumerate(versions):
            say(i / (options.swaps + 1), f"swap {i + 1} of {options.swaps}: {version}")
            sent, answered, event = device.update(registry, version)
            time.sleep(AFTER_S + WATCH_S + 2)  # the probation ends, the old model closes
            before, n_before = device.frames.p99_ms(sent - int(BEFORE_S * 1e9), sent)
            during, n_during = device.frames.p99_ms(sent, answered + int(AFTER_S * 1e9))
            timings = event.get("timings") or {}
            checks = timings.get("download_s", 0.0) + timings.get("verify_s", 0.0)
            trials.append(
                {
                    "version": version,
                    "result": event["result"],
                    "reason": event["reason"],
                    "timings": timings,
                    "ready_after_checks_s": round(timings.get("total_s", 0.0) - checks, 3)
                    if timings
                    else None,
                    "p99_before_ms": _round(before),
                    "p99_during_ms": _round(during),
                    "p99_ratio": _round(during / before if during and before else None),
                    "frames_before": n_before,
                    "frames_during": n_during,
                }
            )
    finally:
        report = device.close()
    stream = report.streams[0]
    return {
        "source": options.source,
        "rate": options.rate,
        "trials": trials,
        "produced": stream.produced,
        "delivered": stream.delivered,
        "dropped": int(sum(stream.dropped.values())),
        "missed_ticks": int(stream.missed_ticks),
    }


def _rollback(options: SwapBenchOptions, work: Path, say: Progress) -> dict[str, Any]:
    from bench.degraded import batched_nan_variant  # noqa: PLC0415
    from core.app.models import MIN_WATCH_FRAMES  # noqa: PLC0415
    from core.backends import resolve_model  # noqa: PLC0415

    say(options.swaps / (options.swaps + 1), "rollback: a version that fails in batches")
    bad = batched_nan_variant(resolve_model(options.model), work / "batched-nan.onnx")
    registry = _publish(work / "registry-bad", bad, ["1.9.0"])
    device = _Device(_config(options, 2, batch=2), work / "state-rollback")
    try:
        time.sleep(3)
        _, answered, applied = device.update(registry, "1.9.0")
        try:
            rolled_at, rolled = device.events.get(timeout=ROLLBACK_WAIT_S)
        except queue.Empty:
            rolled_at = None
            rolled = {"result": "none", "reason": f"no rollback within {ROLLBACK_WAIT_S:g} s"}
    finally:
        device.close()
    served = sorted(done for _, done, version in device.frames.rows if version == "1.9.0")
    detectable = served[MIN_WATCH_FRAMES - 1] if len(served) >= MIN_WATCH_FRAMES else None
    return {
        "streams": 2,
        "batch_size": 2,
        "update": applied["result"],
        "rollback": rolled["result"],
        "reason": rolled["reason"],
        "frames_served": len(served),
        "swap_to_rollback_s": _round((rolled_at - answered) / 1e9) if rolled_at else None,
        "detectable_to_rollback_s": _round(
            (rolled_at - detectable) / 1e9 if rolled_at and detectable is not None else None
        ),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _targets(swaps: dict[str, Any], rollback: dict[str, Any]) -> dict[str, Any]:
    trials = swaps["trials"]
    ratios = [t["p99_ratio"] for t in trials if t["p99_ratio"] is not None]
    ready = [t["ready_after_checks_s"] for t in trials if t["ready_after_checks_s"] is not None]
    applied = all(t["result"] == "applied" for t in trials)
    worst_ratio = max(ratios) if ratios else None
    worst_ready = max(ready) if ready else None
    back = rollback["detectable_to_rollback_s"]
    return {
        "swap_dropped_frames": {"measured": swaps["dropped"], "max": 0},
        "swap_p99_ratio": {
            "measured": worst_ratio,
            "median": statistics.median(ratios) if ratios else None,
            "max": P99_RATIO_TARGET,
        },
        "swap_ready_after_checks_s": {"measured": worst_ready, "max": READY_TARGET_S},
        "rollback_after_detectable_s": {"measured": back, "max": ROLLBACK_TARGET_S},
        "met": {
            "swap_dropped_frames": applied and swaps["dropped"] == 0,
            "swap_p99_ratio": worst_ratio is not None and worst_ratio <= P99_RATIO_TARGET,
            "swap_ready_after_checks_s": worst_ready is not None and worst_ready <= READY_TARGET_S,
            "rollback_after_detectable_s": rollback["rollback"] == "applied"
            and back is not None
            and back <= ROLLBACK_TARGET_S,
        },
    }


def run_swap_bench(options: SwapBenchOptions, progress: Progress | None = None) -> dict[str, Any]:
    """The report (``schema`` :data:`SCHEMA`): ``swaps``, ``rollback`` and ``targets``."""
    say = progress or (lambda fraction, message: None)
    with tempfile.TemporaryDirectory(prefix="edgeloop-swap-") as tmp:
        work = Path(tmp)
        swaps = _swaps(options, work, say)
        rollback = _rollback(options, work, say)
    return {
        "schema": SCHEMA,
        "model": options.model,
        "swaps": swaps,
        "rollback": rollback,
        "targets": _targets(swaps, rollback),
    }


def render(result: dict[str, Any]) -> str:
    """A few lines for a person."""
    s, r, t = result["swaps"], result["rollback"], result["targets"]
    met = t["met"]
    lines = [
        f"swaps on {s['source']} at {s['rate']:g} fps: {len(s['trials'])} "
        f"({', '.join(x['result'] for x in s['trials'])}), {s['dropped']} frames dropped of "
        f"{s['produced']}, {s['missed_ticks']} ticks missed "
        f"({'met' if met['swap_dropped_frames'] else 'missed'})"
    ]
    for x in s["trials"]:
        timings = x["timings"]
        lines.append(
            f"  {x['version']}: download {timings.get('download_s')} s, verify "
            f"{timings.get('verify_s')} s, load {timings.get('load_s')} s, swap "
            f"{timings.get('swap_s')} s; p99 {x['p99_before_ms']} -> {x['p99_during_ms']} ms "
            f"(x{x['p99_ratio']}, {x['frames_during']} frames during)"
        )
    ratio, ready, back = (
        t["swap_p99_ratio"],
        t["swap_ready_after_checks_s"],
        t["rollback_after_detectable_s"],
    )
    lines.append(
        f"p99 during a swap: worst x{ratio['measured']} (target <= {ratio['max']}: "
        f"{'met' if met['swap_p99_ratio'] else 'missed'}); command to serving past the checks: "
        f"worst {ready['measured']} s (target <= {ready['max']}: "
        f"{'met' if met['swap_ready_after_checks_s'] else 'missed'})"
    )
    lines.append(
        f"rollback of a version failing in batches: {r['rollback']} ({r['reason']}), "
        f"{back['measured']} s after it was detectable, {r['swap_to_rollback_s']} s after the "
        f"swap (target <= {back['max']}: "
        f"{'met' if met['rollback_after_detectable_s'] else 'missed'})"
    )
    return "\n".join(lines)
