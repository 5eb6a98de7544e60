"""What this device is and which inference backend suits it (``python -m core.device``).

>>> from core.device import probe, choose_backend
>>> here = probe()
>>> here.cpu.usable_cores >= 1
True
>>> choose_backend("auto", here).backend in ("onnxruntime", "tensorrt")
True
"""

from core.device.choose import (
    BACKENDS,
    BackendChoice,
    choose_backend,
    ort_providers,
    tensorrt_missing,
)
from core.device.probe import (
    CpuInfo,
    DeviceProbe,
    GpuInfo,
    JetsonInfo,
    RuntimeInfo,
    probe,
    probe_cpu,
    probe_jetson,
    probe_nvidia_proc,
    probe_nvml,
    probe_runtimes,
)

__all__ = [
    "BACKENDS",
    "BackendChoice",
    "CpuInfo",
    "DeviceProbe",
    "GpuInfo",
    "JetsonInfo",
    "RuntimeInfo",
    "choose_backend",
    "ort_providers",
    "probe",
    "probe_cpu",
    "probe_jetson",
    "probe_nvidia_proc",
    "probe_nvml",
    "probe_runtimes",
    "tensorrt_missing",
]
