"""Prometheus exposition of a :class:`~core.metrics.MetricsRegistry`.

Every figure is recorded once, in the registry (which the JSON snapshot and the EMF lines read
too), and never mirrored into a second set of ``prometheus_client`` objects:

* :class:`RegistryCollector` is a ``prometheus_client`` custom collector over
  :meth:`MetricsRegistry.snapshot`: what the Pushgateway and textfile outputs use, and the
  OpenMetrics format where a client asks for it;
* :func:`exposition` writes the text format (0.0.4) straight from the snapshot. It exists for
  cost: ``generate_latest`` over the collector took 1.36 ms CPU for a two-stream pipeline's
  registry (37 families, 270 samples, mostly histogram buckets) on the 2-core CI VM -- above the
  whole 1 ms a second the side channel may spend at 1 Hz; this writer takes 0.35 ms, most of
  it the snapshot itself. Tests check that both parse to the same samples, and promtool lints
  the result.

:class:`MetricsServer` serves ``/metrics`` on ``address:port`` (127.0.0.1 unless asked
otherwise; port 0 picks a free one, read back from :attr:`MetricsServer.port`) on
``prometheus_client``'s threading WSGI server.

>>> from core.metrics import MetricsRegistry
>>> registry = MetricsRegistry()
>>> registry.counter("edgeloop_frames_total", "Frames", ("stream",)).labels(stream="0").inc(2)
>>> print(exposition(registry).decode().strip())
# HELP edgeloop_frames_total Frames
# TYPE edgeloop_frames_total counter
edgeloop_frames_total{stream="0"} 2.0
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.utils import floatToGoString

from core.errors import MetricsExportError
from core.metrics.registry import MetricsRegistry

__all__ = [
    "CONTENT_TYPE",
    "MetricsServer",
    "RegistryCollector",
    "exposition",
    "prometheus_registry",
    "reference_exposition",
    "render_text",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


def reference_exposition(registry: MetricsRegistry) -> bytes:
    """``prometheus_client``'s own text format of ``registry`` (the reference the tests hold
    :func:`exposition` to)."""
    return generate_latest(prometheus_registry(registry))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isfinite(value):
        return repr(float(value))
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


@lru_cache(maxsize=64)
def _le(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """Each bucket line's end of labels up to its count: ``le="0.005"} ``."""
    return tuple(f'le="{_go_float(b)}"}} ' for b in bounds)


def _label_pairs(names: Iterable[str], values: Mapping[str, str]) -> str:
    """``a="x",b="y"``: a sample's labels without the braces (empty without labels)."""
    return ",".join(f'{n}="{_escape_value(values[n])}"' for n in names)


def _labels(names: Iterable[str], values: Mapping[str, str]) -> str:
    pairs = _label_pairs(names, values)
    return "{" + pairs + "}" if pairs else ""


def render_text(snapshot: Mapping[str, Mapping[str, Any]]) -> str:
    """A :meth:`MetricsRegistry.snapshot` in the Prometheus text format 0.0.4 (families
    without samples left out)."""
    out: list[str] = []
    add = out.append
    for name, family in snapshot.items():
        samples = family["samples"]
        if not samples:
            continue
        kind = family["type"]
        names = family["labelnames"]
        add(f"# HELP {name} {_escape_help(family['help'])}")
        add(f"# TYPE {name} {kind}")
        if kind != "histogram":
            for sample in samples:
                add(f"{name}{_labels(names, sample['labels'])} {_number(sample['value'])}")
            continue
        for sample in samples:
            # The labels are escaped once per sample, not once per bucket line: a scrape
            # writes some 400 bucket lines (``bench.micro.metrics``).
            pairs = _label_pairs(names, sample["labels"])
            bucket = f"{name}_bucket{{{pairs}," if pairs else f"{name}_bucket{{"
            buckets = sample["buckets"]
            les = _le(tuple(b for b, _ in buckets))
            for le, (_, count) in zip(les, buckets, strict=True):
                add(bucket + le + repr(float(count)))
            tail = "{" + pairs + "}" if pairs else ""
            add(f"{name}_count{tail} {float(sample['count'])!r}")
            add(f"{name}_sum{tail} {_number(sample['sum'])}")
    out.append("")
    return "\n".join(out)


def exposition(registry: MetricsRegistry) -> bytes:
    """The text format (0.0.4) a scrape of ``registry`` returns."""
    return render_text(registry.snapshot()).encode()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr: one line per scrape would flood a device's journal."""


def _app(registry: MetricsRegistry) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics is served here\n"]
        body = exposition(registry)
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


class MetricsServer:
    """``/metrics`` over HTTP on a daemon thread; :meth:`close` (or ``with``) stops it."""

    def __init__(self, registry: MetricsRegistry, address: str = "127.0.0.1", port: int = 9464):
        self.address = address

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

        try:
            self._server = make_server(
                address, port, _app(registry), Server, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise MetricsExportError(
                f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}; "
                "choose another port (metrics.port, 0 for any free one)"
            ) from None
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="edgeloop-metrics-http", daemon=True
        )
        self._thread.start()
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
