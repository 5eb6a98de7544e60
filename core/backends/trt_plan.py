"""What the TensorRT backend decides before touching TensorRT: engine cache keys, optimization
profile shapes, the buffer plan, calibration inputs. Pure Python (no ``tensorrt`` import), so
it is unit-tested on any machine (``tests/test_trt_plan.py``).

**Engine cache.** Building an engine takes seconds to minutes, and an engine only runs on the
TensorRT version and GPU that built it. Engines are cached as
``<cache>/engines/<model>.<precision>.<digest>.engine`` where the digest is the SHA-256 of an
:class:`EngineKey`: the model's SHA-256, TensorRT's version, the GPU's name, the precision --
and everything else the build depends on (the profile shapes, the DLA core, the int8
calibration data). A change in any part gives another file name, so the engine is rebuilt; a
JSON sidecar repeats the key in clear, and a cached engine is used only when it matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import jpeg
from core.backends.tensor_spec import TensorSpec
from core.cache import atomic_write_bytes
from core.errors import ConfigError
from core.frame import MAX_PIXELS

ENGINE_SUFFIX = ".engine"
CALIBRATION_SUFFIXES = (".jpg", ".jpeg", ".npy")
"""Sample frames for int8 calibration: JPEG files, or ``.npy`` HxWx3 uint8 BGR arrays."""

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ProfileShapes:
    """One optimization profile for the image input: the smallest, typical and largest shapes.

    >>> ProfileShapes("images", (1, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224)).text()
    'images:1x3x224x224,4x3x224x224,8x3x224x224'
    """

    input_name: str
    min: Shape
    opt: Shape
    max: Shape

    def text(self) -> str:
        dims = ",".join("x".join(str(d) for d in s) for s in (self.min, self.opt, self.max))
        return f"{self.input_name}:{dims}"


def profile_shapes(
    spec: TensorSpec,
    *,
    batch_size: int,
    input_size: tuple[int, int],
    opt_batch: int | None = None,
) -> ProfileShapes:
    """The profile for ``spec``: batch 1..``batch_size`` (tuned for ``opt_batch``, default the
    largest) when its batch is dynamic, the model's batch when fixed (the backend splits and
    pads around it); height and width are ``input_size`` (one engine per size).

    >>> spec = TensorSpec("images", ("batch", 3, "h", "w"), "float32")
    >>> profile_shapes(spec, batch_size=8, input_size=(640, 640), opt_batch=1).text()
    'images:1x3x640x640,1x3x640x640,8x3x640x640'
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    height, width = input_size
    fixed = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
    if fixed is not None:
        low = opt = high = fixed
    else:
        opt = batch_size if opt_batch is None else opt_batch
        if not 1 <= opt <= batch_size:
            raise ConfigError(f"opt_batch must be within 1..{batch_size}, got {opt_batch}")
        low, high = 1, batch_size
    return ProfileShapes(
        spec.name,
        (low, 3, height, width),
        (opt, 3, height, width),
        (high, 3, height, width),
    )


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; its digest names the cache file."""

    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    precision: str
    profile: str = ""
    """:meth:`ProfileShapes.text`."""
    dla_core: int | None = None
    calibration: str | None = None
    """Digest of the int8 calibration frames (None unless int8)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """SHA-256 of the key's canonical JSON."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def filename(self, model_stem: str) -> str:
        return f"{model_stem}.{self.precision}.{self.digest()[:16]}{ENGINE_SUFFIX}"


def engine_path(folder: Path, model_stem: str, key: EngineKey) -> Path:
    return folder / key.filename(model_stem)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load_cached_engine(path: Path, key: EngineKey) -> bytes | None:
    """The cached engine's bytes when the file exists, is not empty and its sidecar holds
    exactly ``key``; else None (build it)."""
    try:
        recorded = json.loads(_sidecar(path).read_text())
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    if recorded != key.as_dict() or not data:
        return None
    return data


def store_engine(path: Path, key: EngineKey, data: bytes) -> Path:
    """Write the engine, then its sidecar (a reader trusts the pair only once both exist)."""
    atomic_write_bytes(path, data)
    atomic_write_bytes(_sidecar(path), json.dumps(key.as_dict(), indent=2).encode() + b"\n")
    return path


@dataclass(frozen=True)
class BufferSpec:
    """One engine input or output: its host and device buffers hold ``shape`` of ``dtype``."""

    name: str
    is_input: bool
    shape: Shape
    dtype: str
    mapped: bool
    """Host memory mapped into the GPU's address space (unified memory on a Jetson): the
    engine reads and writes it directly, no copy. Otherwise pinned host + device buffers."""

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def row_bytes(self) -> int:
        """Bytes per batch row (the offset of image ``i`` is ``i * row_bytes``)."""
        return self.nbytes // self.shape[0]


def plan_buffers(
    tensors: Sequence[tuple[str, bool, Sequence[int], str]], *, rows: int, unified: bool
) -> tuple[BufferSpec, ...]:
    """Buffers for the engine's tensors, given as ``(name, is_input, shape, dtype)`` with the
    shape at one model run of the largest profile batch; each gets ``rows`` batch rows (the
    backend's capacity rounded up to whole model batches).

    >>> tensors = [("images", True, (8, 3, 224, 224), "float16"),
    ...            ("logits", False, (8, 1000), "float32")]
    >>> plan = plan_buffers(tensors, rows=8, unified=False)
    >>> [(b.name, b.shape, b.nbytes) for b in plan]
    [('images', (8, 3, 224, 224), 2408448), ('logits', (8, 1000), 32000)]
    """
    if rows < 1:
        raise ConfigError(f"rows must be >= 1, got {rows}")
    plan = []
    for name, is_input, shape, dtype in tensors:
        dims = tuple(int(d) for d in shape)
        if not dims or any(d < 1 for d in dims):
            raise ConfigError(
                f"tensor {name!r} has shape {list(dims)} at the largest profile: every "
                "dimension must be known (outputs whose size depends on the data are not "
                "supported)"
            )
        plan.append(BufferSpec(name, is_input, (rows, *dims[1:]), np.dtype(dtype).name, unified))
    if sum(b.is_input for b in plan) != 1:
        raise ConfigError("the engine must have exactly one input tensor")
    return tuple(plan)


def calibration_files(folder: Path) -> list[Path]:
    """The sample frames in ``folder`` (sorted, so calibration is reproducible)."""
    if not folder.is_dir():
        raise ConfigError(f"calibration frames folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in CALIBRATION_SUFFIXES)
    if not files:
        raise ConfigError(
            f"no calibration frames in {folder}: put JPEG files or .npy HxWx3 uint8 BGR arrays "
            "there (a few hundred frames like the ones the camera sees)"
        )
    return files


def load_calibration_frame(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One sample frame as an HxWx3 uint8 BGR array, its size checked before any pixel is
    read: a JPEG or ``.npy`` header claiming more than ``max_pixels`` (the sources' limit) is
    refused instead of allocated, and an ``.npy`` of another shape or dtype is refused instead
    of cast (a float array cast to uint8 would calibrate on garbage). Every error is a
    :class:`ConfigError` naming the file."""
    npy = path.suffix.lower() == ".npy"
    try:
        if npy:
            array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads only the header
            shape, dtype = array.shape, array.dtype
        else:
            data = path.read_bytes()
            header = jpeg.read_header(data)
            shape, dtype = (header.height, header.width, 3), np.dtype(np.uint8)
        if len(shape) != 3 or shape[2] != 3 or dtype != np.uint8:
            raise ConfigError(f"a .npy frame must be HxWx3 uint8 BGR, got shape {shape} {dtype}")
        if shape[0] * shape[1] > max_pixels:
            raise ConfigError(f"{shape[1]}x{shape[0]} is over max_pixels ({max_pixels:,})")
        return np.array(array) if npy else jpeg.decode(data)
    except (OSError, ValueError) as exc:  # unreadable, not a .npy or JPEG, refused, truncated
        raise ConfigError(f"calibration frame {path}: {exc}") from exc


def calibration_digest(files: Sequence[Path]) -> str:
    """SHA-256 over the frames' names and bytes: new frames, a new calibration (and engine)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def calibration_batches(count: int, batch: int) -> list[list[int]]:
    """Frame indices per calibration batch; the last batch repeats frames to stay full.

    >>> calibration_batches(5, 2)
    [[0, 1], [2, 3], [4, 0]]
    """
    if count < 1 or batch < 1:
        raise ConfigError(f"need at least one frame and a batch >= 1, got {count}, {batch}")
    return [[(start + i) % count for i in range(batch)] for start in range(0, count, batch)]
