"""A one-off reading of every collector as plain data: the JSON snapshot for devices without
Prometheus (``python -m core.metrics snapshot --json``), whose keys are a contract:

``schema``
    ``edgeloop.metrics/1``
``device``, ``timestamp``
    the device label (config ``device``, else the host name) and Unix seconds
``collectors``
    ``{name: {"available": bool, "why_absent": str | None}}``
``metrics``
    :meth:`MetricsRegistry.snapshot`, histogram bounds as numbers and ``"+Inf"``
"""

from __future__ import annotations

import math
import socket
import time
from typing import Any

from core.metrics.collect import Sampler
from core.metrics.config import MetricsConfig
from core.metrics.registry import MetricsRegistry
from core.metrics.service import build_collectors, record_info

__all__ = ["SCHEMA", "device_name", "json_snapshot", "take_snapshot"]

SCHEMA = "edgeloop.metrics/1"


def device_name(config: MetricsConfig) -> str:
    """The ``device`` label: the config's, else the host name."""
    return config.device or socket.gethostname()


def take_snapshot(
    config: MetricsConfig, *, settle_s: float = 0.5
) -> tuple[MetricsRegistry, Sampler]:
    """Sample every collector twice, ``settle_s`` apart (CPU busy is a rate between two
    readings); the registry and the (stopped) sampler."""
    registry = MetricsRegistry()
    record_info(registry, config)
    sampler = Sampler(registry, build_collectors(config, registry), config.interval_s)
    try:
        sampler.sample_once()
        if settle_s > 0:
            time.sleep(settle_s)
            sampler.sample_once()
    finally:
        sampler.stop()
    return registry, sampler


def _bounds(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf"
    if isinstance(value, dict):
        return {k: _bounds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounds(v) for v in value]
    return value


def json_snapshot(
    config: MetricsConfig, registry: MetricsRegistry, sampler: Sampler
) -> dict[str, Any]:
    """The snapshot's JSON document (see the module's docstring for its keys)."""
    return {
        "schema": SCHEMA,
        "device": device_name(config),
        "timestamp": time.time(),
        "collectors": {
            c.name: {"available": c.available, "why_absent": c.why_absent}
            for c in sampler.collectors
        },
        "metrics": _bounds(registry.snapshot()),
    }
