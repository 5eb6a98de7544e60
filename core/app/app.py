"""The device application: the whole edge loop from one :class:`~core.app.config.DeviceConfig`.

Start order, each part up before the one that feeds it: the state dir (and the crash file
there) -> the outbox -> the publishers (MQTT, cloud sync) -> the metrics exporter -> the
pipeline, whose sink is the outbox (and the configured sink beside it). One process tree: the
pipeline's inference and source processes are its children.

Stopping (:meth:`DeviceApp.request_stop`, which SIGTERM, SIGINT and ``--duration`` call): the
sources stop, the frames in flight drain through filter and compress into the outbox, which is
flushed; while the publishers are connected the app waits for them to empty the spool, up to
``shutdown_timeout_s`` from the request; then the publishers stop (what was not acknowledged
stays in the spool for the next start) and the exporter closes
(docs/decisions/0029-one-device-app-drains-before-it-stops.md).
"""

from __future__ import annotations

import faulthandler
import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO, Any

from core.app.config import DeviceConfig
from core.app.state_dir import prepare_state_dir
from core.metrics.registry import MetricsRegistry
from core.outbox import Outbox, OutboxSink, OutboxSinkConfig
from core.pipeline import Pipeline, PipelineReport
from core.sinks import Sink, TeeSink, open_sink

__all__ = ["CRASH_FILE", "DeviceApp"]

log = logging.getLogger("edgeloop.app")

CRASH_FILE = "faulthandler.log"
"""In the state dir: where ``faulthandler`` writes the stacks of a fatal signal."""
DRAIN_POLL_S = 0.05


class DeviceApp:
    """The edge loop of one device (see the module docstring): :meth:`run` it once."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.registry = MetricsRegistry()
        self.stop_requested = threading.Event()
        self._stop_at: float | None = None
        self._why = "its sources ended"
        self.outbox: Outbox | None = None
        self.publishers: list[Any] = []
        self.metrics_url: str | None = None
        self.report: PipelineReport | None = None

    def request_stop(self, why: str = "asked") -> None:
        """Begin a clean stop (safe from a signal handler: it only sets flags)."""
        if not self.stop_requested.is_set():
            self._stop_at = time.monotonic() + self.config.shutdown_timeout_s
            self._why = why
            self.stop_requested.set()

    def run(self, duration_s: float | None = None) -> PipelineReport:
        """Start every part, run the pipeline until :meth:`request_stop` (or ``duration_s``),
        stop cleanly. Raises what failed; the parts started are stopped either way."""
        config = self.config
        state_dir = prepare_state_dir(config.state_dir)
        timer = None
        if duration_s is not None:
            timer = threading.Timer(duration_s, self.request_stop, args=("--duration",))
            timer.daemon = True
        with ExitStack() as stack, open(state_dir / CRASH_FILE, "a") as crash_file:
            self._enable_faulthandler(crash_file, stack)
            self.outbox = outbox = stack.enter_context(Outbox(config.outbox, self.registry))
            log.info("outbox %s: %d records waiting", config.outbox.path, outbox.depth())
            stack.callback(self._stop_publishers)
            self._start_publishers(outbox)
            self._start_metrics(stack)
            pipeline = stack.enter_context(
                Pipeline(config.pipeline, sink=self._sink(outbox), registry=self.registry)
            )
            _ = pipeline.backend  # load the model before the clock starts
            log.info(
                "running: thing %s, %d stream(s), model %s (%s), channels %s",
                config.thing,
                len(config.pipeline.sources),
                config.pipeline.model.model,
                pipeline.model.format.name,
                ", ".join(config.channels),
            )
            if timer is not None:
                timer.start()
                stack.callback(timer.cancel)
            self.report = report = pipeline.run(stop=self.stop_requested)
            log.info(
                "pipeline stopped (%s): %d frames, %d records in the spool",
                self._why,
                report.frames,
                outbox.depth(),
            )
            self._drain(outbox)
        return report

    # -- the parts --------------------------------------------------------------------------

    def _enable_faulthandler(self, crash_file: IO[str], stack: ExitStack) -> None:
        faulthandler.enable(crash_file, all_threads=True)
        stack.callback(faulthandler.disable)

    def _sink(self, outbox: Outbox) -> Sink:
        spool = OutboxSink(outbox, OutboxSinkConfig(channels=self.config.channels))
        if self.config.pipeline.sink.kind == "null":
            return spool
        return TeeSink([spool, open_sink(self.config.pipeline.sink)])

    def _start_publishers(self, outbox: Outbox) -> None:
        config = self.config
        if config.mqtt is not None:
            from core.mqtt.commands import CommandDispatcher  # noqa: PLC0415 - the cloud extra
            from core.mqtt.publisher import MqttPublisher  # noqa: PLC0415

            dispatcher = CommandDispatcher(config.thing, self.registry)
            self._add(
                MqttPublisher(config.mqtt, outbox, registry=self.registry, dispatcher=dispatcher)
            )
        if config.cloud is not None:
            from core.cloud.sync import CloudSync  # noqa: PLC0415 - the cloud extra

            self._add(CloudSync(config.cloud, outbox, registry=self.registry))

    def _add(self, publisher: Any) -> None:
        publisher.start()
        self.publishers.append(publisher)
        log.info("started %s", publisher.thread_name)

    def _start_metrics(self, stack: ExitStack) -> None:
        from core.metrics.service import MetricsService  # noqa: PLC0415 - prometheus_client

        service = stack.enter_context(MetricsService(self.config.metrics, self.registry))
        self.metrics_url = service.url
        log.info("metrics at %s", service.url)

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

    def _stop_publishers(self) -> None:
        for publisher in reversed(self.publishers):
            publisher.stop()
        self.publishers.clear()


def _connected(publisher: Any) -> bool:
    """Whether a publisher can take records now (the cloud sync has no connection: it is
    taken to be able to while its last attempt did not fail)."""
    connected: Callable[[], bool] | bool | None = getattr(publisher, "connected", None)
    if connected is None:
        return getattr(publisher, "last_error", None) is None
    return bool(connected() if callable(connected) else connected)
