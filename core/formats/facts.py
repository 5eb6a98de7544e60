"""A model's facts for choosing its format: from a loaded backend (the shapes its runtime
allocated, dynamic axes resolved) and the file's ONNX metadata."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.backends.model_file import load_onnx
from core.formats.base import ModelFacts, OutputShape

if TYPE_CHECKING:
    from core.backends.base import Backend


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ONNX file's ``metadata_props`` (the exporter's key/value notes), weights not read
    from external files; {} for a file that is not ONNX (a TensorRT plan)."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return {}
    model = load_onnx(path)
    return {prop.key: prop.value for prop in model.metadata_props}


def backend_facts(backend: Backend) -> ModelFacts:
    """The facts of the model ``backend`` runs: its image input, the size it is fed at and its
    outputs' shapes as allocated (batch axis first), with the file's metadata."""
    info = backend.describe()
    height, width = info.input_shape[2:]
    outputs = tuple(
        OutputShape(spec.name, tuple(int(d) for d in shape))
        for spec, shape in zip(info.outputs, info.output_shapes, strict=True)
    )
    return ModelFacts(
        name=backend.model_path.name,
        input=info.inputs[0],
        input_size=(int(height), int(width)),
        outputs=outputs,
        metadata=read_metadata(backend.model_path),
    )
