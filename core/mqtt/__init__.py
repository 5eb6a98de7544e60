"""MQTT: the publisher that drains the outbox to a broker (:mod:`core.mqtt.publisher`), its
configuration (:mod:`core.mqtt.config`), AWS IoT Core's limits (:mod:`core.mqtt.limits`), the
batch wire format (:mod:`core.mqtt.batch`) and the command subscription
(:mod:`core.mqtt.commands`). Needs the ``cloud`` extra (paho-mqtt 2.x) except for the limits,
config and batch modules, which are stdlib only."""

from __future__ import annotations

from core.mqtt.batch import decode_batch, encode_batch
from core.mqtt.commands import CommandDispatcher, ConfigUpdate, ModelUpdate
from core.mqtt.config import BackoffConfig, BatchConfig, MqttConfig, TlsConfig
from core.mqtt.limits import (
    validate_client_id,
    validate_payload,
    validate_publish,
    validate_qos,
    validate_topic,
)

__all__ = [
    "BackoffConfig",
    "BatchConfig",
    "CommandDispatcher",
    "ConfigUpdate",
    "ModelUpdate",
    "MqttConfig",
    "TlsConfig",
    "decode_batch",
    "encode_batch",
    "validate_client_id",
    "validate_payload",
    "validate_publish",
    "validate_qos",
    "validate_topic",
]
