"""Checking a model file and its image input before (and after) a runtime loads it.

Runtimes report a bad file in their own words ("Protobuf parsing failed", a TensorRT parser
log); the user needs to know *which* of these it is:

* the file is missing, empty or a folder;
* it is not ONNX at all (an image, a TensorRT engine, a text file...);
* it is ONNX but truncated (an interrupted copy or download);
* it loads, but its input is not one the pipeline can feed: ``(N, 3, H, W)`` float32 or
  float16 or uint8 -- the message names the input and its declared shape.

Telling "not ONNX" from "truncated" costs a walk over the top-level protobuf fields of the
``ModelProto`` (a handful of seeks, not a parse): the first field must be one a ``ModelProto``
has, a ``graph`` must be there, and no field may run past the end of the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from core.backends.tensor_spec import TensorSpec
from core.errors import ModelError, ModelNotFoundError

IMAGE_CHANNELS = 3
IMAGE_DTYPES = ("float32", "float16", "uint8")
DEFAULT_DYNAMIC_SIZE = 640
"""Height and width given to a model whose input declares them dynamic (YOLO's default)."""

# ModelProto's top-level fields: number -> (name, protobuf wire type).
_MODEL_FIELDS = {
    1: ("ir_version", 0),
    2: ("producer_name", 2),
    3: ("producer_version", 2),
    4: ("domain", 2),
    5: ("model_version", 0),
    6: ("doc_string", 2),
    7: ("graph", 2),
    8: ("opset_import", 2),
    14: ("metadata_props", 2),
    20: ("training_info", 2),
    25: ("functions", 2),
}
_GRAPH = 7


class _Truncated(Exception):
    def __init__(self, field: str, end: int) -> None:
        self.field, self.end = field, end


def _varint(f: BinaryIO, field: str) -> int:
    value, shift = 0, 0
    while True:
        byte = f.read(1)
        if not byte:
            raise _Truncated(field, f.tell() + 1)
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _scan(f: BinaryIO, size: int) -> tuple[bool, set[int]]:
    """Walk the top-level fields: (first field is a ModelProto's, field numbers seen).

    Raises :class:`_Truncated` when a field runs past ``size``, ValueError for bytes that
    cannot be protobuf at all.
    """
    seen: set[int] = set()
    first_known = False
    while f.tell() < size:
        key = _varint(f, "field key")
        number, wire = key >> 3, key & 7
        name, expected = _MODEL_FIELDS.get(number, (f"field {number}", wire))
        if not seen:
            first_known = number in _MODEL_FIELDS and wire == expected
            if not first_known:
                return False, seen
        if wire == 0:
            _varint(f, name)
        elif wire == 2:
            length = _varint(f, name)
            end = f.tell() + length
            if end > size:
                raise _Truncated(name, end)
            f.seek(length, os.SEEK_CUR)
        elif wire in (1, 5):
            step = 8 if wire == 1 else 4
            if f.tell() + step > size:
                raise _Truncated(name, f.tell() + step)
            f.seek(step, os.SEEK_CUR)
        else:
            raise ValueError(f"wire type {wire}")
        seen.add(number)
    return first_known, seen


def check_model_file(model: str | os.PathLike[str]) -> Path:
    """``model`` as a Path once it is known to be a complete ONNX file, else :class:`ModelError`
    (:class:`ModelNotFoundError` when it does not exist) naming the cause."""
    path = Path(model)
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"model path is a folder, not an ONNX file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"model file is empty (0 bytes): {path}; an interrupted copy?")
    with path.open("rb") as f:
        head = f.read(16)
        f.seek(0)
        try:
            first_known, seen = _scan(f, size)
        except _Truncated as cut:
            raise ModelError(
                f"ONNX model file is truncated: {path} has {size:,} bytes but its {cut.field} "
                f"runs to byte {cut.end:,}; copy or export it again"
            ) from None
        except ValueError:
            first_known, seen = False, set()
    if not first_known or _GRAPH not in seen:
        raise ModelError(
            f"not an ONNX model: {path} (starts with {head[:8]!r}); edgeloop loads ONNX files "
            "(torch.onnx.export, tf2onnx), not TensorRT engines or other formats"
        )
    return path


def load_failure(path: Path, exc: BaseException) -> ModelError:
    """A runtime refused a file that passed :func:`check_model_file`: corrupt inside, or using
    something this runtime lacks. The runtime's own message follows the cause."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ModelError(
        f"ONNX model could not be loaded (corrupt, or unsupported here): {path}: {detail}"
    )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (engine cache keys, model digests)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_input(inputs: Sequence[TensorSpec], path: Path) -> TensorSpec:
    """The model's one image input, if the pipeline can feed it; else :class:`ModelError`
    naming the input and its shape."""
    if len(inputs) != 1:
        listed = ", ".join(str(i) for i in inputs) or "none"
        raise ModelError(
            f"{path.name} has {len(inputs)} inputs ({listed}); the pipeline feeds one image "
            "tensor (N, 3, H, W)"
        )
    spec = inputs[0]
    shape = spec.shape_text()
    if len(spec.shape) != 4:
        raise ModelError(
            f"model input {spec.name!r} has shape {shape} (rank {len(spec.shape)}); the pipeline "
            "feeds images as (N, 3, H, W), rank 4"
        )
    channels = spec.shape[1]
    if isinstance(channels, int) and channels != IMAGE_CHANNELS:
        hint = (
            "; it looks channels-last (N, H, W, 3): export the model channels-first (tf2onnx: "
            f"--inputs-as-nchw {spec.name.split(':')[0]})"
            if spec.shape[3] == IMAGE_CHANNELS
            else ""
        )
        raise ModelError(
            f"model input {spec.name!r} has shape {shape}: {channels} channels at axis 1, the "
            f"pipeline feeds {IMAGE_CHANNELS} (N, 3, H, W){hint}"
        )
    if spec.dtype not in IMAGE_DTYPES:
        raise ModelError(
            f"model input {spec.name!r} {shape} takes {spec.dtype}; the pipeline feeds "
            f"{' or '.join(IMAGE_DTYPES)}"
        )
    return spec


def fixed_batch(spec: TensorSpec) -> int | None:
    """The batch size the input fixes, or None when its batch axis is dynamic."""
    batch = spec.shape[0]
    return batch if isinstance(batch, int) and batch > 0 else None


def resolve_input_size(
    spec: TensorSpec, requested: tuple[int, int] | int | None, default: int = DEFAULT_DYNAMIC_SIZE
) -> tuple[int, int]:
    """(height, width) to feed: the model's own where it fixes them, else ``requested``, else
    ``default``. Asking a fixed-size model for another size is a :class:`ModelError`.

    >>> spec = TensorSpec("x", ("n", 3, "h", "w"), "float32")
    >>> resolve_input_size(spec, None), resolve_input_size(spec, 320)
    ((640, 640), (320, 320))
    >>> resolve_input_size(spec, (384, 640))
    (384, 640)
    """
    want = (requested, requested) if isinstance(requested, int) else requested
    out: list[int] = []
    for axis, dim in zip((2, 3), spec.shape[2:], strict=True):
        if isinstance(dim, int) and dim > 0:
            if want is not None and want[axis - 2] != dim:
                raise ModelError(
                    f"model input {spec.name!r} is fixed at {spec.shape_text()}; it cannot take "
                    f"input_size={want[0]}x{want[1]} (height x width)"
                )
            out.append(dim)
        else:
            size = want[axis - 2] if want is not None else default
            if size < 1:
                raise ModelError(f"input_size must be positive, got {want}")
            out.append(int(size))
    return out[0], out[1]


def load_onnx(path: Path) -> Any:
    """The ``onnx.ModelProto`` of a file that passed :func:`check_model_file` (weights in
    external files are not loaded); :func:`load_failure`'s :class:`ModelError` where ``onnx``
    refuses it."""
    import onnx  # noqa: PLC0415 - only what reads the graph or its metadata needs it

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # google.protobuf DecodeError and friends
        raise load_failure(path, exc) from exc


def onnx_io_specs(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The model's declared inputs and outputs, read with ``onnx`` (weights in external files
    are not loaded). Inputs that are also initialisers (old exporters list weights as inputs)
    are left out."""
    import onnx  # noqa: PLC0415 - only backends that do not parse ONNX themselves need it

    model = load_onnx(path)
    weights = {init.name for init in model.graph.initializer}

    def spec(value: Any) -> TensorSpec:
        tensor = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in tensor.shape.dim
        )
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        except (KeyError, ValueError, TypeError):
            dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
        return TensorSpec(value.name, dims, dtype)

    inputs = tuple(spec(v) for v in model.graph.input if v.name not in weights)
    return inputs, tuple(spec(v) for v in model.graph.output)
