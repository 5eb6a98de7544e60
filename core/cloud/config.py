"""The cloud sync's typed configuration. As YAML::

    cloud:
      thing: gate-cam-01
      bucket: edgeloop-results
      table: edgeloop-index          # DynamoDB: partition key "thing" (S), sort key "sk" (S)
      region: eu-west-1
      endpoint_url: null             # e.g. http://127.0.0.1:5000 for moto or LocalStack
      batch: {max_records: 500, max_bytes: 4194304, max_delay_s: 10}
      backoff: {initial_s: 1, max_s: 300}

Credentials come from boto3's standard chain (environment, shared files, instance or container
role; on Greengrass the token exchange service's container credentials), never from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config import checked, in_range, positive, validate
from core.errors import ConfigError, MqttLimitError
from core.mqtt.config import BackoffConfig
from core.mqtt.limits import validate_thing
from core.outbox.config import RateCap

__all__ = ["CloudBatchConfig", "CloudSyncConfig"]


@dataclass(frozen=True)
class CloudBatchConfig:
    """A JSON Lines batch goes when it holds ``max_records`` results, ``max_bytes`` of JSON, or
    its oldest result waited ``max_delay_s``."""

    max_records: int = checked(500, in_range(1, 100_000))
    max_bytes: int = checked(4 * 1024 * 1024, in_range(1024, 1 << 30))
    max_delay_s: float = checked(10.0, positive)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class CloudSyncConfig:
    """Where batches and images go (the YAML form is in the module docstring)."""

    thing: str = "edgeloop-dev"
    bucket: str = "edgeloop-results"
    table: str = "edgeloop-index"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    batch: CloudBatchConfig = field(default_factory=CloudBatchConfig)
    rate: RateCap = field(default_factory=lambda: RateCap(publishes_per_s=10.0))
    backoff: BackoffConfig = field(default_factory=lambda: BackoffConfig(1.0, 300.0))
    poll_s: float = checked(0.5, positive)
    timeout_s: float = checked(10.0, positive)
    """Connect and read timeout of each AWS call."""

    def __post_init__(self) -> None:
        validate(self)
        try:
            validate_thing(self.thing)
        except MqttLimitError as exc:
            raise ConfigError(str(exc)) from None
