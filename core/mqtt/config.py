"""The MQTT publisher's typed configuration.

As YAML (AWS IoT Core; for a local mosquitto without TLS: ``transport: tcp``, ``port: 1883``)::

    mqtt:
      thing: gate-cam-01                 # the AWS IoT thing name: topics edgeloop/{thing}/...
      host: abc123-ats.iot.eu-west-1.amazonaws.com
      port: 8883
      transport: tls                     # tls (mutual TLS) | tcp (plain) | greengrass-ipc
      tls:
        ca_file: /greengrass/v2/AmazonRootCA1.pem
        cert_file: /greengrass/v2/thingCert.crt
        key_file: /greengrass/v2/privKey.key
      protocol: auto                     # auto (MQTT 5, then 3.1.1) | "5" | "3.1.1"
      batch: {max_records: 50, max_bytes: 65536, max_delay_s: 1.0}
      rate: {publishes_per_s: 100}
      backoff: {initial_s: 0.5, max_s: 60}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.config import at_least, checked, in_range, positive, validate
from core.errors import ConfigError, MqttLimitError
from core.mqtt.limits import MAX_PAYLOAD_BYTES, validate_client_id, validate_thing
from core.outbox.config import RateCap

__all__ = ["BackoffConfig", "BatchConfig", "MqttConfig", "TlsConfig"]


@dataclass(frozen=True)
class TlsConfig:
    """Mutual TLS: the CA that signed the broker's certificate, this device's certificate and
    key. The broker's hostname is always verified against its certificate."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class BatchConfig:
    """A batch goes when it holds ``max_records`` results, or ``max_bytes`` of JSON (before
    compression), or its oldest result waited ``max_delay_s``. Compressed, a batch always
    stays under AWS IoT Core's 128 KB."""

    max_records: int = checked(50, in_range(1, 10_000))
    max_bytes: int = checked(64 * 1024, in_range(1024, MAX_PAYLOAD_BYTES))
    max_delay_s: float = checked(1.0, positive)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class BackoffConfig:
    """Reconnect delays: ``initial_s`` doubling up to ``max_s``, each with "equal jitter"
    (half fixed, half random) so a fleet that lost its broker does not reconnect in step."""

    initial_s: float = checked(0.5, positive)
    max_s: float = checked(60.0, positive)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class MqttConfig:
    """Where and how to publish (the YAML form is in the module docstring)."""

    thing: str = "edgeloop-dev"
    host: str = "localhost"
    port: int = checked(8883, in_range(1, 65535))
    transport: Literal["tls", "tcp", "greengrass-ipc"] = "tls"
    """``tls`` (mutual TLS), ``tcp`` (a plain local broker) or ``greengrass-ipc`` (the
    Greengrass nucleus publishes for the component, with its own connection and certificate:
    ``host``, ``port``, ``tls`` and ``protocol`` are not used)."""
    tls: TlsConfig = field(default_factory=TlsConfig)
    client_id: str | None = None
    """Default: the thing name (AWS IoT policies usually require it)."""
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    keepalive_s: int = checked(60, in_range(5, 1200))
    qos: int = checked(1, in_range(0, 1))
    """QoS of result batches (0 only for results whose loss is acceptable)."""
    max_inflight: int = checked(20, in_range(1, 1000))
    """Batches published and not yet acknowledged (mosquitto's default limit is 20)."""
    connect_timeout_s: float = checked(10.0, positive)
    batch: BatchConfig = field(default_factory=BatchConfig)
    rate: RateCap = field(default_factory=RateCap)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    poll_s: float = checked(0.05, at_least(0.001))
    """How often an idle publisher looks at the outbox for new records."""

    def __post_init__(self) -> None:
        validate(self)
        try:
            validate_thing(self.thing)
            validate_client_id(self.effective_client_id)
        except MqttLimitError as exc:
            raise ConfigError(str(exc)) from None
        if self.transport == "tls":
            missing = [
                name
                for name in ("ca_file", "cert_file", "key_file")
                if getattr(self.tls, name) is None
            ]
            if missing:
                raise ConfigError(
                    f"tls: {', '.join(missing)} missing; mutual TLS needs the CA, the device "
                    "certificate and its key (or set transport: tcp for a plain local broker)"
                )

    @property
    def effective_client_id(self) -> str:
        return self.client_id if self.client_id is not None else self.thing

    def topic(self, kind: str) -> str:
        """``edgeloop/{thing}/{kind}`` (results, metrics, health)."""
        return f"edgeloop/{self.thing}/{kind}"
