"""The versions a device holds (core.models.library): downloaded whole or not at all, resumed
after a kill, refused before a byte when the digest or the disk is wrong, corrupt bytes deleted
with the cause, old versions pruned but never a protected one; from a folder and from S3
(moto's server, ranged reads)."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ModelError
from core.models import reference_model_path
from core.models.library import ModelLibrary
from core.models.manifest import verify_model
from core.models.store import LocalStore, open_store
from deploy.models.registry import Registry, open_registry
from tests.mqtt_broker import MotoServer

SMALL = reference_model_path("detector-s")
LARGER = reference_model_path("detector-m")
SMALL_SHA = hashlib.sha256(SMALL.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry folder with gate 1.0.0 (detector-s) and 1.1.0 (detector-m), made once."""
    root = tmp_path_factory.mktemp("published") / "registry"
    registry = open_registry(f"file://{root}")
    registry.publish(SMALL, name="gate", version="1.0.0")
    registry.publish(LARGER, name="gate", version="1.1.0")
    return root


@pytest.fixture
def registry(published: Path, tmp_path: Path) -> Registry:
    root = tmp_path / "registry"
    shutil.copytree(published, root)
    return open_registry(f"file://{root}")


def _library(tmp_path: Path) -> ModelLibrary:
    return ModelLibrary(tmp_path / "state" / "models")


def test_a_download_lands_whole_checks_out_and_is_not_fetched_twice(
    registry: Registry, tmp_path: Path
) -> None:
    library = _library(tmp_path)
    done = library.download(registry.store, "gate", "1.0.0", sha256=SMALL_SHA)
    held = done.installed
    assert done.bytes_read == SMALL.stat().st_size and done.resumed_at == 0
    assert held.model.read_bytes() == SMALL.read_bytes()
    verify_model(held.model, held.manifest, held.golden())
    assert library.versions("gate") == ["1.0.0"] and library.get("gate", "1.0.0") == held
    again = library.download(registry.store, "gate", "1.0.0")
    assert again.bytes_read == 0 and again.installed == held
    assert not list((tmp_path / "state" / "models" / "gate").glob(".*"))  # no partial left


def test_a_wrong_digest_or_a_full_disk_is_refused_before_any_byte(
    registry: Registry, tmp_path: Path
) -> None:
    library = _library(tmp_path)
    with pytest.raises(ModelError, match=r"gate 1\.0\.0: wrong digest: asked for sha256 aaaa"):
        library.download(registry.store, "gate", "1.0.0", sha256="a" * 64)
    key = Path(registry.store.url[len("file://") :]) / "models/gate/1.0.0/manifest.json"
    manifest = json.loads(key.read_text())
    manifest["size"] = 10**15  # a petabyte: no disk here has room
    key.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"gate 1\.0\.0: full disk: the download needs"):
        library.download(registry.store, "gate", "1.0.0")
    assert not (tmp_path / "state/models/gate/.1.0.0.partial/model.onnx").exists()
    assert library.versions("gate") == []


def test_corrupt_bytes_are_deleted_with_the_cause_and_a_good_download_follows(
    registry: Registry, tmp_path: Path
) -> None:
    library = _library(tmp_path)
    partial = tmp_path / "state/models/gate/.1.0.0.partial"
    partial.mkdir(parents=True)
    (partial / "model.onnx").write_bytes(b"\0" * 1000)  # what a bad earlier attempt left
    with pytest.raises(ModelError, match=r"corrupt download: .* \(deleted\)"):
        library.download(registry.store, "gate", "1.0.0")
    assert not (partial / "model.onnx").exists() and library.versions("gate") == []
    assert library.download(registry.store, "gate", "1.0.0").resumed_at == 0
    root = Path(registry.store.url[len("file://") :])
    (root / "models/gate/1.1.0/golden.npz").write_bytes(b"not the golden set")
    with pytest.raises(ModelError, match="the golden set is missing or does not match"):
        library.download(registry.store, "gate", "1.1.0")
    assert library.versions("gate") == ["1.0.0"]


SLOW_DOWNLOAD = """
import sys, time
from pathlib import Path
from core.models.library import ModelLibrary
from core.models.store import LocalStore

class Slow(LocalStore):
    def read_from(self, key, offset):
        with self._path(key).open("rb") as f:
            f.seek(offset)
            while chunk := f.read(64 * 1024):
                yield chunk
                time.sleep(0.05)

ModelLibrary(Path(sys.argv[2])).download(Slow(Path(sys.argv[1])), "gate", "1.0.0")
"""


def test_a_download_killed_midway_is_invisible_and_resumes_where_it_stopped(
    registry: Registry, tmp_path: Path
) -> None:
    root = Path(registry.store.url[len("file://") :])
    library = _library(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", SLOW_DOWNLOAD, str(root), str(library.root)])
    part = library.root / "gate" / ".1.0.0.partial" / "model.onnx"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size >= 256 * 1024):
        assert time.monotonic() < deadline and child.poll() is None, "the download never began"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    kept = part.stat().st_size
    assert 0 < kept < SMALL.stat().st_size
    assert library.get("gate", "1.0.0") is None and library.versions("gate") == []
    done = library.download(LocalStore(root), "gate", "1.0.0", sha256=SMALL_SHA)
    assert done.resumed_at == kept and done.bytes_read == SMALL.stat().st_size - kept
    assert done.installed.model.read_bytes() == SMALL.read_bytes()


def test_pruning_keeps_the_newest_and_every_protected_version(
    registry: Registry, tmp_path: Path
) -> None:
    library = _library(tmp_path)
    for version in ("1.0.0", "1.1.0"):
        library.download(registry.store, "gate", version)
    assert library.prune("gate", keep=1, protect={"1.0.0"}) == []
    assert library.prune("gate", keep=1) == ["1.0.0"]
    assert library.versions("gate") == ["1.1.0"]


@pytest.fixture
def s3_root(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    boto3.client("s3").create_bucket(Bucket="fleet-models")
    yield "s3://fleet-models/edgeloop"


def test_an_s3_download_resumes_with_a_ranged_read(
    published: Path, s3_root: str, tmp_path: Path
) -> None:
    store = open_store(s3_root)
    for path in sorted(published.rglob("*")):
        if path.is_file():
            store.put(path.relative_to(published).as_posix(), path.read_bytes())
    library = _library(tmp_path)
    partial = library.root / "gate" / ".1.0.0.partial"
    partial.mkdir(parents=True)
    (partial / "model.onnx").write_bytes(SMALL.read_bytes()[:100_000])
    done = library.download(store, "gate", "1.0.0", sha256=SMALL_SHA)
    assert done.resumed_at == 100_000 and done.bytes_read == SMALL.stat().st_size - 100_000
    assert done.installed.model.read_bytes() == SMALL.read_bytes()
