"""The device application: the whole edge loop from one :class:`~core.app.config.DeviceConfig`.

Start order, each part up before the one that feeds it: the state dir (the crash files
there) -> the outbox -> the publishers (MQTT, cloud sync) -> the metrics exporter (with
``/healthz`` and ``/readyz``) -> the control loop (:mod:`core.app.supervisor`: health
records, live changes) -> the pipeline, whose sink is the outbox (and the configured sink
beside it). One process tree: the pipeline's inference and source processes are its children.

Stopping (:meth:`DeviceApp.request_stop`, which SIGTERM, SIGINT and ``--duration`` call): the
sources stop, the frames in flight drain through filter and compress into the outbox, which is
flushed; while the publishers are connected the app waits for them to empty the spool, up to
``shutdown_timeout_s`` from the request; then the last health record goes out and the
publishers stop (what was not acknowledged stays in the spool for the next start)
(docs/decisions/0029-one-device-app-drains-before-it-stops.md).

Failing (:meth:`DeviceApp.fail`: an uncaught exception in any thread, or a stall with
``health.exit_on_stall``): the crash is recorded (:mod:`core.app.crash`), the app stops the
same way and :attr:`DeviceApp.failure` says why; the command line exits 1. Changes while
running (:meth:`DeviceApp.propose`) take one path, whatever asked (:mod:`core.app.live`).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import IO, TYPE_CHECKING, Any

from core.app.config import DeviceConfig, device_config_from
from core.app.crash import FAULT_FILE, CrashLog
from core.app.health import probe_page
from core.app.live import ConfigChange, changed_keys, not_live, with_overrides
from core.app.models import ModelManager, Update
from core.app.state_dir import prepare_state_dir
from core.app.supervisor import HealthOut, Supervisor
from core.errors import ConfigError, ModelError, SourceError
from core.greengrass.ipc import NucleusLink, under_greengrass
from core.metrics.registry import MetricsRegistry
from core.metrics.service import edgeloop_version
from core.outbox import Outbox, OutboxSink, OutboxSinkConfig
from core.pipeline import Pipeline, PipelineReport
from core.pipeline.status import RunStatus
from core.sinks import Sink, TeeSink, open_sink

if TYPE_CHECKING:
    from core.greengrass.publisher import IpcPublisher
    from core.mqtt.publisher import MqttPublisher

__all__ = ["DeviceApp"]

log = logging.getLogger("edgeloop.app")

DRAIN_POLL_S = 0.05
ASIDE_FLUSH_S = 2.0
"""How long the last health record may take to reach the broker before the publishers stop."""
STOP_GRACE_S = 10.0
"""Past ``shutdown_timeout_s``: a stop that has not finished by then exits at once (status 1)."""
NOT_CRASHES = (ConfigError, ModelError, SourceError)
GREENGRASS_STATES = {
    "starting": "RUNNING",
    "running": "RUNNING",
    "degraded": "RUNNING",
    "stopping": "RUNNING",
    "stopped": "RUNNING",
    "stalled": "ERRORED",
    "failed": "ERRORED",
}
"""The component state reported for each health state (a clean stop is the process's exit:
the nucleus sees it)."""
"""What stops the app at start because the config is at fault: exit 2, not a crash."""


class DeviceApp:
    """The edge loop of one device (see the module docstring): :meth:`run` it once.

    ``reload`` reads the config again (SIGHUP's change); ``overrides`` (the command line's
    ``--set``) apply over a Greengrass configuration update too; ``watchdog``: a stop that
    overruns its deadline by :data:`STOP_GRACE_S` ends the process (the command line's
    choice: never in a test's own process)."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        reload: Callable[[], DeviceConfig] | None = None,
        overrides: Sequence[str] = (),
        watchdog: bool = False,
    ) -> None:
        self.config = config
        self.reload = reload
        self.overrides = tuple(overrides)
        self.watchdog = watchdog
        self.registry = MetricsRegistry()
        self.stop_requested = threading.Event()
        self.phase = "starting"
        self.failure: str | None = None
        self._stop_at: float | None = None
        self._why = "its sources ended"
        self._started = time.monotonic()
        self._version = edgeloop_version()
        self.outbox: Outbox | None = None
        self.spool_sink: OutboxSink | None = None
        self.pipeline: Pipeline | None = None
        self.publishers: list[Any] = []
        self.health_outs: list[HealthOut] = []
        self.supervisor = Supervisor(self, self.health_outs)
        self.nucleus: NucleusLink | None = None
        self.metrics_url: str | None = None
        self.report: PipelineReport | None = None
        self.model_facts: dict[str, Any] = {"path": config.pipeline.model.model}
        self.crashes: CrashLog | None = None
        self.models: ModelManager | None = None

    # -- asking it to stop, fail or change ---------------------------------------------------

    def request_stop(self, why: str = "asked") -> None:
        """Begin a clean stop (safe from a signal handler: it sets flags, starts a timer)."""
        if self.stop_requested.is_set():
            return
        self._stop_at = time.monotonic() + self.config.shutdown_timeout_s
        self._why = why
        self.phase = "stopping"
        self.stop_requested.set()
        if self.watchdog:
            timer = threading.Timer(
                self.config.shutdown_timeout_s + STOP_GRACE_S, self._stop_overdue
            )
            timer.daemon = True
            timer.start()

    def fail(self, reason: str) -> None:
        """Stop because of ``reason`` (a crash, a stall); the exit status will be 1."""
        if self.failure is None:
            self.failure = reason
            log.error("stopping: %s", reason)
        self.request_stop(f"failed: {reason}")

    def propose(self, build: Callable[[], DeviceConfig], origin: str) -> ConfigChange:
        """Apply the config ``build`` makes if every key it changes is live, else nothing
        (:mod:`core.app.live`); on the control thread."""
        try:
            proposed = build()
        except ConfigError as exc:
            return self._answer(ConfigChange(origin, "refused", (), str(exc)))
        keys = changed_keys(self.config, proposed)
        if not keys:
            return self._answer(ConfigChange(origin, "unchanged"))
        fixed = not_live(keys)
        if fixed:
            reason = f"{', '.join(fixed)}: not live (a restart applies them); nothing changed"
            return self._answer(ConfigChange(origin, "refused", keys, reason))
        if self.pipeline is not None:
            try:
                self.pipeline.retune(proposed.pipeline.filter, proposed.pipeline.rate)
            except ConfigError as exc:
                return self._answer(ConfigChange(origin, "refused", keys, str(exc)))
        logging.getLogger().setLevel(proposed.logging.level)
        self.config = proposed
        return self._answer(ConfigChange(origin, "applied", keys))

    def _answer(self, change: ConfigChange) -> ConfigChange:
        level = logging.WARNING if change.result == "refused" else logging.INFO
        log.log(level, "config change (%s) %s: %s", change.origin, change.result, _keys(change))
        return change

    def change_by_overrides(self, overrides: tuple[str, ...], origin: str) -> dict[str, Any]:
        """The ``config`` command's change: ``key.path=value`` on the running config."""
        return self.propose(lambda: with_overrides(self.config, overrides), origin).to_dict()

    def reread(self) -> dict[str, Any]:
        """SIGHUP's change: the config file read again, with the same ``--set`` overrides."""
        if self.reload is None:
            return ConfigChange("sighup", "refused", (), "no config file to read").to_dict()
        return self.propose(self.reload, "sighup").to_dict()

    # -- running -----------------------------------------------------------------------------

    def run(self, duration_s: float | None = None) -> PipelineReport:
        """Start every part, run the pipeline until :meth:`request_stop` (or ``duration_s``),
        stop cleanly. Raises what failed; the parts started are stopped either way."""
        config = self.config
        state_dir = prepare_state_dir(config.state_dir)
        self.crashes = CrashLog(state_dir, self.registry)
        last_crash = self.crashes.pending()  # before faulthandler appends to its file
        timer = None
        if duration_s is not None:
            timer = threading.Timer(duration_s, self.request_stop, args=("--duration",))
            timer.daemon = True
        hook = threading.excepthook
        threading.excepthook = self._thread_crashed
        try:
            with ExitStack() as stack, open(state_dir / FAULT_FILE, "a") as fault_file:
                self._enable_faulthandler(fault_file, stack)
                try:
                    report = self._run(stack, last_crash, timer)
                except BaseException as exc:  # before the parts stop: the last record says so
                    self._failed_at_start_or_run(exc)
                    raise
        finally:
            threading.excepthook = hook
        return report

    def _failed_at_start_or_run(self, exc: BaseException) -> None:
        if isinstance(exc, NOT_CRASHES):
            self.failure = self.failure or f"{type(exc).__name__}: {exc}"
            return
        if isinstance(exc, KeyboardInterrupt):
            self.failure = self.failure or "interrupted"
            return
        assert self.crashes is not None
        self.crashes.record("main", exc)
        self.failure = self.failure or f"crash in main: {type(exc).__name__}: {exc}"

    def _run(
        self, stack: ExitStack, last_crash: dict[str, Any] | None, timer: threading.Timer | None
    ) -> PipelineReport:
        config = self.config
        self.outbox = outbox = stack.enter_context(Outbox(config.outbox, self.registry))
        log.info("outbox %s: %d records waiting", config.outbox.path, outbox.depth())
        stack.callback(self._stop_publishers)
        self._start_publishers(outbox)
        self._start_metrics(stack)
        self._link_nucleus(stack)
        stack.callback(self._last_record)
        self.supervisor.start()
        if last_crash is not None:
            self._report_crash(last_crash)
        self.models = models = ModelManager(
            config.models,
            config.state_dir,
            self.registry,
            self._model_answer,
            labels=config.pipeline.model.labels,
        )
        pipeline_config, version = models.startup(config.pipeline)
        self.pipeline = pipeline = stack.enter_context(
            Pipeline(
                pipeline_config,
                sink=self._sink(outbox),
                registry=self.registry,
                model_version=version,
            )
        )
        _ = pipeline.backend  # load the model before the clock starts
        self._serving_facts()
        models.attach(pipeline)
        # Before the pipeline closes (its retired model closes first); a clean stop resets
        # the count of starts that crashed with a version on probation.
        stack.callback(lambda: models.close(clean=self.failure is None))
        log.info(
            "running: thing %s, %d stream(s), model %s %s (%s), channels %s",
            config.thing,
            len(config.pipeline.sources),
            pipeline_config.model.model,
            pipeline.model_version,
            pipeline.model.format.name,
            ", ".join(config.channels),
        )
        if timer is not None:
            timer.start()
            stack.callback(timer.cancel)
        self.report = report = pipeline.run(stop=self.stop_requested)
        self.phase = "stopping"
        log.info(
            "pipeline stopped (%s): %d frames, %d records in the spool",
            self._why,
            report.frames,
            outbox.depth(),
        )
        self._drain(outbox)
        return report

    # -- the parts --------------------------------------------------------------------------

    def _enable_faulthandler(self, fault_file: IO[str], stack: ExitStack) -> None:
        faulthandler.enable(fault_file, all_threads=True)
        stack.callback(faulthandler.disable)

    def _sink(self, outbox: Outbox) -> Sink:
        self.spool_sink = spool = OutboxSink(
            outbox, OutboxSinkConfig(channels=self.config.channels)
        )
        if self.config.pipeline.sink.kind == "null":
            return spool
        return TeeSink([spool, open_sink(self.config.pipeline.sink)])

    def _start_publishers(self, outbox: Outbox) -> None:
        config = self.config
        if config.mqtt is not None:
            from core.mqtt.commands import (  # noqa: PLC0415 - the cloud extra
                CommandDispatcher,
                ConfigUpdate,
                ModelRollback,
                ModelUpdate,
            )
            from core.mqtt.publisher import MqttPublisher  # noqa: PLC0415

            dispatcher = CommandDispatcher(config.thing, self.registry)
            dispatcher.register("config", ConfigUpdate, self._config_command)
            dispatcher.register("model-update", ModelUpdate, self._model_update_command)
            dispatcher.register("model-rollback", ModelRollback, self._model_rollback_command)
            publisher: MqttPublisher | IpcPublisher
            if config.mqtt.transport == "greengrass-ipc":
                from core.greengrass.publisher import IpcPublisher  # noqa: PLC0415

                publisher = IpcPublisher(
                    config.mqtt, outbox, registry=self.registry, dispatcher=dispatcher
                )
            else:
                publisher = MqttPublisher(
                    config.mqtt, outbox, registry=self.registry, dispatcher=dispatcher
                )
            topic = config.mqtt.topic("health")
            self.health_outs.append(lambda record, on_sent: publisher.send(topic, record, on_sent))
            self._add(publisher)
        if config.cloud is not None:
            from core.cloud.sync import CloudSync  # noqa: PLC0415 - the cloud extra

            self._add(CloudSync(config.cloud, outbox, registry=self.registry))

    def _add(self, publisher: Any) -> None:
        publisher.start()
        self.publishers.append(publisher)
        log.info("started %s", publisher.thread_name)

    def _start_metrics(self, stack: ExitStack) -> None:
        from core.metrics.service import MetricsService  # noqa: PLC0415 - prometheus_client

        routes = {
            "/healthz": lambda: probe_page(self.supervisor.current(), ready=False),
            "/readyz": lambda: probe_page(self.supervisor.current(), ready=True),
        }
        service = stack.enter_context(
            MetricsService(self.config.metrics, self.registry, routes=routes)
        )
        self.metrics_url = service.url
        log.info("metrics at %s", service.url)

    def _link_nucleus(self, stack: ExitStack) -> None:
        """Under Greengrass: the component's state follows health (``UpdateState``), and a
        configuration update takes the same path as SIGHUP."""
        if not under_greengrass():
            return
        self.nucleus = link = NucleusLink(self._greengrass_update)
        stack.callback(link.close)
        self.supervisor.on_state.append(lambda state: link.report(GREENGRASS_STATES[state]))
        link.subscribe()
        log.info("greengrass: linked to the nucleus (state, configuration updates)")

    def _greengrass_update(self) -> None:
        link = self.nucleus
        assert link is not None

        def build() -> DeviceConfig:
            return device_config_from(link.configuration(), self.overrides)

        self.supervisor.ask(lambda: self.propose(build, "greengrass").to_dict())

    # -- commands and crashes ----------------------------------------------------------------

    def _config_command(self, command: Any) -> None:
        self.supervisor.ask(lambda: self.change_by_overrides(command.overrides, "command"))

    def _model_update_command(self, command: Any) -> None:
        if self.models is not None:
            self.models.update(
                Update(command.name, command.version, command.uri, command.sha256 or None)
            )

    def _model_rollback_command(self, command: Any) -> None:
        if self.models is not None:
            self.models.rollback(command.reason)

    def _model_answer(self, event: dict[str, Any]) -> None:
        """A model manager's outcome: the facts health records carry follow what serves, and
        the event goes out on the health topic."""
        if event.get("result") == "applied" and self.pipeline is not None:
            self._serving_facts()
        self.supervisor.ask(lambda: event)

    def _serving_facts(self) -> None:
        pipeline = self.pipeline
        assert pipeline is not None
        self.model_facts = {
            "path": str(pipeline.backend.model_path),
            "version": pipeline.model_version,
            "format": pipeline.model.format.name,
        }

    def _report_crash(self, summary: dict[str, Any]) -> None:
        log.warning(
            "the last run crashed (%s: %s: %s)",
            summary.get("where"),
            summary.get("error"),
            summary.get("message"),
        )
        crashes = self.crashes
        assert crashes is not None
        if not self.health_outs:
            crashes.sent()  # no health topic: the log was its one report
            return
        self.supervisor.ask(lambda: summary, on_sent=crashes.sent)

    def _thread_crashed(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or isinstance(args.exc_value, SystemExit):
            return
        where = f"thread {args.thread.name if args.thread is not None else '?'}"
        if self.crashes is not None:
            self.crashes.record(where, args.exc_value)
        self.fail(f"crash in {where}: {type(args.exc_value).__name__}: {args.exc_value}")

    # -- what the control loop reads ----------------------------------------------------------

    def run_status(self) -> RunStatus | None:
        return self.pipeline.status() if self.pipeline is not None else None

    def dead_loops(self) -> list[str]:
        return [p.thread_name for p in self.publishers if not p.running]

    def outbox_error(self) -> str | None:
        if self.spool_sink is not None and self.spool_sink.last_error is not None:
            return self.spool_sink.last_error
        path = self.config.outbox.path
        if not os.access(path.parent, os.W_OK):
            return f"{path.parent} is not writable"
        return None

    def record_facts(self) -> dict[str, Any]:
        outbox = self.outbox
        errors = [p.last_error for p in self.publishers if p.last_error]
        spool = outbox.stats() if outbox is not None else {}
        return {
            "thing": self.config.thing,
            "version": self._version,
            "model": self.model_facts,
            "uptime_s": time.monotonic() - self._started,
            "spool": {key: int(spool[key]) for key in ("records", "bytes") if key in spool},
            "last_error": self.failure or (errors[-1] if errors else None),
        }

    # -- stopping ---------------------------------------------------------------------------

    def _drain(self, outbox: Outbox) -> None:
        """Wait, up to the shutdown deadline, while connected publishers empty the spool."""
        deadline = self._stop_at
        if deadline is None:  # the sources ended: as long as a stop would have
            deadline = time.monotonic() + self.config.shutdown_timeout_s

        def draining() -> bool:
            return outbox.depth() > 0 and any(_connected(p) for p in self.publishers)

        while draining() and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_S)
        left = outbox.depth()
        if left:
            log.warning("%d records stay in the spool for the next start", left)

    def _last_record(self) -> None:
        """The final health record, given a moment to reach the broker."""
        self.supervisor.final("failed" if self.failure is not None else "stopped")
        deadline = time.monotonic() + ASIDE_FLUSH_S
        while time.monotonic() < deadline and any(
            getattr(p, "aside_pending", 0) and _connected(p) for p in self.publishers
        ):
            time.sleep(DRAIN_POLL_S)

    def _stop_publishers(self) -> None:
        for publisher in reversed(self.publishers):
            publisher.stop()
        self.publishers.clear()

    def _stop_overdue(self) -> None:
        """Every thread's stack on stderr (what hung), one line, exit 1."""
        faulthandler.dump_traceback(sys.stderr, all_threads=True)
        os.write(
            sys.stderr.fileno(),
            f"edgeloop: error: the stop ({self._why}) took longer than shutdown_timeout_s + "
            f"{STOP_GRACE_S:.0f} s: exiting now\n".encode(),
        )
        os._exit(1)


def _keys(change: ConfigChange) -> str:
    keys = ", ".join(change.keys) or "no key"
    return f"{keys} ({change.reason})" if change.reason else keys


def _connected(publisher: Any) -> bool:
    """Whether a publisher can take records now (the cloud sync has no connection: it is
    taken to be able to while its last attempt did not fail)."""
    connected: Callable[[], bool] | bool | None = getattr(publisher, "connected", None)
    if connected is None:
        return getattr(publisher, "last_error", None) is None
    return bool(connected() if callable(connected) else connected)
