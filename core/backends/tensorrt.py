"""TensorRT backend (``tensorrt`` + ``pycuda``): engines built from ONNX and cached, pinned
host buffers, device buffers allocated once, H2D -> execute -> D2H on one CUDA stream.

Both modules are imported only when a :class:`TensorRTBackend` is made; their absence is a
one-line :class:`BackendUnavailableError`. The decisions that need no GPU (cache key, profile,
buffer plan, calibration batches) live in :mod:`core.backends.trt_plan` and are tested
everywhere; this module is exercised by ``tests/gpu/`` on a machine with TensorRT.

Written against the TensorRT >= 8.6 tensor API (``num_io_tensors``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``), which TensorRT 10 keeps.

* **Precision**: ``fp32``, ``fp16``, or ``int8`` calibrated (entropy calibrator 2) from a
  folder of sample frames, with a calibration cache beside the engines; int8 also enables
  fp16 for the layers that stay in floating point.
* **Dynamic shapes**: one optimization profile, batch 1..``batch_size`` (tuned for
  ``opt_batch``), height and width fixed at ``input_size``; a fixed-batch model is split and
  padded (:class:`~core.backends.base.BatchPlan`).
* **Jetson**: on an integrated GPU the buffers are host memory mapped into the GPU
  (``DEVICEMAP``): the preprocess kernels write where the engine reads, no copy at all.
* **Input slots** (``input_slots=k``): every slot has its own pinned (or mapped) host input
  and outputs; ``infer(n, slot)`` copies from that slot's input and into that slot's outputs.
  The device buffers are shared (calls are serialised on the one stream); mapped buffers are
  per slot, since there the host buffer *is* the device buffer.
  ``dla_core`` runs the engine on a DLA (fp16 or int8), with GPU fallback for layers it lacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.backends.base import PRECISIONS, Backend, BackendInfo
from core.backends.model_file import check_model_file, load_failure, onnx_io_specs
from core.backends.trt_plan import (
    BufferSpec,
    EngineKey,
    ProfileShapes,
    calibration_batches,
    calibration_digest,
    calibration_files,
    engine_path,
    load_cached_engine,
    load_calibration_frame,
    plan_buffers,
    profile_shapes,
    store_engine,
)
from core.cache import atomic_write_bytes, cache_dir
from core.errors import BackendUnavailableError, ConfigError, ModelError
from core.preprocess import PreprocessSpec, preprocess_into

DEFAULT_WORKSPACE_BYTES = 1 << 30


def import_tensorrt() -> tuple[Any, Any]:
    """``(tensorrt, pycuda.driver)``, or one :class:`BackendUnavailableError` naming both
    missing pieces."""
    missing = []
    modules: list[Any] = []
    for module, hint in (
        ("tensorrt", "the tensorrt module is not installed ({}; pip install tensorrt)"),
        ("pycuda.driver", "pycuda is not installed ({}; pip install pycuda)"),
    ):
        try:
            modules.append(importlib.import_module(module))
        except ImportError as exc:
            missing.append(hint.format(exc))
    if missing:
        raise BackendUnavailableError("tensorrt backend cannot run here: " + "; ".join(missing))
    return modules[0], modules[1]


def _device_pointer(host: Any) -> int:
    """The GPU address of a mapped (``DEVICEMAP``) pinned host array."""
    return int(host.base.get_device_pointer())


def _calibrator(
    trt: Any, cuda: Any, files: list[Path], spec: PreprocessSpec, *, batch: int, cache: Path
) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``files`` through ``spec`` (float32 batches)."""

    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.host = np.zeros(spec.batch_shape(batch), np.float32)
            self.device = cuda.mem_alloc(self.host.nbytes)
            self.batches = iter(calibration_batches(len(files), batch) if files else [])

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            del names
            indices = next(self.batches, None)
            if indices is None:
                return None
            for row, index in enumerate(indices):
                preprocess_into(load_calibration_frame(files[index]), self.host[row], spec)
            cuda.memcpy_htod(self.device, self.host)
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            atomic_write_bytes(cache, bytes(data))

    return Calibrator()


class TensorRTBackend(Backend):
    """A TensorRT engine behind the :class:`Backend` contract (see the module docstring).

    ``calibration_frames`` (a folder) and ``calibration_spec`` (the model's preprocess recipe,
    e.g. ``PreprocessSpec.yolo()``) are needed for ``int8`` unless a calibration cache for the
    same frames exists. ``cache_folder`` defaults to ``<cache>/engines``.
    """

    name = "tensorrt"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        batch_size: int = 1,
        precision: str = "fp32",
        input_size: tuple[int, int] | int | None = None,
        warmup_runs: int = 3,
        device_id: int = 0,
        dla_core: int | None = None,
        opt_batch: int | None = None,
        calibration_frames: str | os.PathLike[str] | None = None,
        calibration_spec: PreprocessSpec | None = None,
        cache_folder: Path | None = None,
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
        unified_memory: bool | None = None,
        input_slots: int = 1,
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if dla_core is not None and precision == "fp32":
            raise ConfigError("a DLA runs fp16 or int8 engines; ask for precision='fp16'")
        trt, cuda = import_tensorrt()
        path = check_model_file(model)
        self._trt, self._cuda = trt, cuda
        self.precision = precision
        self.dla_core = dla_core
        self._logger = trt.Logger(trt.Logger.WARNING)
        start = time.perf_counter()
        cuda.init()
        self._device = cuda.Device(device_id)
        self._cuda_context = self._device.retain_primary_context()
        self.device_id = device_id
        inputs, outputs = onnx_io_specs(path)
        super().__init__(
            path,
            inputs=inputs,
            outputs=outputs,
            batch_size=batch_size,
            input_size=input_size,
            input_slots=input_slots,
        )
        self.profile = profile_shapes(
            self.input_spec, batch_size=batch_size, input_size=self.input_size, opt_batch=opt_batch
        )
        integrated = bool(self._device.get_attribute(cuda.device_attribute.INTEGRATED))
        can_map = bool(self._device.get_attribute(cuda.device_attribute.CAN_MAP_HOST_MEMORY))
        self.unified = (integrated and can_map) if unified_memory is None else unified_memory
        self._allocations: list[Any] = []
        self._steps: list[list[list[tuple[str, Any, Any]]]] = []  # [slot][n - 1]
        with self._active():
            self._stream = cuda.Stream()
            build_s = self._load_engine(
                path,
                cache_folder or cache_dir("engines"),
                workspace_bytes,
                calibration_frames,
                calibration_spec,
            )
            self._context = self._engine.create_execution_context()
            self._allocate()
        load_s = time.perf_counter() - start
        self._finish_loading(load_s, lambda: self.infer(1, 0), warmup_runs, build_s)

    # -- engine -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        """This backend's CUDA context, current on the calling thread for the block."""
        self._cuda_context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def _key(self, calibration: str | None) -> EngineKey:
        return EngineKey(
            model_sha256=self.model_sha256,
            tensorrt_version=str(self._trt.__version__),
            gpu_name=str(self._device.name()),
            precision=self.precision,
            profile=self.profile.text(),
            dla_core=self.dla_core,
            calibration=calibration,
        )

    def _calibration(
        self, folder: Path, frames: str | os.PathLike[str] | None
    ) -> tuple[list[Path], Path, str]:
        """int8: the sample frames, the calibration cache file, and the digest for the key.

        The cache is named after the model, input size and frames, so new frames calibrate
        again; with no frames given the newest cache for this model and size is used.
        """
        height, width = self.input_size
        prefix = f"{self.model_path.stem}.{self.model_sha256[:16]}.{height}x{width}"
        if frames is not None:
            files = calibration_files(Path(frames))
            digest = calibration_digest(files)
            return files, folder / f"{prefix}.{digest[:16]}.calibration", digest
        cached = sorted(folder.glob(f"{prefix}.*.calibration"), key=lambda p: p.stat().st_mtime)
        if not cached:
            raise ConfigError(
                "int8 needs calibration_frames (a folder of sample frames) or an existing "
                f"calibration cache {folder / prefix}.*.calibration"
            )
        return [], cached[-1], cached[-1].name.split(".")[-2]

    def _load_engine(
        self,
        path: Path,
        folder: Path,
        workspace_bytes: int,
        frames: str | os.PathLike[str] | None,
        frames_spec: PreprocessSpec | None,
    ) -> float | None:
        """Deserialise the cached engine, or build (and cache) it: the build's seconds."""
        files: list[Path] = []
        calibration = None
        if self.precision == "int8":
            files, calibration_cache, calibration = self._calibration(folder, frames)
        key = self._key(calibration)
        self.engine_file = engine_path(folder, path.stem, key)
        runtime = self._trt.Runtime(self._logger)
        if self.dla_core is not None:
            runtime.DLA_core = self.dla_core
        data = load_cached_engine(self.engine_file, key)
        self.engine_cached = data is not None
        engine = runtime.deserialize_cuda_engine(data) if data is not None else None
        build_s = None
        if engine is None:  # not cached, or a cached file TensorRT refuses: build it
            self.engine_cached = False
            start = time.perf_counter()
            calibrator = None
            if self.precision == "int8":
                recipe = frames_spec or PreprocessSpec(self.input_size)
                spec = dataclasses.replace(recipe, size=self.input_size, dtype="float32")
                batch = self.profile.opt[0]
                calibrator = _calibrator(
                    self._trt, self._cuda, files, spec, batch=batch, cache=calibration_cache
                )
            data = self._build(path, workspace_bytes, calibrator)
            build_s = time.perf_counter() - start
            store_engine(self.engine_file, key, data)
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise ModelError(f"TensorRT built an engine for {path.name} it cannot load")
        self._runtime, self._engine = runtime, engine
        return build_s

    def _build(self, path: Path, workspace_bytes: int, calibrator: Any) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        # TensorRT 8.x needs EXPLICIT_BATCH for ONNX; 10 keeps the flag as a no-op, later drop it.
        explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
        flags = 0 if explicit is None else 1 << int(explicit)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise load_failure(path, RuntimeError(f"TensorRT's ONNX parser: {errors}"))
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
        if self.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        p: ProfileShapes = self.profile
        profile.set_shape(p.input_name, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
        if self.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = calibrator
            config.set_calibration_profile(profile)
        if self.dla_core is not None:
            if builder.num_DLA_cores <= self.dla_core:
                raise BackendUnavailableError(
                    f"DLA core {self.dla_core} requested but this device has "
                    f"{builder.num_DLA_cores} DLA core(s)"
                )
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = self.dla_core
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelError(
                f"TensorRT could not build an engine for {path.name} ({self.precision}); "
                "its log above says why"
            )
        return bytes(serialized)

    # -- buffers --------------------------------------------------------------------------------

    def _allocate(self) -> None:
        """Pinned (or mapped) host buffers and device buffers, once; then every run's steps."""
        trt, cuda, engine, context = self._trt, self._cuda, self._engine, self._context
        run = self.plan.chunks(self.capacity)[0][1]
        height, width = self.input_size
        context.set_input_shape(self.input_spec.name, (run, 3, height, width))
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
            tensors.append((name, is_input, tuple(context.get_tensor_shape(name)), dtype))
        plan = plan_buffers(tensors, rows=self.plan.rows, unified=self.unified)
        flags = cuda.host_alloc_flags.DEVICEMAP if self.unified else 0
        shared: dict[str, int] = {}  # device buffers, shared by the slots unless mapped
        if not self.unified:
            for buf in plan:
                allocation = cuda.mem_alloc(buf.nbytes)
                self._allocations.append(allocation)
                shared[buf.name] = int(allocation)
        slot_hosts: list[dict[str, np.ndarray]] = []
        slot_devices: list[dict[str, int]] = []
        for _ in range(self.input_slots):
            hosts: dict[str, np.ndarray] = {}
            for buf in plan:
                hosts[buf.name] = cuda.pagelocked_zeros(
                    buf.shape, np.dtype(buf.dtype), mem_flags=flags
                )
            slot_hosts.append(hosts)
            slot_devices.append(
                {name: _device_pointer(host) for name, host in hosts.items()}
                if self.unified
                else shared
            )
        self.buffers = plan
        order = [o.name for o in self.outputs]
        self._adopt_buffers(
            [hosts[self.input_spec.name] for hosts in slot_hosts],
            [[hosts[name] for name in order] for hosts in slot_hosts],
        )
        self._steps = [
            [self._plan_steps(n, plan, hosts, devices) for n in range(1, self.capacity + 1)]
            for hosts, devices in zip(slot_hosts, slot_devices, strict=True)
        ]

    def _plan_steps(
        self,
        n: int,
        plan: tuple[BufferSpec, ...],
        hosts: dict[str, np.ndarray],
        devices: dict[str, int],
    ) -> list[tuple[str, Any, Any]]:
        """The calls ``infer(n)`` makes, with every pointer and view computed now."""
        steps: list[tuple[str, Any, Any]] = []
        height, width = self.input_size
        dynamic = self.plan.model_batch is None  # a fixed batch's shape was set once, at load
        for start, size in self.plan.chunks(n):
            if dynamic:
                steps.append(("shape", self.input_spec.name, (size, 3, height, width)))
            for buf in plan:
                address = devices[buf.name] + start * buf.row_bytes
                steps.append(("address", buf.name, address))
                if not buf.mapped and buf.is_input:
                    steps.append(("h2d", address, hosts[buf.name][start : start + size]))
            steps.append(("execute", None, None))
            for buf in plan:
                if not buf.mapped and not buf.is_input:
                    address = devices[buf.name] + start * buf.row_bytes
                    steps.append(("d2h", hosts[buf.name][start : start + size], address))
        return steps

    # -- the contract -------------------------------------------------------------------------

    def _run(self, n: int, slot: int) -> None:
        cuda, context, stream = self._cuda, self._context, self._stream
        self._cuda_context.push()  # not a context manager: the hot path makes no generator
        try:
            for op, a, b in self._steps[slot][n - 1]:
                if op == "h2d":
                    cuda.memcpy_htod_async(a, b, stream)
                elif op == "execute":
                    if not context.execute_async_v3(stream.handle):
                        raise RuntimeError("TensorRT execute_async_v3 failed (see its log)")
                elif op == "d2h":
                    cuda.memcpy_dtoh_async(a, b, stream)
                elif op == "address":
                    context.set_tensor_address(a, b)
                else:
                    context.set_input_shape(a, b)
            stream.synchronize()
        finally:
            cuda.Context.pop()

    def describe(self) -> BackendInfo:
        where = f"dla:{self.dla_core}" if self.dla_core is not None else f"cuda:{self.device_id}"
        return self._info(
            version=str(self._trt.__version__),
            provider=f"{where} ({self._device.name()})",
            precision=self.precision,
            threads=None,
            extra={
                "engine_file": str(self.engine_file),
                "engine_cached": self.engine_cached,
                "profile": self.profile.text(),
                "unified_memory": self.unified,
            },
        )

    def close(self) -> None:
        if not self._allocations and not self._steps:
            return
        with self._active():
            for allocation in self._allocations:
                allocation.free()
            self._allocations = []
            self._steps = []
            self._context = self._engine = None
