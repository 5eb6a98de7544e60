"""A model version's manifest: what it is, where it came from, and how to check it on a device.

``manifest.json`` beside ``model.onnx`` in the registry (:mod:`deploy.models.registry`), schema
``edgeloop.model/1``::

    {"schema": "edgeloop.model/1", "name": "gate-detector", "version": "1.2.0",
     "sha256": "...", "size": 1234567, "format": "edgeloop", "task": "detect",
     "input_size": [320, 320], "class_names": ["person", ...], "created": "2026-...Z",
     "parent": "1.1.0", "source": {"kind": "file", "path": "..."},
     "evaluation": null, "golden": {"file": "golden.npz", "sha256": "...", "frames": 2,
     "atol": 0.001, "rtol": 0.01}}

The facts (format, input size, class names) are read from the model itself, by loading it on
ONNX Runtime and settling its format as the pipeline does (:func:`inspect_model`): a manifest
never states what the file does not hold. The golden set is a few synthetic frames and the
outputs this model gave for them here, so a device can check, before serving, that the file
it downloaded computes what was published (:func:`golden_set`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError

__all__ = [
    "GOLDEN_FRAMES",
    "SCHEMA",
    "Manifest",
    "ModelFacts",
    "check_version",
    "golden_set",
    "inspect_model",
]

SCHEMA = "edgeloop.model/1"
GOLDEN_FRAMES = 2
"""Frames in a golden set: enough to catch a different model, small enough to ship."""
GOLDEN_SIZE = (180, 320)
"""The golden frames' size (height, width): letterboxed into any input, as cameras' are."""
GOLDEN_ATOL, GOLDEN_RTOL = 1e-3, 1e-2
"""How far a device's outputs may be from the golden ones (another CPU, another runtime)."""
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


def check_version(version: str) -> tuple[int, int, int, str]:
    """``version`` as a sortable key; :class:`ValueError` unless it is semantic versioning.

    >>> check_version("1.10.0") > check_version("1.9.3"), check_version("2.0.0-rc.1")[3]
    (True, 'rc.1')
    >>> check_version("v1.2")
    Traceback (most recent call last):
    ...
    ValueError: version 'v1.2' is not semantic versioning (MAJOR.MINOR.PATCH, e.g. 1.2.0)
    """
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(
            f"version {version!r} is not semantic versioning (MAJOR.MINOR.PATCH, e.g. 1.2.0)"
        )
    major, minor, patch, pre, _ = match.groups()
    # A release sorts after its pre-releases: "~" sorts after every pre-release label.
    return int(major), int(minor), int(patch), pre or "~"


@dataclass(frozen=True)
class ModelFacts:
    """What a model file holds, read by loading it (:func:`inspect_model`)."""

    format: str
    task: str
    input_size: tuple[int, int]
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """One published version (see the module docstring)."""

    name: str
    version: str
    sha256: str
    size: int
    format: str
    task: str
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    created: str
    parent: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    golden: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        data = {"schema": SCHEMA, **dataclasses.asdict(self)}
        data["input_size"] = list(self.input_size)
        data["class_names"] = list(self.class_names)
        return (json.dumps(data, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """A manifest from its JSON; :class:`ModelError` naming ``where`` when it is not one."""
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ModelError(f"{where}: the manifest is not JSON ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise ModelError(f"{where}: manifest schema {found!r}, expected {SCHEMA!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            fields = {k: v for k, v in doc.items() if k in names}
            fields["input_size"] = tuple(int(v) for v in fields["input_size"])
            fields["class_names"] = tuple(str(v) for v in fields["class_names"])
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: the manifest lacks or garbles {exc}") from exc


def inspect_model(path: Path, labels: str | None = None) -> ModelFacts:
    """The format, input size and class names of the model at ``path``, read by loading it on
    ONNX Runtime (one thread) and settling its format; :class:`ModelError` for a file that is
    not a model the pipeline can use."""
    from core.backends import open_backend  # noqa: PLC0415 - heavy, on demand
    from core.backends.model_file import check_model_file  # noqa: PLC0415
    from core.formats.facts import backend_facts  # noqa: PLC0415
    from core.formats.model import settle_model  # noqa: PLC0415

    with open_backend(check_model_file(path), "onnxruntime", threads=1, warmup_runs=1) as backend:
        choice = settle_model(backend_facts(backend), "auto", labels)
        height, width = choice.facts.input_size
        return ModelFacts(
            format=choice.format.name,
            task=choice.format.task,
            input_size=(int(height), int(width)),
            class_names=tuple(choice.class_names),
        )


def golden_set(path: Path, labels: str | None = None) -> bytes:
    """A ``.npz`` of :data:`GOLDEN_FRAMES` synthetic frames (``frames``: uint8, HxWx3 BGR) and
    the outputs the model at ``path`` gives for them here (``output_<i>``, in the model's
    output order), with the tolerances a device checks them with (``atol``, ``rtol``)."""
    from core.backends import open_backend  # noqa: PLC0415 - heavy, on demand
    from core.formats.facts import backend_facts  # noqa: PLC0415
    from core.formats.model import settle_model  # noqa: PLC0415
    from core.preprocess import preprocess_into  # noqa: PLC0415
    from core.synthetic import SceneConfig, SyntheticCamera  # noqa: PLC0415

    height, width = GOLDEN_SIZE
    camera = SyntheticCamera(SceneConfig(width=width, height=height, seed=7))
    frames = np.stack([camera.frame(30 * i + 15)[0] for i in range(GOLDEN_FRAMES)])
    with open_backend(path, "onnxruntime", threads=1, warmup_runs=1) as backend:
        spec = settle_model(backend_facts(backend), "auto", labels).preprocess()
        outputs: list[list[np.ndarray]] = []
        for frame in frames:  # one at a time: a model with a fixed batch of 1 takes it too
            preprocess_into(frame, backend.input_buffer(1, 0)[0], spec)
            outputs.append([np.array(o) for o in backend.infer(1, 0)])
    arrays: dict[str, Any] = {
        f"output_{i}": np.concatenate([o[i] for o in outputs]) for i in range(len(outputs[0]))
    }
    arrays.update(frames=frames, atol=np.float64(GOLDEN_ATOL), rtol=np.float64(GOLDEN_RTOL))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
