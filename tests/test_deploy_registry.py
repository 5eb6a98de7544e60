"""The model registry (``python -m deploy model ...``): a version is published once, with a
manifest read from the model itself and a golden set a device can check it against; the same
bytes again are a no-op, other bytes are refused; stages point at published versions only; a
local folder and S3 (moto's server) behave alike."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.backends import open_backend
from core.errors import ModelError
from core.models import reference_model_path
from core.preprocess import preprocess_into
from core.synthetic import CLASS_NAMES
from deploy.cli import main
from deploy.models.manifest import check_version
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


def test_the_golden_set_is_what_the_model_computes(local: Registry, tmp_path: Path) -> None:
    """A device re-runs the golden frames and compares: the published file reproduces them,
    another model does not."""
    local.publish(SMALL, name="gate", version="1.0.0")
    data = local.store.get("models/gate/1.0.0/golden.npz")
    assert data is not None
    golden = np.load(io.BytesIO(data))
    manifest = local.manifest("gate", "1.0.0")

    def outputs(model: Path) -> list[np.ndarray]:
        from core.formats.facts import backend_facts
        from core.formats.model import settle_model

        with open_backend(model, "onnxruntime", threads=1, warmup_runs=1) as backend:
            spec = settle_model(backend_facts(backend)).preprocess()
            rows = []
            for frame in golden["frames"]:
                preprocess_into(frame, backend.input_buffer(1, 0)[0], spec)
                rows.append([np.array(o) for o in backend.infer(1, 0)])
        return [np.concatenate([r[i] for r in rows]) for i in range(len(rows[0]))]

    again = outputs(SMALL)
    atol, rtol = float(golden["atol"]), float(golden["rtol"])
    for i, values in enumerate(again):
        assert np.allclose(values, golden[f"output_{i}"], atol=atol, rtol=rtol)
    assert golden["frames"].shape[0] == manifest.golden["frames"]  # type: ignore[index]
    other = outputs(LARGER)
    assert any(
        a.shape != golden[f"output_{i}"].shape
        or not np.allclose(a, golden[f"output_{i}"], atol=atol, rtol=rtol)
        for i, a in enumerate(other)
    )


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
