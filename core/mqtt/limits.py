"""MQTT's and AWS IoT Core's limits, checked before anything is sent.

AWS IoT Core refuses (and disconnects a client for) a payload over 128 KB, a topic with more
than 7 slashes or over 256 bytes, a client id over 128 bytes, and QoS 2; a ``$`` topic is
reserved (``$aws/...``). A mosquitto in the lab accepts all of these, so a device tested only
against it would fail in the field: these checks make both behave like AWS.

>>> validate_topic("edgeloop/cam-01/results")
'edgeloop/cam-01/results'
>>> validate_topic("a/b/c/d/e/f/g/h/i")
Traceback (most recent call last):
...
core.errors.MqttLimitError: topic 'a/b/c/d/e/f/g/h/i' has 8 slashes; AWS IoT Core allows ...
>>> validate_qos(2)
Traceback (most recent call last):
...
core.errors.MqttLimitError: QoS 2 is not supported (AWS IoT Core takes QoS 0 or 1): ...
"""

from __future__ import annotations

import re

from core.errors import MqttLimitError

__all__ = [
    "MAX_CLIENT_ID_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_TOPIC_BYTES",
    "MAX_TOPIC_SLASHES",
    "validate_client_id",
    "validate_payload",
    "validate_publish",
    "validate_qos",
    "validate_thing",
    "validate_topic",
]

MAX_PAYLOAD_BYTES = 128 * 1024
MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
MAX_CLIENT_ID_BYTES = 128
_THING = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")


def validate_topic(topic: str, *, subscribe: bool = False) -> str:
    """``topic`` if it fits the limits; wildcards only where ``subscribe``."""
    size = len(topic.encode())
    if not topic or size > MAX_TOPIC_BYTES:
        raise MqttLimitError(
            f"topic {topic[:40]!r} is {size} bytes; it must be 1 to {MAX_TOPIC_BYTES}"
        )
    if topic.startswith("$"):
        raise MqttLimitError(
            f"topic {topic!r} starts with '$', which is reserved for the broker ($aws/..., "
            "$SYS/...): use an edgeloop/{thing}/... topic"
        )
    slashes = topic.count("/")
    if slashes > MAX_TOPIC_SLASHES:
        raise MqttLimitError(
            f"topic {topic!r} has {slashes} slashes; AWS IoT Core allows at most "
            f"{MAX_TOPIC_SLASHES}: shorten the topic"
        )
    if "\x00" in topic or (not subscribe and ("+" in topic or "#" in topic)):
        raise MqttLimitError(f"topic {topic!r} holds a wildcard or NUL; publish to a plain topic")
    return topic


def validate_qos(qos: int) -> int:
    """``qos`` if it is 0 or 1."""
    if qos not in (0, 1) or isinstance(qos, bool):
        raise MqttLimitError(
            f"QoS {qos} is not supported (AWS IoT Core takes QoS 0 or 1): use qos 1 for "
            "at-least-once"
        )
    return qos


def validate_client_id(client_id: str) -> str:
    """``client_id`` if it is 1 to 128 bytes of printable text."""
    size = len(client_id.encode())
    if not 1 <= size <= MAX_CLIENT_ID_BYTES or not client_id.isprintable():
        raise MqttLimitError(
            f"client id {client_id[:40]!r} is {size} bytes; it must be 1 to "
            f"{MAX_CLIENT_ID_BYTES} printable bytes (AWS IoT: usually the thing name)"
        )
    return client_id


def validate_thing(thing: str) -> str:
    """``thing`` if it is a valid AWS IoT thing name (it becomes a topic level)."""
    if not _THING.match(thing):
        raise MqttLimitError(
            f"thing name {thing!r} must be 1 to 128 of A-Z a-z 0-9 : _ - (no '/', '+', '#')"
        )
    return thing


def validate_payload(payload: bytes) -> bytes:
    """``payload`` if it is at most 128 KB."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MqttLimitError(
            f"payload of {len(payload)} bytes exceeds AWS IoT Core's {MAX_PAYLOAD_BYTES}-byte "
            "limit: batch fewer results or send large items by S3 reference"
        )
    return payload


def validate_publish(topic: str, payload: bytes, qos: int) -> None:
    """Every check a publish must pass, in one call."""
    validate_topic(topic)
    validate_qos(qos)
    validate_payload(payload)
