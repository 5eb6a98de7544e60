"""The device application's one root configuration: every part of the edge loop in one YAML
file plus ``key.path=value`` overrides, validated before anything starts (errors name the key).

A complete file (every key optional but what a destination needs)::

    thing: gate-cam-01            # declared once: MQTT topics, S3 keys and metrics use it
    state_dir: /var/lib/edgeloop  # the spool, the crash file; mode 0700
    pipeline:                     # core.pipeline.PipelineConfig
      sources: [{kind: synthetic}]
      sink: {kind: file, path: results}   # beside the outbox (null: only the outbox)
    outbox: {max_bytes: 268435456}        # core.outbox.OutboxConfig; path: state_dir/outbox.db
    mqtt: {host: localhost, port: 1883, transport: tcp}   # core.mqtt.MqttConfig; absent: none
    cloud: {bucket: edgeloop-results, table: edgeloop-index}  # core.cloud.CloudSyncConfig
    metrics: {port: 9464}         # core.metrics.config.MetricsConfig; data_path: state_dir
    health: {interval_s: 60, stall_s: 30, exit_on_stall: false}
    models: {registry: s3://my-models/edgeloop, name: gate-detector, stage: prod, poll_s: 300,
             ab: {candidate: 1.3.0, fraction: 0.1, by: stream}}
    logging: {level: INFO, format: plain}   # plain | json (one JSON object a line)
    shutdown_timeout_s: 10        # SIGTERM to exit, draining the spool while the broker takes it

Results go through the outbox to each destination configured (``mqtt``, ``cloud``), so at least
one must be. ``thing`` is set once, at the root: ``mqtt.thing`` and ``cloud.thing`` are taken
from it (giving them too is an error).

>>> config = load_device_config(overrides=["mqtt={transport: tcp}", "state_dir=/tmp/el"])
>>> config.mqtt.thing, str(config.outbox.path), config.channels
('edgeloop-dev', '/tmp/el/outbox.db', ('mqtt',))
>>> load_device_config(overrides=["mqtt={transport: tcp}", "pipeline.rate=-1"])
Traceback (most recent call last):
...
core.errors.ConfigError: pipeline.rate: must be > 0, got -1.0
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.cloud.config import CloudSyncConfig
from core.config import (
    apply_overrides,
    at_least,
    checked,
    from_mapping,
    in_range,
    positive,
    read_yaml,
    to_mapping,
)
from core.errors import ConfigError
from core.metrics.config import MetricsConfig
from core.mqtt.config import MqttConfig
from core.outbox.config import OutboxConfig
from core.pipeline.config import PipelineConfig

__all__ = [
    "ABConfig",
    "DeviceConfig",
    "HealthConfig",
    "LoggingConfig",
    "ModelsConfig",
    "default_state_dir",
    "device_config_from",
    "load_device_config",
]

SYSTEM_STATE_DIR = Path("/var/lib/edgeloop")
OUTBOX_FILE = "outbox.db"


def default_state_dir() -> Path:
    """``/var/lib/edgeloop`` for root; else ``$XDG_STATE_HOME/edgeloop`` (``~/.local/state``
    when unset), where a user can write."""
    if os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edgeloop"


@dataclass(frozen=True)
class LoggingConfig:
    """Logs go to stderr: ``plain`` lines for a person, ``json`` (one object a line, with
    ``time``, ``level``, ``logger``, ``thread``, ``message``) for journald or a log shipper."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["plain", "json"] = "plain"


@dataclass(frozen=True)
class HealthConfig:
    """Health records on ``edgeloop/{thing}/health`` every ``interval_s`` (and at each change
    of state); a stream with no frame, or a worker stuck in one piece of work, for ``stall_s``
    makes the app ``stalled`` (``/healthz`` and ``/readyz`` 503); with ``exit_on_stall`` it
    then exits 1, for its supervisor (Greengrass, systemd) to restart it."""

    interval_s: float = checked(60.0, positive)
    stall_s: float = checked(30.0, positive)
    exit_on_stall: bool = False


@dataclass(frozen=True)
class ABConfig:
    """An A/B test on the device (:mod:`core.app.ab`): version ``candidate`` of
    ``models.name`` from ``models.registry`` serves ``fraction`` of the streams (``by:
    stream``) or of each stream's frames (``by: frame``) beside the serving model. Once each
    has served ``min_frames`` frames the two are compared every ``report_s``: the candidate
    loses where it is worse, significantly (p < 0.01), on its error rate by more than
    ``max_error_rate_increase``, on a class's detection rate by more than
    ``max_detection_drop`` of the serving model's, on its mean confidence by more than
    ``max_confidence_drop``, or on its p99 time per frame by more than
    ``models.max_latency_ratio`` times; else it wins. With ``auto_decide`` the winner serves
    alone (the candidate by a swap, on probation); without, the result is reported."""

    candidate: str
    fraction: float = checked(0.1, in_range(0.01, 0.99))
    by: Literal["stream", "frame"] = "stream"
    min_frames: int = checked(300, at_least(10))
    report_s: float = checked(30.0, positive)
    auto_decide: bool = False
    max_error_rate_increase: float = checked(0.01, in_range(0.0, 1.0))
    max_detection_drop: float = checked(0.2, in_range(0.0, 1.0))
    max_confidence_drop: float = checked(0.1, in_range(0.0, 1.0))


@dataclass(frozen=True)
class ModelsConfig:
    """Model updates on the device (:mod:`core.app.models`; docs/model-lifecycle.md).

    A ``model-update`` command names its registry; with ``registry``, ``name``, ``stage`` and
    ``poll_s`` the device also follows that stage's pointer, reading it every ``poll_s``. A
    candidate whose cost per frame is more than ``max_latency_ratio`` times the serving
    model's is refused. For ``watch_s`` after a swap the old model stays loaded and the new
    one on probation: more than ``max_error_rate`` of its frames failing, or its p99 time per
    frame going over ``max_latency_ratio`` times the old one's, or two crashes in a row with
    it, roll it back. ``keep`` versions stay on disk, and ``pinned`` ones are never
    deleted."""

    registry: str | None = None
    name: str | None = None
    stage: Literal["dev", "staging", "prod"] | None = None
    poll_s: float | None = None
    max_latency_ratio: float = checked(1.5, at_least(1.0))
    max_error_rate: float = checked(0.05, in_range(0.0, 1.0))
    watch_s: float = checked(60.0, positive)
    keep: int = checked(3, at_least(2))
    pinned: tuple[str, ...] = ()
    ab: ABConfig | None = None

    def __post_init__(self) -> None:
        if self.ab is not None:
            missing = [k for k in ("registry", "name") if getattr(self, k) is None]
            if missing:
                raise ConfigError(
                    f"ab: an A/B test takes its candidate from models.registry under "
                    f"models.name; set models.{', models.'.join(missing)}"
                )
        if self.poll_s is not None:
            if self.poll_s <= 0:
                raise ConfigError(f"poll_s: must be > 0, got {self.poll_s}")
            missing = [k for k in ("registry", "name", "stage") if getattr(self, k) is None]
            if missing:
                raise ConfigError(
                    f"poll_s: following a stage needs models.{', models.'.join(missing)}"
                )


@dataclass(frozen=True)
class DeviceConfig:
    """The whole device (the YAML form is in the module docstring)."""

    thing: str = "edgeloop-dev"
    state_dir: Path = field(default_factory=default_state_dir)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    mqtt: MqttConfig | None = None
    cloud: CloudSyncConfig | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    shutdown_timeout_s: float = checked(10.0, positive)

    def __post_init__(self) -> None:
        if self.mqtt is None and self.cloud is None:
            raise ConfigError(
                "mqtt, cloud: no destination; results go through the outbox to MQTT, the "
                "cloud sync or both: configure at least one"
            )

    @property
    def channels(self) -> tuple[str, ...]:
        """The outbox channels results are spooled on: one per destination configured."""
        return tuple(
            name
            for name, section in (("mqtt", self.mqtt), ("s3", self.cloud))
            if section is not None
        )


def _thing_once(data: dict[str, Any]) -> None:
    """Give ``mqtt`` and ``cloud`` the root's ``thing``; either naming its own is an error."""
    thing = data.get("thing", DeviceConfig.thing)
    for section in ("mqtt", "cloud"):
        part = data.get(section)
        if not isinstance(part, Mapping):
            continue
        if "thing" in part:
            raise ConfigError(
                f"{section}.thing: declare the thing once, at the root (thing: {part['thing']})"
            )
        data[section] = {**part, "thing": thing}


def _under_state_dir(data: dict[str, Any]) -> None:
    """The outbox's spool and the metrics' disk figures default to the state dir."""
    state = data.get("state_dir")
    state_dir = Path(state) if isinstance(state, (str, Path)) else default_state_dir()
    outbox = data.get("outbox")
    outbox = dict(outbox) if isinstance(outbox, Mapping) else {}
    outbox.setdefault("path", str(state_dir / OUTBOX_FILE))
    data["outbox"] = outbox
    metrics = data.get("metrics")
    metrics = dict(metrics) if isinstance(metrics, Mapping) else {}
    metrics.setdefault("data_path", str(state_dir))
    data["metrics"] = metrics


def load_device_config(
    path: str | Path | None = None, overrides: Sequence[str] = ()
) -> DeviceConfig:
    """Defaults, then the YAML file ``path``, then ``key.path=value`` overrides; validated into
    a :class:`DeviceConfig`, or :class:`~core.errors.ConfigError` naming the key at fault."""
    return device_config_from(read_yaml(Path(path)) if path is not None else {}, overrides)


def device_config_from(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> DeviceConfig:
    """:func:`load_device_config` from data already read (a Greengrass component's
    configuration, say)."""
    data = apply_overrides(dict(data), overrides)
    _thing_once(data)
    _under_state_dir(data)
    config = from_mapping(DeviceConfig, data)
    check_files(config)
    return config


def check_files(config: DeviceConfig) -> None:
    """Every file the config names for reading is there (the TLS files: a device that cannot
    read them would only fail when it first connects); ``greengrass-ipc`` only where a nucleus
    started the process."""
    if config.mqtt is None:
        return
    if config.mqtt.transport == "greengrass-ipc":
        from core.greengrass.ipc import SOCKET_ENV, TOKEN_ENV, under_greengrass  # noqa: PLC0415

        if not under_greengrass():
            raise ConfigError(
                f"mqtt.transport: greengrass-ipc publishes through a Greengrass nucleus, but "
                f"{SOCKET_ENV} and {TOKEN_ENV} are not set (run it as a component, or use tls)"
            )
        return
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(config.mqtt.tls, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"mqtt.tls.{name}: {path} is not a file")


def resolved(config: DeviceConfig) -> dict[str, Any]:
    """The config as plain data, for ``check`` (key files by path, never their contents: the
    config holds no secrets itself; AWS credentials come from boto3's chain)."""
    data: dict[str, Any] = to_mapping(config)
    data["channels"] = list(config.channels)
    return data
