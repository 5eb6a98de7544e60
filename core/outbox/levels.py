"""How each transmission level travels: its MQTT QoS and its spool priority.

The pipeline's filter (:mod:`core.filter`) decides per frame what is worth sending -- the
``metadata`` only, ``crops`` of the detections, or the whole ``frame``. This mapping decides
how hard the device tries to deliver each: the QoS of the MQTT batches its results go in (1:
kept until the broker's PUBACK; 0: sent once, cheaper, lost if the link drops) and its
priority in a full spool (higher is kept longer; the JPEGs themselves are 0 and go first).

Why config, not code: a fleet on a metered uplink sends ``frame`` results at QoS 0 and lets
them go first; a fleet auditing every detection keeps QoS 1 throughout. As YAML::

    outbox_sink:
      levels:
        metadata: {qos: 1, priority: 3}
        crops:    {qos: 1, priority: 2}
        frame:    {qos: 0, priority: 1}

>>> TransmissionLevels().policy("frame")
LevelPolicy(qos=1, priority=2)
>>> LevelPolicy(qos=2)
Traceback (most recent call last):
...
core.errors.ConfigError: qos: must be between 0 and 1, got 2
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config import at_least, checked, in_range, validate

__all__ = ["LEVELS", "LevelPolicy", "TransmissionLevels"]

LEVELS = ("metadata", "crops", "frame")
"""The filter's transmission levels, from the least to the most sent."""


@dataclass(frozen=True)
class LevelPolicy:
    """One level's MQTT QoS (0 or 1: AWS IoT Core has no QoS 2) and spool priority (>= 1;
    0 is the images')."""

    qos: int = checked(1, in_range(0, 1))
    priority: int = checked(2, at_least(1))

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class TransmissionLevels:
    """The policy of each level (defaults: QoS 1 for all; metadata kept longest)."""

    metadata: LevelPolicy = field(default_factory=lambda: LevelPolicy(qos=1, priority=3))
    crops: LevelPolicy = field(default_factory=lambda: LevelPolicy(qos=1, priority=2))
    frame: LevelPolicy = field(default_factory=lambda: LevelPolicy(qos=1, priority=2))

    def policy(self, level: str) -> LevelPolicy:
        """The policy of ``level``; an unknown level travels as ``metadata`` (the safest)."""
        if level == "crops":
            return self.crops
        if level == "frame":
            return self.frame
        return self.metadata
