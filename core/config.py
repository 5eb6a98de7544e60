"""One loader for every typed configuration: YAML file + ``key.path=value`` overrides -> frozen
dataclasses, validated before anything starts, errors that point at the key.

Schemas are plain dataclasses (fields with defaults that run on this machine, types from the
annotations); a field may carry ``metadata={"check": fn}`` where ``fn(value)`` returns an error
message or None. Supported field types: ``bool``, ``int``, ``float``, ``str``, ``Path``,
``Literal[...]``, ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]`` and nested
dataclasses.

>>> import dataclasses
>>> quality = dataclasses.field(default=85, metadata={"check": in_range(1, 100)})
>>> Jpeg = dataclasses.make_dataclass("Jpeg", [("quality", int, quality)], frozen=True)
>>> from_mapping(Jpeg, {"quality": 90})
Jpeg(quality=90)
>>> from_mapping(Jpeg, {"quality": 900})
Traceback (most recent call last):
...
core.errors.ConfigError: quality: must be between 1 and 100, got 900
>>> from_mapping(Jpeg, {"qualty": 90})
Traceback (most recent call last):
...
core.errors.ConfigError: qualty: unknown key; known keys here are quality
>>> apply_overrides({}, ["jpeg.quality=70"])
{'jpeg': {'quality': 70}}
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core.errors import ConfigError

T = TypeVar("T")
Check = Callable[[Any], "str | None"]


def checked(default: T, check: Check) -> T:
    """A dataclass field with a default and a ``check``, typed as its default for mypy:
    ``timeout_s: float = checked(5.0, positive)``."""
    field: T = dataclasses.field(default=default, metadata={"check": check})
    return field


def in_range(low: float, high: float) -> Check:
    """A ``check`` for numbers in ``[low, high]``."""

    def check(value: Any) -> str | None:
        if not low <= value <= high:
            return f"must be between {low} and {high}, got {value}"
        return None

    return check


def positive(value: Any) -> str | None:
    """A ``check`` for numbers > 0."""
    return None if value > 0 else f"must be > 0, got {value}"


def at_least(low: float) -> Check:
    """A ``check`` for numbers >= ``low``."""

    def check(value: Any) -> str | None:
        return None if value >= low else f"must be >= {low}, got {value}"

    return check


def _fail(path: str, message: str) -> ConfigError:
    return ConfigError(f"{path or '<root>'}: {message}")


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1]) if errors else _fail(path, "no type matches")
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise _fail(path, f"must be one of {allowed}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if value is None:
            return tp()
        if not isinstance(value, Mapping):
            raise _fail(path, f"must be a mapping, got {type(value).__name__}")
        return from_mapping(tp, value, path)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise _fail(path, f"must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _fail(path, f"must have {len(args)} items, got {len(value)}")
            items = [
                _convert(a, v, f"{path}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            ]
        else:
            item_type = args[0] if args else Any
            items = [_convert(item_type, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return _scalar(tp, value, path)


def _scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(path, f"must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _fail(path, f"must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _fail(path, f"must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(path, f"must be a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _fail(path, f"must be a path, got {value!r}")
    raise _fail(path, f"unsupported field type {tp!r}")


def from_mapping(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, validating every key (unknown keys are errors)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise _fail(
            f"{where}{unknown[0]}",
            f"unknown key; known keys here are {', '.join(sorted(fields))}",
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else name
        converted = _convert(hints[name], value, key)
        check = fields[name].metadata.get("check")
        if check is not None and converted is not None:
            problem = check(converted)
            if problem:
                raise _fail(key, problem)
        values[name] = converted
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError) and not path:
            raise
        # A nested dataclass's own check ("uri: ...") gets the path down to it ("sources[0].uri").
        message = str(exc)
        field_name = message.partition(":")[0]
        if isinstance(exc, ConfigError) and field_name in fields:
            raise ConfigError(f"{path}.{message}") from exc
        raise _fail(path, message) from exc


def _parse_scalar(text: str) -> Any:
    """An override's value, read as YAML (so ``0.5``, ``true``, ``[1, 2]`` and ``null`` work)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` overrides into a nested dict (a copy is not made)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key.path=value")
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part} is not a section")
            node = child
        node[parts[-1]] = _parse_scalar(raw.strip())
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file as a dict; a missing or malformed file is a ConfigError naming it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load(cls: type[T], path: Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults, then the YAML file, then the overrides; validated into ``cls``."""
    data = read_yaml(path) if path is not None else {}
    return from_mapping(cls, apply_overrides(data, overrides))


def to_mapping(config: Any) -> Any:
    """A config back to plain data (for reports and ``--print-config``)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_mapping(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_mapping(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


def validate(config: Any) -> None:
    """Run the ``check`` of every field of the dataclass instance ``config``.

    :func:`from_mapping` checks values on the way in; a schema that calls this from its
    ``__post_init__`` gets the same checks when code builds it directly
    (``SourceConfig(timeout_s=0)``), with the same ``key: problem`` message.
    """
    for item in dataclasses.fields(config):
        check = item.metadata.get("check")
        value = getattr(config, item.name)
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{item.name}: {problem}")
