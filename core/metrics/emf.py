"""The registry as CloudWatch Embedded Metric Format lines: what the CloudWatch agent on a
Greengrass core ingests from a log file or its EMF endpoint, for fleets that use CloudWatch
rather than Prometheus.

One JSON line per label set (the labels become CloudWatch dimensions, with ``device`` first),
at most :data:`MAX_METRICS` metrics per line (the format's limit). Counters go as their running
totals (CloudWatch's ``RATE()`` metric math turns them into rates); histograms as ``_count`` and
``_sum``. Units follow the name's suffix.

>>> from core.metrics import MetricsRegistry
>>> r = MetricsRegistry()
>>> r.counter("edgeloop_frames_total", "Frames", ("stream",)).labels(stream="0").inc(5)
>>> print(emf_lines(r.snapshot(), device="gate-01", timestamp_ms=1700000000000)[0])
... # doctest: +NORMALIZE_WHITESPACE
{"_aws": {"Timestamp": 1700000000000, "CloudWatchMetrics": [{"Namespace": "edgeloop",
"Dimensions": [["device", "stream"]], "Metrics": [{"Name": "edgeloop_frames_total",
"Unit": "Count"}]}]}, "device": "gate-01", "stream": "0", "edgeloop_frames_total": 5.0}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_METRICS", "emf_lines", "unit_of"]

MAX_METRICS = 100
"""Metrics one EMF directive may declare."""

_UNITS = (
    ("_seconds_total", "Seconds"),
    ("_bytes_total", "Bytes"),
    ("_seconds", "Seconds"),
    ("_bytes", "Bytes"),
    ("_total", "Count"),
    ("_ratio", "None"),
)


def unit_of(name: str) -> str:
    """The CloudWatch unit of a metric, from its base-unit suffix (``None`` when unitless)."""
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return unit
    return "None"


def emf_lines(
    snapshot: Mapping[str, Mapping[str, Any]],
    *,
    device: str,
    timestamp_ms: int,
    namespace: str = "edgeloop",
) -> list[str]:
    """EMF lines for a :meth:`MetricsRegistry.snapshot` (non-finite values left out)."""
    groups: dict[tuple[tuple[str, str], ...], dict[str, tuple[float, str]]] = {}
    for name, family in snapshot.items():
        for sample in family["samples"]:
            key = tuple(sorted((k, str(v)) for k, v in sample["labels"].items() if k != "device"))
            into = groups.setdefault(key, {})
            if family["type"] == "histogram":
                into[f"{name}_count"] = (float(sample["count"]), "Count")
                into[f"{name}_sum"] = (float(sample["sum"]), unit_of(name))
            else:
                into[name] = (float(sample["value"]), unit_of(name))
    lines = []
    for labels, metrics in groups.items():
        finite = [(n, v, u) for n, (v, u) in metrics.items() if math.isfinite(v)]
        for start in range(0, len(finite), MAX_METRICS):
            chunk = finite[start : start + MAX_METRICS]
            record: dict[str, Any] = {
                "_aws": {
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": [["device", *(k for k, _ in labels)]],
                            "Metrics": [{"Name": n, "Unit": u} for n, _, u in chunk],
                        }
                    ],
                },
                "device": device,
                **dict(labels),
            }
            record.update({n: v for n, v, _ in chunk})
            lines.append(json.dumps(record, allow_nan=False))
    return lines
