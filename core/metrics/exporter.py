"""Prometheus exposition of a :class:`~core.metrics.MetricsRegistry`.

Every figure is recorded once, in the registry (which the JSON snapshot and the EMF lines read
too), and never mirrored into a second set of ``prometheus_client`` objects:

* :class:`RegistryCollector` is a ``prometheus_client`` custom collector over
  :meth:`MetricsRegistry.snapshot`: what the Pushgateway and textfile outputs use, and the
  OpenMetrics format where a client asks for it;
* :func:`exposition` writes the text format (0.0.4) straight from the registry's families,
  each label set's line starts kept (:class:`_FamilyText`). It exists for cost:
  ``generate_latest`` over the collector spends more than the side channel's whole budget at
  1 Hz (docs/decisions/0012-metrics-side-channel-cost.md). Tests check that it parses to the
  same samples as ``generate_latest``, and promtool lints the result.

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
from typing import Any
from weakref import WeakKeyDictionary
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
from core.metrics.registry import MetricFamily, MetricsRegistry

__all__ = [
    "CONTENT_TYPE",
    "MetricsServer",
    "RegistryCollector",
    "exposition",
    "prometheus_registry",
    "reference_exposition",
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


def _label_pairs(names: Iterable[str], values: Iterable[str]) -> str:
    """``a="x",b="y"``: a sample's labels without the braces (empty without labels)."""
    return ",".join(f'{n}="{_escape_value(v)}"' for n, v in zip(names, values, strict=True))


class _FamilyText:
    """What never changes in one family's exposition, written once: its HELP and TYPE lines,
    and each label set's line starts (name and escaped labels; a histogram's per bucket).

    Why: a scrape then only formats numbers; built from :meth:`MetricsRegistry.snapshot`
    instead (a dict per sample, the labels escaped per scrape), it costs most of the side
    channel's budget at 1 Hz (docs/decisions/0012-metrics-side-channel-cost.md)."""

    __slots__ = ("_family", "_starts", "header")

    def __init__(self, family: MetricFamily[Any]) -> None:
        self._family = family
        self.header = (
            f"# HELP {family.name} {_escape_help(family.help)}\n# TYPE {family.name} {family.kind}"
        )
        self._starts: dict[tuple[str, ...], Any] = {}

    def sample(self, key: tuple[str, ...]) -> str:
        """``name{labels} ``: a counter's or gauge's line up to its value."""
        start: str | None = self._starts.get(key)
        if start is None:
            pairs = _label_pairs(self._family.labelnames, key)
            start = f"{self._family.name}{{{pairs}}} " if pairs else f"{self._family.name} "
            self._starts[key] = start
        return start

    def histogram(self, key: tuple[str, ...]) -> tuple[list[str], str, str]:
        """A histogram's bucket line starts (the last ``le="+Inf"``), and its count and sum
        lines' starts."""
        starts: tuple[list[str], str, str] | None = self._starts.get(key)
        if starts is None:
            name = self._family.name
            pairs = _label_pairs(self._family.labelnames, key)
            bucket = f"{name}_bucket{{{pairs}," if pairs else f"{name}_bucket{{"
            bounds = (*self._family.bounds, math.inf)
            tail = "{" + pairs + "} " if pairs else " "
            starts = (
                [f'{bucket}le="{_go_float(b)}"}} ' for b in bounds],
                f"{name}_count{tail}",
                f"{name}_sum{tail}",
            )
            self._starts[key] = starts
        return starts


_TEXTS: WeakKeyDictionary[MetricFamily[Any], _FamilyText] = WeakKeyDictionary()


def _text(family: MetricFamily[Any]) -> _FamilyText:
    text = _TEXTS.get(family)
    if text is None:
        text = _TEXTS.setdefault(family, _FamilyText(family))
    return text


def exposition(registry: MetricsRegistry) -> bytes:
    """The text format (0.0.4) a scrape of ``registry`` returns, written straight from its
    families (those without samples left out)."""
    out: list[str] = []
    add = out.append
    for family in registry.families():
        children = family.children()
        if not children:
            continue
        text = _text(family)
        add(text.header)
        if family.kind != "histogram":
            for key, child in children:
                add(text.sample(key) + _number(child.value))
            continue
        for key, child in children:
            buckets, count_at, sum_at = text.histogram(key)
            counts, total = child.cumulative()
            out.extend([b + repr(float(c)) for b, c in zip(buckets, counts, strict=True)])
            add(count_at + repr(float(counts[-1])))
            add(sum_at + _number(total))
    add("")
    return "\n".join(out).encode()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr: one line per scrape would flood a device's journal."""


Route = Callable[[], tuple[int, bytes]]
"""Another page beside ``/metrics`` (the device app's ``/healthz``, ``/readyz``): called per
request, from the server's thread; returns the HTTP status and a JSON body."""
_REASONS = {200: "OK", 503: "Service Unavailable", 500: "Internal Server Error"}


def _app(registry: MetricsRegistry, routes: Mapping[str, Route]) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        route = routes.get(path)
        if route is not None:
            try:
                code, page = route()
            except Exception as exc:  # a broken check is an unhealthy answer, not a hang
                code, page = 500, f'{{"error": "{type(exc).__name__}"}}\n'.encode()
            start_response(
                f"{code} {_REASONS.get(code, 'Status')}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(page)))],
            )
            return [page]
        if path not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            served = ", ".join(["/metrics", *routes])
            return [f"served here: {served}\n".encode()]
        body = exposition(registry)
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


class MetricsServer:
    """``/metrics`` over HTTP on a daemon thread; :meth:`close` (or ``with``) stops it."""

    def __init__(
        self,
        registry: MetricsRegistry,
        address: str = "127.0.0.1",
        port: int = 9464,
        routes: Mapping[str, Route] | None = None,
    ):
        self.address = address

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

        try:
            self._server = make_server(
                address,
                port,
                _app(registry, dict(routes or {})),
                Server,
                handler_class=_QuietHandler,
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
