"""The metrics side channel's typed configuration (loaded by :func:`core.config.load`).

Defaults are safe to leave on: the endpoint listens on the loopback interface only (a fleet's
Prometheus reaches it through the device's agent or an SSH tunnel); ``0.0.0.0`` exposes it on
every interface and must be asked for. A complete YAML file (every key optional)::

    address: 127.0.0.1        # where /metrics listens; 0.0.0.0 only when asked for
    port: 9464                # 0: any free port (tests)
    interval_s: 1.0           # hardware sampling period
    data_path: /var/lib/edgeloop   # the volume whose space and I/O are reported
    rss_window_s: 600         # the leak detector's window (slope of RSS over it)
    collectors: [hardware, gpu, jetson, network]
    device: gate-01           # the device label of EMF lines and bench pushes (default: host)
    targets:
      fps: 25                 # per stream: the fps alert fires below it
      p99_latency_s: 0.1      # end to end: the latency alert fires above it

>>> config = load_metrics_config(overrides=["port=0", "targets.fps=12"])
>>> config.address, config.port, config.targets.fps
('127.0.0.1', 0, 12.0)
>>> load_metrics_config(overrides=["collectors=[hardware, sonar]"])
Traceback (most recent call last):
...
core.errors.ConfigError: collectors[1]: must be one of 'hardware', 'gpu', 'jetson', 'network', ...
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.config import at_least, checked, in_range, load, positive, validate

__all__ = ["COLLECTORS", "MetricsConfig", "Targets", "load_metrics_config"]

CollectorName = Literal["hardware", "gpu", "jetson", "network"]
COLLECTORS: tuple[CollectorName, ...] = ("hardware", "gpu", "jetson", "network")


def _address(value: Any) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if value != "localhost":
            return f"must be an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost, got {value!r}"
    return None


@dataclass(frozen=True)
class Targets:
    """What the device is meant to achieve, exported as ``edgeloop_target_*`` gauges so that one
    set of alert rules serves a fleet whose devices have different budgets."""

    fps: float | None = checked(None, positive)
    """Frames per second each stream must keep (None: no fps alert for this device)."""
    p99_latency_s: float | None = checked(None, positive)
    """End-to-end p99 latency budget in seconds (None: no latency alert)."""

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class MetricsConfig:
    """Where the exporter listens and what the sampler collects."""

    address: str = checked("127.0.0.1", _address)
    port: int = checked(9464, in_range(0, 65535))
    interval_s: float = checked(1.0, at_least(0.05))
    data_path: Path = Path(".")
    rss_window_s: float = checked(600.0, at_least(10.0))
    collectors: tuple[CollectorName, ...] = COLLECTORS
    device: str | None = None
    targets: Targets = field(default_factory=Targets)

    def __post_init__(self) -> None:
        validate(self)


def load_metrics_config(path: Path | None = None, overrides: Sequence[str] = ()) -> MetricsConfig:
    """Defaults, then the YAML file ``path``, then ``key=value`` overrides."""
    return load(MetricsConfig, path, overrides)
