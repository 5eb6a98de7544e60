"""The model versions a device holds: downloaded from a registry, checked, kept, pruned.

Layout, under the state dir's ``models/``::

    {name}/{version}/model.onnx, golden.npz, manifest.json    a version, whole and checked
    {name}/.{version}.partial/                                 a download under way

A download (:meth:`ModelLibrary.download`) reads the manifest first and refuses, before any
byte of the model, a digest other than the one asked for and a disk without room for the
file. It writes into the ``.partial`` folder, resuming from what an earlier attempt left (a
``kill -9``, a lost connection), checks the model's size and SHA-256 and the golden set's
SHA-256, and renames the folder into place last: a version folder is whole or absent, so
nothing half-written is ever loaded. A corrupt download is deleted, with the cause.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from core.cache import atomic_write_bytes
from core.errors import ModelError
from core.models.manifest import Manifest, check_version
from core.models.store import GOLDEN_FILE, MANIFEST_FILE, MODEL_FILE, Store, version_key

__all__ = ["FREE_MARGIN", "Downloaded", "Installed", "ModelLibrary"]

FREE_MARGIN = 16 << 20
"""Bytes a download leaves free on the disk beyond the model itself (the spool and the logs
share it)."""
MODE = 0o700


@dataclass(frozen=True)
class Installed:
    """A version the device holds, whole and checked."""

    path: Path
    """Its folder."""
    manifest: Manifest

    @property
    def model(self) -> Path:
        return self.path / MODEL_FILE

    def golden(self) -> bytes | None:
        """The golden set's bytes (None when the version was published without one)."""
        file = self.path / GOLDEN_FILE
        return file.read_bytes() if file.is_file() else None


@dataclass(frozen=True)
class Downloaded:
    """What :meth:`ModelLibrary.download` did."""

    installed: Installed
    bytes_read: int
    """Bytes of the model read from the registry by this call (0: it was already here)."""
    resumed_at: int
    """Where the model's download resumed (0: from the start)."""


class ModelLibrary:
    """The versions under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str, version: str) -> Path:
        return self.root / name / version

    def get(self, name: str, version: str) -> Installed | None:
        """``name`` ``version`` if the device holds it whole (its manifest is written last)."""
        folder = self.folder(name, version)
        manifest_file = folder / MANIFEST_FILE
        if not manifest_file.is_file() or not (folder / MODEL_FILE).is_file():
            return None
        manifest = Manifest.from_json(manifest_file.read_bytes(), str(manifest_file))
        return Installed(folder, manifest)

    def versions(self, name: str) -> list[str]:
        """The versions of ``name`` held whole, oldest first (by semantic version)."""
        base = self.root / name
        if not base.is_dir():
            return []
        found = [
            p.name
            for p in base.iterdir()
            if not p.name.startswith(".") and (p / MANIFEST_FILE).is_file()
        ]
        return sorted(found, key=_version_order)

    def download(
        self,
        store: Store,
        name: str,
        version: str,
        *,
        sha256: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Downloaded:
        """``name`` ``version`` from ``store`` into the library (see the module docstring);
        ``sha256``: the digest the model must have (a command's); ``progress(done, total)``
        after each chunk. :class:`ModelError` naming the cause; the library holds the whole
        version or, for a download cut short, a partial one to resume from."""
        where = f"{name} {version}"
        manifest_data = store.get(version_key(name, version, MANIFEST_FILE))
        if manifest_data is None:
            raise ModelError(f"{where}: not published at {store.url}")
        manifest = Manifest.from_json(manifest_data, f"{store.url}/{name}/{version}")
        if (manifest.name, manifest.version) != (name, version):
            raise ModelError(
                f"{where}: the registry's manifest describes {manifest.name} {manifest.version}"
            )
        if sha256 is not None and manifest.sha256 != sha256:
            raise ModelError(
                f"{where}: wrong digest: asked for sha256 {sha256[:12]}, the registry's manifest "
                f"says {manifest.sha256[:12]}"
            )
        held = self.get(name, version)
        if held is not None and held.manifest.sha256 == manifest.sha256:
            return Downloaded(held, 0, 0)
        partial = self.root / name / f".{version}.partial"
        partial.mkdir(mode=MODE, parents=True, exist_ok=True)
        part = partial / MODEL_FILE
        have = part.stat().st_size if part.exists() else 0
        if have > manifest.size:
            part.unlink()
            have = 0
        self._check_room(partial, manifest.size - have, where)
        read = self._fetch_model(store, manifest, part, have, progress)
        golden = self._fetch_golden(store, manifest, partial)
        if golden is not None:
            _write(partial / GOLDEN_FILE, golden, where)
        _write(partial / MANIFEST_FILE, manifest_data, where)
        final = self.folder(name, version)
        if final.exists():  # another version's leftovers under this name: replaced whole
            shutil.rmtree(final)
        os.replace(partial, final)
        _fsync_dir(final.parent)
        return Downloaded(Installed(final, manifest), read, have)

    def _check_room(self, folder: Path, needed: int, where: str) -> None:
        free = shutil.disk_usage(folder).free
        if free < needed + FREE_MARGIN:
            raise ModelError(
                f"{where}: full disk: the download needs {_mb(needed)} (and {_mb(FREE_MARGIN)} "
                f"to spare), {folder.parent} has {_mb(free)} free"
            )

    def _fetch_model(
        self,
        store: Store,
        manifest: Manifest,
        part: Path,
        have: int,
        progress: Callable[[int, int], None] | None,
    ) -> int:
        """Append the model's bytes from ``have`` on to ``part``; check its size and digest
        (a mismatch deletes it: it would never become right by resuming)."""
        where = f"{manifest.name} {manifest.version}"
        digest = hashlib.sha256()
        if have:
            with part.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        read = 0
        key = version_key(manifest.name, manifest.version, MODEL_FILE)
        try:
            with part.open("ab") as f:
                if have < manifest.size:
                    for chunk in store.read_from(key, have):
                        f.write(chunk)
                        digest.update(chunk)
                        read += len(chunk)
                        if progress is not None:
                            progress(have + read, manifest.size)
                        if have + read > manifest.size:
                            break
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ModelError(
                    f"{where}: full disk while downloading, at {_mb(have + read)} of "
                    f"{_mb(manifest.size)} (kept to resume from)"
                ) from exc
            raise ModelError(f"{where}: cannot write {part}: {exc.strerror or exc}") from exc
        size = have + read
        if size != manifest.size or digest.hexdigest() != manifest.sha256:
            part.unlink(missing_ok=True)
            raise ModelError(
                f"{where}: corrupt download: {size} bytes, sha256 {digest.hexdigest()[:12]}; "
                f"the manifest says {manifest.size} bytes, sha256 {manifest.sha256[:12]} "
                "(deleted)"
            )
        return read

    def _fetch_golden(self, store: Store, manifest: Manifest, partial: Path) -> bytes | None:
        where = f"{manifest.name} {manifest.version}"
        if manifest.golden is None:
            return None
        data = store.get(version_key(manifest.name, manifest.version, GOLDEN_FILE))
        expected = manifest.golden.get("sha256")
        if data is None or hashlib.sha256(data).hexdigest() != expected:
            raise ModelError(
                f"{where}: the golden set is missing or does not match the manifest's sha256 "
                f"{str(expected)[:12]}"
            )
        return data

    def prune(self, name: str, keep: int, protect: Iterable[str] = ()) -> list[str]:
        """Delete all but the newest ``keep`` versions of ``name`` (by semantic version),
        never one in ``protect`` (the serving, previous and pinned ones); the versions
        deleted."""
        kept = set(protect)
        versions = self.versions(name)
        removed = []
        for version in versions[: max(0, len(versions) - keep)]:
            if version not in kept:
                shutil.rmtree(self.folder(name, version), ignore_errors=True)
                removed.append(version)
        return removed


def _version_order(version: str) -> tuple[int, int, int, str]:
    try:
        return check_version(version)
    except ValueError:
        return (-1, -1, -1, version)


def _write(path: Path, data: bytes, where: str) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ModelError(f"{where}: full disk writing {path.name}") from exc
        raise ModelError(f"{where}: cannot write {path}: {exc.strerror or exc}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
