"""``publish --from-sagemaker ARN``: an approved model package's ONNX file (in its
``model.tar.gz``, as a training job writes it) is published with the package's ARN as its
source; a package awaiting approval is refused. Against moto's server (SageMaker and S3)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from core.models import reference_model_path
from deploy.cli import main
from tests.mqtt_broker import MotoServer

MODEL = reference_model_path("detector")
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/edge:1"


def _package(sagemaker: Any, status: str, url: str) -> str:
    arn: str = sagemaker.create_model_package(
        ModelPackageGroupName="gate",
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/edge:1",
                    "ModelDataUrl": url,
                }
            ],
            "SupportedContentTypes": ["application/octet-stream"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    return arn


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    s3.create_bucket(Bucket="training")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("model/detector.onnx")
        info.size = MODEL.stat().st_size
        tar.addfile(info, io.BytesIO(MODEL.read_bytes()))
    s3.put_object(Bucket="training", Key="jobs/7/model.tar.gz", Body=archive.getvalue())
    s3.put_object(Bucket="training", Key="jobs/8/model.tar.gz", Body=b"not an archive")
    sagemaker.create_model_package_group(ModelPackageGroupName="gate")
    return s3, sagemaker


def test_an_approved_package_is_published_with_its_arn(
    aws: tuple[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, sagemaker = aws
    arn = _package(sagemaker, "Approved", "s3://training/jobs/7/model.tar.gz")
    argv = ["model", "publish", "--from-sagemaker", arn, "--name", "gate", "--version", "2.0.0"]
    assert main([*argv, "--registry", f"file://{tmp_path}", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)["manifest"]
    assert manifest["source"]["kind"] == "sagemaker"
    assert manifest["source"]["model_package_arn"] == arn
    assert manifest["source"]["model_data_url"] == "s3://training/jobs/7/model.tar.gz"
    assert manifest["size"] == MODEL.stat().st_size and manifest["format"] == "edgeloop"


REFUSALS = {
    "pending": ("PendingManualApproval", "s3://training/jobs/7/model.tar.gz", 1, "not Approved"),
    "not an archive": ("Approved", "s3://training/jobs/8/model.tar.gz", 2, "not a readable tar"),
    "no model data": ("Approved", "s3://training/jobs/9/model.tar.gz", 1, "cannot read"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_package_that_cannot_be_used_is_refused_naming_why(
    aws: tuple[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    status, url, exit_status, cause = REFUSALS[case]
    _, sagemaker = aws
    arn = _package(sagemaker, status, url)
    argv = ["model", "publish", "--from-sagemaker", arn, "--name", "gate", "--version", "2.0.0"]
    assert main([*argv, "--registry", f"file://{tmp_path}"]) == exit_status
    assert cause in capsys.readouterr().err
    assert not list(tmp_path.rglob("manifest.json"))  # nothing published
