"""Commands from the cloud on ``edgeloop/{thing}/cmd/{name}``: typed, validated, dispatched.

Each command name maps to a schema (a frozen dataclass, validated by
:func:`core.config.from_mapping` like every config) and a handler. A payload that is not JSON,
fails its schema, or names no registered command is rejected: logged, counted
(``edgeloop_mqtt_commands_total{command, result}``), never run. Handlers run on the publisher's
network thread: they should hand work off (a queue, an event), not do it.

Built in here are the schemas; the handlers come from the process (the device app's):

* ``config``: ``{"overrides": ["pipeline.filter.score_threshold=0.6", ...]}`` -- the
  ``key.path=value`` form of :func:`core.config.apply_overrides`;
* ``model-update``: ``{"name", "version", "uri", "sha256"}`` -- version ``version`` of model
  ``name`` from the registry at ``uri`` (``s3://BUCKET/PREFIX`` or ``file://DIR``), whose
  model file must have the SHA-256 ``sha256`` (:mod:`core.app.models`);
* ``model-rollback``: ``{"reason": "..."}`` -- back to the version served before.

>>> dispatcher = CommandDispatcher("cam")
>>> seen = []
>>> dispatcher.register("model-update", ModelUpdate, seen.append)
>>> body = b'{"name": "det", "version": "2.0.0", "uri": "s3://m/reg", "sha256": "%s"}'
>>> dispatcher.dispatch("edgeloop/cam/cmd/model-update", body % (b"a" * 64))
'ok'
>>> seen[0].version
'2.0.0'
>>> dispatcher.dispatch("edgeloop/cam/cmd/reboot", b"{}")
'unknown'
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.config import apply_overrides, checked, from_mapping, validate
from core.errors import CommandError, ConfigError
from core.metrics.registry import MetricsRegistry

__all__ = ["CommandDispatcher", "ConfigUpdate", "ModelRollback", "ModelUpdate"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _overrides(value: tuple[str, ...]) -> str | None:
    try:
        apply_overrides({}, value)
    except ConfigError as exc:
        return str(exc)
    return None if value else "must name at least one key.path=value"


def _sha256(value: str) -> str | None:
    return None if re.fullmatch(r"[0-9a-f]{64}", value) else "must be 64 lower-case hex digits"


def _semver(value: str) -> str | None:
    from core.models.manifest import check_version  # noqa: PLC0415 - numpy, on demand

    try:
        check_version(value)
    except ValueError as exc:
        return str(exc)
    return None


def _registry(value: str) -> str | None:
    ok = re.fullmatch(r"(s3://[^/\s]+(/\S*)?|file:///?\S+)", value)
    return None if ok else "must be a registry: s3://BUCKET/PREFIX or file://DIR"


@dataclass(frozen=True)
class ConfigUpdate:
    """``config``: settings to change, as ``key.path=value`` overrides."""

    overrides: tuple[str, ...] = checked((), _overrides)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class ModelUpdate:
    """``model-update``: version ``version`` of ``name`` is in the registry at ``uri``; its
    model file has the digest ``sha256``."""

    name: str
    version: str = checked("", _semver)
    uri: str = checked("", _registry)
    sha256: str = checked("", _sha256)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class ModelRollback:
    """``model-rollback``: serve the version served before the current one again."""

    reason: str = ""

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class _Command(Generic[T]):
    schema: type[T]
    handler: Callable[[T], object]


class CommandDispatcher:
    """Command name -> (schema, handler) for one thing's ``cmd/#`` topics."""

    def __init__(self, thing: str, registry: MetricsRegistry | None = None) -> None:
        self.prefix = f"edgeloop/{thing}/cmd/"
        self.topic = self.prefix + "#"
        self._commands: dict[str, _Command[Any]] = {}
        registry = registry if registry is not None else MetricsRegistry()
        self._counter = registry.counter(
            "edgeloop_mqtt_commands_total",
            "Commands received, by command and result (ok, unknown, invalid, failed)",
            ("command", "result"),
        )

    def register(self, name: str, schema: type[T], handler: Callable[[T], object]) -> None:
        """Run ``handler(schema(...))`` for valid ``cmd/{name}`` messages."""
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,40}", name):
            raise CommandError(f"command name {name!r} must be lower-case letters, digits, '-'")
        self._commands[name] = _Command(schema, handler)

    def parse(self, topic: str, payload: bytes) -> tuple[str, Any]:
        """(name, validated command object); :class:`CommandError` if unknown or invalid."""
        if not topic.startswith(self.prefix):
            raise CommandError(f"topic {topic!r} is not under {self.prefix}")
        name = topic[len(self.prefix) :]
        command = self._commands.get(name)
        if command is None:
            known = ", ".join(sorted(self._commands)) or "none"
            raise CommandError(f"unknown command {name!r} (known: {known})")
        try:
            data = json.loads(payload or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"command {name!r}: payload is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise CommandError(f"command {name!r}: payload must be a JSON object")
        try:
            return name, from_mapping(command.schema, data)
        except (ConfigError, TypeError) as exc:
            raise CommandError(f"command {name!r}: {exc}") from None

    def dispatch(self, topic: str, payload: bytes) -> str:
        """Validate and run one message; returns the result label (``ok``, ``unknown``,
        ``invalid`` or ``failed``). Never raises: a bad command must not stop the publisher."""
        try:
            name, command = self.parse(topic, payload)
        except CommandError as exc:
            unknown = str(exc).startswith("unknown") or "not under" in str(exc)
            result = "unknown" if unknown else "invalid"
            label = "unknown" if unknown else topic[len(self.prefix) :]
            log.warning("rejected command on %s: %s", topic, exc)
            self._counter.labels(command=label, result=result).inc()
            return result
        try:
            self._commands[name].handler(command)
        except Exception:
            log.exception("command %s failed in its handler", name)
            self._counter.labels(command=name, result="failed").inc()
            return "failed"
        self._counter.labels(command=name, result="ok").inc()
        return "ok"
