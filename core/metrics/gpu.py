"""NVIDIA GPUs through NVML (``nvidia-ml-py``'s ``pynvml``): utilisation, memory, temperature,
power and SM clock per GPU.

Import-guarded twice: no ``pynvml`` module, or a module that finds no driver (``nvmlInit``
fails: every machine without an NVIDIA GPU, and a Jetson, whose iGPU NVML does not see), makes
the collector absent -- ``edgeloop_collector_up{collector="gpu"} 0`` and no ``edgeloop_gpu_*``
series, never a GPU at 0 %. A figure one GPU does not support (power on some boards) is absent
for that GPU alone.

==========================================  =====  =======================================
name                                        type   labels ``gpu`` (index), ``name`` (model)
==========================================  =====  =======================================
``edgeloop_gpu_utilization_ratio``          gauge  busy fraction of the last sample period
``edgeloop_gpu_memory_used_bytes``          gauge
``edgeloop_gpu_memory_total_bytes``         gauge
``edgeloop_gpu_temperature_celsius``        gauge
``edgeloop_gpu_power_watts``                gauge
``edgeloop_gpu_sm_clock_hertz``             gauge
==========================================  =====  =======================================
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from core.metrics.collect import Collector
from core.metrics.registry import MetricsRegistry

__all__ = ["GpuCollector", "GpuReading", "load_nvml", "read_gpus"]


@dataclass(frozen=True)
class GpuReading:
    """One GPU's figures in base units; None where NVML does not report it."""

    index: int
    name: str
    utilization_ratio: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    sm_clock_hertz: float | None = None


def load_nvml() -> tuple[Any, str | None]:
    """``(pynvml, None)`` with NVML initialised, or ``(None, why)``."""
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        return None, "pynvml is not installed (pip install nvidia-ml-py)"
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded...
        return None, f"NVML found no driver: {exc}"
    return nvml, None


def _try(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception:  # NVMLError_NotSupported and friends: this figure is absent
        return None


def read_gpus(nvml: Any) -> list[GpuReading]:
    """Every GPU NVML sees (``nvml``: an initialised ``pynvml``)."""
    readings = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = _try(nvml.nvmlDeviceGetName, handle) or f"gpu{index}"
        if isinstance(name, bytes):  # older pynvml returns bytes
            name = name.decode(errors="replace")
        util = _try(nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = _try(nvml.nvmlDeviceGetMemoryInfo, handle)
        temp = _try(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        power_mw = _try(nvml.nvmlDeviceGetPowerUsage, handle)
        clock_mhz = _try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        readings.append(
            GpuReading(
                index=index,
                name=str(name),
                utilization_ratio=util.gpu / 100.0 if util is not None else None,
                memory_used_bytes=float(memory.used) if memory is not None else None,
                memory_total_bytes=float(memory.total) if memory is not None else None,
                temperature_celsius=float(temp) if temp is not None else None,
                power_watts=power_mw / 1000.0 if power_mw is not None else None,
                sm_clock_hertz=clock_mhz * 1e6 if clock_mhz is not None else None,
            )
        )
    return readings


_FIELDS = {
    "utilization_ratio": ("edgeloop_gpu_utilization_ratio", "GPU busy fraction"),
    "memory_used_bytes": ("edgeloop_gpu_memory_used_bytes", "GPU memory in use"),
    "memory_total_bytes": ("edgeloop_gpu_memory_total_bytes", "GPU memory"),
    "temperature_celsius": ("edgeloop_gpu_temperature_celsius", "GPU temperature"),
    "power_watts": ("edgeloop_gpu_power_watts", "GPU power draw"),
    "sm_clock_hertz": ("edgeloop_gpu_sm_clock_hertz", "GPU SM clock"),
}


def record_gpus(registry: MetricsRegistry, readings: list[GpuReading]) -> None:
    """Set the ``edgeloop_gpu_*`` gauges from readings (a family only for figures reported)."""
    for reading in readings:
        for field, (metric, help_text) in _FIELDS.items():
            value = getattr(reading, field)
            if value is None:
                continue
            family = registry.gauge(metric, help_text, ("gpu", "name"))
            family.labels(gpu=reading.index, name=reading.name).set(value)


class GpuCollector(Collector):
    """NVML, sampled; absent where no NVIDIA driver answers."""

    name = "gpu"

    def __init__(self, registry: MetricsRegistry, nvml: Any = None) -> None:
        self.registry = registry
        if nvml is None:
            nvml, self.why_absent = load_nvml()
        self.nvml = nvml
        self.available = nvml is not None and _try(nvml.nvmlDeviceGetCount) not in (None, 0)
        if nvml is not None and not self.available:
            self.why_absent = "NVML sees no GPU"

    def sample(self) -> None:
        record_gpus(self.registry, read_gpus(self.nvml))

    def close(self) -> None:
        if self.nvml is not None:
            _try(self.nvml.nvmlShutdown)
            self.nvml = None
