"""Live configuration changes: one path for SIGHUP (the file read again), the ``config``
command (MQTT) and a Greengrass configuration update.

A change is a whole new :class:`~core.app.config.DeviceConfig`, validated like one at start.
Its keys that differ from the running config's must all be live ones (:data:`LIVE_KEYS`):
then they apply without a restart; otherwise nothing changes and the change is refused,
naming the keys (docs/device.md says which keys are live and why the others are not).

>>> from core.app.config import load_device_config
>>> running = load_device_config(overrides=["mqtt={transport: tcp}", "state_dir=/tmp/el"])
>>> changed_keys(running, with_overrides(running, ["pipeline.filter.score_threshold=0.6"]))
('pipeline.filter.score_threshold',)
>>> not_live(changed_keys(running, with_overrides(running, ["pipeline.model.batch_size=4"])))
('pipeline.model.batch_size',)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.app.config import DeviceConfig
from core.config import apply_overrides, from_mapping, to_mapping

__all__ = ["LIVE_KEYS", "ConfigChange", "changed_keys", "not_live", "with_overrides"]

LIVE_KEYS = (
    "pipeline.filter.score_threshold",
    "pipeline.filter.classes",
    "pipeline.filter.cooldown_s",
    "pipeline.filter.cooldown_iou",
    "pipeline.filter.transmission",
    "pipeline.filter.jpeg_quality",
    "pipeline.filter.crop_margin",
    "pipeline.rate",
    "logging.level",
    "health.interval_s",
)
"""What changes without a restart: the filter's rules (read per frame), the sources' pace
(read per frame), the log level and the health interval. Everything else sizes or opens
something (the model, rings, workers, connections, files) and takes a restart."""


@dataclass(frozen=True)
class ConfigChange:
    """What became of one proposed change (sent as a health event)."""

    origin: str
    """``sighup``, ``command`` or ``greengrass``."""
    result: str
    """``applied``, ``unchanged`` or ``refused``."""
    keys: tuple[str, ...] = ()
    """The keys that differ from the running config."""
    reason: str | None = None
    """Why it was refused."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "config",
            "origin": self.origin,
            "result": self.result,
            "keys": list(self.keys),
            "reason": self.reason,
        }


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flat(value, path + "."))
        else:
            flat[path] = value
    return flat


def changed_keys(running: DeviceConfig, proposed: DeviceConfig) -> tuple[str, ...]:
    """The dotted keys whose values differ (a list, such as ``sources``, is one value)."""
    old, new = _flat(to_mapping(running)), _flat(to_mapping(proposed))
    return tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


def not_live(keys: Sequence[str]) -> tuple[str, ...]:
    """The keys among ``keys`` that cannot change while running."""
    return tuple(k for k in keys if k not in LIVE_KEYS)


def with_overrides(running: DeviceConfig, overrides: Sequence[str]) -> DeviceConfig:
    """The running config with ``key.path=value`` overrides applied (the ``config``
    command's form), validated (:class:`~core.errors.ConfigError` naming the key)."""
    data = apply_overrides(to_mapping(running), overrides)
    return from_mapping(DeviceConfig, data)
