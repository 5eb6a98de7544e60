"""A model from SageMaker's model registry: an approved model package's ONNX file.

``publish --from-sagemaker ARN`` takes the package's first container's model data
(``InferenceSpecification.Containers[0].ModelDataUrl``: ``s3://.../model.tar.gz``, as a
SageMaker training job writes it, or a bare ``.onnx``) and publishes the ONNX file in it. Only
an ``Approved`` package is taken: approval is the gate SageMaker's registry puts before
deployment, and a pending or rejected one reaching a fleet would bypass it.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.errors import ModelError
from deploy.models.registry import RegistryError

__all__ = ["fetch_model_package"]


def fetch_model_package(
    arn: str, folder: Path, *, sagemaker: Any | None = None, s3: Any | None = None
) -> tuple[Path, dict[str, Any]]:
    """The ONNX file of the approved model package ``arn``, written into ``folder``, and the
    ``source`` its manifest records; :class:`RegistryError` for a package that cannot be used
    (unknown, not approved, no model data), :class:`ModelError` for model data that holds no
    single ONNX file."""
    import boto3  # noqa: PLC0415 - optional (the cloud extra)

    sagemaker = sagemaker or boto3.client("sagemaker")
    s3 = s3 or boto3.client("s3")
    try:
        package = sagemaker.describe_model_package(ModelPackageName=arn)
    except Exception as exc:
        raise RegistryError(f"SageMaker model package {arn}: cannot describe it ({exc})") from exc
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise RegistryError(
            f"SageMaker model package {arn} is {status or 'without an approval status'}, "
            "not Approved: approve it in the SageMaker model registry first"
        )
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    url = containers[0].get("ModelDataUrl") if containers else None
    if not url:
        raise RegistryError(f"SageMaker model package {arn} names no model data (ModelDataUrl)")
    parsed = urlparse(url)
    if parsed.scheme != "s3":
        raise RegistryError(f"SageMaker model package {arn}: model data {url} is not in S3")
    try:
        reply = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        data: bytes = reply["Body"].read()
    except Exception as exc:
        raise RegistryError(f"SageMaker model package {arn}: cannot read {url} ({exc})") from exc
    path = folder / "model.onnx"
    path.write_bytes(_onnx_in(data, url))
    source = {
        "kind": "sagemaker",
        "model_package_arn": arn,
        "model_data_url": url,
        "model_package_group": package.get("ModelPackageGroupName"),
    }
    return path, source


def _onnx_in(data: bytes, url: str) -> bytes:
    """The one ``.onnx`` file in a ``model.tar.gz``, or the data itself when it is no archive."""
    if not url.endswith((".tar.gz", ".tgz", ".tar")):
        return data
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".onnx")]
            if len(members) != 1:
                names = ", ".join(m.name for m in members) or "none"
                raise ModelError(f"{url}: holds {len(members)} .onnx files ({names}), not one")
            extracted = archive.extractfile(members[0])
            assert extracted is not None  # a regular file
            return extracted.read()
    except tarfile.TarError as exc:
        raise ModelError(f"{url}: not a readable tar archive ({exc})") from exc
