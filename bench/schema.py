"""The report format `edgeloop.bench/1`, typed once: every block a TypedDict, every key with
its unit and meaning (:class:`Doc`), and the dotted key names that the report's summary, `bench
compare`, the Prometheus summary and `docs/bench.md`'s key table all take from here.

Keys named in issues and read by CI and dashboards are a contract: they never change meaning,
and new ones are only added. :func:`problems` finds what a report holds that this module does
not allow (a test runs it on real reports), :func:`key` refuses a dotted name it does not
declare, and :func:`key_table` writes the documentation's table.

>>> key("pipeline.paced.e2e_latency_ms.p99")
'pipeline.paced.e2e_latency_ms.p99'
>>> lookup({"pipeline": {"fps": 120.0}}, PIPELINE_FPS), lookup({}, PIPELINE_FPS)
(120.0, None)
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, Union

SCHEMA = "edgeloop.bench/1"
"""The `schema` field of every report this version writes."""


@dataclass(frozen=True)
class Doc:
    """A key's unit (empty when it has none, or is named in the key) and meaning."""

    unit: str
    text: str


# -- shared blocks -----------------------------------------------------------------------------


class Latency(TypedDict):
    """Latencies summarised from raw ns; the block's own key names the unit (`_ms`)."""

    min: Annotated[float, Doc("ms", "the fastest")]
    mean: Annotated[float, Doc("ms", "the mean")]
    p50: Annotated[float, Doc("ms", "the median")]
    p90: Annotated[float, Doc("ms", "90th percentile")]
    p95: Annotated[float, Doc("ms", "95th percentile")]
    p99: Annotated[float, Doc("ms", "99th percentile")]
    p99_9: Annotated[float, Doc("ms", "99.9th percentile")]
    max: Annotated[float, Doc("ms", "the slowest")]
    cv: Annotated[float, Doc("", "coefficient of variation: standard deviation over mean")]
    n: Annotated[int, Doc("samples", "how many")]


class Check(TypedDict):
    """One check of a run's verdict."""

    name: Annotated[str, Doc("", "`min_duration`, `min_count`, `stable`, `drift`...")]
    ok: Annotated[bool, Doc("", "whether it held")]
    detail: Annotated[str, Doc("", "what was measured against what")]


class _VerdictRequired(TypedDict):
    result: Annotated[str, Doc("", "`VALID` or `INVALID`")]
    reason: Annotated[str, Doc("", "why, in one line")]


class Verdict(_VerdictRequired, total=False):
    """Whether a run's figures can be quoted (LoadGen's rule: long enough, stable, no
    errors)."""

    checks: Annotated[list[Check], Doc("", "each check and whether it held")]
    runs: Annotated[dict[str, str], Doc("", "the report's verdict: each run's result by name")]


class RunSettings(TypedDict):
    """How a run was bounded."""

    duration_s: Annotated[float | None, Doc("s", "planned measured seconds (null: by frames)")]
    extended_s: Annotated[
        float, Doc("s", "measured past `duration_s` while its last windows disagreed")
    ]
    warmup_s: Annotated[float, Doc("s", "warm-up before measuring")]
    min_frames: Annotated[int, Doc("frames", "the minimum count the verdict asks")]
    max_frames: Annotated[int | None, Doc("frames", "the run's frame bound (null: by time)")]
    config: Annotated[dict[str, Any], Doc("", "the pipeline configuration the run used")]


class Samples(TypedDict, total=False):
    """Raw samples `bench compare` resamples."""

    e2e_latency_ms: Annotated[
        list[float], Doc("ms", "end-to-end latencies: evenly spaced order statistics, at most 4096")
    ]
    e2e_latency_n: Annotated[int, Doc("samples", "how many latencies the run had")]
    e2e_latency_method: Annotated[str, Doc("", "how the latencies were thinned")]
    fps_windows: Annotated[list[float], Doc("frames/s", "each measurement window's fps")]
    latency_windows_p50_ms: Annotated[list[float], Doc("ms", "each window's median latency")]
    latency_windows_p99_ms: Annotated[list[float], Doc("ms", "each window's p99 latency")]


class _StageRequired(TypedDict):
    p50_ms: Annotated[float | None, Doc("ms", "median call latency in the run (infer: a batch)")]
    p99_ms: Annotated[float | None, Doc("ms", "p99 call latency in the run")]
    mean_ms: Annotated[float | None, Doc("ms", "mean call latency in the run")]
    busy_frac: Annotated[float | None, Doc("", "busy time over wall time and workers")]
    workers: Annotated[int | None, Doc("", "threads or processes the stage has")]
    n: Annotated[int, Doc("calls", "latency samples")]


class Stage(_StageRequired, total=False):
    """One stage (`source`, `preprocess`, `infer`, `postprocess`, `filter`,
    `compress`, `sink`) in the run, and measured alone (flat-out runs)."""

    service_ms: Annotated[float, Doc("ms", "mean time per frame measured alone")]
    cpu_ms: Annotated[float, Doc("ms", "process CPU per frame measured alone")]
    bound_fps: Annotated[float | None, Doc("frames/s", "workers over service time")]


class Bound(TypedDict):
    """What the stages allow: `min(workers / service)` capped by `cores / sum(cpu)`."""

    bound_fps: Annotated[float, Doc("frames/s", "the bound")]
    limit: Annotated[str, Doc("", "the stage that sets it, or `cpu`")]
    stage_bound_fps: Annotated[dict[str, float], Doc("frames/s", "each stage's own bound")]
    cpu_fps: Annotated[
        float,
        Doc(
            "frames/s",
            "`cores / sum(cpu_ms)`: the cores over the CPU per frame of all stages, "
            "each measured alone (decoding included)",
        ),
    ]
    cpu_ms_per_frame: Annotated[float, Doc("ms", "the stages' CPU per frame, summed")]
    cores: Annotated[float, Doc("cores", "usable by this process (affinity, cgroup quota)")]


class Bytes(TypedDict, total=False):
    """What the bandwidth ledger counted."""

    raw: Annotated[int, Doc("bytes", "raw frames")]
    jpeg_all: Annotated[int, Doc("bytes", "every frame as a JPEG (estimated from samples)")]
    sent: Annotated[int, Doc("bytes", "emitted to the sink")]
    jpeg_all_estimated: Annotated[bool, Doc("", "whether `jpeg_all` was scaled from samples")]
    frames: Annotated[int, Doc("frames", "frames counted")]
    jpeg_samples: Annotated[int, Doc("frames", "frames encoded whole to weigh them")]
    sample_every: Annotated[int, Doc("frames", "one sample per this many frames")]
    reduction_vs_jpeg_all: Annotated[float | None, Doc("x", "`jpeg_all / sent`")]


class Accuracy(TypedDict):
    """With a ground-truth source."""

    map50: Annotated[float | None, Doc("", "mAP@0.5 of the inferred frames")]
    relevant_recall: Annotated[
        float | None, Doc("", "frames holding a visible object that the filter delivered")
    ]
    frames_with_truth: Annotated[int, Doc("frames", "inferred frames with ground truth")]
    relevant_frames: Annotated[int, Doc("frames", "frames holding a visible object")]
    relevant_delivered: Annotated[int, Doc("frames", "of those, delivered")]


class ModelLoad(TypedDict):
    load_ms: Annotated[float, Doc("ms", "loading the model")]
    first_inference_ms: Annotated[float, Doc("ms", "its first inference")]
    warmup_ms: Annotated[float, Doc("ms", "the warm-up inferences")]


class ModelBlock(TypedDict):
    """How the pipeline read the model (:mod:`core.formats`)."""

    format: Annotated[str, Doc("", "its output format: `edgeloop`, `yolov8`, `end2end`...")]
    task: Annotated[str, Doc("", "`detect`, `classify` or `raw`")]
    classes: Annotated[int | None, Doc("", "classes its outputs carry")]
    class_names_from: Annotated[
        str, Doc("", "`labels` (model.labels), `metadata`, `ids` or `none`")
    ]
    input_size: Annotated[list[int], Doc("px", "height and width it is fed at")]


class _BackendRequired(TypedDict):
    name: Annotated[str, Doc("", "`onnxruntime` or `tensorrt`")]
    provider: Annotated[str, Doc("", "the execution provider")]
    precision: Annotated[str, Doc("", "`fp32`, `fp16`, `int8`")]
    model: Annotated[str, Doc("", "the model file")]


class BackendBlock(_BackendRequired, total=False):
    threads: Annotated[int | None, Doc("", "ONNX Runtime's intra-op threads")]
    threads_why: Annotated[str, Doc("", "why that many: `model.threads`, or what was measured")]


class StallCulprit(TypedDict):
    stage: Annotated[str, Doc("", "the stage that added the most over its median window")]
    added_ms: Annotated[float, Doc("ms", "how much it added")]
    ratio: Annotated[float, Doc("x", "its p99 over its median window's")]


class _StallRequired(TypedDict):
    t_s: Annotated[float, Doc("s", "the window's end, into the measured phase")]
    p99_ms: Annotated[float, Doc("ms", "the window's p99 latency")]


class StallWindow(_StallRequired, total=False):
    stages_p99_ms: Annotated[dict[str, float], Doc("ms", "each stage's p99 in it")]
    slowest_stage: Annotated[StallCulprit, Doc("", "the stage that added the most")]
    infer_off_cpu_ms: Annotated[float, Doc("ms", "inference's calls' time off their core")]


class _StallsRequired(TypedDict):
    count: Annotated[int, Doc("windows", "windows with a p99 over twice the median window's")]
    median_window_p99_ms: Annotated[float | None, Doc("ms", "the median window's p99")]
    threshold_ms: Annotated[float | None, Doc("ms", "twice that")]
    windows: Annotated[list[StallWindow], Doc("", "each stall window")]


class Stalls(_StallsRequired, total=False):
    """The paced run's windows whose p99 was over twice the median window's."""

    median_window_stages_p99_ms: Annotated[
        dict[str, float], Doc("ms", "each stage's p99 in the median window")
    ]
    median_window_infer_off_cpu_ms: Annotated[
        float, Doc("ms", "inference's time off its core in the median window")
    ]


class PacedLoad(TypedDict):
    """How busy the paced run kept the stage that bounds the flat-out run."""

    stage: Annotated[str, Doc("", "the bounding stage")]
    busy_frac: Annotated[float, Doc("", "its busy fraction paced")]
    fraction: Annotated[float, Doc("", "the load aimed at (0.8)")]
    expected: Annotated[float, Doc("", "0.8 of its flat-out busy fraction")]
    ratio: Annotated[float, Doc("x", "`busy_frac / expected`: over 1, a heavier load")]


class PacedLatency(TypedDict):
    p50: Annotated[float | None, Doc("ms", "median")]
    p99: Annotated[float | None, Doc("ms", "99th percentile")]


class PacedAttempt(TypedDict):
    """A paced run that was measured again (`pipeline.paced` is the last run's)."""

    why: Annotated[str, Doc("", "`load` (off 80 % by more than 5 %) or `unsettled`")]
    rate: Annotated[float, Doc("frames/s", "its rate, all streams")]
    load_ratio: Annotated[float | None, Doc("x", "its `load.ratio`")]
    e2e_latency_ms: Annotated[PacedLatency | None, Doc("ms", "its latency")]
    infer_p99_ms: Annotated[float | None, Doc("ms", "inference's own p99")]
    e2e_p99_over_infer_p99_ms: Annotated[float | None, Doc("ms", "the paced margin")]
    dropped: Annotated[int, Doc("frames", "dropped")]
    missed_ticks: Annotated[int | None, Doc("frames", "ticks without a frame")]
    stall_windows: Annotated[int | None, Doc("windows", "stall windows")]
    verdict: Annotated[Verdict, Doc("", "its verdict")]


class RunBlock(TypedDict):
    """What every pipeline run reports (the blocks of the flat-out, paced and quiet runs)."""

    fps: Annotated[float, Doc("frames/s", "frames through every stage per measured second")]
    frames: Annotated[int, Doc("frames", "frames delivered in the measured phase")]
    dropped: Annotated[int, Doc("frames", "overwritten by a `drop_oldest` ring, or lost")]
    dropped_by: Annotated[dict[str, int], Doc("frames", "drops by reason")]
    errors: Annotated[dict[str, int], Doc("frames", "per-frame failures by stage")]
    concealed: Annotated[int, Doc("frames", "delivered with errors the decoder concealed")]
    missed_ticks: Annotated[
        int | None, Doc("frames", "ticks a paced source let pass without a frame (null flat out)")
    ]
    duration_s: Annotated[float, Doc("s", "the measured phase")]
    e2e_latency_ms: Annotated[Latency | None, Doc("ms", "capture to sink")]
    run: Annotated[RunSettings, Doc("", "how the run was bounded")]
    verdict: Annotated[Verdict, Doc("", "the run's verdict")]


class PacedRun(RunBlock, total=False):
    """The paced run (`pipeline.paced`): the latency a live camera sees."""

    rate: Annotated[float, Doc("frames/s", "the pace, all streams")]
    rate_per_stream: Annotated[float, Doc("frames/s", "the pace of each stream")]
    infer_p99_ms: Annotated[float | None, Doc("ms", "the inference stage's own p99")]
    e2e_p99_over_infer_p99_ms: Annotated[float | None, Doc("ms", "end-to-end p99 less that")]
    stages: Annotated[dict[str, Stage], Doc("", "each stage in the paced run")]
    stalls: Annotated[Stalls, Doc("", "the stall windows")]
    samples: Annotated[Samples, Doc("", "raw samples for compare")]
    load: Annotated[PacedLoad | None, Doc("", "the load the pacing really put on the bound")]
    attempts: Annotated[list[PacedAttempt], Doc("", "paced runs measured again")]


class QuietRun(RunBlock, total=False):
    """The quiet scene (`pipeline.quiet`): what the filter saves, what it must not lose."""

    quiet_fraction: Annotated[float, Doc("", "share of frames holding objects")]
    bytes: Annotated[Bytes, Doc("", "what the ledger counted")]
    accuracy: Annotated[Accuracy | None, Doc("", "relevant recall of the filter")]


class SourceBlock(TypedDict):
    """What the run read and how (the first stream's source; the others are alike in a
    standard run)."""

    kind: Annotated[str, Doc("", "`synthetic`, `file`, `rtsp`, `http`, `v4l2`, `images`")]
    codec: Annotated[str | None, Doc("", "the decoder's codec (`h264`, `hevc`, ...; null: none)")]
    width: Annotated[int | None, Doc("px", "frame width")]
    height: Annotated[int | None, Doc("px", "frame height")]
    decoder: Annotated[str | None, Doc("", "`pyav` or `opencv` (null: nothing decodes)")]
    hwaccel: Annotated[
        str | None, Doc("", "what decoded: `cpu`, `cuda`, `vaapi`, `nvv4l2` (null: nothing)")
    ]
    decode_threads: Annotated[int | None, Doc("", "the decoder's threads (0: its own choice)")]
    workers: Annotated[str, Doc("", "`thread` or `process`: where the sources ran")]
    streams: Annotated[int, Doc("", "streams read")]
    loops: Annotated[int, Doc("", "times the streams went back to their start, in all")]


class PipelineBlock(RunBlock, total=False):
    """The flat-out run (`pipeline`), and the other runs under it."""

    stages: Annotated[dict[str, Stage], Doc("", "each stage in the run and alone")]
    bound_fps: Annotated[float | None, Doc("frames/s", "what the stages allow")]
    efficiency: Annotated[float | None, Doc("", "`fps / bound_fps` (null when paced)")]
    cpu_efficiency: Annotated[float | None, Doc("", "`fps / bound.cpu_fps` (null when paced)")]
    bound: Annotated[Bound | None, Doc("", "the bound's parts")]
    naive_fps: Annotated[float | None, Doc("frames/s", "the naive loop around the run")]
    speedup_vs_naive: Annotated[float | None, Doc("x", "`fps / naive_fps`")]
    bytes: Annotated[Bytes, Doc("", "what the ledger counted")]
    accuracy: Annotated[Accuracy, Doc("", "with a ground-truth source")]
    model_load: Annotated[ModelLoad, Doc("", "model load, apart from the steady state")]
    model: Annotated[ModelBlock, Doc("", "how the model was read: format, classes, input")]
    backend: Annotated[BackendBlock, Doc("", "what ran the model")]
    source: Annotated[SourceBlock, Doc("", "what the run read, and how")]
    samples: Annotated[Samples, Doc("", "raw samples for compare")]
    paced: Annotated[PacedRun, Doc("", "the paced run")]
    quiet: Annotated[QuietRun, Doc("", "the quiet scene")]


class MultistreamPaced(RunBlock, total=False):
    """Every stream paced at a camera's rate, more than the machine can take in all
    (`multistream.paced`): how the loss is shared and how long frames wait."""

    rate_per_stream: Annotated[float, Doc("frames/s", "the pace of each stream")]
    capacity_fps: Annotated[float, Doc("frames/s", "the flat-out run's fps, all streams")]
    per_stream_fps: Annotated[list[float], Doc("frames/s", "each stream's delivered fps")]
    fairness: Annotated[float | None, Doc("", "min / max of `per_stream_fps`")]
    dropped_by_stream: Annotated[list[int], Doc("frames", "each stream's ring drops")]
    missed_by_stream: Annotated[list[int], Doc("frames", "each stream's missed ticks")]
    lost_by_stream: Annotated[list[int], Doc("frames", "drops and missed ticks, per stream")]
    latency_bound_ms: Annotated[
        float | None,
        Doc(
            "ms",
            "`(ring_slots + 1) / min(per_stream_fps)`: the longest a frame can wait in "
            "its ring and be served",
        ),
    ]


class MultistreamBlock(RunBlock, total=False):
    """Several streams of the main source at once, flat out (`multistream`)."""

    streams: Annotated[int, Doc("", "streams read at once")]
    cpu_efficiency: Annotated[float | None, Doc("", "`fps / bound.cpu_fps`")]
    fairness: Annotated[float | None, Doc("", "min / max of `per_stream_fps`")]
    per_stream_fps: Annotated[list[float], Doc("frames/s", "each stream's delivered fps")]
    dropped_by_stream: Annotated[list[int], Doc("frames", "each stream's ring drops")]
    bound: Annotated[Bound | None, Doc("", "the bound's parts (stages alone, this run)")]
    source: Annotated[SourceBlock, Doc("", "what the run read, and how")]
    stages: Annotated[dict[str, Stage], Doc("", "each stage in the run and alone")]
    paced: Annotated[MultistreamPaced, Doc("", "every stream paced past capacity")]


class NaiveSettings(TypedDict, total=False):
    window_s: Annotated[float, Doc("s", "window length")]
    segments: Annotated[int, Doc("", "segments run")]
    intra_op_threads: Annotated[str | int, Doc("", "ONNX Runtime's threads")]
    jpeg_quality: Annotated[int, Doc("", "the JPEG quality")]
    min_s: Annotated[float, Doc("s", "the verdict's minimum")]
    min_count: Annotated[int, Doc("frames", "the verdict's minimum count")]


class NaiveSamples(TypedDict):
    fps_windows: Annotated[list[float], Doc("frames/s", "each window's fps")]
    latency_windows_p50_ms: Annotated[list[float], Doc("ms", "each window's median latency")]
    latency_ms: Annotated[list[float], Doc("ms", "latencies, at most 4096 order statistics")]


class NaiveSpread(TypedDict):
    fps: Annotated[float, Doc("", "largest distance of a window's fps from its segment's")]
    latency: Annotated[float, Doc("", "the same for the median latency")]


class NaiveBlock(TypedDict):
    """The loop a user writes without edgeloop, in segments around the pipeline's runs:
    `compare`'s control."""

    fps: Annotated[float, Doc("frames/s", "all segments")]
    frames: Annotated[int, Doc("frames", "frames run")]
    duration_s: Annotated[float, Doc("s", "time measured")]
    latency_ms: Annotated[Latency, Doc("ms", "per frame")]
    steps_mean_ms: Annotated[
        dict[str, float], Doc("ms", "read, preprocess, infer, postprocess, encode")
    ]
    load_ms: Annotated[float, Doc("ms", "loading the model")]
    first_inference_ms: Annotated[float, Doc("ms", "its first inference")]
    warmup_frames: Annotated[int, Doc("frames", "before measuring")]
    jpeg_bytes_per_frame: Annotated[float, Doc("bytes", "each frame's JPEG")]
    segments_fps: Annotated[list[float], Doc("frames/s", "each segment, in order")]
    segments_spread: Annotated[NaiveSpread, Doc("", "within segments")]
    machine_drift: Annotated[float, Doc("", "largest distance of a segment from their mean")]
    model: Annotated[str, Doc("", "the model file")]
    settings: Annotated[NaiveSettings, Doc("", "how it ran")]
    samples: Annotated[NaiveSamples, Doc("", "raw samples for compare")]
    verdict: Annotated[Verdict, Doc("", "its verdict (minimums only)")]


class Target(TypedDict):
    target: Annotated[str, Doc("", "the target, in words")]
    measured: Annotated[float | int | None, Doc("", "the figure it is judged on")]
    met: Annotated[bool | None, Doc("", "true, false, or null when not measured")]


class Scenario(TypedDict, total=False):
    """An MLPerf LoadGen scenario on the inference path (`bench scenario`)."""

    scenario: Annotated[str, Doc("", "`singlestream`, `multistream`, `offline`, `server`")]
    loadgen_scenario: Annotated[str, Doc("", "LoadGen's name for it")]
    result: Annotated[str | None, Doc("", "LoadGen's validity: `VALID` or `INVALID`")]
    invalid_reason: Annotated[str | None, Doc("", "why LoadGen found it invalid")]
    p50_ms: Annotated[float | None, Doc("ms", "median latency (per query or sample)")]
    p90_ms: Annotated[float | None, Doc("ms", "90th percentile latency")]
    p99_ms: Annotated[float | None, Doc("ms", "99th percentile latency")]
    latency_per: Annotated[str, Doc("", "`query` or `sample`")]
    samples_per_second: Annotated[float | None, Doc("samples/s", "throughput")]
    samples_per_second_from: Annotated[str | None, Doc("", "the LoadGen record it came from")]
    queries: Annotated[int | None, Doc("queries", "queries issued")]
    min_duration_met: Annotated[bool | None, Doc("", "LoadGen's minimum duration held")]
    min_queries_met: Annotated[bool | None, Doc("", "LoadGen's minimum query count held")]
    early_stopping_met: Annotated[bool | None, Doc("", "LoadGen's early-stopping check held")]
    early_stopping: Annotated[str | None, Doc("", "its verdict, in words")]
    loadgen_version: Annotated[Any, Doc("", "LoadGen's version record")]
    errors: Annotated[list[Any], Doc("", "LoadGen's error records")]
    warnings: Annotated[list[Any], Doc("", "LoadGen's warning records")]
    records: Annotated[dict[str, Any], Doc("", "LoadGen's result records, raw")]
    wall_s: Annotated[float, Doc("s", "wall time of the test")]
    settings: Annotated[dict[str, Any], Doc("", "the LoadGen settings chosen")]
    options: Annotated[dict[str, Any], Doc("", "the command's options")]
    calibration: Annotated[dict[str, float], Doc("", "batch-1 latency and batch throughput")]
    backend: Annotated[dict[str, Any], Doc("", "what ran the model")]
    model: Annotated[str, Doc("", "the model file")]
    log_dir: Annotated[str | None, Doc("", "where LoadGen's logs were kept")]


class Suite(TypedDict):
    quick: Annotated[bool, Doc("", "`--quick`: seconds, not minutes")]
    test_slowdown: Annotated[float | None, Doc("", "`EDGELOOP_TEST_SLOWDOWN` (tests only)")]
    wall_s: Annotated[float, Doc("s", "the suite's wall time")]
    options: Annotated[dict[str, Any], Doc("", "the suite's options")]


class _ReportRequired(TypedDict):
    schema: Annotated[str, Doc("", f"`{SCHEMA}`")]
    env: Annotated[dict[str, Any], Doc("", "what was measured on (read, never assumed)")]


class Report(_ReportRequired, total=False):
    """`report.json`: the standard suite writes every block; `bench pipeline`,
    `scenario` and `micro` write theirs."""

    verdict: Annotated[Verdict, Doc("", "the report's verdict, over every run")]
    pipeline: Annotated[PipelineBlock, Doc("", "the pipeline's runs")]
    multistream: Annotated[MultistreamBlock, Doc("", "several streams at once")]
    naive: Annotated[NaiveBlock, Doc("", "the naive loop")]
    micro: Annotated[dict[str, Any], Doc("", "micro suites: their cases' rows and ratios")]
    scenario: Annotated[Scenario, Doc("", "an MLPerf LoadGen scenario's result")]
    targets: Annotated[dict[str, Target], Doc("", "targets against the measured figures")]
    suite: Annotated[Suite, Doc("", "how the suite ran")]
    plots: Annotated[list[str], Doc("", "the report folder's pictures")]


# -- walking the schema ------------------------------------------------------------------------

_LEAF_BLOCKS = ("env", "config", "options", "micro", "records", "settings")
"""Keys whose content is free-form (captured, or a suite's own)."""


@dataclass(frozen=True)
class KeyDoc:
    """One declared key: its dotted path (`<name>` for any key of a mapping, `[]` for a list's
    items), its type as JSON names it, its :class:`Doc`, the block under it (a TypedDict, when
    its value, its list's items or its mapping's values are one) and whether its value is a
    mapping of free keys."""

    path: str
    kind: str
    doc: Doc
    block: type | None = None
    free_keys: bool = False


def _hints(block: type) -> dict[str, Any]:
    return typing.get_type_hints(block, include_extras=True)


def _split(hint: Any) -> tuple[Any, Doc]:
    """(the bare type, its Doc) of an `Annotated` hint."""
    if typing.get_origin(hint) is Annotated:
        bare, *extras = typing.get_args(hint)
        docs = [e for e in extras if isinstance(e, Doc)]
        return bare, docs[0] if docs else Doc("", "")
    return hint, Doc("", "")


def _optional(bare: Any) -> tuple[Any, bool]:
    """(the type without None, whether None was allowed)."""
    if typing.get_origin(bare) in (Union, types.UnionType):
        args = [a for a in typing.get_args(bare) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(bare))
        return (args[0] if len(args) == 1 else Union[tuple(args)]), nullable  # noqa: UP007
    return bare, False


def _json_name(bare: Any) -> str:
    bare, nullable = _optional(bare)
    origin = typing.get_origin(bare)
    if typing.is_typeddict(bare) or origin is dict or bare is dict:
        name = "object"
    elif origin is list:
        name = "array"
    elif origin in (Union, types.UnionType):
        name = " or ".join(sorted({_json_name(a) for a in typing.get_args(bare)}))
    else:
        name = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(bare, "any")
    return f"{name} or null" if nullable else name


def _under(bare: Any, path: str) -> tuple[str, type | None, bool]:
    """(the path the block's keys hang from, the TypedDict block under a key's type or None,
    whether the key holds a mapping of free keys)."""
    bare, _ = _optional(bare)
    if typing.is_typeddict(bare):
        return path, bare, False
    origin = typing.get_origin(bare)
    if origin is list:
        (item,) = typing.get_args(bare)
        inner, block, _ = _under(item, f"{path}[]")
        return inner, block, False
    if origin is dict or bare is dict:
        args = typing.get_args(bare)
        inner, block, _ = _under(args[1], f"{path}.<name>") if args else (path, None, False)
        return inner, block, True
    return path, None, False


def walk(block: type = Report, prefix: str = "") -> Iterator[KeyDoc]:
    """Every key under `block`, depth first in declaration order."""
    for name, hint in _hints(block).items():
        bare, doc = _split(hint)
        path = f"{prefix}.{name}" if prefix else name
        inner, child, free = _under(bare, path)
        if name in _LEAF_BLOCKS:
            child = None
        yield KeyDoc(path, _json_name(bare), doc, child, free)
        if child is not None:
            yield from walk(child, inner)


def _declared() -> dict[str, KeyDoc]:
    return {k.path: k for k in walk()}


def key(path: str) -> str:
    """`path` itself, after checking that the schema declares it (a typo fails at import
    time, where the constant is defined, not silently at lookup)."""
    if path not in _declared():
        raise KeyError(f"{path!r} is not a key of the {SCHEMA} report (bench/schema.py)")
    return path


def lookup(report: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` of `report`; None where any part is missing."""
    node: Any = report
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (Mapping,),
}


def _fits(value: Any, kind: str) -> bool:
    """Whether a JSON value is of a declared kind (`integer or null`...)."""
    for name in kind.split(" or "):
        if name == "any" or (name == "null" and value is None):
            return True
        wanted = _JSON_TYPES.get(name, ())
        if isinstance(value, bool) and name != "boolean":
            continue
        if isinstance(value, wanted):
            return True
    return False


def problems(report: Mapping[str, Any]) -> list[str]:
    """What in `report` the schema does not allow, one line each: a key it does not declare, a
    value of another type, a block without a key it requires. Lists and mappings of blocks are
    checked item by item; free-form blocks (`env`, `config`, `micro`...) are not entered."""
    declared = _declared()
    found: list[str] = []

    def visit(node: Any, path: str, doc: KeyDoc) -> None:
        if path and not _fits(node, doc.kind):
            found.append(f"{path}: {type(node).__name__} where the schema has {doc.kind}")
            return
        if isinstance(node, (list, tuple)):
            if doc.block is not None:
                for item in node:
                    visit(item, f"{path}[]", KeyDoc(f"{path}[]", "object", doc.doc, doc.block))
            return
        if not isinstance(node, Mapping) or (doc.block is None and not doc.free_keys):
            return
        if doc.free_keys:
            if doc.block is not None:
                each = KeyDoc(f"{path}.<name>", "object", doc.doc, doc.block)
                for value in node.values():
                    visit(value, each.path, each)
            return
        assert doc.block is not None
        for name in sorted(getattr(doc.block, "__required_keys__", ())):
            if name not in node:
                found.append(f"{path or 'the report'}: no {name!r}, which the schema requires")
        for name, value in node.items():
            child = declared.get(f"{path}.{name}" if path else str(name))
            if child is None:
                found.append(f"{f'{path}.' if path else ''}{name}: not a key of the schema")
            else:
                visit(value, child.path, child)

    visit(report, "", KeyDoc("", "object", Doc("", ""), Report))
    return found


def key_table() -> str:
    """`docs/bench.md`'s key table, in Markdown: each block's keys once, where it first
    appears (a later key of the same block says where)."""
    lines = ["| key | type | unit | meaning |", "|---|---|---|---|"]
    first: dict[type, str] = {}
    skipping: str | None = None
    for k in walk():
        if skipping is not None and (k.path.startswith(skipping)):
            continue
        skipping = None
        text = k.doc.text
        if k.block is not None:
            if k.block in first:
                text += f" (keys as under `{first[k.block]}`)"
                skipping = k.path + ("." if not k.free_keys else ".<name>")
                if k.path.endswith("]") or k.kind.startswith("array"):
                    skipping = k.path + "[]"
            else:
                first[k.block] = k.path
        lines.append(f"| `{k.path}` | {k.kind} | {k.doc.unit} | {text} |")
    return "\n".join(lines)


# -- the keys other modules read -----------------------------------------------------------------

PIPELINE_FPS = key("pipeline.fps")
PIPELINE_FRAMES = key("pipeline.frames")
PIPELINE_DROPPED = key("pipeline.dropped")
BOUND_FPS = key("pipeline.bound_fps")
EFFICIENCY = key("pipeline.efficiency")
CPU_FPS = key("pipeline.bound.cpu_fps")
CPU_EFFICIENCY = key("pipeline.cpu_efficiency")
MULTI_STREAMS = key("multistream.streams")
MULTI_FPS = key("multistream.fps")
MULTI_CPU_EFFICIENCY = key("multistream.cpu_efficiency")
MULTI_FAIRNESS = key("multistream.fairness")
MULTI_PACED_RATE = key("multistream.paced.rate_per_stream")
MULTI_PACED_FAIRNESS = key("multistream.paced.fairness")
MULTI_PACED_P99 = key("multistream.paced.e2e_latency_ms.p99")
MULTI_PACED_LATENCY_BOUND = key("multistream.paced.latency_bound_ms")
NAIVE_FPS = key("pipeline.naive_fps")
SPEEDUP_VS_NAIVE = key("pipeline.speedup_vs_naive")
E2E_LATENCY = key("pipeline.e2e_latency_ms")
E2E_P50 = key("pipeline.e2e_latency_ms.p50")
E2E_P99 = key("pipeline.e2e_latency_ms.p99")
E2E_MAX = key("pipeline.e2e_latency_ms.max")
STAGES = key("pipeline.stages")
RUN_CONFIG = key("pipeline.run.config")
FPS_WINDOWS = key("pipeline.samples.fps_windows")
E2E_SAMPLES = key("pipeline.samples.e2e_latency_ms")
BYTES_RAW = key("pipeline.bytes.raw")
BYTES_JPEG_ALL = key("pipeline.bytes.jpeg_all")
BYTES_SENT = key("pipeline.bytes.sent")
MAP50 = key("pipeline.accuracy.map50")
RELEVANT_RECALL = key("pipeline.accuracy.relevant_recall")
PACED_RATE = key("pipeline.paced.rate")
PACED_E2E_LATENCY = key("pipeline.paced.e2e_latency_ms")
PACED_E2E_P50 = key("pipeline.paced.e2e_latency_ms.p50")
PACED_E2E_P99 = key("pipeline.paced.e2e_latency_ms.p99")
PACED_INFER_P99 = key("pipeline.paced.infer_p99_ms")
PACED_DROPPED = key("pipeline.paced.dropped")
PACED_MISSED_TICKS = key("pipeline.paced.missed_ticks")
PACED_STALL_COUNT = key("pipeline.paced.stalls.count")
PACED_LOAD_RATIO = key("pipeline.paced.load.ratio")
PACED_E2E_SAMPLES = key("pipeline.paced.samples.e2e_latency_ms")
PACED_P99_WINDOWS = key("pipeline.paced.samples.latency_windows_p99_ms")
QUIET_REDUCTION = key("pipeline.quiet.bytes.reduction_vs_jpeg_all")
QUIET_RECALL = key("pipeline.quiet.accuracy.relevant_recall")
PACED_STALLS = key("pipeline.paced.stalls")
PACED_LOAD = key("pipeline.paced.load")
PACED = key("pipeline.paced")
BOUND_LIMIT = key("pipeline.bound.limit")
RUN = key("pipeline.run")
PACED_RUN = key("pipeline.paced.run")
NAIVE_LOOP_FPS = key("naive.fps")
NAIVE_FPS_WINDOWS = key("naive.samples.fps_windows")
MACHINE_DRIFT = key("naive.machine_drift")
SCENARIO_P90 = key("scenario.p90_ms")
SCENARIO_P99 = key("scenario.p99_ms")
SCENARIO_THROUGHPUT = key("scenario.samples_per_second")
MODEL_SHA256 = "env.model.sha256"
"""Inside the free-form `env` block: the model's digest (two reports of other models never
compare)."""


def target(name: str) -> str:
    """The dotted key of target ``name`` (`targets.efficiency`)."""
    return f"{key('targets')}.{name}"


# -- the documentation's table -------------------------------------------------------------------

BEGIN, END = "<!-- report-keys:begin -->", "<!-- report-keys:end -->"
"""The markers in `docs/bench.md` between which :func:`key_table` goes."""


def with_key_table(page: str) -> str:
    """``page`` with the text between :data:`BEGIN` and :data:`END` replaced by the table."""
    head, found, rest = page.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"the page has no {BEGIN} ... {END} block for the key table")
    return f"{head}{BEGIN}\n{key_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.schema [--check] PAGE``: write the key table into ``PAGE`` (or, with
    ``--check``, exit 1 when it is stale). Exit 2 with a one-line cause for a page without the
    markers."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m bench.schema",
        description=f"Write the {SCHEMA} report's key table into a Markdown page.",
    )
    parser.add_argument("page", type=Path, help="the page holding the markers (docs/bench.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is stale")
    parser.add_argument("--json", action="store_true", help="print the keys as JSON instead")
    args = parser.parse_args(argv)
    if args.json:
        rows = [
            {"key": k.path, "type": k.kind, "unit": k.doc.unit, "meaning": k.doc.text}
            for k in walk()
        ]
        print(json.dumps(rows, indent=1))
        return 0
    try:
        page = args.page.read_text()
        updated = with_key_table(page)
    except (OSError, ValueError) as exc:
        print(f"bench.schema: {args.page}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != page:
            print(
                f"bench.schema: {args.page} is stale: run python -m bench.schema {args.page}",
                file=sys.stderr,
            )
            return 1
        return 0
    if updated != page:
        args.page.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
