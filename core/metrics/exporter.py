"""Prometheus exposition of a :class:`~core.metrics.MetricsRegistry` through ``prometheus_client``.

A custom collector (:class:`RegistryCollector`) turns :meth:`MetricsRegistry.snapshot` into
Prometheus metric families at each scrape, so every figure is recorded once -- in the registry,
which the JSON snapshot and the EMF lines read too -- and never mirrored into a second set of
``prometheus_client`` objects. Each exporter has its own ``CollectorRegistry``: nothing is added
to ``prometheus_client``'s global one, and two pipelines in one process (tests) do not clash.

:class:`MetricsServer` serves ``/metrics`` on ``address:port`` (127.0.0.1 unless asked
otherwise; port 0 picks a free one, read back from :attr:`MetricsServer.port`).

>>> from core.metrics import MetricsRegistry
>>> registry = MetricsRegistry()
>>> registry.counter("edgeloop_frames_total", "Frames", ("stream",)).labels(stream="0").inc(2)
>>> print(exposition(registry).decode().strip())
# HELP edgeloop_frames_total Frames
# TYPE edgeloop_frames_total counter
edgeloop_frames_total{stream="0"} 2.0
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.utils import floatToGoString

from core.errors import MetricsExportError
from core.metrics.registry import MetricsRegistry

__all__ = ["MetricsServer", "RegistryCollector", "exposition", "prometheus_registry"]


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (``+Inf``, ``0.005``)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class RegistryCollector(PromCollector):
    """Yields the registry's families at each scrape (families without samples left out:
    a sensor a device lacks stays absent, not an empty family)."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.registry = registry

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration: the families are known only at scrape time

    def collect(self) -> Iterator[Metric]:
        for name, family in self.registry.snapshot().items():
            samples = family["samples"]
            if not samples:
                continue
            labelnames = family["labelnames"]
            kind = family["type"]
            metric: Any
            if kind == "counter":
                metric = CounterMetricFamily(name, family["help"], labels=labelnames)
            elif kind == "gauge":
                metric = GaugeMetricFamily(name, family["help"], labels=labelnames)
            else:
                metric = HistogramMetricFamily(name, family["help"], labels=labelnames)
            for sample in samples:
                values = [sample["labels"][n] for n in labelnames]
                if kind == "histogram":
                    buckets = [(_go_float(b), c) for b, c in sample["buckets"]]
                    metric.add_metric(values, buckets, sample["sum"])
                else:
                    metric.add_metric(values, sample["value"])
            yield metric


def prometheus_registry(registry: MetricsRegistry) -> CollectorRegistry:
    """A ``prometheus_client`` registry holding only ``registry``'s collector."""
    prom = CollectorRegistry(auto_describe=False)
    prom.register(RegistryCollector(registry))
    return prom


def exposition(registry: MetricsRegistry) -> bytes:
    """The text format (0.0.4) a scrape of ``registry`` returns."""
    return generate_latest(prometheus_registry(registry))


class MetricsServer:
    """``/metrics`` over HTTP on a daemon thread; :meth:`close` (or ``with``) stops it."""

    def __init__(self, registry: MetricsRegistry, address: str = "127.0.0.1", port: int = 9464):
        self.address = address
        try:
            self._server, self._thread = start_http_server(
                port, addr=address, registry=prometheus_registry(registry)
            )
        except OSError as exc:
            raise MetricsExportError(
                f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}; "
                "choose another port (metrics.port, 0 for any free one)"
            ) from None
        self.port: int = self._server.server_address[1]
        self._running = True
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        with self._lock:
            if not self._running:
                return
            self._running = False
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
