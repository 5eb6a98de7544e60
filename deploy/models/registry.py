"""The model registry: versions of each model, their manifests, and stage pointers.

One layout, in an S3 bucket (``s3://BUCKET/PREFIX``) or a local folder (``file://DIR``, for
labs and tests)::

    models/{name}/{version}/model.onnx
    models/{name}/{version}/golden.npz
    models/{name}/{version}/manifest.json     written last: a version exists once it has one
    models/{name}/stages/{stage}.json         {"version", "sha256", "promoted"}

Publishing is idempotent: the same version with the same bytes again is a no-op, the same
version with other bytes is refused (:class:`RegistryConflict`), since a device that has
version 1.2.0 must be able to trust that 1.2.0 is one thing. The manifest goes last, so a
publish cut short (a full disk, a kill) leaves files no listing shows, and the next publish
of that version writes them again. Stages are ``dev``, ``staging`` and ``prod``: a pointer
object per stage names the version it serves, and only a published version can be promoted.
"""

from __future__ import annotations

import abc
import datetime
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.cache import atomic_write_bytes
from core.errors import EdgeloopError, ModelError
from core.models.manifest import (
    GOLDEN_FRAMES,
    Manifest,
    check_version,
    evaluate_model,
    golden_set,
    inspect_model,
)

__all__ = [
    "STAGES",
    "LocalStore",
    "Published",
    "Registry",
    "RegistryConflict",
    "RegistryError",
    "S3Store",
    "Store",
    "open_registry",
]

STAGES = ("dev", "staging", "prod")
MODEL_FILE = "model.onnx"
GOLDEN_FILE = "golden.npz"
MANIFEST_FILE = "manifest.json"


class RegistryError(EdgeloopError):
    """The registry cannot be used as asked: unreachable, a wrong URL, an unknown version."""


class RegistryConflict(RegistryError):
    """A version that exists with other content: publish a new version instead."""


class Store(abc.ABC):
    """Where the registry's objects live: keys are ``/``-separated paths."""

    url: str

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, None when there is none."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write the object whole (a reader sees the old one or the new one)."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``."""


class LocalStore(Store):
    """A folder (``file://DIR``): objects are files, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"{self.url}: cannot read {key}: {exc.strerror or exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        try:
            atomic_write_bytes(self._path(key), data)
        except OSError as exc:  # a full disk, a read-only folder
            raise RegistryError(f"{self.url}: cannot write {key}: {exc.strerror or exc}") from exc

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith("."):  # no half-written temporaries
                yield path.relative_to(self.root).as_posix()


class S3Store(Store):
    """An S3 bucket and prefix (``s3://BUCKET/PREFIX``), through boto3 (credentials and
    endpoint from the standard chain: ``AWS_ENDPOINT_URL`` reaches moto or MinIO)."""

    def __init__(self, bucket: str, prefix: str, client: Any | None = None) -> None:
        if client is None:
            import boto3  # noqa: PLC0415 - optional (the cloud extra)

            client = boto3.client("s3")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, what: str, exc: Exception) -> RegistryError:
        return RegistryError(f"{self.url}: cannot {what}: {exc}")

    def get(self, key: str) -> bytes | None:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._fail(f"read {key}", exc) from exc
        data: bytes = reply["Body"].read()
        return data

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._fail(f"write {key}", exc) from exc

    def list(self, prefix: str) -> Iterator[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    yield str(item["Key"])[start:]
        except Exception as exc:
            raise self._fail(f"list {prefix}", exc) from exc


def _code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None


def open_registry(url: str, *, client: Any | None = None) -> Registry:
    """The registry at ``url``: ``file://DIR`` (created if missing) or ``s3://BUCKET/PREFIX``;
    :class:`RegistryError` for any other."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        root = Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path)
        return Registry(LocalStore(root.expanduser()))
    if parsed.scheme == "s3" and parsed.netloc:
        return Registry(S3Store(parsed.netloc, parsed.path, client))
    raise RegistryError(f"--registry {url!r}: use s3://BUCKET/PREFIX or file://DIR")


@dataclass(frozen=True)
class Published:
    """What :meth:`Registry.publish` did: the manifest, and whether it was already there."""

    manifest: Manifest
    already: bool


class Registry:
    """Model versions in a :class:`Store` (layout in the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.url = store.url

    @staticmethod
    def _version_key(name: str, version: str, file: str) -> str:
        return f"models/{name}/{version}/{file}"

    def names(self) -> list[str]:
        """Every model with at least one published version."""
        found = {k.split("/")[1] for k in self.store.list("models/") if k.endswith(MANIFEST_FILE)}
        return sorted(found)

    def versions(self, name: str) -> list[str]:
        """``name``'s published versions, oldest first (by semantic version)."""
        found = []
        for key in self.store.list(f"models/{name}/"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == MANIFEST_FILE and parts[2] != "stages":
                found.append(parts[2])
        return sorted(found, key=check_version)

    def manifest(self, name: str, version: str) -> Manifest:
        """The manifest of a published version; :class:`RegistryError` when there is none."""
        key = self._version_key(name, version, MANIFEST_FILE)
        data = self.store.get(key)
        if data is None:
            known = ", ".join(self.versions(name)) or "none"
            raise RegistryError(
                f"{self.url}: {name} {version} is not published (versions: {known})"
            )
        return Manifest.from_json(data, f"{self.url}/{key}")

    def model_bytes(self, name: str, version: str) -> bytes:
        """The model file of a published version, checked against its manifest's digest."""
        manifest = self.manifest(name, version)
        data = self.store.get(self._version_key(name, version, MODEL_FILE))
        if data is None or hashlib.sha256(data).hexdigest() != manifest.sha256:
            raise ModelError(
                f"{self.url}: {name} {version}'s model file is missing or does not match its "
                f"manifest's sha256 {manifest.sha256[:12]}"
            )
        return data

    def publish(
        self,
        model: Path,
        *,
        name: str,
        version: str,
        labels: str | None = None,
        source: dict[str, Any] | None = None,
        evaluate: int | None = None,
    ) -> Published:
        """Publish ``model`` as ``name`` ``version`` (see the module docstring); the model is
        loaded first, so a file the pipeline cannot use is refused before anything is written.
        ``evaluate``: score it on that many synthetic frames first (the manifest's
        ``evaluation``: :func:`core.models.manifest.evaluate_model`)."""
        _check_name(name)
        check_version(version)
        data = model.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        existing = self.store.get(self._version_key(name, version, MANIFEST_FILE))
        if existing is not None:
            old = Manifest.from_json(existing, f"{self.url}/models/{name}/{version}")
            if old.sha256 != digest:
                raise RegistryConflict(
                    f"{self.url}: {name} {version} is already published with other content "
                    f"(sha256 {old.sha256[:12]}, this file {digest[:12]}): publish a new version"
                )
            return Published(old, already=True)
        facts = inspect_model(model, labels)
        evaluation = evaluate_model(model, frames=evaluate, labels=labels) if evaluate else None
        golden = golden_set(model, labels)
        earlier = [v for v in self.versions(name) if check_version(v) < check_version(version)]
        manifest = Manifest(
            name=name,
            version=version,
            sha256=digest,
            size=len(data),
            format=facts.format,
            task=facts.task,
            input_size=facts.input_size,
            class_names=facts.class_names,
            created=_now(),
            parent=earlier[-1] if earlier else None,
            source=source or {"kind": "file", "path": str(model.resolve())},
            evaluation=evaluation,
            golden={
                "file": GOLDEN_FILE,
                "sha256": hashlib.sha256(golden).hexdigest(),
                "frames": GOLDEN_FRAMES,
            },
        )
        self.store.put(self._version_key(name, version, MODEL_FILE), data)
        self.store.put(self._version_key(name, version, GOLDEN_FILE), golden)
        self.store.put(self._version_key(name, version, MANIFEST_FILE), manifest.to_json())
        return Published(manifest, already=False)

    def promote(self, name: str, version: str, stage: str) -> dict[str, Any]:
        """Point ``stage`` at a published version; the pointer as written."""
        if stage not in STAGES:
            raise RegistryError(f"stage {stage!r}: choose from {', '.join(STAGES)}")
        manifest = self.manifest(name, version)
        pointer = {"version": version, "sha256": manifest.sha256, "promoted": _now()}
        data = (json.dumps(pointer, indent=2) + "\n").encode()
        self.store.put(f"models/{name}/stages/{stage}.json", data)
        return pointer

    def stages(self, name: str) -> dict[str, dict[str, Any]]:
        """Each stage's pointer for ``name`` (stages never promoted are left out)."""
        found = {}
        for stage in STAGES:
            data = self.store.get(f"models/{name}/stages/{stage}.json")
            if data is not None:
                try:
                    found[stage] = json.loads(data)
                except ValueError as exc:
                    raise RegistryError(
                        f"{self.url}: {name}'s {stage} pointer is not JSON"
                    ) from exc
        return found


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or os.sep in name or name == "stages":
        raise RegistryError(f"model name {name!r}: one path segment, not starting with '.'")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
