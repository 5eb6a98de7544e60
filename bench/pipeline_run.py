"""Measuring the whole pipeline: configuration from the command line, the runs, their blocks.

``bench`` drives :class:`core.pipeline.Pipeline` through its public API only
(``Pipeline(config).stage_costs()``, ``.run(...) -> PipelineReport``) and turns the report into
``report.json``'s ``pipeline`` block. Three runs make the standard suite:

* **flat out** (``pipeline``): every source as fast as the pipeline takes frames, every frame
  inferred (the motion gate off: :func:`capacity_config` says why). Gives ``fps``,
  latencies, stage figures, ``bound_fps`` and ``efficiency``.
* **paced** (``pipeline.paced``): the same configuration with every source paced so that the
  total is :data:`PACED_FRACTION` (80 %) of the flat-out fps. Gives the latency a live camera
  sees: end to end against the inference stage's own p99, and drops.
* **quiet** (``pipeline.quiet``): a mostly static synthetic scene (objects in
  :data:`QUIET_FRACTION` of the frames) for :data:`QUIET_CYCLES` of the scene's quiet cycles,
  with the configured motion gate.
  Gives what the filter saves (bytes sent against every frame as JPEG) and what it must not
  lose (``relevant_recall``).

``bound_fps`` is what the stages allow, from each stage's mean service time per frame measured
alone in the same process (``Pipeline.stage_costs``) on :data:`STAGE_COST_FRAMES` frames
sampled in eight stretches across the run's own frames (a scene's content, and with it the
motion gate's pass rate, changes along it), once just before the run and once just after it,
averaged (:func:`bracket`)::

    bound_fps = min( min over stages s of workers_s / service_s ,  cores / sum over s of cpu_s )

-- the slowest stage's throughput with its workers, capped by the CPU all stages together
need per frame on the cores this process may use (affinity, cgroup quota). ``efficiency`` is
``fps / bound_fps``: how much of that the running pipeline achieves (overlap, hand-offs,
scheduling). The second term alone is ``bound.cpu_fps`` (``cores / sum of cpu_s``, decoding
included), and ``cpu_efficiency = fps / bound.cpu_fps`` says how much of the machine's CPU
the running pipeline turns into frames: the figure that stays honest when a stage's own bound
hides what the stages cost together (a decoder's threads, two streams sharing two cores).

A fourth run, ``multistream``, reads several streams of the main source at once: its blocks
are :mod:`bench.multistream`'s.

Measuring follows :mod:`bench.verdict`: a warm-up bounded by time and count (at least
``warmup_s`` and long enough for :data:`WARMUP_FRAMES` frames at the bound's rate), a
measured phase long enough for both the minimum duration and the minimum frame count at the
bound's rate, then the checks.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bench import schema
from bench import verdict as checks
from bench.stats import downsample, latency_block, stall_windows

if TYPE_CHECKING:  # the runtime is imported when a run starts, not for --help
    from bench.observers import AccuracyCounter, Extension, Timeline, Timelines

PACED_FRACTION = 0.8
PACED_LOAD_TOLERANCE = 0.05
"""A paced run whose bounding stage ran more than this fraction busier (or idler) than
:data:`PACED_FRACTION` of its flat-out busy fraction measured another load than 80 %: the
standard suite paces once more (:func:`repaced_fps`)."""
QUIET_FRACTION = 0.05
QUIET_CYCLES = 2
"""The quiet run covers this many of the synthetic scene's quiet cycles (one episode with
objects each, :data:`core.synthetic.QUIET_CYCLE_S` seconds of scene time apiece)."""
WARMUP_S = 2.0
WARMUP_FRAMES = 30
MIN_FRAMES = 300
PLAN_COST_FRAMES = 50
"""Frames each stage is timed on before a run: enough to plan its length."""
STAGE_COST_FRAMES = 320
"""Frames each stage is timed on after a run, spread over the run's measured frames
(``Pipeline.stage_costs(span=...)``): what ``bound_fps`` uses."""
SAMPLES_KEPT = 4096
"""Latency samples a report keeps per run (evenly spaced order statistics beyond that)."""
DURATION_TOLERANCE = 0.99
"""A run stopped by its timer may end a scheduler tick early: 1 % short still counts."""
NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "srt://")
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    del fraction, message


# -- configuration ---------------------------------------------------------------------------


def source_config(text: str, **fields: Any) -> Any:
    """``--source`` as a :class:`core.sources.SourceConfig`: ``synthetic``, a benchmark clip by
    name (``clip1080p``, ``clip720p``: :data:`bench.media.CLIPS`, encoded on first use), a
    stream URL (``rtsp://...``, ``http://...``), a V4L2 device (``/dev/video0``), a folder of
    images or a video file (looped: a benchmark must not run out of frames). A clip's or a
    video file's ground-truth sidecar (``clip.truth.json`` beside ``clip.mp4``:
    :mod:`core.sources.truth`) is read with it, so its accuracy is measured."""
    from bench import media  # noqa: PLC0415 - imports the synthetic camera
    from core.sources import SourceConfig  # noqa: PLC0415 - heavy, on demand
    from core.sources.truth import truth_path_for  # noqa: PLC0415

    if text == "synthetic":
        return SourceConfig(kind="synthetic", **fields)
    if text in media.CLIPS:
        clip = media.named_clip(text)
        truth = str(truth_path_for(clip))
        return SourceConfig(kind="file", uri=str(clip), loop=True, truth=truth, **fields)
    if text.startswith(NETWORK_SCHEMES):
        return SourceConfig(kind="rtsp", uri=text, **fields)
    if text.startswith("/dev/video"):
        return SourceConfig(kind="v4l2", uri=text, **fields)
    path = Path(text)
    if not path.exists():
        from core.errors import SourceNotFoundError  # noqa: PLC0415

        raise SourceNotFoundError(
            f"--source {text}: no such file or folder (use synthetic, a video file, a folder "
            "of images, /dev/videoN or a stream URL)"
        )
    if path.is_dir():
        return SourceConfig(kind="images", uri=str(path), loop=True, **fields)
    sidecar = truth_path_for(path)
    found = str(sidecar) if sidecar.is_file() else None
    return SourceConfig(kind="file", uri=str(path), loop=True, truth=found, **fields)


def build_config(
    *,
    config_file: Path | None = None,
    model: str | None = None,
    source: str | None = None,
    streams: int | None = None,
    batch: int | None = None,
    backend: str | None = None,
    rate: float | None = None,
    infer_workers: int | None = None,
) -> Any:
    """A :class:`core.pipeline.PipelineConfig`: the file's (``--config``) or the defaults,
    with each option given on the command line replacing its part."""
    from core import config as loader  # noqa: PLC0415
    from core.pipeline import PipelineConfig  # noqa: PLC0415

    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"--config {config_file} does not exist")
        config = loader.load(PipelineConfig, config_file)
    else:
        config = PipelineConfig()
    model_changes: dict[str, Any] = {}
    if model is not None:
        model_changes["model"] = model
    if backend is not None:
        model_changes["backend"] = backend
    if batch is not None:
        model_changes["batch_size"] = batch
    if model_changes:
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, **model_changes)
        )
    if source is not None:
        config = dataclasses.replace(config, sources=(source_config(source),))
    if streams is not None:
        config = with_streams(config, streams)
    if infer_workers is not None:
        config = dataclasses.replace(config, infer_workers=infer_workers)
    if rate is not None:
        if rate <= 0:
            raise ValueError(f"--rate must be > 0 frames/s, got {rate}")
        config = dataclasses.replace(config, rate=rate / len(config.sources))
    return config


def with_streams(config: Any, streams: int) -> Any:
    """``config`` reading ``streams`` streams of its first source (the synthetic camera's with
    seeds of their own, so they show different scenes)."""
    if streams < 1:
        raise ValueError(f"--streams must be >= 1, got {streams}")
    template = config.sources[0]
    sources = tuple(
        dataclasses.replace(template, seed=template.seed + i)
        if template.kind == "synthetic"
        else template
        for i in range(streams)
    )
    return dataclasses.replace(config, sources=sources)


def quiet_config(config: Any) -> Any:
    """``config`` with every synthetic source made a quiet scene (objects in 5 % of frames);
    one quiet synthetic stream of the first source's size where none is synthetic (a recording
    cannot be made to hold still)."""
    from core.sources import SourceConfig  # noqa: PLC0415 - heavy, on demand

    synthetic = [s for s in config.sources if s.kind == "synthetic"]
    if not synthetic:
        synthetic = [SourceConfig(kind="synthetic")]
    return dataclasses.replace(
        config,
        rate=None,
        sources=tuple(dataclasses.replace(s, quiet_fraction=QUIET_FRACTION) for s in synthetic),
    )


def capacity_config(config: Any) -> Any:
    """``config`` with the motion gate off: what the flat-out and paced runs measure.

    Capacity is what the device sustains when every frame needs inference (a busy camera: the
    worst case it must be sized for). With the gate on, fps would follow what the scene holds,
    so no window could be compared with another (the stability rule) or with the naive loop,
    which infers every frame (docs/decisions/0005-capacity-with-every-frame-inferred.md). What
    the gate saves is the quiet run's figure (:func:`quiet_config` keeps the configured
    gate)."""
    motion = dataclasses.replace(config.filter.motion, enabled=False)
    return dataclasses.replace(config, filter=dataclasses.replace(config.filter, motion=motion))


def paced_config(config: Any, total_fps: float) -> Any:
    """``config`` with the sources paced at :data:`PACED_FRACTION` of ``total_fps`` in all."""
    return dataclasses.replace(config, rate=PACED_FRACTION * total_fps / len(config.sources))


def available_cores(env: Mapping[str, Any] | None = None) -> float:
    """Cores this process may use: its affinity, capped by the cgroup's CPU quota."""
    cores = float(len(os.sched_getaffinity(0)))
    quota = ((env or {}).get("cgroup") or {}).get("cpu_quota_cores")
    return min(cores, float(quota)) if quota else cores


# -- the runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """How one run is bounded: by time (``duration_s``, with a warm-up before it) or, with
    ``duration_s`` None, by ``max_frames`` read in all (no warm-up: it would take frames)."""

    duration_s: float | None
    min_frames: int = MIN_FRAMES
    max_frames: int | None = None
    warmup_s: float = WARMUP_S
    stage_costs: bool = True
    """Measure each stage alone first (for ``bound_fps``)."""
    label: str = "pipeline"
    max_trials: int = 0
    """Measure on past ``duration_s`` while the stability check fails, up to this many
    measurement windows in all (:func:`bench.verdict.extension_plan`); 0: never."""
    accuracy: bool = True
    """Count accuracy where a source has ground truth. Off for the suite's paced run, which
    reports none: counting holds the GIL in the monitoring thread once a window, which a
    latency run should not measure."""


@dataclass
class Measured:
    """One pipeline run: what was asked, what was planned, and what came back."""

    config: Any
    spec: RunSpec
    report: Any
    """:class:`core.pipeline.PipelineReport`."""
    costs: dict[str, Any] | None
    """``Pipeline.stage_costs()``, when the spec asked for them."""
    warmup_s: float
    duration_s: float | None
    """The measured phase as planned (the spec's, or longer for the minimum count)."""
    timelines: Timelines
    """The run's windows (:class:`bench.observers.Timelines`)."""
    accuracy: AccuracyCounter | None = None
    """Accuracy of a source with ground truth (:class:`bench.observers.AccuracyCounter`)."""


def bound(costs: Mapping[str, Any], cores: float) -> schema.Bound:
    """``bound_fps`` (module docstring) with each stage's own bound and what limits.

    >>> from types import SimpleNamespace as Cost
    >>> costs = {"infer": Cost(service_ns=4e6, cpu_ns=7e6, workers=1),
    ...          "preprocess": Cost(service_ns=2e6, cpu_ns=2e6, workers=1)}
    >>> b = bound(costs, cores=2.0)
    >>> b["bound_fps"], b["limit"], b["cpu_fps"]
    (222.22222222222223, 'cpu', 222.22222222222223)
    """
    per_stage = {
        name: c.workers / (c.service_ns / 1e9) if c.service_ns > 0 else math.inf
        for name, c in costs.items()
    }
    cpu_total_s = sum(c.cpu_ns for c in costs.values()) / 1e9
    cpu_bound = cores / cpu_total_s if cpu_total_s > 0 else math.inf
    slowest = min(per_stage, key=lambda k: per_stage[k])
    limit = "cpu" if cpu_bound < per_stage[slowest] else slowest
    return {
        "bound_fps": min(per_stage[slowest], cpu_bound),
        "limit": limit,
        "stage_bound_fps": per_stage,
        "cpu_fps": cpu_bound,
        "cpu_ms_per_frame": cpu_total_s * 1e3,
        "cores": cores,
    }


def _plan(
    spec: RunSpec, costs: Mapping[str, Any] | None, cores: float
) -> tuple[float, float | None]:
    """(warm-up s, measured s): at least the spec's, and long enough for the warm-up count
    and the minimum count at the bound's rate."""
    if spec.duration_s is None:
        return 0.0, None
    rate = bound(costs, cores)["bound_fps"] if costs else math.inf
    if not math.isfinite(rate) or rate <= 0:
        return spec.warmup_s, spec.duration_s
    return (
        max(spec.warmup_s, WARMUP_FRAMES / rate),
        max(spec.duration_s, 1.2 * spec.min_frames / rate),
    )


def _extension(config: Any, spec: RunSpec, duration_s: float | None) -> Extension | None:
    """perf_analyzer's measure-until-stable for a timed run (``spec.max_trials``), judged by
    the same check as the verdict (:func:`_stable`)."""
    if not spec.max_trials or duration_s is None:
        return None
    from bench.observers import Extension  # noqa: PLC0415 - imports the runtime

    step_s, max_s = checks.extension_plan(duration_s, spec.max_trials)
    paced = not measures_capacity(config)

    def settled(fps: Timeline, latency: Timeline) -> bool:
        return _stable(fps, latency, judge_latency=paced).ok

    return Extension(settled, step_s, max_s)


def _pipeline(config: Any) -> Any:
    """The runtime (imported on demand), its stages slowed when the test-only slowdown is set
    (:mod:`bench.slowdown`)."""
    from bench import slowdown  # noqa: PLC0415
    from core.pipeline import Pipeline  # noqa: PLC0415

    return Pipeline(config, wrap_stage_calls=slowdown.from_env())


def truth_classes(config: Any) -> tuple[str, ...] | None:
    """The class names every source's ground truth uses (the synthetic scene's, or a truth
    sidecar's); None when a source has none or two sources name their classes differently."""
    from core.sources.truth import TruthTrack  # noqa: PLC0415
    from core.synthetic import CLASS_NAMES  # noqa: PLC0415

    found: set[tuple[str, ...]] = set()
    for source in config.sources:
        if source.kind == "synthetic":
            found.add(tuple(CLASS_NAMES))
        elif source.truth is not None:
            found.add(TruthTrack.load(source.truth).classes)
        else:
            return None
    return found.pop() if len(found) == 1 else None


def _accuracy_counter(config: Any, model: Any) -> AccuracyCounter | None:
    """An accuracy counter when every source has ground truth (the synthetic scene, a truth
    sidecar) and the model detects those classes (:meth:`core.formats.model.ModelChoice.
    detects`)."""
    classes = truth_classes(config)
    if classes is None or not model.detects(classes):
        return None
    from bench.observers import AccuracyCounter  # noqa: PLC0415

    return AccuracyCounter(len(classes))


def run(
    config: Any, spec: RunSpec, *, cores: float | None = None, progress: Progress = _no_progress
) -> Measured:
    """One run of ``config`` as ``spec`` says: stage costs first (when asked), then warm-up
    and measurement; the model is released at the end."""
    cores = cores if cores is not None else available_cores()
    label = spec.label
    with _pipeline(config) as pipeline:
        costs = None
        before = None
        if spec.stage_costs:
            progress(0.0, f"{label}: each stage alone ({PLAN_COST_FRAMES} frames, to plan)")
            costs = pipeline.stage_costs(frames=PLAN_COST_FRAMES)
        warmup_s, duration_s = _plan(spec, costs, cores)
        if costs is not None and duration_s is not None:
            rate = bound(costs, cores)["bound_fps"]
            if math.isfinite(rate):
                expected = (int(rate * warmup_s), int(rate * (warmup_s + duration_s)))
                progress(0.0, f"{label}: each stage alone ({STAGE_COST_FRAMES} frames, before)")
                before = pipeline.stage_costs(frames=STAGE_COST_FRAMES, span=expected)
        total = (duration_s or 0.0) + warmup_s

        def on_progress(state: Any) -> None:
            if duration_s is not None:
                fraction = state.elapsed_s / total
            else:
                fraction = state.frames / spec.max_frames if spec.max_frames else 0.0
            phase = "warming up" if state.warming_up else f"{state.frames} frames"
            if state.elapsed_s > total:
                phase += ", measuring on until the last windows agree"
            progress(min(1.0, fraction), f"{label}: {phase}, {state.fps:.0f} fps")

        bounded = f"{duration_s:.1f} s" if duration_s is not None else f"{spec.max_frames} frames"
        progress(0.0, f"{label}: warm-up {warmup_s:.1f} s, then {bounded}")
        from bench.observers import Timelines  # noqa: PLC0415 - imports the runtime

        timelines = Timelines(duration_s, _extension(config, spec, duration_s))
        accuracy = _accuracy_counter(config, pipeline.model) if spec.accuracy else None
        report = pipeline.run(
            duration_s=duration_s,
            max_frames=spec.max_frames,
            warmup_s=warmup_s,
            progress=on_progress,
            observers=[timelines] if accuracy is None else [timelines, accuracy],
        )
        if spec.stage_costs:
            span = measured_span(config, report)
            progress(1.0, f"{label}: each stage alone ({STAGE_COST_FRAMES} of the run's frames)")
            costs = pipeline.stage_costs(frames=STAGE_COST_FRAMES, span=span)
            if before is not None:
                costs = bracket(before, costs)
    return Measured(config, spec, report, costs, warmup_s, duration_s, timelines, accuracy)


def bracket(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Each stage's cost as the mean of its measurement just before and just after the run.

    A shared machine's speed drifts over minutes: costs measured on one side of a 20-second run
    stand for that moment, costs bracketing it for the run's middle, which is what
    ``efficiency`` divides by (docs/decisions/0023-stage-costs-bracket-the-run.md).

    >>> from core.pipeline import StageCost
    >>> bracket({"infer": StageCost(3e6, 3e6, 1)}, {"infer": StageCost(4e6, 5e6, 1)})["infer"]
    StageCost(service_ns=3500000.0, cpu_ns=4000000.0, workers=1)
    """
    return {
        name: dataclasses.replace(
            cost,
            service_ns=(before[name].service_ns + cost.service_ns) / 2,
            cpu_ns=(before[name].cpu_ns + cost.cpu_ns) / 2,
        )
        for name, cost in after.items()
    }


def measured_span(config: Any, report: Any) -> tuple[int, int] | None:
    """The first stream's measured frames as ``(first index, end index)``: what
    ``stage_costs`` samples, so the bound stands for the frames the run measured (a scene's
    content, and with it the motion gate's pass rate, changes along it)."""
    if not report.streams:
        return None
    stream = report.streams[0]
    end = int(config.sources[0].start_index) + int(stream.produced_total)
    return (end - int(stream.produced), end)


# -- report blocks -----------------------------------------------------------------------------


def _window_s(timeline: Timeline) -> float | None:
    """The length of a timeline's windows (their ends are ``(t_s, value)``'s ``t_s``)."""
    if len(timeline) >= 2:
        return timeline[1][0] - timeline[0][0]
    return timeline[0][0] if timeline else None


def _ms_samples(samples_ns: np.ndarray) -> list[float]:
    return [round(float(v) / 1e6, 4) for v in downsample(samples_ns, SAMPLES_KEPT)]


def _windows(timeline: Timeline) -> list[float]:
    """A timeline's values; windows without a value (no frame finished: NaN) left out."""
    return [float(v) for _, v in timeline if math.isfinite(v)]


def _e2e(report: Any) -> schema.Latency | None:
    samples = np.asarray(report.e2e_ns)
    return latency_block(samples) if samples.size else None


def _samples_block(measured: Measured) -> schema.Samples:
    samples = np.asarray(measured.report.e2e_ns)
    timelines = measured.timelines
    return {
        "e2e_latency_ms": _ms_samples(samples) if samples.size else [],
        "e2e_latency_n": int(samples.size),
        "e2e_latency_method": (
            f"evenly spaced order statistics, at most {SAMPLES_KEPT} (every percentile kept to "
            f"within 1/{SAMPLES_KEPT})"
        ),
        "fps_windows": _windows(timelines.fps),
        "latency_windows_p50_ms": _windows(timelines.latency_p50),
        "latency_windows_p99_ms": _windows(timelines.latency_p99),
    }


def _measurement_checks(measured: Measured, *, judge_latency: bool) -> list[checks.Check]:
    """The run's checks (:mod:`bench.verdict`). Latency stability is judged on paced runs only:
    flat out, each window's latency is how full the rings happened to run (nearly empty or at
    the back-pressure window), which flips with the scene's load, while its fps is the figure."""
    report = measured.report
    found: list[checks.Check] = []
    if measured.duration_s is not None:
        found += checks.minimums(
            measured_s=report.duration_s,
            count=report.frames,
            min_s=measured.duration_s * DURATION_TOLERANCE,
            min_count=measured.spec.min_frames,
        )
        timelines = measured.timelines
        found.append(_stable(timelines.fps, timelines.latency_p50, judge_latency=judge_latency))
        found.append(checks.drift(_windows(timelines.fps)))
    else:
        wanted = measured.spec.max_frames or measured.spec.min_frames
        found.append(
            checks.Check(
                "min_count",
                report.frames >= wanted,
                f"measured {report.frames} frames, minimum {wanted}",
            )
        )
    found.append(checks.no_errors(report.errors))
    return found


def _stable(fps: Timeline, latency: Timeline, *, judge_latency: bool) -> checks.Check:
    """perf_analyzer's stability check on a run's timelines: the verdict's, and the rule that
    decides whether a run measures on (:func:`_extension`)."""
    latency_windows = _windows(latency) if judge_latency else []
    return checks.stability(_windows(fps), latency_windows, window_s=_window_s(fps))


def _accuracy(measured: Measured) -> schema.Accuracy | None:
    """``map50`` of the inferred frames with ground truth, ``relevant_recall`` of the filter."""
    return measured.accuracy.block() if measured.accuracy is not None else None


def _bytes(report: Any) -> schema.Bytes:
    """The ledger's totals (:meth:`core.ledger.BandwidthLedger.totals`), and what the filter
    saved: every frame as a JPEG over what was sent."""
    totals = report.bytes
    sent = totals.get("sent") or 0
    return {
        "raw": totals["raw"],
        "jpeg_all": totals["jpeg_all"],
        "sent": totals["sent"],
        "jpeg_all_estimated": totals["jpeg_all_estimated"],
        "frames": totals["frames"],
        "jpeg_samples": totals["jpeg_samples"],
        "sample_every": totals["sample_every"],
        "reduction_vs_jpeg_all": totals["jpeg_all"] / sent if sent else None,
    }


def stages_block(
    report: Any, costs: Mapping[str, Any] | None, stage_bounds: Mapping[str, float]
) -> dict[str, schema.Stage]:
    stages: dict[str, schema.Stage] = {}
    for name, samples in report.stage_ns.items():
        arr = np.asarray(samples)
        block: schema.Stage = {
            "p50_ms": float(np.percentile(arr, 50)) / 1e6 if arr.size else None,
            "p99_ms": float(np.percentile(arr, 99)) / 1e6 if arr.size else None,
            "mean_ms": float(arr.mean()) / 1e6 if arr.size else None,
            "busy_frac": report.busy_frac.get(name),
            "workers": report.workers.get(name),
            "n": int(arr.size),
        }
        if costs and name in costs:
            block["service_ms"] = costs[name].service_ns / 1e6
            block["cpu_ms"] = costs[name].cpu_ns / 1e6
            block["bound_fps"] = stage_bounds.get(name)
        stages[name] = block
    return stages


def common_block(measured: Measured, *, judge_latency: bool) -> schema.RunBlock:
    """The figures every run's block has, its settings and its verdict."""
    report = measured.report
    return {
        "fps": report.fps,
        "frames": report.frames,
        "dropped": int(sum(report.dropped.values())),
        "dropped_by": dict(report.dropped),
        "errors": dict(report.errors),
        "concealed": sum(s.concealed for s in report.streams),
        "missed_ticks": None if measures_capacity(measured.config) else report.missed_ticks,
        "duration_s": report.duration_s,
        "e2e_latency_ms": _e2e(report),
        "run": _run_settings(measured),
        "verdict": checks.verdict(_measurement_checks(measured, judge_latency=judge_latency)),
    }


def flat_out_block(measured: Measured, cores: float) -> schema.PipelineBlock:
    """``report.json``'s ``pipeline`` block, before the naive figures join it.

    A run paced by the user (``bench pipeline --rate``) delivers the rate, not what the device
    can do: its ``efficiency`` is None (fps / bound_fps would say how far below capacity the
    user chose to run, and miss the target for it), and its latency figures join it as
    ``pipeline.paced``, judged against inference's p99 as the standard suite's paced run is."""
    report = measured.report
    limits = bound(measured.costs, cores) if measured.costs else None
    paced = not measures_capacity(measured.config)
    # A block of the common keys only is a pipeline block with none of its own keys yet.
    block = cast(schema.PipelineBlock, common_block(measured, judge_latency=paced))
    block["stages"] = stages_block(
        report, measured.costs, limits["stage_bound_fps"] if limits else {}
    )
    block["bound_fps"] = limits["bound_fps"] if limits else None
    block["efficiency"] = block["fps"] / limits["bound_fps"] if limits and not paced else None
    block["cpu_efficiency"] = block["fps"] / limits["cpu_fps"] if limits and not paced else None
    block["bound"] = limits
    block["naive_fps"] = None
    block["speedup_vs_naive"] = None
    block["bytes"] = _bytes(report)
    accuracy = _accuracy(measured)
    if accuracy is not None:
        block["accuracy"] = accuracy
    timings = report.timings
    block["model_load"] = {
        "load_ms": timings.load_s * 1e3,
        "first_inference_ms": timings.first_inference_s * 1e3,
        "warmup_ms": timings.warmup_s * 1e3,
    }
    block["model"] = cast(schema.ModelBlock, dict(report.model))  # ModelChoice.summary()
    block["backend"] = {
        "name": report.backend.name,
        "provider": report.backend.provider,
        "precision": report.backend.precision,
        "model": report.backend.model,
        "threads": report.backend.threads,
        "threads_why": report.threads_why,
    }
    block["source"] = source_block(report)
    # A run paced with --rate keeps its latency samples once, in pipeline.paced.samples (where
    # compare judges them): kept here too, they were a third of the report's bytes.
    block["samples"] = (
        {"fps_windows": _windows(measured.timelines.fps)} if paced else _samples_block(measured)
    )
    if paced:
        block["paced"] = paced_block(measured)
    return block


def source_block(report: Any) -> schema.SourceBlock:
    """``pipeline.source``: the first stream's source facts, the workers, the loops in all."""
    first = report.streams[0].source if report.streams else {}
    return {
        "kind": first.get("kind", "unknown"),
        "codec": first.get("codec"),
        "width": first.get("width"),
        "height": first.get("height"),
        "decoder": first.get("decoder"),
        "hwaccel": first.get("hwaccel"),
        "decode_threads": first.get("threads"),
        "workers": first.get("workers", "unknown"),
        "streams": len(report.streams),
        "loops": sum(stream.loops for stream in report.streams),
    }


def measures_capacity(config: Any) -> bool:
    """Whether a run of ``config`` goes flat out (no ``rate``), so its fps is capacity: what
    efficiency and the speed-up over the naive loop are ratios of."""
    return config.rate is None


def _run_settings(measured: Measured) -> schema.RunSettings:
    from core.config import to_mapping  # noqa: PLC0415

    return {
        "duration_s": measured.duration_s,
        "extended_s": measured.timelines.extended_s,
        "warmup_s": measured.warmup_s,
        "min_frames": measured.spec.min_frames,
        "max_frames": measured.spec.max_frames,
        "config": to_mapping(measured.config),
    }


def _stages_after_capture(timelines: Timelines) -> dict[str, Timeline]:
    """The stages' p99 timelines that end-to-end latency is made of: not the source's (a frame
    is stamped captured once read, or paced, once published on its tick: reading it comes
    first, and is not part of its latency)."""
    return {k: v for k, v in timelines.stage_p99.items() if k != "source"}


def paced_block(measured: Measured) -> schema.PacedRun:
    """``pipeline.paced``: latency below capacity, against the inference stage's p99."""
    report = measured.report
    block = cast(schema.PacedRun, common_block(measured, judge_latency=True))
    infer = np.asarray(report.stage_ns.get("infer", ()))
    infer_p99 = float(np.percentile(infer, 99)) / 1e6 if infer.size else None
    e2e = block["e2e_latency_ms"]
    block["rate"] = measured.config.rate * len(measured.config.sources)
    block["rate_per_stream"] = measured.config.rate
    block["infer_p99_ms"] = infer_p99
    block["e2e_p99_over_infer_p99_ms"] = e2e["p99"] - infer_p99 if e2e and infer_p99 else None
    block["stages"] = stages_block(report, None, {})
    block["stalls"] = stall_windows(
        measured.timelines.latency_p99,
        stages=_stages_after_capture(measured.timelines),
        infer_off_cpu=measured.timelines.infer_off_cpu,
    )
    block["samples"] = _samples_block(measured)
    return block


def paced_load(flat: Mapping[str, Any], paced: Mapping[str, Any]) -> schema.PacedLoad | None:
    """How busy the paced run kept the stage that bounds the flat-out run, against the
    :data:`PACED_FRACTION` of its flat-out busy fraction the pacing aimed at: a ``ratio`` over
    1 says each frame cost the stage more during the paced run than when its rate was set (the
    flat-out run, or for a run paced again the run before it), so the paced run measured a
    heavier load than 80 % and its latency queues like a heavier load's. Why is not known from
    the ratio: the machine's speed moves, and paced inference costs more a frame than flat out
    (docs/decisions/0007-judging-paced-latency.md). None when the bound is the CPU or a stage
    the paced run lacks.

    >>> flat = {"bound": {"limit": "infer"}, "stages": {"infer": {"busy_frac": 0.99}}}
    >>> paced_load(flat, {"stages": {"infer": {"busy_frac": 0.87}}})["ratio"]
    1.0984848484848484
    """
    stage = (flat.get("bound") or {}).get("limit")
    flat_busy = ((flat.get("stages") or {}).get(stage) or {}).get("busy_frac")
    busy = ((paced.get("stages") or {}).get(stage) or {}).get("busy_frac")
    if not flat_busy or busy is None or stage is None:
        return None
    expected = PACED_FRACTION * flat_busy
    load: schema.PacedLoad = {
        "stage": stage,
        "busy_frac": busy,
        "fraction": PACED_FRACTION,
        "expected": expected,
        "ratio": busy / expected,
    }
    return load


def repaced_fps(capacity: float, load: Mapping[str, Any] | None) -> float | None:
    """The capacity to pace at :data:`PACED_FRACTION` of once more, when a run paced at that
    fraction of ``capacity`` (the flat-out fps, or an earlier re-pacing's) missed its load
    (:func:`paced_load`) by more than :data:`PACED_LOAD_TOLERANCE`; None when it did not (or
    the load was not measured).

    A ``ratio`` of 1.16 means each frame cost the bounding stage 16 % more than in the flat-out
    run (the machine's speed moved, or the stage costs more paced: :func:`paced_load`), so the
    capacity while it was paced was ``capacity / 1.16``, and the run measured a 93 % load, not
    80 %. Why pace again: the load a paced run lands at follows how fast its flat-out run
    happened to be, and the paced median latency follows the load
    (docs/decisions/0007-judging-paced-latency.md).

    >>> repaced_fps(150.0, {"ratio": 1.2}), repaced_fps(150.0, {"ratio": 1.03})
    (125.0, None)
    """
    ratio = (load or {}).get("ratio")
    if not ratio or abs(ratio - 1.0) <= PACED_LOAD_TOLERANCE:
        return None
    return capacity / float(ratio)


def quiet_block(measured: Measured) -> schema.QuietRun:
    """``pipeline.quiet``: bytes sent against every frame as JPEG, and relevant recall."""
    block = cast(schema.QuietRun, common_block(measured, judge_latency=False))
    block["quiet_fraction"] = QUIET_FRACTION
    block["bytes"] = _bytes(measured.report)
    block["accuracy"] = _accuracy(measured)
    return block


def quiet_frames(config: Any) -> int:
    """Frames per stream for :data:`QUIET_CYCLES` quiet cycles of scene time."""
    from core.synthetic import QUIET_CYCLE_S  # noqa: PLC0415

    fps = max(float(s.fps) for s in config.sources)
    return math.ceil(QUIET_CYCLES * QUIET_CYCLE_S * fps) * len(config.sources)
