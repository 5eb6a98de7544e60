"""The device's model manager: updates from the registry, verified, warmed and swapped in while
the pipeline runs; a probation after each swap; rollback, automatic or asked for.

An update (the ``model-update`` command, or a stage pointer that moved) goes, on the manager's
own thread, one at a time:

1. **download** into the state dir (:class:`~core.models.library.ModelLibrary`: the digest the
   command names, room on the disk, resumable, SHA-256, an atomic rename);
2. **verify** (:func:`~core.models.manifest.verify_model`: it loads, its format, input and
   classes are the manifest's, the golden outputs match, none NaN);
3. **load and warm up** beside the serving model, as it was loaded
   (:meth:`~core.pipeline.Pipeline.prepare`), and measure its cost per frame: more than
   ``models.max_latency_ratio`` times the serving model's is refused;
4. **swap** at a batch boundary (:meth:`~core.pipeline.Pipeline.swap`): no frame dropped, none
   inferred twice. The state record says "swapping" before and the new version after
   (:mod:`core.app.model_state`), so a process killed in between is seen on the next start.

Any failure leaves the old model serving and is answered, with the step and the cause. For
``models.watch_s`` after a swap the old model stays loaded and the new one is watched: its
error rate over ``max_error_rate`` or its p99 time per frame over ``max_latency_ratio`` times
the old one's (as this run measured both: :func:`probation_breach`) swaps the old one back at
once; two starts in a row that
did not stop cleanly with it roll back at the next start. ``model-rollback`` does the same when
asked. Every outcome goes out as a health record's ``event`` (``type`` ``model-update`` or
``model-rollback``) and into ``edgeloop_model_updates_total{action, result}``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.app.ab import ABMetrics, ABRules, ABTest
from core.app.config import ModelsConfig
from core.app.model_state import STATE_FILE, ModelState
from core.backends import resolve_model
from core.backends.model_file import file_sha256
from core.errors import EdgeloopError, ModelError
from core.metrics.registry import MetricsRegistry
from core.models.library import Downloaded, ModelLibrary
from core.models.manifest import utc_now, verify_model
from core.models.store import open_store, stage_key
from core.pipeline.config import PipelineConfig
from core.pipeline.serving import Candidate, Serving
from core.threadname import name_this_thread

__all__ = ["MODELS_DIR", "ModelManager", "Update", "models_status", "probation_breach"]

log = logging.getLogger("edgeloop.models")

MODELS_DIR = "models"
WATCH_TICK_S = 1.0
"""How often the probation rules are checked."""
MIN_WATCH_FRAMES = 30
MIN_WATCH_CALLS = 200
"""Calls each model must have made before the probation compares their p99 times (on fewer,
the p99 is the slowest call or two: one page fault would roll a good model back)."""
RUN_WAIT_S = 60.0
"""How long an A/B test waits at start for the pipeline's run to begin."""
JOIN_TIMEOUT_S = 30.0
"""How long closing waits for the update under way (a download) to end."""
"""Frames a new model serves before its error rate and cost are judged."""
Answer = Callable[[dict[str, Any]], None]
_TICK = object()
"""No job came within the wait: check the probation and the poll."""


@dataclasses.dataclass(frozen=True)
class Update:
    """One update to make: ``name`` ``version`` from the registry at ``uri``; ``sha256`` the
    digest the model must have (None: the registry's manifest's)."""

    name: str
    version: str
    uri: str
    sha256: str | None = None
    origin: str = "command"


@dataclasses.dataclass(frozen=True)
class _Rollback:
    reason: str
    origin: str


@dataclasses.dataclass(frozen=True)
class _ABStart:
    pass


class ModelManager:
    """Updates, probation and rollback for one device's pipeline (the module docstring)."""

    def __init__(
        self,
        config: ModelsConfig,
        state_dir: Path,
        registry: MetricsRegistry,
        answer: Answer,
        *,
        labels: str | None = None,
    ) -> None:
        self.config = config
        self.root = state_dir / MODELS_DIR
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.library = ModelLibrary(self.root)
        self.answer = answer
        self.state = self._load_state()
        self.labels = labels
        self.pipeline: Any = None
        self.base_label = ""
        """The version label of the configured model (``pipeline.model.model``)."""
        self._base_path = ""
        self._retired: Serving | None = None
        """The model swapped out, loaded until the probation ends (a rollback is instant)."""
        self._jobs: queue.SimpleQueue[Update | _Rollback | _ABStart | None] = queue.SimpleQueue()
        self._ab: ABTest | None = None
        self._ab_metrics = ABMetrics(registry)
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused: set[tuple[str, str]] = set()
        """Versions a poll found and the device refused: not tried again every poll."""
        self._counter = registry.counter(
            "edgeloop_model_updates_total",
            "Model updates and rollbacks, by action (update, rollback) and result",
            ("action", "result"),
        )
        self._step = registry.gauge(
            "edgeloop_model_update_seconds",
            "The last model update's time in each step (download, verify, load, swap)",
            ("step",),
        )

    # -- at start ------------------------------------------------------------------------------

    def _load_state(self) -> ModelState:
        """The state record; one that cannot be read is set aside (``state.json.corrupt``)
        and the device starts on its configured model, saying so, rather than not at all."""
        path = self.root / STATE_FILE
        try:
            return ModelState.load(path)
        except ModelError as exc:
            path.replace(path.with_name(STATE_FILE + ".corrupt"))
            state = ModelState(path)
            self._note(state.decide("state", None, "reset", f"{exc}; set aside"))
            return state

    def startup(self, pipeline: PipelineConfig) -> tuple[PipelineConfig, str | None]:
        """The pipeline config to start with, and its model's version label (None: the
        configured model's own): the version the device updated to, unless the config now
        names another model, the last run was killed during a swap, or the version crashed
        twice in a row on probation (then the one before it)."""
        state = self.state
        base = file_sha256(Path(resolve_model(pipeline.model.model)))
        self.base_label, self._base_path = base[:12], pipeline.model.model
        if state.base is not None and state.base != base and state.current is not None:
            self._note(
                state.decide("config", None, "reset", "pipeline.model.model names another model")
            )
            state.current = state.previous = state.watch = state.swap = None
        state.base = base
        swap = state.swap  # left by a process killed mid-swap
        if swap is not None:
            state.swap = None
            self._note(
                state.decide(
                    "swap",
                    swap.get("to"),
                    "interrupted",
                    f"the process stopped during the swap to {swap.get('to')}; "
                    f"{state.current or self.base_label} serves",
                    previous=state.current,
                )
            )
        watch = state.watch
        if watch is not None and state.on_watch() and watch["version"] == state.current:
            if int(watch.get("starts", 0)) >= 2:
                crashed = state.current
                state.current, state.previous, state.watch = state.previous, None, None
                decision = state.decide(
                    "rollback",
                    state.current or self.base_label,
                    "applied",
                    f"{crashed} crashed twice in a row on probation",
                    previous=crashed,
                )
                self._counter.labels(action="rollback", result="applied").inc()
                self._note(decision)
            else:
                watch["starts"] = int(watch.get("starts", 0)) + 1
        elif watch is not None:
            state.watch = None  # its probation ended while the device was down
        state.save()
        if state.current is None or state.name is None:
            return pipeline, None
        held = self.library.get(state.name, state.current)
        if held is None:
            self._note(
                state.decide(
                    "start", state.current, "missing", "the version is not on disk any more"
                )
            )
            state.current = None
            state.save()
            return pipeline, None
        model = dataclasses.replace(
            pipeline.model, model=str(held.model), format=held.manifest.format
        )
        return dataclasses.replace(pipeline, model=model), state.current

    def attach(self, pipeline: Any) -> None:
        """Start managing ``pipeline`` (a running :class:`~core.pipeline.Pipeline`)."""
        self.pipeline = pipeline
        self._thread = threading.Thread(target=self._loop, name="models", daemon=True)
        self._thread.start()
        ab = self.config.ab
        if ab is not None:
            done = self.state.ab
            if ab.candidate == self.state.current:
                log.info("models: the A/B candidate %s serves already", ab.candidate)
            elif (
                done is not None
                and done.get("candidate") == ab.candidate
                and done.get("decision") in ("promoted", "rejected")
            ):
                log.info("models: the A/B test of %s was decided: %s", ab.candidate, done)
            else:
                self._jobs.put(_ABStart())

    # -- asked from outside (any thread) ------------------------------------------------------

    def update(self, update: Update) -> None:
        self._jobs.put(update)

    def rollback(self, reason: str, origin: str = "command") -> None:
        self._jobs.put(_Rollback(reason or "asked", origin))

    def close(self, *, clean: bool = False) -> None:
        """Stop the manager's thread (after the job under way) and release the retired model;
        ``clean``: the app stops cleanly, so a version on probation starts its count of
        starts that did not stop cleanly again."""
        self._closing.set()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(JOIN_TIMEOUT_S)
            self._thread = None
        self._end_ab()
        self._release_retired()
        if clean and self.state.watch is not None:
            self.state.watch["starts"] = 0
            self._save()

    def status(self) -> dict[str, Any]:
        return models_status(self.root, self.state)

    # -- the manager's thread -----------------------------------------------------------------

    def _loop(self) -> None:
        name_this_thread("models")
        next_poll = time.monotonic()
        while True:
            timeout = self._next_wait(next_poll)
            job: Update | _Rollback | object | None
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                job = _TICK
            if job is None:
                return
            try:
                if isinstance(job, Update):
                    self._update(job)
                elif isinstance(job, _Rollback):
                    self._rollback(job.reason, job.origin)
                elif isinstance(job, _ABStart):
                    self._ab_start()
                self._watch()
                self._ab_check()
                if self.config.poll_s is not None and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.config.poll_s
                    self._poll()
            except Exception as exc:  # a bug here must not take the pipeline down
                log.exception("model manager: %s", exc)

    def _next_wait(self, next_poll: float) -> float:
        waits = [3600.0]
        if self.config.poll_s is not None:
            waits.append(max(0.0, next_poll - time.monotonic()))
        if self.state.watch is not None or self._ab is not None:
            waits.append(WATCH_TICK_S)
        return min(waits)

    def _poll(self) -> None:
        config = self.config
        assert config.registry is not None and config.name is not None and config.stage
        try:
            data = open_store(config.registry).get(stage_key(config.name, config.stage))
        except EdgeloopError as exc:
            log.warning("models: cannot read the %s pointer: %s", config.stage, exc)
            return
        if data is None:
            return
        try:
            pointer = json.loads(data)
            version, sha256 = str(pointer["version"]), str(pointer["sha256"])
        except (ValueError, KeyError, TypeError):
            log.warning("models: the %s pointer of %s is not one", config.stage, config.name)
            return
        if version == self.state.current or (config.name, version) in self._refused:
            return
        self._update(Update(config.name, version, config.registry, sha256, f"poll:{config.stage}"))

    def _update(self, update: Update) -> None:
        state, started = self.state, time.perf_counter()
        previous = state.current or self.base_label
        steps: dict[str, float] = {}
        at = ["download"]  # the step under way, for a refusal's answer
        candidate: Candidate | None = None
        swapped = False
        try:
            candidate, downloaded = self._fetch(update, steps, at)
            ratio = candidate.cost_ratio
            if ratio is not None and ratio > self.config.max_latency_ratio:
                at[0] = "latency"
                raise ModelError(
                    f"{update.name} {update.version}: its cost per frame here is {ratio:.2f} x "
                    f"the serving model's ({candidate.cost_s * 1e3:.1f} ms against "
                    f"{(candidate.current_cost_s or 0) * 1e3:.1f} ms), over "
                    f"models.max_latency_ratio {self.config.max_latency_ratio}"
                )
            at[0], clock = "swap", time.perf_counter()
            self._end_ab(f"ended by the update to {update.version}")
            state.begin_swap(update.name, update.version)
            self._release_retired()  # one model on probation at a time
            self._retired = self.pipeline.swap(candidate.serving)
            swapped = True
            steps["swap_s"] = time.perf_counter() - clock
            state.finish_swap(update.name, update.version, self.config.watch_s)
        except Exception as exc:
            if not swapped:
                if candidate is not None:
                    candidate.serving.backend.close()
                self._refuse(update, exc, at[0], previous)
                return
            log.error("models: %s serves, but the model state was not saved: %s", update, exc)
        for key, value in steps.items():
            self._step.labels(step=key[:-2]).set(value)
        assert candidate is not None
        cost = candidate.cost_ratio
        reason = (
            f"verified; its cost per frame is {cost:.2f} x the serving model's"
            if cost is not None
            else "verified; the serving model had no cost per frame to compare with yet"
        )
        decision = state.decide("update", update.version, "applied", reason, previous=previous)
        decision.update(
            timings={
                **{k: round(v, 3) for k, v in steps.items()},
                "total_s": round(time.perf_counter() - started, 3),
            },
            cost_ratio=None if cost is None else round(cost, 3),
            resumed_at=downloaded.resumed_at,
        )
        self._save()
        self._prune()
        self._finish("model-update", decision, update)

    def _fetch(
        self, update: Update, steps: dict[str, float], at: list[str]
    ) -> tuple[Candidate, Downloaded]:
        """``update`` downloaded, verified and loaded beside the serving model; each step's
        time in ``steps``, the step under way in ``at[0]`` (what a failure is answered with)."""
        clock = time.perf_counter()
        downloaded = self.library.download(
            open_store(update.uri), update.name, update.version, sha256=update.sha256
        )
        installed = downloaded.installed
        steps["download_s"] = time.perf_counter() - clock
        at[0], clock = "verify", time.perf_counter()
        verify_model(installed.model, installed.manifest, installed.golden(), self.labels)
        steps["verify_s"] = time.perf_counter() - clock
        at[0], clock = "load", time.perf_counter()
        candidate: Candidate = self.pipeline.prepare(
            installed.model,
            update.version,
            model_format=installed.manifest.format,
            labels=self.labels,
        )
        steps["load_s"] = time.perf_counter() - clock
        return candidate, downloaded

    def _refuse(self, update: Update, exc: BaseException, step: str, previous: str) -> None:
        """An update that did not swap: the old model serves; said with the step and cause
        (``refused`` for what the update or its input is at fault, ``failed`` for a bug)."""
        state = self.state
        state.swap = None
        if update.origin.startswith("poll"):
            self._refused.add((update.name, update.version))
        if isinstance(exc, (EdgeloopError, OSError)):
            result, reason = "refused", str(exc)
        else:
            log.error("models: update %s failed", update, exc_info=exc)
            result, reason = "failed", f"{type(exc).__name__}: {exc}"
        decision = state.decide("update", update.version, result, reason, previous=previous)
        self._save()
        self._finish("model-update", decision, update, step=step)

    def _rollback(self, reason: str, origin: str) -> None:
        state = self.state
        target = state.previous
        current = state.current or self.base_label
        if target is None and state.current is None:
            decision = state.decide("rollback", None, "refused", "no earlier version to go back to")
            self._save()
            self._finish("model-rollback", decision, None, origin=origin)
            return
        label = target or self.base_label
        self._end_ab(f"ended by a rollback to {label}")
        try:
            serving = self._retired
            if serving is None or serving.version != label:
                serving = self._load_again(target)
            state.begin_swap(state.name or "", label)
            self._retired = None
            replaced = self.pipeline.swap(serving)
        except Exception as exc:
            state.swap = None
            if not isinstance(exc, (EdgeloopError, OSError)):
                log.error("models: rollback to %s failed", label, exc_info=exc)
            decision = state.decide("rollback", label, "failed", str(exc), previous=current)
            self._save()
            self._finish("model-rollback", decision, None, origin=origin)
            return
        replaced.close_when_idle()  # the batches it holds finish on it first
        state.swap = None
        state.current, state.previous, state.watch = target, None, None
        decision = state.decide("rollback", label, "applied", reason, previous=current)
        self._save()
        self._finish("model-rollback", decision, None, origin=origin)

    def _save(self) -> None:
        """The state record written; a disk that refuses it is logged (what serves is what the
        pipeline serves; the next start reads the last record that was written)."""
        try:
            self.state.save()
        except OSError as exc:
            log.error("models: the model state was not saved: %s", exc)

    # -- A/B test ------------------------------------------------------------------------------

    def _ab_start(self) -> None:
        """Fetch ``models.ab.candidate`` as an update is fetched, and split the frames."""
        ab, config = self.config.ab, self.config
        assert ab is not None and config.name is not None and config.registry is not None
        update = Update(config.name, ab.candidate, config.registry, None, "ab")
        streams = len(self.pipeline.config.sources)
        steps: dict[str, float] = {}
        at = ["run"]
        candidate: Candidate | None = None
        try:
            deadline = time.monotonic() + RUN_WAIT_S
            while not self.pipeline.running:
                if time.monotonic() > deadline or self._closing.wait(0.1):
                    raise ModelError("the pipeline is not running: no frames to split")
            if ab.by == "stream" and math.floor(streams * ab.fraction) < 1:
                raise ModelError(
                    f"models.ab: {streams} stream(s) at fraction {ab.fraction} give the "
                    "candidate no stream; use by: frame, or a larger fraction"
                )
            at[0] = "download"
            candidate, _ = self._fetch(update, steps, at)
            current = self.pipeline.serving()
            rules = ABRules(
                min_frames=ab.min_frames,
                max_error_rate_increase=ab.max_error_rate_increase,
                max_detection_drop=ab.max_detection_drop,
                max_confidence_drop=ab.max_confidence_drop,
                max_latency_ratio=config.max_latency_ratio,
            )
            self._ab = ABTest(current, candidate.serving, rules, ab.report_s, self._ab_metrics)
            self.pipeline.split(candidate.serving, ab.fraction, ab.by)
        except Exception as exc:
            if candidate is not None:
                candidate.serving.backend.close()
            self._ab = None
            result = "refused" if isinstance(exc, (EdgeloopError, OSError)) else "failed"
            decision = self.state.decide("ab", ab.candidate, result, str(exc))
            self._save()
            self._finish("model-ab", decision, update, step=at[0])
            return
        self.state.ab = {
            "candidate": ab.candidate,
            "serving": current.version,
            "fraction": ab.fraction,
            "by": ab.by,
            "decision": "running",
            "time": utc_now(),
        }
        decision = self.state.decide(
            "ab",
            ab.candidate,
            "started",
            f"{ab.fraction:.0%} of the {'streams' if ab.by == 'stream' else 'frames'}",
            previous=current.version,
        )
        decision["timings"] = {k: round(v, 3) for k, v in steps.items()}
        self._save()
        self._finish("model-ab", decision, update)

    def _ab_check(self) -> None:
        """Compare the two models; report when due; with ``auto_decide`` act on a decision."""
        test, ab = self._ab, self.config.ab
        if test is None or ab is None:
            return
        report = test.check(time.monotonic())
        if report is None:
            return
        verdict = report["decision"]
        reason = "; ".join(report["reasons"]) or "no test found the candidate worse"
        if verdict == "collecting" or not ab.auto_decide:
            event: dict[str, Any] = {
                "type": "model-ab",
                "time": utc_now(),
                "version": test.b.version,
                "from": test.a.version,
                "result": verdict,
                "reason": reason,
                "auto_decide": ab.auto_decide,
                **report,
            }
            self.answer(event)
            return
        state, name = self.state, self.config.name or ""
        if verdict == "promote":
            state.begin_swap(name, test.b.version)
            self._release_retired()
            self._retired = self.pipeline.swap(test.b)  # the split ends with it
            state.finish_swap(name, test.b.version, self.config.watch_s)
            result = "promoted"
        else:
            self.pipeline.split(None)
            test.b.close_when_idle()
            result = "rejected"
        self._ab = None
        if state.ab is not None:
            state.ab["decision"] = result
        decision = state.decide("ab", test.b.version, result, reason, previous=test.a.version)
        decision.update(report)
        self._save()
        self._finish("model-ab", decision, None)

    def _end_ab(self, why: str = "the app stops") -> None:
        """End the A/B test under way, if any (an update or a rollback takes over)."""
        test, self._ab = self._ab, None
        if test is None:
            return
        if self.pipeline is not None:
            self.pipeline.split(None)
        test.b.close_when_idle()
        if self.state.ab is not None and self.state.ab.get("decision") == "running":
            self.state.ab["decision"] = "ended"
        log.info("models: the A/B test of %s %s", test.b.version, why)

    def _load_again(self, version: str | None) -> Serving:
        """A version served before, loaded from disk (the configured model for None)."""
        if version is None:
            path, model_format = Path(resolve_model(self._base_path)), "auto"
            label = self.base_label
        else:
            held = self.library.get(self.state.name or "", version)
            if held is None:
                raise ModelError(f"version {version} is not on disk any more")
            path, model_format, label = held.model, held.manifest.format, version
        candidate = self.pipeline.prepare(path, label, model_format=model_format)
        serving: Serving = candidate.serving
        return serving

    def _watch(self) -> None:
        """The probation rules (the module docstring); its end releases the old model."""
        state = self.state
        if state.watch is None:
            return
        if not state.on_watch():
            state.watch = None
            state.save()
            self._release_retired()
            log.info("models: %s passed its probation", state.current)
            return
        reason = self._broken_rule()
        if reason is not None:
            self._rollback(reason, "watch")

    def _broken_rule(self) -> str | None:
        return probation_breach(self.pipeline.serving(), self._retired, self.config)

    def _release_retired(self) -> None:
        retired, self._retired = self._retired, None
        if retired is not None:
            retired.close_when_idle()

    def _prune(self) -> None:
        state = self.state
        if state.name is None:
            return
        protect = {v for v in (state.current, state.previous) if v} | set(self.config.pinned)
        for version in self.library.prune(state.name, self.config.keep, protect):
            log.info(
                "models: deleted %s %s (models.keep %d)", state.name, version, self.config.keep
            )

    def _finish(
        self,
        kind: str,
        decision: dict[str, Any],
        update: Update | None,
        *,
        step: str | None = None,
        origin: str | None = None,
    ) -> None:
        event = {"type": kind, **decision}
        if update is not None:
            event.update(name=update.name, origin=update.origin)
        if origin is not None:
            event["origin"] = origin
        if step is not None:
            event["step"] = step
        action = {"model-update": "update", "model-rollback": "rollback"}.get(kind, "ab")
        self._counter.labels(action=action, result=decision["result"]).inc()
        level = logging.INFO if decision["result"] == "applied" else logging.WARNING
        log.log(
            level,
            "%s %s: %s (%s)",
            kind,
            decision["version"],
            decision["result"],
            decision["reason"],
        )
        self.answer(event)

    def _note(self, decision: dict[str, Any]) -> None:
        log.warning("models: %s %s: %s", decision["action"], decision["result"], decision["reason"])
        self.answer({"type": f"model-{decision['action']}", **decision})


def probation_breach(new: Serving, old: Serving | None, config: ModelsConfig) -> str | None:
    """Why the model on probation (``new``) must give way to the one it replaced (``old``),
    or None: once it has served :data:`MIN_WATCH_FRAMES` frames, more than
    ``max_error_rate`` of them failed; or, once each has made :data:`MIN_WATCH_CALLS` calls,
    its p99 time per frame is more than ``max_latency_ratio`` times the old one's (the old
    one's calls from before the swap, in the same run)."""
    costs = new.costs
    if costs.frames < MIN_WATCH_FRAMES:
        return None
    rate = costs.errors / costs.frames
    if rate > config.max_error_rate:
        return (
            f"{new.version}: {costs.errors} of {costs.frames} frames failed ({rate:.0%}), "
            f"over models.max_error_rate {config.max_error_rate:.0%}"
        )
    if old is None:
        return None
    p99_new, p99_old = costs.p99_s(MIN_WATCH_CALLS), old.costs.p99_s(MIN_WATCH_CALLS)
    if p99_new is not None and p99_old:
        ratio = p99_new / p99_old
        if ratio > config.max_latency_ratio:
            return (
                f"{new.version}: its p99 time per frame is {ratio:.2f} x the old model's "
                f"({p99_new * 1e3:.1f} ms against {p99_old * 1e3:.1f} ms), over "
                f"models.max_latency_ratio {config.max_latency_ratio}"
            )
    return None


def models_status(root: Path, state: ModelState | None = None) -> dict[str, Any]:
    """What ``python -m core models status`` shows: the serving version (None: the configured
    model), the previous one (the configured model's label, the first 12 hex digits of its
    SHA-256, when the first update replaced it), the probation, the history, the versions on
    disk and the last decision with its reason."""
    state = state if state is not None else ModelState.load(root / STATE_FILE)
    library = ModelLibrary(root)
    configured = state.base[:12] if state.base else None  # the configured model's label
    return {
        "schema": "edgeloop.models-status/1",
        "name": state.name,
        "current": state.current,
        "previous": state.previous or (configured if state.current else None),
        "watch": state.watch,
        "swap_interrupted": state.swap,
        "history": state.history,
        "on_disk": library.versions(state.name) if state.name else [],
        "last_decision": state.decisions[-1] if state.decisions else None,
        "decisions": state.decisions,
    }
