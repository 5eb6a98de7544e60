"""The metrics side channel as one object: collectors chosen by the config, the sampler thread,
build info, targets, and the ``/metrics`` endpoint -- what a device process starts beside its
pipeline, on the same registry::

    registry = MetricsRegistry()
    with MetricsService(load_metrics_config(), registry):
        Pipeline(config, registry=registry).run()

=====================================  =====  ==============================================
name                                   type   labels / meaning
=====================================  =====  ==============================================
``edgeloop_build_info``                gauge  1; ``version`` (wheel), ``commit`` (git)
``edgeloop_target_fps``                gauge  the config's fps target per stream
``edgeloop_target_p99_latency_seconds`` gauge the config's end-to-end p99 budget
=====================================  =====  ==============================================
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from core.metrics.collect import Collector, Sampler
from core.metrics.config import MetricsConfig
from core.metrics.exporter import MetricsServer, Route
from core.metrics.gpu import GpuCollector
from core.metrics.hardware import HardwareCollector
from core.metrics.jetson import TegrastatsCollector
from core.metrics.network import NetworkCollector
from core.metrics.registry import MetricsRegistry

__all__ = ["MetricsService", "build_collectors", "edgeloop_version", "git_commit", "record_info"]

COMMIT_ENV = "EDGELOOP_GIT_COMMIT"
"""Set by the wheel build or the Greengrass recipe, where no checkout is there to ask."""


def git_commit() -> str:
    """The commit this code came from: ``$EDGELOOP_GIT_COMMIT``, else the checkout's, else
    ``unknown``."""
    commit = os.environ.get(COMMIT_ENV)
    if commit:
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def edgeloop_version() -> str:
    """The installed edgeloop wheel's version (``unknown`` when run from a bare checkout)."""
    try:
        return metadata.version("edgeloop")
    except metadata.PackageNotFoundError:
        return "unknown"


def record_info(registry: MetricsRegistry, config: MetricsConfig) -> None:
    """Build info and the config's targets (a target left unset stays absent)."""
    registry.gauge("edgeloop_build_info", "Always 1: the build", ("version", "commit")).labels(
        version=edgeloop_version(), commit=git_commit()
    ).set(1)
    if config.targets.fps is not None:
        registry.gauge("edgeloop_target_fps", "Frames per second each stream must keep").set(
            config.targets.fps
        )
    if config.targets.p99_latency_s is not None:
        registry.gauge("edgeloop_target_p99_latency_seconds", "End-to-end p99 latency budget").set(
            config.targets.p99_latency_s
        )


def build_collectors(config: MetricsConfig, registry: MetricsRegistry) -> list[Collector]:
    """The collectors ``config.collectors`` names, each absent or not as this device has it."""
    made: list[Collector] = []
    for name in config.collectors:
        if name == "hardware":
            made.append(
                HardwareCollector(
                    registry, data_path=config.data_path, rss_window_s=config.rss_window_s
                )
            )
        elif name == "gpu":
            made.append(GpuCollector(registry))
        elif name == "jetson":
            made.append(TegrastatsCollector(registry, interval_s=config.interval_s))
        elif name == "network":
            made.append(NetworkCollector(registry))
    return made


class MetricsService:
    """Collectors, sampler and (``serve=True``) the HTTP endpoint on one registry, with
    ``routes``' pages beside ``/metrics``."""

    def __init__(
        self,
        config: MetricsConfig | None = None,
        registry: MetricsRegistry | None = None,
        *,
        serve: bool = True,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        self.config = config if config is not None else MetricsConfig()
        self.registry = registry if registry is not None else MetricsRegistry()
        record_info(self.registry, self.config)
        self.sampler = Sampler(
            self.registry, build_collectors(self.config, self.registry), self.config.interval_s
        )
        self.server: MetricsServer | None = None
        if serve:
            try:
                self.server = MetricsServer(
                    self.registry, self.config.address, self.config.port, routes
                )
            except Exception:
                self.sampler.stop()
                raise
        self.sampler.start()

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def close(self) -> None:
        self.sampler.stop()
        if self.server is not None:
            self.server.close()
            self.server = None

    def __enter__(self) -> MetricsService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
