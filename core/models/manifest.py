"""A model version's manifest: what it is, where it came from, and how to check it on a device.

The registry writes it (:mod:`deploy.models.registry`); a device reads it and checks the file it
downloaded against it (:func:`verify_model`), so both live here, in ``core``. ``manifest.json``
beside ``model.onnx``, schema ``edgeloop.model/1``::

    {"schema": "edgeloop.model/1", "name": "gate-detector", "version": "1.2.0",
     "sha256": "...", "size": 1234567, "format": "edgeloop", "task": "detect",
     "input_size": [320, 320], "class_names": ["person", ...], "created": "2026-...Z",
     "parent": "1.1.0", "source": {"kind": "file", "path": "..."},
     "evaluation": null, "golden": {"file": "golden.npz", "sha256": "...", "frames": 2,
     "atol": 0.001, "rtol": 0.01}, "optimization": null}

The facts (format, input size, class names) are read from the model itself, by loading it on
ONNX Runtime and settling its format as the pipeline does (:func:`inspect_model`): a manifest
never states what the file does not hold. The golden set is a few synthetic frames and the
outputs this model gave for them here, so a device can check, before serving, that the file
it downloaded computes what was published (:func:`golden_set`, :func:`verify_model`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ModelError

if TYPE_CHECKING:
    from core.backends.base import Backend
    from core.formats.model import ModelChoice

__all__ = [
    "GOLDEN_FILE",
    "GOLDEN_FRAMES",
    "SCHEMA",
    "Manifest",
    "ModelFacts",
    "check_version",
    "describe_version",
    "evaluate_model",
    "golden_set",
    "inspect_model",
    "loaded_model",
    "utc_now",
    "verify_model",
]

SCHEMA = "edgeloop.model/1"
GOLDEN_FILE = "golden.npz"
GOLDEN_FRAMES = 2
"""Frames in a golden set: enough to catch a different model, small enough to ship."""
GOLDEN_SIZE = (180, 320)
"""The golden frames' size (height, width): letterboxed into any input, as cameras' are."""
EVAL_FRAMES = 200
"""Synthetic frames ``evaluate_model`` scores a detector on by default (a few seconds)."""
GOLDEN_ATOL, GOLDEN_RTOL = 1e-3, 1e-2
"""How far a device's outputs may be from the golden ones (another CPU, another runtime)."""
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


def utc_now() -> str:
    """Now in UTC, to the second, in ISO 8601 with a ``Z`` (``YYYY-MM-DDTHH:MM:SSZ``), as
    manifests, stage pointers and the device's model state write it."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    optimization: dict[str, Any] | None = None
    """For a model prepared from another (``python -m deploy model optimize``): how
    (``kind``: ``int8-qdq``), from what (``parent_sha256``), and what it changed
    (``accuracy``: mAP@0.5 before and after; ``speed``: time per frame on the machine that
    made it)."""

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


@contextlib.contextmanager
def loaded_model(path: Path, labels: str | None) -> Iterator[tuple[Backend, ModelChoice]]:
    """The model at ``path`` on ONNX Runtime (one thread), its format settled as the pipeline
    settles it; :class:`ModelError` for a file that is not a model the pipeline can use."""
    from core.backends import open_backend  # noqa: PLC0415 - heavy, on demand
    from core.backends.model_file import check_model_file  # noqa: PLC0415
    from core.formats.facts import backend_facts  # noqa: PLC0415
    from core.formats.model import settle_model  # noqa: PLC0415

    with open_backend(check_model_file(path), "onnxruntime", threads=1, warmup_runs=1) as backend:
        yield backend, settle_model(backend_facts(backend), "auto", labels)


def _facts(choice: ModelChoice) -> ModelFacts:
    height, width = choice.facts.input_size
    return ModelFacts(
        format=choice.format.name,
        task=choice.format.task,
        input_size=(int(height), int(width)),
        class_names=tuple(choice.class_names),
    )


def _outputs(backend: Backend, choice: ModelChoice, frames: np.ndarray) -> list[np.ndarray]:
    """The model's outputs for ``frames``, one output array per model output, a row a frame
    (run one frame at a time: a model with a fixed batch of 1 takes it too)."""
    from core.preprocess import preprocess_into  # noqa: PLC0415

    spec = choice.preprocess()
    rows: list[list[np.ndarray]] = []
    for frame in frames:
        preprocess_into(frame, backend.input_buffer(1, 0)[0], spec)
        rows.append([np.array(o) for o in backend.infer(1, 0)])
    return [np.concatenate([r[i] for r in rows]) for i in range(len(rows[0]))]


def inspect_model(path: Path, labels: str | None = None) -> ModelFacts:
    """The format, input size and class names of the model at ``path``, read by loading it on
    ONNX Runtime (one thread) and settling its format; :class:`ModelError` for a file that is
    not a model the pipeline can use."""
    with loaded_model(path, labels) as (_, choice):
        return _facts(choice)


def golden_set(path: Path, labels: str | None = None) -> bytes:
    """A ``.npz`` of :data:`GOLDEN_FRAMES` synthetic frames (``frames``: uint8, HxWx3 BGR) and
    the outputs the model at ``path`` gives for them here (``output_<i>``, in the model's
    output order), with the tolerances a device checks them with (``atol``, ``rtol``)."""
    from core.synthetic import SceneConfig, SyntheticCamera  # noqa: PLC0415

    height, width = GOLDEN_SIZE
    camera = SyntheticCamera(SceneConfig(width=width, height=height, seed=7))
    frames = np.stack([camera.frame(30 * i + 15)[0] for i in range(GOLDEN_FRAMES)])
    with loaded_model(path, labels) as (backend, choice):
        outputs = _outputs(backend, choice, frames)
    arrays: dict[str, Any] = {f"output_{i}": values for i, values in enumerate(outputs)}
    arrays.update(frames=frames, atol=np.float64(GOLDEN_ATOL), rtol=np.float64(GOLDEN_RTOL))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def evaluate_model(
    path: Path, *, frames: int = EVAL_FRAMES, labels: str | None = None
) -> dict[str, Any]:
    """mAP@0.5 of the detector at ``path`` on ``frames`` fresh 1080p frames of the synthetic
    scene (the model card's seed), decoded as the pipeline decodes them: the manifest's
    ``evaluation`` (``dataset``, ``seed``, ``frames``, ``map50``). A model that is not a
    detector of the scene's classes is refused with :class:`ModelError`: scored against them,
    it would give a wrong figure, not a low one."""
    from core.accuracy import map50  # noqa: PLC0415
    from core.formats.base import DecodeOptions  # noqa: PLC0415
    from core.models.detector import EVAL_SCORE_THRESHOLD, evaluation_frames  # noqa: PLC0415
    from core.models.model_card import EVAL_SEED  # noqa: PLC0415
    from core.preprocess import preprocess_into  # noqa: PLC0415
    from core.synthetic import CLASS_NAMES, SceneConfig  # noqa: PLC0415

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    with loaded_model(path, labels) as (backend, choice):
        if not choice.detects(tuple(CLASS_NAMES)):
            raise ModelError(
                f"{path.name}: the synthetic set scores detectors of its {len(CLASS_NAMES)} "
                f"classes ({', '.join(CLASS_NAMES)}); this is a {choice.format.task} model "
                f"of {len(choice.class_names)} classes"
            )
        decode = choice.decoder(DecodeOptions(score_floor=EVAL_SCORE_THRESHOLD))
        spec = choice.preprocess()
        predictions, truths = [], []
        for frame, truth in evaluation_frames(SceneConfig(seed=EVAL_SEED), frames):
            transform = preprocess_into(frame, backend.input_buffer(1, 0)[0], spec)
            predictions.append(decode([o[0] for o in backend.infer(1, 0)], transform))
            truths.append(truth)
    score = float(map50(predictions, truths, len(CLASS_NAMES)))
    return {"dataset": "synthetic", "seed": EVAL_SEED, "frames": frames, "map50": score}


def describe_version(
    model: Path,
    *,
    name: str,
    version: str,
    parent: str | None = None,
    source: dict[str, Any] | None = None,
    evaluate: int | None = None,
    labels: str | None = None,
    optimization: dict[str, Any] | None = None,
) -> tuple[Manifest, bytes]:
    """The manifest of ``model`` as version ``version`` of ``name``, and its golden set: the
    facts read by loading it (:func:`inspect_model`), its score on ``evaluate`` synthetic
    frames when asked (:func:`evaluate_model`), the golden outputs (:func:`golden_set`).
    What a registry writes (:func:`core.models.store.write_version`)."""
    check_version(version)
    data = model.read_bytes()
    facts = inspect_model(model, labels)
    evaluation = evaluate_model(model, frames=evaluate, labels=labels) if evaluate else None
    golden = golden_set(model, labels)
    manifest = Manifest(
        name=name,
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        format=facts.format,
        task=facts.task,
        input_size=facts.input_size,
        class_names=facts.class_names,
        created=utc_now(),
        parent=parent,
        source=source or {"kind": "file", "path": str(model.resolve())},
        evaluation=evaluation,
        golden={
            "file": GOLDEN_FILE,
            "sha256": hashlib.sha256(golden).hexdigest(),
            "frames": GOLDEN_FRAMES,
        },
        optimization=optimization,
    )
    return manifest, golden


def verify_model(
    path: Path, manifest: Manifest, golden: bytes | None, labels: str | None = None
) -> ModelFacts:
    """Check the model file at ``path`` against the version ``manifest`` describes, before it
    serves: its size and SHA-256, that it loads, that its format, input size and classes are
    the manifest's, and that it reproduces the golden outputs within their tolerance (none of
    them NaN). :class:`ModelError` naming the first check that fails; the facts when all hold.
    """
    where = f"{manifest.name} {manifest.version}"
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != manifest.size or digest != manifest.sha256:
        raise ModelError(
            f"{where}: the file is {len(data)} bytes, sha256 {digest[:12]}; the manifest says "
            f"{manifest.size} bytes, sha256 {manifest.sha256[:12]} (a corrupt or other download)"
        )
    with loaded_model(path, labels) as (backend, choice):
        facts = _facts(choice)
        for key in ("format", "task", "input_size", "class_names"):
            found, expected = getattr(facts, key), getattr(manifest, key)
            if found != expected:
                raise ModelError(f"{where}: its {key} is {found!r}, the manifest says {expected!r}")
        if golden is None:
            return facts
        try:
            sets = np.load(io.BytesIO(golden))
            frames = sets["frames"]
            atol, rtol = float(sets["atol"]), float(sets["rtol"])
            expected_outputs = [sets[f"output_{i}"] for i in range(len(backend.describe().outputs))]
        except Exception as exc:  # a damaged .npz, a missing array
            raise ModelError(f"{where}: the golden set cannot be read ({exc})") from exc
        outputs = _outputs(backend, choice, frames)
    for i, (got, want) in enumerate(zip(outputs, expected_outputs, strict=True)):
        if not np.isfinite(got).all():
            raise ModelError(f"{where}: output {i} holds NaN or infinity on the golden frames")
        if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=rtol):
            worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else math.inf
            raise ModelError(
                f"{where}: output {i} differs from the golden set (largest difference {worst:.3g}"
                f", tolerance atol {atol:g}, rtol {rtol:g}): not the model that was published"
            )
    return facts
