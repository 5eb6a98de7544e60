"""Reading what this machine has: CPU, NVIDIA GPUs (NVML), Jetson, inference runtimes.

Everything is read, never assumed: what a machine lacks is ``None`` (or an empty tuple), never
zero, and the reason a source gave nothing is kept (``nvml_error``) so that a backend that
cannot run can say why in one line. Paths are relative to ``root`` so tests can fake a Jetson.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "asimd", "fphp")
"""The SIMD extensions our kernels (and ONNX Runtime's MLAS) care about."""
TRTEXEC_PATHS = ("/usr/src/tensorrt/bin/trtexec",)
"""Where JetPack and NVIDIA's TensorRT packages put ``trtexec`` outside PATH."""
# L4T release -> JetPack (NVIDIA's release notes); unknown releases give jetpack=None.
JETPACK_FOR_L4T = {
    "32.4.3": "4.4",
    "32.4.4": "4.4.1",
    "32.5.0": "4.5",
    "32.5.1": "4.5.1",
    "32.5.2": "4.5.1",
    "32.6.1": "4.6",
    "32.7.1": "4.6.1",
    "32.7.2": "4.6.2",
    "32.7.3": "4.6.3",
    "32.7.4": "4.6.4",
    "32.7.5": "4.6.5",
    "35.1.0": "5.0.2",
    "35.2.1": "5.1",
    "35.3.1": "5.1.1",
    "35.4.1": "5.1.2",
    "35.5.0": "5.1.3",
    "35.6.0": "5.1.4",
    "36.2.0": "6.0 DP",
    "36.3.0": "6.0",
    "36.4.0": "6.1",
    "36.4.3": "6.2",
    "36.4.4": "6.2.1",
}


@dataclass(frozen=True)
class CpuInfo:
    model: str | None
    arch: str
    logical_cores: int | None
    physical_cores: int | None
    usable_cores: int
    """Cores this process may run on (its affinity mask)."""
    simd: tuple[str, ...]
    governor: str | None
    boost: str | None
    freq_mhz: int | None


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_bytes: int | None
    """Device memory; on a Jetson, the memory it shares with the CPU."""
    driver: str | None
    cuda_driver: str | None
    """Highest CUDA version the driver supports (``"12.4"``)."""
    compute_capability: str | None
    integrated: bool
    """True on a Jetson: CPU and GPU share memory, so mapped host buffers avoid copies."""


@dataclass(frozen=True)
class JetsonInfo:
    model: str | None
    """From ``/proc/device-tree/model`` (``NVIDIA Jetson AGX Orin Developer Kit``)."""
    l4t: str | None
    """From ``/etc/nv_tegra_release`` (``36.3.0``)."""
    jetpack: str | None


@dataclass(frozen=True)
class RuntimeInfo:
    onnxruntime: str | None
    ort_providers: tuple[str, ...]
    tensorrt: str | None
    pycuda: str | None
    nvml: str | None
    """The nvidia-ml-py (``pynvml``) package version."""
    trtexec: str | None
    """Path of TensorRT's ``trtexec`` when installed."""


@dataclass(frozen=True)
class DeviceProbe:
    cpu: CpuInfo
    gpus: tuple[GpuInfo, ...]
    jetson: JetsonInfo | None
    runtimes: RuntimeInfo
    nvml_error: str | None = None
    """Why NVML gave no GPU (not installed, no driver...), None when it answered."""

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    def gpu_summary(self) -> str:
        """One phrase for messages: the first GPU, or why none was found."""
        if self.gpus:
            return self.gpus[0].name
        nvml = self.nvml_error or "no device"
        return f"no NVIDIA GPU found (NVML: {nvml}; not a Jetson)"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def probe_cpu(root: Path = Path("/")) -> CpuInfo:
    """Model, cores, SIMD flags that matter to our kernels, governor and frequency."""
    model = None
    flags: list[str] = []
    for line in (_read(root / "proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.split()
    freq = psutil.cpu_freq()
    return CpuInfo(
        model=model or platform.processor() or None,
        arch=platform.machine(),
        logical_cores=psutil.cpu_count(logical=True),
        physical_cores=psutil.cpu_count(logical=False),
        usable_cores=len(os.sched_getaffinity(0)),
        simd=tuple(f for f in SIMD_FLAGS if f in flags),
        governor=_read(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        boost=_read(root / "sys/devices/system/cpu/cpufreq/boost"),
        freq_mhz=round(freq.current) if freq else None,
    )


def parse_l4t(release: str) -> str | None:
    """``# R36 (release), REVISION: 3.0, GCID: ...`` -> ``"36.3.0"``.

    >>> parse_l4t("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref")
    '35.4.1'
    """
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def probe_jetson(root: Path = Path("/")) -> JetsonInfo | None:
    """A Jetson's model and L4T/JetPack release, or None on anything else."""
    model = _read(root / "proc/device-tree/model")
    release = _read(root / "etc/nv_tegra_release")
    if release is None and (model is None or "jetson" not in model.lower()):
        return None
    l4t = parse_l4t(release) if release else None
    return JetsonInfo(model=model, l4t=l4t, jetpack=JETPACK_FOR_L4T.get(l4t or ""))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_nvml() -> tuple[tuple[GpuInfo, ...], str | None]:
    """Discrete NVIDIA GPUs through NVML: (gpus, why none) -- never raises."""
    try:
        import pynvml  # noqa: PLC0415 - optional (nvidia-ml-py)
    except ImportError:
        return (), "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml.NVMLError: no library, no driver, no device
        return (), _text(exc) or type(exc).__name__

    def ask(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:  # a field this GPU or driver does not report
            return None

    try:
        driver = ask(pynvml.nvmlSystemGetDriverVersion)
        cuda = ask(pynvml.nvmlSystemGetCudaDriverVersion)
        gpus = []
        for index in range(ask(pynvml.nvmlDeviceGetCount) or 0):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = ask(pynvml.nvmlDeviceGetMemoryInfo, handle)
            capability = ask(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=_text(ask(pynvml.nvmlDeviceGetName, handle) or f"GPU {index}"),
                    memory_bytes=int(memory.total) if memory is not None else None,
                    driver=_text(driver) if driver else None,
                    cuda_driver=f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
                    compute_capability="{}.{}".format(*capability) if capability else None,
                    integrated=False,
                )
            )
    except Exception as exc:
        return (), _text(exc) or type(exc).__name__
    finally:
        ask(pynvml.nvmlShutdown)
    return tuple(gpus), None if gpus else "no GPU reported"


def probe_nvidia_proc(root: Path = Path("/")) -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs as the kernel driver lists them (``/proc/driver/nvidia/gpus/*/information``):
    the fallback when NVML is missing. Names and driver only; memory and CUDA are unknown."""
    folder = root / "proc/driver/nvidia"
    match = re.search(r"Kernel Module\s+([\d.]+)", _read(folder / "version") or "")
    gpus = []
    for index, info in enumerate(sorted((folder / "gpus").glob("*/information"))):
        fields = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in (_read(info) or "").splitlines())
        )
        name = fields.get("Model") or f"NVIDIA GPU {info.parent.name}"
        gpus.append(
            GpuInfo(
                index, name, None, match.group(1) if match else None, None, None, integrated=False
            )
        )
    return tuple(gpus)


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _module_version(module: str, *distributions: str) -> str | None:
    """Version of an importable module (its distribution's, else its ``__version__``)."""
    if importlib.util.find_spec(module) is None:
        return None
    version = _version(*distributions)
    if version is None:  # JetPack installs tensorrt from a .deb: no pip metadata
        try:
            version = str(getattr(__import__(module), "__version__", "unknown"))
        except Exception:  # present but broken: report it as absent
            return None
    return version


def probe_runtimes() -> RuntimeInfo:
    providers: tuple[str, ...] = ()
    ort_version = _module_version("onnxruntime", "onnxruntime", "onnxruntime-gpu")
    if ort_version is not None:
        try:
            import onnxruntime  # noqa: PLC0415 - optional

            providers = tuple(onnxruntime.get_available_providers())
        except Exception:
            ort_version = None
    trtexec = shutil.which("trtexec") or next(
        (p for p in TRTEXEC_PATHS if os.access(p, os.X_OK)), None
    )
    return RuntimeInfo(
        onnxruntime=ort_version,
        ort_providers=providers,
        tensorrt=_module_version("tensorrt", "tensorrt", "tensorrt-cu12", "tensorrt-cu11"),
        pycuda=_module_version("pycuda", "pycuda"),
        nvml=_version("nvidia-ml-py", "pynvml"),
        trtexec=trtexec,
    )


def probe(root: Path = Path("/")) -> DeviceProbe:
    """Everything above, read now (about 0.2 s, mostly importing onnxruntime). GPUs come from
    NVML, else from the NVIDIA kernel driver's ``/proc`` entries, else from a Jetson's model."""
    jetson = probe_jetson(root)
    gpus, nvml_error = probe_nvml()
    if not gpus:
        gpus = probe_nvidia_proc(root)
    if not gpus and jetson is not None:
        memory = psutil.virtual_memory().total
        name = f"{jetson.model or 'Jetson'} (integrated GPU)"
        gpus = (GpuInfo(0, name, memory, None, None, None, integrated=True),)
    return DeviceProbe(
        cpu=probe_cpu(root),
        gpus=gpus,
        jetson=jetson,
        runtimes=probe_runtimes(),
        nvml_error=nvml_error,
    )
