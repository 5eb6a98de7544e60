"""What every collector shares: the :class:`Collector` interface, running totals turned into
counters, and the :class:`Sampler` thread that calls the collectors once per interval.

Collectors write into the same :class:`~core.metrics.MetricsRegistry` as the pipeline, so the
exporter, the JSON snapshot and the EMF lines read one place. A collector that finds nothing to
read (no NVML, no tegrastats, no thermal sensor) registers no family for it: what a device lacks
is *absent*, never zero; ``edgeloop_collector_up{collector}`` says which collectors run (1) and
which found nothing here (0).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from core.background import BackgroundLoop
from core.metrics.registry import Counter, MetricFamily, MetricsRegistry

__all__ = ["Collector", "Sampler", "Totals"]

log = logging.getLogger(__name__)


class Collector(ABC):
    """One source of figures. ``available`` is decided once, at construction; ``why_absent``
    says what is missing where it is False (for the CLI and the logs)."""

    name: str = "collector"
    available: bool = True
    why_absent: str | None = None

    @abstractmethod
    def sample(self) -> None:
        """Read the source once and record into the registry (never raises for a sensor that
        vanished mid-run: the figure just stops being updated)."""

    def close(self) -> None:  # noqa: B027 - most collectors hold nothing
        """Release what the collector holds (a subprocess, a library handle)."""


class Totals:
    """Counters fed from running totals the OS keeps (bytes sent, disk operations...).

    The registry's counters only go up by increments; this keeps the last total per key and
    adds the difference. A total that went down (a counter wrapped, an interface was re-created)
    counts from zero again, as Prometheus's ``rate`` treats a reset.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, ...], float] = {}

    def advance(self, key: tuple[str, ...], counter: Counter, total: float) -> None:
        last = self._last.get(key, 0.0)
        delta = total - last if total >= last else total
        if delta > 0:
            counter.inc(delta)
        self._last[key] = total


class Sampler(BackgroundLoop):
    """Calls every available collector each ``interval_s`` on a daemon thread.

    ``sample_once`` runs them in the caller's thread (the snapshot CLI, the bench); a collector
    that raises is logged once and skipped from then on, so one broken sensor never stops the
    others. ``edgeloop_collector_sample_seconds`` records what a full sample costs.
    """

    thread_name = "edgeloop-metrics"

    def __init__(
        self, registry: MetricsRegistry, collectors: Sequence[Collector], interval_s: float = 1.0
    ) -> None:
        self.registry = registry
        self.collectors = list(collectors)
        self.interval_s = interval_s
        self._broken: set[str] = set()
        super().__init__()
        up: MetricFamily[Any] = registry.gauge(
            "edgeloop_collector_up",
            "1 where a collector found its source on this device, 0 where it is absent",
            ("collector",),
        )
        for collector in self.collectors:
            up.labels(collector=collector.name).set(1 if collector.available else 0)
        self._cost = registry.gauge(
            "edgeloop_collector_sample_seconds", "Wall time of the last full sample"
        )

    def sample_once(self) -> None:
        """One sample of every available collector."""
        start = time.perf_counter()
        for collector in self.collectors:
            if not collector.available or collector.name in self._broken:
                continue
            try:
                collector.sample()
            except Exception:  # a sensor that fails must not take the others down
                log.exception(
                    "metrics collector %s failed; it is skipped from now on", collector.name
                )
                self._broken.add(collector.name)
        self._cost.set(time.perf_counter() - start)

    def run(self) -> None:
        """Sample now and then every ``interval_s`` until :meth:`stop` (:meth:`start` runs
        this on its own thread)."""
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.sample_once()
            next_at += self.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a suspended VM): start again from now
                next_at, delay = time.monotonic(), 0.0
            self.stopping.wait(delay)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close every collector."""
        super().stop(timeout)
        for collector in self.collectors:
            collector.close()
