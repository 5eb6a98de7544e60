"""The device application: one config (:mod:`core.app.config`), the whole edge loop
(:mod:`core.app.app`), run by ``python -m core run`` or ``edgeloop run`` (:mod:`core.app.cli`)."""

from __future__ import annotations

from core.app.config import DeviceConfig, LoggingConfig, load_device_config

__all__ = ["DeviceConfig", "LoggingConfig", "load_device_config"]
