"""ONNX Runtime backend: IO binding to preallocated buffers, so a steady-state call allocates
nothing and the input the preprocess kernels wrote is the input the session reads.

Every run size the backend can see (each ``n`` for a dynamic batch, each chunk of a fixed one)
of every input slot gets its own ``IOBinding`` at load time, bound to ``OrtValue``\\ s that
wrap slices of that slot's NumPy buffers (``OrtValue.ortvalue_from_numpy`` shares their
memory). ``infer(n, slot)`` is then one ``run_with_iobinding`` per chunk and returns views made
at load time. With CUDA or TensorRT
execution providers the buffers stay in host memory and ONNX Runtime copies them to and from
the device inside the run.

Execution providers: CPU always; CUDA and TensorRT when the installed onnxruntime
(``onnxruntime-gpu``) offers them and a GPU is there (``core.device`` decides the order).
``threads`` sets the intra-op pool (None: ONNX Runtime's default, one per core).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from core.backends.base import PRECISIONS, Allocator, Backend, BackendInfo
from core.backends.model_file import check_model_file, load_failure
from core.backends.tensor_spec import TensorSpec
from core.cache import cache_dir
from core.device import ort_providers, probe
from core.errors import BackendUnavailableError, ConfigError, ModelError
from core.onnxruntime_session import import_onnxruntime, session_options

__all__ = [  # the session helpers too: bench and the tests import them from here
    "CPU",
    "CUDA",
    "TENSORRT",
    "OnnxRuntimeBackend",
    "import_onnxruntime",
    "session_options",
    "tensor_specs",
]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def tensor_specs(args: Sequence[Any]) -> tuple[TensorSpec, ...]:
    """ONNX Runtime ``NodeArg``\\ s as :class:`TensorSpec`\\ s."""
    return tuple(TensorSpec(a.name, tuple(a.shape), _DTYPES.get(a.type, a.type)) for a in args)


def _provider_chain(
    requested: Sequence[str], available: Sequence[str], precision: str, device_id: int
) -> list[Any]:
    missing = [p for p in requested if p not in available]
    if missing:
        raise BackendUnavailableError(
            f"onnxruntime here offers {', '.join(available)}, not {', '.join(missing)} "
            "(CUDA and TensorRT providers come with onnxruntime-gpu)"
        )
    if not requested:
        raise ConfigError("providers must name at least one execution provider")
    if precision != "fp32" and requested[0] != TENSORRT:
        raise BackendUnavailableError(
            f"onnxruntime runs the model in its own precision on {requested[0]}; "
            f"precision={precision!r} needs the tensorrt backend (or TensorrtExecutionProvider)"
        )
    if precision == "int8":
        raise BackendUnavailableError(
            "int8 through onnxruntime's TensorrtExecutionProvider needs a calibration table; "
            "use the tensorrt backend, which calibrates from sample frames"
        )
    chain: list[Any] = []
    for provider in requested:
        if provider == TENSORRT:
            options = {
                "device_id": device_id,
                "trt_fp16_enable": precision == "fp16",
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache_dir("ort-tensorrt")),
            }
            chain.append((provider, options))
        elif provider == CUDA:
            chain.append((provider, {"device_id": device_id}))
        else:
            chain.append(provider)
    if CPU not in requested:
        chain.append(CPU)  # nodes a GPU provider lacks fall back to the CPU
    return chain


class OnnxRuntimeBackend(Backend):
    """An ``InferenceSession`` behind the :class:`Backend` contract (see the module docstring).

    ``providers`` lists execution providers in order of preference; None takes the best this
    machine offers (``core.device.ort_providers``). ``precision`` other than ``fp32`` needs
    the TensorRT execution provider (fp16); a float16 model runs in float16 regardless.
    ``allocator`` makes every input and output array (zero-filled; default ``np.zeros``):
    :mod:`core.backends.process` places them in shared memory.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        batch_size: int = 1,
        threads: int | None = None,
        inter_op_threads: int | None = None,
        providers: Sequence[str] | None = None,
        precision: str = "fp32",
        input_size: tuple[int, int] | int | None = None,
        warmup_runs: int = 3,
        device_id: int = 0,
        input_slots: int = 1,
        spinning: bool = True,
        allocator: Allocator | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        path = check_model_file(model)
        ort = import_onnxruntime()
        if providers is None:
            providers = ort_providers(probe())
        # Providers with their options as the session gets them (bench gives a bare one the same).
        self.provider_chain = _provider_chain(
            providers, ort.get_available_providers(), precision, device_id
        )
        start = time.perf_counter()
        options = session_options(threads, inter_op_threads, spinning=spinning)
        self.spinning = spinning
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=self.provider_chain
            )
        except Exception as exc:  # ONNX Runtime's errors derive from Exception only
            raise load_failure(path, exc) from exc
        self._ort = ort
        self._allocator: Allocator = allocator if allocator is not None else np.zeros
        self.threads = threads
        self.precision = precision
        super().__init__(
            path,
            inputs=tensor_specs(self.session.get_inputs()),
            outputs=tensor_specs(self.session.get_outputs()),
            batch_size=batch_size,
            input_size=input_size,
            input_slots=input_slots,
        )
        self._keep: list[Any] = []  # OrtValues bound in the bindings: alive as long as we are
        self._runs: list[list[tuple[Any, ...]]] = []  # [slot][n - 1]: bindings to run
        first_inference: Callable[[], object] = self._first_inference
        shapes = self._declared_output_rows()
        if shapes is not None:  # buffers and bindings now: the first inference is just that
            self._allocate(shapes)
            first_inference = partial(self.infer, 1, 0)
        load_s = time.perf_counter() - start
        self._finish_loading(load_s, first_inference, warmup_runs)

    # -- loading ----------------------------------------------------------------------------

    def _declared_output_rows(self) -> list[tuple[tuple[int, ...], np.dtype[Any]]] | None:
        """Each output's row shape and dtype, when the model declares them all (fixed sizes
        after a leading batch axis); None when a run must tell."""
        rows = []
        for spec in self.outputs:
            dims = spec.shape[1:]
            if not spec.shape or not all(isinstance(d, int) and d > 0 for d in dims):
                return None
            try:
                dtype = np.dtype(spec.dtype)
            except TypeError:
                return None
            rows.append((tuple(int(d) for d in dims if isinstance(d, int)), dtype))
        return rows

    def _allocate(self, rows: list[tuple[tuple[int, ...], np.dtype[Any]]]) -> None:
        """The input and output buffers of every slot, then one binding per slot and run size."""
        height, width = self.input_size
        total = self.plan.rows
        dtype = np.dtype(self.input_spec.dtype)
        new = self._allocator
        slots = range(self.input_slots)
        inputs = [new((total, 3, height, width), dtype) for _ in slots]
        outputs = [[new((total, *shape), dt) for shape, dt in rows] for _ in slots]
        self._adopt_buffers(inputs, outputs)
        self._runs = [
            self._bind_runs(array, outs) for array, outs in zip(inputs, outputs, strict=True)
        ]

    def _first_inference(self) -> None:
        """For outputs whose sizes the model leaves open: run one image (one model batch, if
        fixed) with outputs ONNX Runtime allocates to learn them, then allocate and bind."""
        first = self.plan.chunks(1)[0][1]
        height, width = self.input_size
        images = np.zeros((first, 3, height, width), np.dtype(self.input_spec.dtype))
        trial = self.session.io_binding()
        trial.bind_ortvalue_input(
            self.input_spec.name, self._ort.OrtValue.ortvalue_from_numpy(images)
        )
        for out in self.outputs:
            trial.bind_output(out.name, "cpu")
        try:
            self.session.run_with_iobinding(trial)
        except Exception as exc:
            raise ModelError(
                f"{self.model_path.name}: the first inference on "
                f"{self.input_spec.name}{list(images.shape)} failed: {exc}"
            ) from exc
        rows = []
        for spec, result in zip(self.outputs, trial.get_outputs(), strict=True):
            shape = tuple(result.shape())
            if not shape or shape[0] != first:
                raise ModelError(
                    f"{self.model_path.name}: output {spec.name!r} {spec.shape_text()} came out "
                    f"as {list(shape)} for a batch of {first}; outputs must lead with the batch"
                )
            rows.append((shape[1:], result.numpy().dtype))
        self._allocate(rows)

    def _bind(self, arrays: Sequence[np.ndarray], start: int, size: int) -> Any:
        binding = self.session.io_binding()
        names = [self.input_spec.name] + [o.name for o in self.outputs]
        for i, (name, array) in enumerate(zip(names, arrays, strict=True)):
            value = self._ort.OrtValue.ortvalue_from_numpy(array[start : start + size])
            self._keep.append(value)
            if i == 0:
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_ortvalue_output(name, value)
        return binding

    def _bind_runs(
        self, input_array: np.ndarray, outputs: list[np.ndarray]
    ) -> list[tuple[Any, ...]]:
        """One slot's bindings: for each ``n``, the bindings ``infer(n)`` runs in order."""
        arrays = [input_array, *outputs]
        if self.plan.model_batch is None:
            return [(self._bind(arrays, 0, n),) for n in range(1, self.capacity + 1)]
        chunk_bindings = {
            start: self._bind(arrays, start, size)
            for start, size in self.plan.chunks(self.capacity)
        }
        return [
            tuple(chunk_bindings[start] for start, _ in self.plan.chunks(n))
            for n in range(1, self.capacity + 1)
        ]

    # -- the contract -------------------------------------------------------------------------

    def _run(self, n: int, slot: int) -> None:
        run = self.session.run_with_iobinding
        for binding in self._runs[slot][n - 1]:
            run(binding)

    def describe(self) -> BackendInfo:
        providers = list(self.session.get_providers())
        float16 = self.input_dtype == np.float16
        return self._info(
            version=self._ort.__version__,
            provider=providers[0],
            precision="fp16" if float16 else self.precision,
            threads=self.threads,
            extra={"providers": providers, "io_binding": True, "spinning": self.spinning},
        )

    def close(self) -> None:
        self._runs = []
        self._keep = []
