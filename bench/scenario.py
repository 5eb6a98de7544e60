"""MLPerf scenarios on the inference path, driven by MLPerf LoadGen (``mlcommons-loadgen``).

``python -m bench scenario singlestream|multistream|offline|server``: LoadGen issues the
queries, times them and judges the run by its own rules (minimum duration and query count,
early stopping, the server's latency bound); we only answer queries. Nothing of its rules is
re-implemented here: the result -- VALID or INVALID, the percentiles, samples per second --
is read back from LoadGen's own detail log (``mlperf_log_detail.txt``, one ``:::MLLOG`` JSON
record per line).

The system under test is :mod:`core.backends` (the backend ``--backend`` picks): the query
sample library holds ``--samples`` frames of the synthetic camera, preprocessed once into
memory when LoadGen loads them (as MLPerf's QSL does: preprocessing is not timed); a query
copies its samples into the backend's input buffer, runs ``infer`` and answers. One worker
thread answers every query, so the SUT never blocks LoadGen's issuing thread (the server
scenario needs that); it takes what is queued, up to the backend's batch size.

Settings (MLPerf's defaults take 10 minutes and more; these take seconds, and every one is in
the report's ``settings``): ``min_duration_ms`` (``--duration``, default 5 s),
``min_query_count`` (``--min-queries``; default 100 single stream, 700 multistream, 200
server, 1 offline: LoadGen's early stopping needs 64 queries for a p90 and 662 for a p99),
``performance_sample_count_override`` (``--samples``, 64). Expected latencies and rates come
from a quick calibration (20 batch-1 and 5 full-batch inferences): single stream's expected
latency = the batch-1 latency; multistream's = 8 samples' worth (MLPerf's 8 samples per
query); offline's expected QPS = 1.5x the full-batch throughput (LoadGen sizes its one query
from it: the margin keeps the run past the minimum duration); server's target QPS =
``--target-qps`` or half the full-batch throughput, its latency bound = ``--target-latency-ms``
or 10x the batch-1 latency (at least 10 ms). ``--user-conf`` reads a LoadGen ``user.conf``
over these (model name ``edgeloop``). Performance mode only: accuracy is the pipeline's
``accuracy`` block.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import BackendUnavailableError

SCENARIOS = {
    "singlestream": "SingleStream",
    "multistream": "MultiStream",
    "offline": "Offline",
    "server": "Server",
}
MULTISTREAM_SAMPLES = 8
"""MLPerf's samples per multistream query."""
CALIBRATION_RUNS = 20
OFFLINE_MARGIN = 1.5
MIN_QUERIES = {"singlestream": 100, "multistream": 700, "offline": 1, "server": 200}
"""Default ``min_query_count`` per scenario: LoadGen's early stopping needs 64 queries for a
p90 (single stream) and 662 for a p99 (multistream); an offline run is one query."""


@dataclass(frozen=True)
class ScenarioOptions:
    """One scenario run; defaults are short (see the module docstring)."""

    scenario: str = "singlestream"
    model: str = "detector"
    backend: str = "auto"
    threads: int | None = None
    batch: int = 8
    duration_s: float = 5.0
    min_queries: int | None = None
    """None: :data:`MIN_QUERIES` of the scenario."""
    samples: int = 64
    target_qps: float | None = None
    target_latency_ms: float | None = None
    user_conf: Path | None = None
    log_dir: Path | None = None


def import_loadgen() -> Any:
    """LoadGen's Python module, or a one-line error that says how to get it."""
    try:
        import mlperf_loadgen  # noqa: PLC0415 - optional (bench extra)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"MLPerf LoadGen is not importable ({exc}): pip install mlcommons-loadgen "
            "(or pip install -e '.[bench]')"
        ) from exc
    return mlperf_loadgen


def read_detail_log(path: Path) -> dict[str, Any]:
    """Every ``:::MLLOG`` record's key and value (the last one wins), plus ``errors`` and
    ``warnings``: the records LoadGen marked as such.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.txt"
    >>> _ = p.write_text(':::MLLOG {"key": "result_validity", "value": "VALID", '
    ...     '"metadata": {"is_error": false, "is_warning": false}}\\n')
    >>> read_detail_log(p)["result_validity"]
    'VALID'
    """
    records: dict[str, Any] = {"errors": [], "warnings": []}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            record = json.loads(line[len(":::MLLOG ") :])
        except ValueError:
            continue
        meta = record.get("metadata") or {}
        if meta.get("is_error"):
            records["errors"].append(f"{record.get('key')}: {record.get('value')}")
        elif meta.get("is_warning"):
            records["warnings"].append(f"{record.get('key')}: {record.get('value')}")
        records[str(record.get("key"))] = record.get("value")
    return records


def _ms(value: Any) -> float | None:
    return float(value) / 1e6 if isinstance(value, (int, float)) else None


_THROUGHPUT_KEYS = (
    "result_samples_per_second",  # offline
    "result_completed_samples_per_sec",  # server
    "result_qps_with_loadgen_overhead",  # single stream: one sample a query
)


def _samples_per_second(records: dict[str, Any]) -> tuple[float | None, str | None]:
    """The scenario's throughput and the record it came from. Multistream has none of its
    own (its metric is the p99 query latency): queries there are issued back to back, so
    samples per query over the mean query latency is its throughput."""
    for key in _THROUGHPUT_KEYS:
        if isinstance(records.get(key), (int, float)):
            return float(records[key]), key
    mean = records.get("result_mean_query_latency_ns")
    per_query = records.get("effective_samples_per_query")
    if isinstance(mean, (int, float)) and mean > 0 and isinstance(per_query, int):
        return per_query * 1e9 / mean, "effective_samples_per_query / result_mean_query_latency_ns"
    return None, None


def summarize_log(records: dict[str, Any]) -> dict[str, Any]:
    """LoadGen's result as report figures: validity (and LoadGen's reason when invalid), the
    percentiles in ms (per query in multistream), samples per second, with every
    ``result_*``, ``early_stopping_*`` and ``effective_*`` record kept."""
    per_query = "per_query_" if "result_99.00_percentile_per_query_latency_ns" in records else ""
    sps, source = _samples_per_second(records)
    return {
        "result": records.get("result_validity"),
        "invalid_reason": records.get("result_invalid_reason") or None,
        "p50_ms": _ms(records.get(f"result_50.00_percentile_{per_query}latency_ns")),
        "p90_ms": _ms(records.get(f"result_90.00_percentile_{per_query}latency_ns")),
        "p99_ms": _ms(records.get(f"result_99.00_percentile_{per_query}latency_ns")),
        "latency_per": "query" if per_query else "sample",
        "samples_per_second": sps,
        "samples_per_second_from": source,
        "queries": records.get("result_query_count"),
        "min_duration_met": records.get("result_min_duration_met"),
        "min_queries_met": records.get("result_min_queries_met"),
        "early_stopping_met": records.get("early_stopping_met"),
        "early_stopping": (records.get("early_stopping_result") or "").strip() or None,
        "loadgen_version": records.get("loadgen_version"),
        "errors": records["errors"],
        "warnings": records["warnings"],
        "records": {
            k: v
            for k, v in records.items()
            if k.startswith(("result_", "early_stopping_", "effective_"))
        },
    }


class _Sut:
    """The system under test: a QSL of preprocessed frames and one worker that answers."""

    def __init__(self, lg: Any, options: ScenarioOptions) -> None:
        from core.backends import open_backend  # noqa: PLC0415 - heavy imports, on demand

        self.lg = lg
        self.backend = open_backend(
            options.model, options.backend, threads=options.threads, batch_size=options.batch
        )
        self.samples: dict[int, np.ndarray] = {}
        self.count = options.samples
        self.queue: queue.Queue[Any] = queue.Queue()
        self.answered = 0
        self.worker = threading.Thread(target=self._serve, name="loadgen-sut", daemon=True)
        self.worker.start()

    # -- query sample library -----------------------------------------------------------------

    def load(self, indices: list[int]) -> None:
        """Preprocess the samples LoadGen asks for into memory (not timed, as in MLPerf)."""
        from core.preprocess import PreprocessSpec, preprocess_into  # noqa: PLC0415
        from core.synthetic import SceneConfig, SyntheticCamera  # noqa: PLC0415

        detector = len(self.backend.outputs[0].shape) == 3
        spec = self.backend.preprocess_spec(
            PreprocessSpec.yolo() if detector else PreprocessSpec.imagenet()
        )
        camera = SyntheticCamera(SceneConfig(seed=7))
        for i in indices:
            out = spec.empty_batch(1)[0]
            preprocess_into(camera.frame(i * 13)[0], out, spec)
            self.samples[i] = out

    def unload(self, indices: list[int]) -> None:
        for i in indices:
            self.samples.pop(i, None)

    # -- system under test --------------------------------------------------------------------

    def issue(self, query_samples: list[Any]) -> None:
        for sample in query_samples:
            self.queue.put(sample)

    def flush(self) -> None:
        pass

    def _serve(self) -> None:
        capacity = self.backend.capacity
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < capacity:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                batch.append(item)
            buffer = self.backend.input_buffer(len(batch))
            for row, sample in enumerate(batch):
                buffer[row] = self.samples[sample.index]
            self.backend.infer(len(batch))
            self.answered += len(batch)
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, 0, 0) for s in batch])

    def calibrate(self) -> tuple[float, float]:
        """(batch-1 latency in s, full-batch throughput in samples/s): LoadGen's expectations."""
        self.backend.input_buffer()[:] = 0.5
        times = []
        for _ in range(CALIBRATION_RUNS):
            start = time.perf_counter()
            self.backend.infer(1)
            times.append(time.perf_counter() - start)
        capacity = self.backend.capacity
        for _ in range(2):  # the full batch's first runs pay allocation: not its speed
            self.backend.infer(capacity)
        start = time.perf_counter()
        for _ in range(5):
            self.backend.infer(capacity)
        throughput = 5 * capacity / (time.perf_counter() - start)
        return float(np.median(times)), throughput

    def close(self) -> None:
        self.queue.put(None)
        self.worker.join(timeout=10)
        self.backend.close()


def _settings(
    lg: Any, options: ScenarioOptions, latency_s: float, throughput: float
) -> tuple[Any, dict[str, Any]]:
    """LoadGen's TestSettings for ``options`` and what was set, for the report."""
    settings = lg.TestSettings()
    name = SCENARIOS[options.scenario]
    settings.scenario = getattr(lg.TestScenario, name)
    settings.mode = lg.TestMode.PerformanceOnly
    chosen: dict[str, Any] = {
        "min_duration_ms": int(options.duration_s * 1000),
        "min_query_count": options.min_queries or MIN_QUERIES[options.scenario],
        "performance_sample_count_override": options.samples,
    }
    latency_ns = max(1, int(latency_s * 1e9))
    if options.scenario == "singlestream":
        chosen["single_stream_expected_latency_ns"] = latency_ns
    elif options.scenario == "multistream":
        chosen["multi_stream_samples_per_query"] = MULTISTREAM_SAMPLES
        per_query = MULTISTREAM_SAMPLES / max(throughput, 1e-9)
        chosen["multi_stream_expected_latency_ns"] = max(latency_ns, int(per_query * 1e9))
    elif options.scenario == "offline":
        chosen["offline_expected_qps"] = float(throughput) * OFFLINE_MARGIN
    else:
        chosen["server_target_qps"] = float(options.target_qps or throughput / 2)
        bound_ms = options.target_latency_ms or max(10.0, latency_s * 1e4)
        chosen["server_target_latency_ns"] = int(bound_ms * 1e6)
    for key, value in chosen.items():
        setattr(settings, key, value)
    if options.user_conf is not None:
        if not options.user_conf.is_file():
            raise FileNotFoundError(f"--user-conf {options.user_conf} does not exist")
        settings.FromConfig(str(options.user_conf), "edgeloop", name)
        chosen["user_conf"] = str(options.user_conf)
    return settings, chosen


def run_scenario(
    options: ScenarioOptions, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run one LoadGen scenario; the report's ``scenario`` block (see the module docstring)."""
    if options.scenario not in SCENARIOS:
        raise ValueError(
            f"unknown scenario {options.scenario!r}; choose from {', '.join(SCENARIOS)}"
        )
    lg = import_loadgen()
    say = progress or (lambda message: None)
    say(f"scenario {options.scenario}: loading {options.model}")
    sut = _Sut(lg, options)
    try:
        latency_s, throughput = sut.calibrate()
        settings, chosen = _settings(lg, options, latency_s, throughput)
        with tempfile.TemporaryDirectory(prefix="edgeloop-loadgen-") as tmp:
            folder = options.log_dir or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            log = lg.LogSettings()
            log.log_output.outdir = str(folder)
            log.log_output.copy_summary_to_stdout = False
            handle = lg.ConstructSUT(sut.issue, sut.flush)
            qsl = lg.ConstructQSL(options.samples, options.samples, sut.load, sut.unload)
            say(f"scenario {options.scenario}: LoadGen running (at least {options.duration_s} s)")
            started = time.perf_counter()
            try:
                lg.StartTestWithLogSettings(handle, qsl, settings, log)
            finally:
                lg.DestroyQSL(qsl)
                lg.DestroySUT(handle)
            wall_s = time.perf_counter() - started
            result = summarize_log(read_detail_log(folder / "mlperf_log_detail.txt"))
        info = sut.backend.describe()
    finally:
        sut.close()
    result.update(
        scenario=options.scenario,
        loadgen_scenario=SCENARIOS[options.scenario],
        wall_s=wall_s,
        settings=chosen,
        options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        calibration={"batch1_latency_ms": latency_s * 1e3, "batch_throughput_sps": throughput},
        backend={
            "name": info.name,
            "provider": info.provider,
            "version": info.version,
            "threads": info.threads,
            "batch": sut.backend.capacity,
        },
        model=info.model,
        log_dir=str(options.log_dir) if options.log_dir else None,
    )
    return result


def render(result: dict[str, Any]) -> str:
    """LoadGen's result and the settings used, as terminal lines."""
    from bench.report import table  # noqa: PLC0415 - report is the table helper's home

    row = {
        "scenario": result["loadgen_scenario"],
        "result": result["result"],
        "p50_ms": result["p50_ms"],
        "p90_ms": result["p90_ms"],
        "p99_ms": result["p99_ms"],
        "samples_per_s": result["samples_per_second"],
        "queries": result["queries"],
        "wall_s": result["wall_s"],
    }
    lines = [f"== MLPerf LoadGen {result['loadgen_version']}", *table([row])]
    lines.append(
        f"latency per {result['latency_per']}; settings: "
        + ", ".join(f"{k}={v}" for k, v in result["settings"].items())
    )
    if result.get("early_stopping"):
        lines.append("early stopping: " + " ".join(result["early_stopping"].split()))
    lines += [f"LoadGen error: {e}" for e in result["errors"]]
    return "\n".join(lines) + "\n"
