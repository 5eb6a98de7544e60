"""The pipeline: sources → rings → preprocess → infer → postprocess → filter → compress → sink.

>>> from core.pipeline import Pipeline, load_pipeline_config
>>> config = load_pipeline_config(overrides=[
...     "sources=[{kind: synthetic, width: 320, height: 180}]", "model.backend=onnxruntime"])
>>> with Pipeline(config) as pipeline:
...     report = pipeline.run(max_frames=20)
>>> report.frames, report.streams[0].state, report.streams[0].occupancy_end
(20, 'ended', 0)

How it runs (one run is :mod:`core.pipeline.run`, the workers are described in
:mod:`core.pipeline.workers`, the stages in :mod:`core.pipeline.stages`):

* one :class:`~core.ring.FrameRing` per stream, sized from the source's first ``open``; the
  source writes frames into its slots (a thread, or a process with ``source_workers:
  process``); only slot indices and results move between workers after that;
* one ingest thread per stream (motion gate, then preprocessing straight into a row of the
  backend's input), batches across streams (:mod:`core.pipeline.batcher`), inference in a
  thread or in a process of its own (``infer_worker``; :mod:`core.backends.process`), one
  output thread (decode, filter, compress, sink); every worker but inference runs
  ``stage_nice`` steps nicer (:mod:`core.pipeline.priority`);
* the calling thread monitors: warm-up, duration, sources that ended or hang, metrics,
  progress. Stopping stops the sources first and lets everything in flight drain, within
  ``stop_timeout_s``; a worker that does not stop is abandoned and reported, never waited on.

Per-frame problems (a bad read, a frame that cannot be preprocessed, NaN model outputs, a
failing sink) are counted by stage and logged; :meth:`Pipeline.run` raises only for what
prevents a run (a model or sink that cannot open, a worker that crashed on a bug), and even
then only after every worker was stopped and every ring closed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType

from core.backends import Backend, open_backend, resolve_model
from core.backends.pool import ProcessPool, inference_pids
from core.backends.process import ProcessBackend
from core.device import choose_backend, probe
from core.errors import ConfigError
from core.filter import FilterConfig, ResultFilter
from core.formats import read_metadata
from core.formats.model import ModelChoice, aligned_size, stride_of
from core.metrics import MetricsRegistry
from core.pipeline.batcher import Split
from core.pipeline.config import PipelineConfig
from core.pipeline.costs import measure_stage_costs
from core.pipeline.observe import RunObserver
from core.pipeline.priority import ask_short_slice
from core.pipeline.report import PipelineProgress, PipelineReport, StageCost
from core.pipeline.run import Run
from core.pipeline.serving import Candidate, Serving, check_swappable, measure_row_cost
from core.pipeline.stages import StageCallWrapper, filter_changes, model_stages, settle_backend
from core.pipeline.status import RunStatus
from core.pipeline.telemetry import PipelineMetrics
from core.pipeline.threads import choose_threads
from core.sinks import Sink, open_sink
from core.sources import Source, SourceConfig, open_source

log = logging.getLogger("edgeloop.pipeline")

INPUT_SLOTS = {"thread": 3, "process": 4}
"""Backend input slots by ``infer_worker``: one filling, one inferring, one being decoded; an
inference process also keeps the next batch queued, so that it never waits for the parent."""
DEFAULT_THREADS = 1
"""ONNX Runtime intra-op threads inference is measured with when ``model.threads`` is None,
and keeps unless its share of the cores says more (:mod:`core.pipeline.threads`)."""
SourceFactory = Callable[[SourceConfig, int], Source]


class Pipeline:
    """A configured pipeline; :meth:`run` it (as often as wanted), :meth:`stage_costs` to
    measure each stage alone, :meth:`close` (or ``with``) to release the model.

    ``sink`` replaces the configured one (the outbox/MQTT sink plugs in here); ``registry``
    receives the metrics (a new one otherwise: :attr:`registry`); ``source_factory`` makes
    each stream's source from its config (default :func:`core.sources.open_source`; tests pass
    doubles; with ``source_workers: process`` it must be picklable); ``wrap_stage_calls``
    wraps every stage's work call, in runs and cost measures alike
    (:data:`~core.pipeline.stages.StageCallWrapper`; it must pickle where inference runs in a
    process).
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        sink: Sink | None = None,
        registry: MetricsRegistry | None = None,
        source_factory: SourceFactory = open_source,
        wrap_stage_calls: StageCallWrapper | None = None,
        model_version: str | None = None,
    ) -> None:
        if not isinstance(config, PipelineConfig):
            raise TypeError(f"config must be a PipelineConfig, got {type(config).__name__}")
        self.config = config
        self._configured = config
        self.registry = registry if registry is not None else MetricsRegistry()
        self.source_factory = source_factory
        self.wrap_stage_calls = wrap_stage_calls
        self._sink = sink
        self._backend: Backend | None = None
        self._model: ModelChoice | None = None
        self._version = model_version
        self._threads = DEFAULT_THREADS
        """The intra-op threads the serving model was opened with (a candidate gets as many)."""
        self._swap_lock = threading.Lock()
        self.ab: Split | None = None
        """The A/B split this pipeline's runs serve (:meth:`split`), None when none."""
        self._run: Run | None = None
        self.threads_why = ""
        """Why inference has the threads it has (set when the model loads)."""
        self._infer_worker: str | None = None
        self.telemetry = PipelineMetrics(self.registry)
        """The pipeline's metrics families in :attr:`registry`, which each run brings up to
        date."""

    @property
    def backend(self) -> Backend:
        """The loaded, warmed-up model (loaded on first use, kept until :meth:`close`).

        With ``model.threads`` None and one inference worker on ONNX Runtime, inference gets
        as many cores as its share of a frame's CPU says (:mod:`core.pipeline.threads`):
        measured with one thread, reopened on more cores when it needs them (:meth:`
        _more_cores`); :attr:`threads_why` says what was chosen and why. The configuration
        then says the inference processes it runs (:attr:`config`)."""
        if self._backend is None:
            m = self.config.model
            backend = self._open(m.threads if m.threads is not None else DEFAULT_THREADS)
            try:
                self._model = self._settle(backend)
                backend = self._choose_threads(backend)
            except BaseException:
                backend.close()  # an inference process is never left behind
                raise
            self._backend = backend
            for pid in inference_pids(self._backend):  # its one thread runs the model
                ask_short_slice(self.config.critical_slice_us, pid)
            self._tell_model_info(str(m.model), self._backend)
        return self._backend

    def _tell_model_info(self, model: str, backend: Backend) -> None:
        info = backend.describe()
        timings = backend.timings
        self.telemetry.model_info(
            model,
            self.model_version,
            info.name,
            load_s=timings.load_s,
            warmup_s=timings.first_inference_s + timings.warmup_s,
        )

    @property
    def model_version(self) -> str:
        """The label results and metrics carry for the serving model: the version it was
        given (``model_version``, :meth:`prepare`), else the first 12 hex digits of its file's
        SHA-256."""
        if self._version is None:
            self._version = self.backend.model_sha256[:12]
        return self._version

    def _settle(self, backend: Backend) -> ModelChoice:
        """The format and class names of the model ``backend`` runs, once per load: a model
        whose format cannot be told is refused here (:func:`~core.pipeline.stages.
        settle_backend`), before anything measures it; what the filter does otherwise for it
        is logged as warnings."""
        m = self.config.model
        model = settle_backend(backend, m.format, m.labels)
        log.info(
            "model %s: format %s, %d classes (names from %s)",
            backend.model_path.name,
            model.format.name,
            len(model.class_names),
            model.names_from,
        )
        for change in filter_changes(model, self.config.filter):
            log.warning("model %s is %s: %s", backend.model_path.name, model.format.name, change)
        return model

    def _choose_threads(self, backend: Backend) -> Backend:
        """``backend`` (opened on ``model.threads``, or one thread when None), or the model
        reopened on more cores when measuring says inference needs them; sets
        :attr:`threads_why`."""
        m = self.config.model
        name = backend.describe().name
        if m.threads is not None:
            self.threads_why = "model.threads"
        elif self.config.infer_workers > 1:
            self.threads_why = f"infer_workers: {self.config.infer_workers}, one thread each"
        elif name != "onnxruntime":
            self.threads_why = f"{name} runs its own threads"
        else:
            cores, self.threads_why = choose_threads(
                self.config, backend, self.source_factory, model=self._model
            )
            if cores > 1:
                backend.close()
                backend = self._more_cores(cores)
        log.info("inference threads: %s (%s)", backend.describe().threads, self.threads_why)
        return backend

    def _more_cores(self, cores: int) -> Backend:
        """The model reopened to run on ``cores``: as that many inference processes of one
        thread each where inference runs in a process (no thread of one waits at another's
        barrier while a stage holds its core), else as that many intra-op threads."""
        if self.infer_worker == "process":
            self.config = dataclasses.replace(self.config, infer_workers=cores)
            self.threads_why += f": {cores} inference processes of one thread"
            return self._open(DEFAULT_THREADS)
        self.threads_why += f": {cores} intra-op threads"
        return self._open(cores)

    def _open(self, threads: int, path: Path | None = None) -> Backend:
        """The configured model (or the one at ``path``) opened where ``infer_worker`` says,
        with ``threads``."""
        m = self.config.model
        self._threads = threads
        opener: Callable[..., Backend] = open_backend
        workers = self.config.infer_workers
        if self.infer_worker == "process":
            opener = ProcessBackend if workers == 1 else partial(ProcessPool, workers=workers)
            if self.wrap_stage_calls is not None:  # the child wraps its own calls
                opener = partial(opener, wrap_infer=partial(self.wrap_stage_calls, "infer"))
        elif workers > 1:
            raise ConfigError(
                f"infer_workers: {workers} inference processes need infer_worker: process "
                "(ONNX Runtime); inference runs in a thread here"
            )
        return opener(
            m.model if path is None else path,
            m.backend,
            input_size=self.input_size,
            threads=threads,
            precision=m.precision,
            batch_size=m.batch_size,
            input_slots=self.input_slots,
            spinning=False,  # a spinning pool thread would hold a core the stages need
        )

    @functools.cached_property
    def input_size(self) -> tuple[int, int] | None:
        """``model.input_size`` rounded up to the model's stride (None: the model's own, or
        640 x 640 for a dynamic input); the file's metadata read once."""
        wanted = self.config.model.input_size
        if wanted is None:
            return None
        path = resolve_model(self.config.model.model)
        size = aligned_size(wanted, stride_of(read_metadata(path)))
        if size != tuple(wanted):
            log.info(
                "model.input_size %s rounded up to %s, whole cells of its stride", wanted, size
            )
        return size

    @property
    def model(self) -> ModelChoice:
        """The loaded model's format, class names and preprocessing (:mod:`core.formats`;
        settled when it loads, from ``model.format`` and ``model.labels``)."""
        _ = self.backend
        assert self._model is not None
        return self._model

    @property
    def infer_worker(self) -> str:
        """Where inference runs, ``thread`` or ``process``: ``infer_worker: auto`` is a
        process wherever ONNX Runtime is the backend (its buffers can be shared memory), a
        thread for TensorRT."""
        if self._infer_worker is None:
            wanted = self.config.infer_worker
            if wanted == "auto":
                chosen = choose_backend(self.config.model.backend, probe()).backend
                wanted = "process" if chosen == "onnxruntime" else "thread"
            self._infer_worker = wanted
        return self._infer_worker

    @property
    def input_slots(self) -> int:
        """The backend's input slots (:data:`INPUT_SLOTS`, for each inference process)."""
        return INPUT_SLOTS[self.infer_worker] * self.config.infer_workers

    def prepare(
        self,
        path: Path,
        version: str,
        *,
        model_format: str = "auto",
        labels: str | None = None,
    ) -> Candidate:
        """The model at ``path`` loaded as the serving one was (where inference runs, how many
        processes and threads, input size, batch), its format settled, checked swappable with
        the serving model (:func:`~core.pipeline.serving.check_swappable`) and warmed up, its
        cost per frame measured: ready for :meth:`swap`. :class:`~core.errors.ModelError`
        naming the cause otherwise, the candidate closed and nothing changed. Safe while a run
        runs (from another thread): only the candidate's own processes do the work."""
        current = self.serving()
        backend = self._open(self._threads, path)
        try:
            model = settle_backend(backend, model_format, labels)
            serving = self._serving_of(backend, model, version)
            check_swappable(current, serving)
            for pid in inference_pids(backend):
                ask_short_slice(self.config.critical_slice_us, pid)
            cost = measure_row_cost(serving)
        except BaseException:
            backend.close()
            raise
        current_cost = current.costs.per_row_s()
        return Candidate(serving, cost, current_cost)

    def serving(self) -> Serving:
        """The serving model as the running run serves it (with that run's call costs), or as
        the next run would (loading it on first use)."""
        run = self._run
        if run is not None:
            serving = run.serving()
            if serving is not None:
                return serving
        return self._serving_of(self.backend, self.model, self.model_version)

    def _serving_of(self, backend: Backend, model: ModelChoice, version: str) -> Serving:
        spec, infer, post = model_stages(self.config, backend, model, self.wrap_stage_calls)
        return Serving(backend, model, infer, post, spec, version)

    def swap(self, serving: Serving) -> Serving:
        """Serve ``serving`` (a candidate from :meth:`prepare`, or a previous serving kept warm)
        from the next batch on, in the running run and in later ones: the batch being filled
        goes to the old model, none is dropped or inferred twice
        (:mod:`core.pipeline.serving`). Returns the serving it replaced, still open: the
        caller closes its backend once the batches it holds are done (or swaps it back)."""
        with self._swap_lock:
            previous = self.serving()
            run = self._run
            if run is not None:
                run.switch(serving)
            self._backend, self._model, self._version = (
                serving.backend,
                serving.model,
                serving.version,
            )
            self.ab = None  # a swap ends an A/B split (the batcher's too)
            self._tell_model_info(str(serving.backend.model_path), serving.backend)
            return previous

    def split(self, candidate: Serving | None, fraction: float = 0.1, by: str = "stream") -> None:
        """Start an A/B test: ``candidate`` (a model from :meth:`prepare`) serves ``fraction``
        of the streams or of each stream's frames (``by``: :class:`~core.pipeline.batcher.
        Split`) beside the serving model, from the next frame, in the running run and later
        ones; None ends the split (the candidate's open batch goes to it first; the caller
        closes it once idle). :class:`ValueError` for a fraction or ``by`` out of range."""
        ab = Split(candidate, fraction, by) if candidate is not None else None
        with self._swap_lock:
            self.ab = ab
            run = self._run
            if run is not None:
                run.split(ab)

    @property
    def running(self) -> bool:
        """Whether a run is under way with its workers made (a split or swap reaches it)."""
        run = self._run
        return run is not None and run.serving() is not None

    def run(
        self,
        *,
        duration_s: float | None = None,
        max_frames: int | None = None,
        warmup_s: float = 0.0,
        progress: Callable[[PipelineProgress], None] | None = None,
        observers: Sequence[RunObserver] = (),
        stop: threading.Event | None = None,
    ) -> PipelineReport:
        """Run until ``duration_s`` of measurement (after ``warmup_s``), ``max_frames`` read
        in all (split evenly over the streams), every source ended, or ``stop`` is set (a
        device app's SIGTERM) -- whichever comes first; then stop every worker, draining the
        frames in flight to the sink, and return the report (see the module docstring).
        ``observers`` are shown the run as it goes (:mod:`core.pipeline.observe`); at
        ``duration_s`` the run measures on for as many seconds as the most any of them asks
        (:meth:`~core.pipeline.observe.RunObserver.more_seconds`)."""
        if duration_s is not None and duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if warmup_s < 0:
            raise ValueError(f"warmup_s must be >= 0, got {warmup_s}")
        run = Run(
            self, duration_s, max_frames, warmup_s, progress, observers=tuple(observers), stop=stop
        )
        self._run = run
        try:
            return run.execute()
        finally:
            self._run = None

    def status(self) -> RunStatus | None:
        """The running run's streams and workers (:mod:`core.pipeline.status`); None while
        none runs. Safe from any thread."""
        run = self._run
        return run.status() if run is not None else None

    def retune(self, filter_config: FilterConfig, rate: float | None) -> None:
        """Change what can change while running: the filter's rules (checked against the
        model's classes first: :class:`~core.errors.ConfigError`, nothing changed) and the
        sources' pace (``rate``), in the running run and for later ones."""
        run = self._run
        if run is not None:
            run.retune(filter_config, rate)
        elif self._model is not None:  # check the rules as a run would
            ResultFilter(
                filter_config,
                self._model.class_names,
                detections=self._model.format.task != "raw",
            )
        self.config = dataclasses.replace(self.config, filter=filter_config, rate=rate)
        self._configured = dataclasses.replace(self._configured, filter=filter_config, rate=rate)

    def stage_costs(
        self, frames: int = 50, *, span: tuple[int, int] | None = None
    ) -> dict[str, StageCost]:
        """Each stage alone, single-threaded, on ``frames`` frames of the first source: mean
        service time and CPU per frame. ``span`` (first, end) spreads them over those frame
        indices (a run's measured frames), where the source can seek (see
        :mod:`core.pipeline.costs`). A sink given to the pipeline is not measured: the null
        sink stands in for it."""
        backend = self.backend  # first: loading may have given inference more cores
        return measure_stage_costs(
            self.config,
            backend,
            self.source_factory,
            frames,
            span=span,
            sink_given=self._sink is not None,
            wrap=self.wrap_stage_calls,
            model=self.model,
        )

    def make_sink(self) -> Sink:
        return self._sink if self._sink is not None else open_sink(self.config.sink)

    def close(self) -> None:
        """Release the model."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            self._model = None
            self.config = self._configured  # the next load measures afresh

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
