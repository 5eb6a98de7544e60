"""Where a model registry's objects live, for the registry that writes them
(:mod:`deploy.models.registry`) and the devices that read them (:mod:`core.models.download`):
an S3 bucket and prefix (``s3://BUCKET/PREFIX``) or a local folder (``file://DIR``, for labs
and tests), keys being ``/``-separated paths. The layout of the keys is here too, once::

    models/{name}/{version}/model.onnx
    models/{name}/{version}/golden.npz
    models/{name}/{version}/manifest.json     written last: a version exists once it has one
    models/{name}/stages/{stage}.json         {"version", "sha256", "promoted"}

Reads can start at an offset (:meth:`Store.read_from`), so a device resumes a download cut
short where it stopped rather than from the start.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.cache import atomic_write_bytes
from core.errors import EdgeloopError
from core.models.manifest import GOLDEN_FILE, Manifest

__all__ = [
    "GOLDEN_FILE",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "STAGES",
    "LocalStore",
    "RegistryConflict",
    "RegistryError",
    "S3Store",
    "Store",
    "open_store",
    "stage_key",
    "version_key",
    "write_version",
]

STAGES = ("dev", "staging", "prod")
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
CHUNK = 1 << 20
"""Bytes a ranged read returns at a time."""


def version_key(name: str, version: str, file: str) -> str:
    """The key of one file of a published version."""
    return f"models/{name}/{version}/{file}"


def stage_key(name: str, stage: str) -> str:
    """The key of a stage's pointer."""
    return f"models/{name}/stages/{stage}.json"


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

    @abc.abstractmethod
    def read_from(self, key: str, offset: int) -> Iterator[bytes]:
        """The object's bytes from ``offset`` on, in chunks; :class:`RegistryError` when
        there is no such object."""


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

    def read_from(self, key: str, offset: int) -> Iterator[bytes]:
        try:
            with self._path(key).open("rb") as f:
                f.seek(offset)
                while chunk := f.read(CHUNK):
                    yield chunk
        except OSError as exc:
            raise RegistryError(f"{self.url}: cannot read {key}: {exc.strerror or exc}") from exc

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

    def read_from(self, key: str, offset: int) -> Iterator[bytes]:
        try:
            reply = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={offset}-"
            )
            yield from reply["Body"].iter_chunks(CHUNK)
        except Exception as exc:
            raise self._fail(f"read {key} from byte {offset}", exc) from exc

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


def write_version(store: Store, manifest: Manifest, model: bytes, golden: bytes) -> None:
    """Write a version's three files, the manifest last: a version cut short is invisible."""
    name, version = manifest.name, manifest.version
    store.put(version_key(name, version, MODEL_FILE), model)
    store.put(version_key(name, version, GOLDEN_FILE), golden)
    store.put(version_key(name, version, MANIFEST_FILE), manifest.to_json())


def open_store(url: str, *, client: Any | None = None) -> Store:
    """The store at ``url``: ``file://DIR`` or ``s3://BUCKET/PREFIX``; :class:`RegistryError`
    for any other."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        root = Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path)
        return LocalStore(root.expanduser())
    if parsed.scheme == "s3" and parsed.netloc:
        return S3Store(parsed.netloc, parsed.path, client)
    raise RegistryError(f"registry {url!r}: use s3://BUCKET/PREFIX or file://DIR")
