"""Metrics for the edge runtime: the registry every stage records into (:mod:`.registry`).

Export (Prometheus ``/metrics``, Pushgateway, JSON) reads :meth:`MetricsRegistry.snapshot`.
"""

from core.metrics.registry import (
    LATENCY_BUCKETS_S,
    Counter,
    Gauge,
    Histogram,
    MetricFamily,
    MetricsRegistry,
)

__all__ = [
    "LATENCY_BUCKETS_S",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricFamily",
    "MetricsRegistry",
]
