"""The model registry (``python -m deploy model ...``): a version is published once, with a
manifest read from the model itself and a golden set a device can check it against; the same
bytes again are a no-op, other bytes are refused; stages point at published versions only; a
local folder and S3 (moto's server) behave alike."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import ModelError
from core.models import reference_model_path
from core.models.manifest import check_version, verify_model
from core.synthetic import CLASS_NAMES
from deploy.cli import main
from deploy.models.registry import Registry, RegistryConflict, RegistryError, open_registry
from tests.mqtt_broker import MotoServer

SMALL = reference_model_path("detector")
LARGER = Path(str(SMALL).replace("detector-s", "detector-m"))


@pytest.fixture
def local(tmp_path: Path) -> Registry:
    return open_registry(f"file://{tmp_path / 'registry'}")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Exit status, the JSON printed (None without ``--json``) and stderr."""
    status = main(["model", *argv])
    out, err = capsys.readouterr()
    return status, json.loads(out) if "--json" in argv and status == 0 else out, err


def test_a_version_is_published_with_what_the_model_holds(local: Registry) -> None:
    done = local.publish(SMALL, name="gate", version="1.0.0")
    m = done.manifest
    assert not done.already and local.versions("gate") == ["1.0.0"]
    assert (m.format, m.task, m.class_names) == ("edgeloop", "detect", tuple(CLASS_NAMES))
    assert m.size == SMALL.stat().st_size and m.parent is None
    assert local.model_bytes("gate", "1.0.0") == SMALL.read_bytes()
    assert local.manifest("gate", "1.0.0") == m  # read back as written


def test_a_download_checks_out_against_its_manifest_and_golden_set(
    local: Registry, tmp_path: Path
) -> None:
    """What a device does with a version it fetched (:func:`core.models.manifest.verify_model`):
    the registry's bytes, manifest and golden set agree."""
    local.publish(SMALL, name="gate", version="1.0.0")
    manifest = local.manifest("gate", "1.0.0")
    golden = local.store.get("models/gate/1.0.0/golden.npz")
    assert golden is not None and manifest.golden is not None
    assert hashlib.sha256(golden).hexdigest() == manifest.golden["sha256"]
    assert np.load(io.BytesIO(golden))["frames"].shape[0] == manifest.golden["frames"]
    downloaded = tmp_path / "model.onnx"
    downloaded.write_bytes(local.model_bytes("gate", "1.0.0"))
    assert verify_model(downloaded, manifest, golden).class_names == manifest.class_names


def test_the_same_version_again_is_a_no_op_and_other_bytes_are_refused(local: Registry) -> None:
    first = local.publish(SMALL, name="gate", version="1.0.0")
    again = local.publish(SMALL, name="gate", version="1.0.0")
    assert again.already and again.manifest == first.manifest
    with pytest.raises(RegistryConflict, match="already published with other content"):
        local.publish(LARGER, name="gate", version="1.0.0")
    assert local.model_bytes("gate", "1.0.0") == SMALL.read_bytes()


def test_versions_sort_by_semver_and_each_names_its_parent(local: Registry) -> None:
    for version in ("1.10.0-rc.1", "1.9.0", "1.10.0"):
        local.publish(SMALL if version != "1.10.0" else LARGER, name="gate", version=version)
    assert local.versions("gate") == ["1.9.0", "1.10.0-rc.1", "1.10.0"]
    assert local.manifest("gate", "1.10.0").parent == "1.10.0-rc.1"
    with pytest.raises(ValueError, match="not semantic versioning"):
        check_version("1.10")


def test_a_publish_cut_short_is_invisible_and_done_again(local: Registry) -> None:
    local.store.put("models/gate/2.0.0/model.onnx", b"half a model")  # killed before the rest
    assert local.versions("gate") == [] and local.names() == []
    local.publish(SMALL, name="gate", version="2.0.0")
    assert local.model_bytes("gate", "2.0.0") == SMALL.read_bytes()


def test_what_is_not_a_model_is_refused_before_anything_is_written(
    local: Registry, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError):
        local.publish(bogus, name="gate", version="1.0.0")
    assert list(local.store.list("models/")) == []


def test_a_tampered_model_or_manifest_is_named(local: Registry) -> None:
    local.publish(SMALL, name="gate", version="1.0.0")
    local.store.put("models/gate/1.0.0/model.onnx", b"swapped")
    with pytest.raises(ModelError, match="does not match its manifest's sha256"):
        local.model_bytes("gate", "1.0.0")
    local.store.put("models/gate/1.0.0/manifest.json", b"{not json")
    with pytest.raises(ModelError, match=r"gate/1\.0\.0/manifest\.json: the manifest is not"):
        local.manifest("gate", "1.0.0")


def test_stages_point_at_published_versions_only(local: Registry) -> None:
    local.publish(SMALL, name="gate", version="1.0.0")
    pointer = local.promote("gate", "1.0.0", "dev")
    assert local.stages("gate") == {"dev": pointer}
    with pytest.raises(RegistryError, match=r"gate 1\.1\.0 is not published \(versions: 1\.0\.0\)"):
        local.promote("gate", "1.1.0", "staging")
    with pytest.raises(RegistryError, match="stage 'qa'"):
        local.promote("gate", "1.0.0", "qa")


def test_the_cli_publishes_lists_shows_diffs_and_promotes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry = ("--registry", f"file://{tmp_path / 'reg'}")
    status, out, _ = _cli(
        capsys, "publish", str(SMALL), "--name", "gate", "--version", "1.0.0", *registry, "--json"
    )
    assert status == 0 and out["published"] and out["manifest"]["version"] == "1.0.0"
    _cli(capsys, "publish", str(LARGER), "--name", "gate", "--version", "1.1.0", *registry)
    status, out, _ = _cli(capsys, "promote", "gate", "1.1.0", "--stage", "dev", *registry, "--json")
    assert status == 0 and out["version"] == "1.1.0"
    status, out, _ = _cli(capsys, "list", *registry, "--json")
    assert out["models"] == [
        {"name": "gate", "versions": ["1.0.0", "1.1.0"], "stages": {"dev": "1.1.0"}}
    ]
    status, out, _ = _cli(capsys, "show", "gate", *registry, "--json")
    assert out["manifest"]["version"] == "1.1.0" and out["stages"] == ["dev"]
    status, out, _ = _cli(capsys, "diff", "gate", "1.0.0", "1.1.0", *registry, "--json")
    differs = {row["field"] for row in out["fields"] if not row["same"]}
    assert {"sha256", "size", "input_size", "parent"} <= differs and "format" not in differs
    status, text, _ = _cli(capsys, "diff", "gate", "1.0.0", "1.1.0", *registry)
    assert "input_size" in text and "<- differs" in text


def test_publish_can_score_the_model_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry = ("--registry", f"file://{tmp_path / 'reg'}")
    scored = ("--eval", "synthetic", "--eval-frames", "12")
    status, out, err = _cli(
        capsys,
        "publish",
        str(SMALL),
        "--name",
        "gate",
        "--version",
        "1.0.0",
        *scored,
        *registry,
        "--json",
    )
    evaluation = out["manifest"]["evaluation"]
    assert status == 0 and evaluation["frames"] == 12 and 0 < evaluation["map50"] <= 1
    assert "scoring detector-s.onnx on 12 synthetic frames" in err
    _cli(capsys, "publish", str(LARGER), "--name", "gate", "--version", "1.1.0", *scored, *registry)
    status, out, _ = _cli(capsys, "diff", "gate", "1.0.0", "1.1.0", *registry, "--json")
    row = next(r for r in out["fields"] if r["field"] == "map50")
    assert row["a"] == evaluation["map50"] and row["b"] is not None
    status, _, err = _cli(
        capsys,
        "publish",
        str(SMALL),
        "--name",
        "g",
        "--version",
        "1.0.0",
        "--eval",
        "coco",
        *registry,
    )
    assert status == 2 and "--eval coco: the synthetic set is the one built in" in err


@pytest.mark.parametrize(
    ("argv", "status", "cause"),
    [
        (("publish", "MODEL", "--name", "gate", "--version", "1.0"), 2, "not semantic versioning"),
        (("publish", "missing.onnx", "--name", "gate", "--version", "1.0.0"), 2, "no such model"),
        (("publish", "OTHER", "--name", "gate", "--version", "1.0.0"), 1, "other content"),
        (("show", "gate", "9.9.9"), 1, "gate 9.9.9 is not published"),
        (("list", "nothing"), 1, "no version of nothing is published"),
    ],
)
def test_the_cli_exits_1_or_2_with_a_one_line_cause(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: tuple[str, ...],
    status: int,
    cause: str,
) -> None:
    registry = ("--registry", f"file://{tmp_path / 'reg'}")
    publish = ["model", "publish", str(SMALL), "--name", "gate", "--version", "1.0.0"]
    assert main([*publish, *registry]) == 0
    capsys.readouterr()
    swap = {"MODEL": str(SMALL), "OTHER": str(LARGER)}
    got = main(["model", *[swap.get(a, a) for a in argv], *registry])
    err = capsys.readouterr().err
    assert got == status and cause in err and err.count("\n") == 1, err


def test_without_a_registry_the_cli_says_how_to_name_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGELOOP_REGISTRY", raising=False)
    assert main(["model", "list"]) == 2
    assert "pass --registry s3://BUCKET/PREFIX or file://DIR" in capsys.readouterr().err
    with pytest.raises(RegistryError, match="use s3://BUCKET/PREFIX or file://DIR"):
        open_registry("http://example.com/models")


@pytest.fixture
def s3(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    boto3.client("s3").create_bucket(Bucket="fleet-models")
    yield open_registry("s3://fleet-models/edgeloop")


def test_an_s3_registry_behaves_as_a_local_one(s3: Registry) -> None:
    s3.publish(SMALL, name="gate", version="1.0.0")
    assert s3.publish(SMALL, name="gate", version="1.0.0").already
    with pytest.raises(RegistryConflict):
        s3.publish(LARGER, name="gate", version="1.0.0")
    s3.publish(LARGER, name="gate", version="1.1.0")
    s3.promote("gate", "1.0.0", "prod")
    assert s3.names() == ["gate"] and s3.versions("gate") == ["1.0.0", "1.1.0"]
    assert s3.stages("gate")["prod"]["version"] == "1.0.0"
    assert s3.model_bytes("gate", "1.1.0") == LARGER.read_bytes()
    keys = set(s3.store.list("models/gate/1.0.0/"))
    assert keys == {f"models/gate/1.0.0/{f}" for f in ("model.onnx", "golden.npz", "manifest.json")}


def test_an_unreachable_bucket_is_a_registry_error(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    missing = open_registry("s3://no-such-bucket/models")
    with pytest.raises(RegistryError, match="s3://no-such-bucket/models: cannot list"):
        missing.versions("gate")
