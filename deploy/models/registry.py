"""The model registry: versions of each model, their manifests, and stage pointers.

One layout (:mod:`core.models.store`, which devices read too), in an S3 bucket
(``s3://BUCKET/PREFIX``) or a local folder (``file://DIR``, for labs and tests).

Publishing is idempotent: the same version with the same bytes again is a no-op, the same
version with other bytes is refused (:class:`RegistryConflict`), since a device that has
version 1.2.0 must be able to trust that 1.2.0 is one thing. The manifest goes last, so a
publish cut short (a full disk, a kill) leaves files no listing shows, and the next publish
of that version writes them again. Stages are ``dev``, ``staging`` and ``prod``: a pointer
object per stage names the version it serves, and only a published version can be promoted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelError
from core.models.manifest import Manifest, check_version, describe_version, utc_now
from core.models.store import (
    MANIFEST_FILE,
    MODEL_FILE,
    STAGES,
    LocalStore,
    RegistryConflict,
    RegistryError,
    S3Store,
    Store,
    open_store,
    stage_key,
    version_key,
    write_version,
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


def open_registry(url: str, *, client: Any | None = None) -> Registry:
    """The registry at ``url``: ``file://DIR`` (created if missing) or ``s3://BUCKET/PREFIX``;
    :class:`RegistryError` for any other."""
    return Registry(open_store(url, client=client))


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
        key = version_key(name, version, MANIFEST_FILE)
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
        data = self.store.get(version_key(name, version, MODEL_FILE))
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
        optimization: dict[str, Any] | None = None,
    ) -> Published:
        """Publish ``model`` as ``name`` ``version`` (see the module docstring); the model is
        loaded first, so a file the pipeline cannot use is refused before anything is written.
        ``evaluate``: score it on that many synthetic frames first (the manifest's
        ``evaluation``: :func:`core.models.manifest.evaluate_model`)."""
        _check_name(name)
        check_version(version)
        data = model.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        existing = self.store.get(version_key(name, version, MANIFEST_FILE))
        if existing is not None:
            old = Manifest.from_json(existing, f"{self.url}/models/{name}/{version}")
            if old.sha256 != digest:
                raise RegistryConflict(
                    f"{self.url}: {name} {version} is already published with other content "
                    f"(sha256 {old.sha256[:12]}, this file {digest[:12]}): publish a new version"
                )
            return Published(old, already=True)
        earlier = [v for v in self.versions(name) if check_version(v) < check_version(version)]
        manifest, golden = describe_version(
            model,
            name=name,
            version=version,
            parent=earlier[-1] if earlier else None,
            source=source,
            evaluate=evaluate,
            labels=labels,
            optimization=optimization,
        )
        write_version(self.store, manifest, data, golden)
        return Published(manifest, already=False)

    def promote(self, name: str, version: str, stage: str) -> dict[str, Any]:
        """Point ``stage`` at a published version; the pointer as written."""
        if stage not in STAGES:
            raise RegistryError(f"stage {stage!r}: choose from {', '.join(STAGES)}")
        manifest = self.manifest(name, version)
        pointer = {"version": version, "sha256": manifest.sha256, "promoted": utc_now()}
        data = (json.dumps(pointer, indent=2) + "\n").encode()
        self.store.put(stage_key(name, stage), data)
        return pointer

    def stages(self, name: str) -> dict[str, dict[str, Any]]:
        """Each stage's pointer for ``name`` (stages never promoted are left out)."""
        found = {}
        for stage in STAGES:
            data = self.store.get(stage_key(name, stage))
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
