"""Jetson figures from ``tegrastats``: GPU (GR3D) and memory-controller (EMC) load and clock,
power rails and the SoC's temperature sensors -- what NVML does not see on an integrated GPU.

``tegrastats --interval MS`` prints one line per interval; a reader thread keeps the latest and
each sample parses it (:func:`parse_tegrastats`). The line's format changed across JetPack
releases (Nano's ``POM_5V_IN 1388/1388`` in mW without a unit, Xavier and Orin's
``VDD_IN 2763mW/2846mW``; ``GR3D_FREQ 0%`` or ``0%@[305]`` or ``0%@[0,0]`` for two GPCs);
the parser takes all of them. A sensor that reads ``-256C`` is not fitted: absent.
CPU and RAM are left to the hardware collector (psutil reads the same counters).

=========================================  =====  ========================================
name                                       type   labels / meaning
=========================================  =====  ========================================
``edgeloop_jetson_gpu_load_ratio``         gauge  GR3D busy fraction
``edgeloop_jetson_gpu_frequency_hertz``    gauge  GR3D clock (first GPC), when printed
``edgeloop_jetson_emc_load_ratio``         gauge  memory controller busy fraction
``edgeloop_jetson_emc_frequency_hertz``    gauge  its clock, when printed
``edgeloop_jetson_power_watts``            gauge  ``rail``: instantaneous
``edgeloop_jetson_power_average_watts``    gauge  ``rail``: tegrastats' running average
``edgeloop_jetson_temperature_celsius``    gauge  ``sensor`` (lower case)
=========================================  =====  ========================================
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field

from core.metrics.collect import Collector
from core.metrics.registry import MetricsRegistry

__all__ = ["TegraSample", "TegrastatsCollector", "parse_tegrastats"]

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?(\d+)(?:,\d+)*\]?)?")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_POWER = re.compile(r"\b((?:VDD|VIN|POM|NC)[A-Za-z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?\b")
_ABSENT_C = -256.0


@dataclass(frozen=True)
class TegraSample:
    """One tegrastats line in base units (bytes, ratios 0-1, hertz, watts, celsius)."""

    ram_used_bytes: float | None = None
    ram_total_bytes: float | None = None
    swap_used_bytes: float | None = None
    swap_total_bytes: float | None = None
    cpu_load_ratio: tuple[float | None, ...] = ()
    """Per core; None for a core tegrastats prints as ``off``."""
    cpu_frequency_hertz: tuple[float | None, ...] = ()
    emc_load_ratio: float | None = None
    emc_frequency_hertz: float | None = None
    gpu_load_ratio: float | None = None
    gpu_frequency_hertz: float | None = None
    temperatures_celsius: dict[str, float] = field(default_factory=dict)
    power_watts: dict[str, float] = field(default_factory=dict)
    power_average_watts: dict[str, float] = field(default_factory=dict)


def _mhz(text: str | None) -> float | None:
    return float(text) * 1e6 if text else None


def parse_tegrastats(line: str) -> TegraSample:
    """Parse one tegrastats line (any JetPack's format; missing parts stay None/empty).

    >>> s = parse_tegrastats("RAM 2015/3964MB (lfb 98x4MB) CPU [6%@102,off] GR3D_FREQ 7% "
    ...                      "GPU@30.5C CV0@-256C POM_5V_IN 1388/1390")
    >>> s.gpu_load_ratio, s.cpu_load_ratio, s.temperatures_celsius, s.power_watts
    (0.07, (0.06, None), {'gpu': 30.5}, {'POM_5V_IN': 1.388})
    """
    ram = _RAM.search(line)
    swap = _SWAP.search(line)
    loads: list[float | None] = []
    freqs: list[float | None] = []
    cpu = _CPU.search(line)
    if cpu:
        for item in cpu.group(1).split(","):
            core = _CORE.match(item.strip())
            loads.append(int(core.group(1)) / 100.0 if core else None)
            freqs.append(_mhz(core.group(2)) if core else None)
    emc = _EMC.search(line)
    gr3d = _GR3D.search(line)
    temps: dict[str, float] = {}
    for name, value in _TEMP.findall(line):
        celsius = float(value)
        if celsius > _ABSENT_C:
            temps[name.lower()] = celsius
    power: dict[str, float] = {}
    average: dict[str, float] = {}
    for rail, now, mean in _POWER.findall(line):
        if rail == "NC":  # "not connected" channels of the INA3221 monitors
            continue
        power[rail] = int(now) / 1000.0
        average[rail] = int(mean) / 1000.0
    mib = 1024.0 * 1024.0
    return TegraSample(
        ram_used_bytes=float(ram.group(1)) * mib if ram else None,
        ram_total_bytes=float(ram.group(2)) * mib if ram else None,
        swap_used_bytes=float(swap.group(1)) * mib if swap else None,
        swap_total_bytes=float(swap.group(2)) * mib if swap else None,
        cpu_load_ratio=tuple(loads),
        cpu_frequency_hertz=tuple(freqs),
        emc_load_ratio=int(emc.group(1)) / 100.0 if emc else None,
        emc_frequency_hertz=_mhz(emc.group(2)) if emc else None,
        gpu_load_ratio=int(gr3d.group(1)) / 100.0 if gr3d else None,
        gpu_frequency_hertz=_mhz(gr3d.group(2)) if gr3d else None,
        temperatures_celsius=temps,
        power_watts=power,
        power_average_watts=average,
    )


def record_tegra(registry: MetricsRegistry, sample: TegraSample) -> None:
    """Set the ``edgeloop_jetson_*`` gauges (families only for what the line had)."""
    r = registry
    scalars = (
        ("edgeloop_jetson_gpu_load_ratio", "GR3D busy fraction", sample.gpu_load_ratio),
        ("edgeloop_jetson_gpu_frequency_hertz", "GR3D clock", sample.gpu_frequency_hertz),
        ("edgeloop_jetson_emc_load_ratio", "EMC busy fraction", sample.emc_load_ratio),
        ("edgeloop_jetson_emc_frequency_hertz", "EMC clock", sample.emc_frequency_hertz),
    )
    for name, help_text, value in scalars:
        if value is not None:
            r.gauge(name, help_text).set(value)
    for name, help_text, values in (
        ("edgeloop_jetson_power_watts", "Power per rail", sample.power_watts),
        (
            "edgeloop_jetson_power_average_watts",
            "Average power per rail",
            sample.power_average_watts,
        ),
    ):
        if values:
            family = r.gauge(name, help_text, ("rail",))
            for rail, watts in values.items():
                family.labels(rail=rail).set(watts)
    if sample.temperatures_celsius:
        temps = r.gauge("edgeloop_jetson_temperature_celsius", "SoC temperature", ("sensor",))
        for sensor, celsius in sample.temperatures_celsius.items():
            temps.labels(sensor=sensor).set(celsius)


class TegrastatsCollector(Collector):
    """Runs ``tegrastats`` (when on PATH) and records its latest line at each sample."""

    name = "jetson"

    def __init__(
        self, registry: MetricsRegistry, interval_s: float = 1.0, executable: str = "tegrastats"
    ) -> None:
        self.registry = registry
        self._latest: str | None = None
        self._process: subprocess.Popen[str] | None = None
        path = shutil.which(executable)
        self.available = path is not None
        if path is None:
            self.why_absent = f"{executable} is not on PATH (not a Jetson)"
            return
        interval_ms = max(100, int(interval_s * 1000))
        self._process = subprocess.Popen(
            [path, "--interval", str(interval_ms)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="edgeloop-tegrastats", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._latest = line

    def sample(self) -> None:
        line = self._latest
        if line:
            record_tegra(self.registry, parse_tegrastats(line))

    def close(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
