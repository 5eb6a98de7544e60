"""Our NVML readings against the real NVML on a real GPU: the device probe (``core.device``)
and the metrics collector (``core.metrics.gpu``, through the exporter's own path) report what
``pynvml`` itself answers. The stand-in tests (tests/test_device.py,
tests/test_metrics_collectors.py) check the arithmetic; these check it against a driver.

Skips (``real_nvml``) where pynvml is missing, ``nvmlInit`` fails, or NVML sees no GPU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.device import probe, probe_nvml
from core.device.__main__ import main as device_main
from core.metrics import MetricsRegistry
from core.metrics.config import MetricsConfig
from core.metrics.gpu import GpuCollector
from core.metrics.service import MetricsService

pytestmark = pytest.mark.usefixtures("real_nvml")

PLAUSIBLE_CELSIUS = (5.0, 110.0)
"""A running GPU's core temperature: above a cold room, below every part's shutdown limit."""
MAX_WATTS = 2000.0
MAX_SM_HERTZ = 5e9


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ask(call: Any, *args: Any) -> Any:
    """NVML's answer, or None where this GPU or driver does not support the query."""
    try:
        return call(*args)
    except Exception:  # pynvml.NVMLError_NotSupported and friends
        return None


@dataclass(frozen=True)
class Direct:
    """One GPU as pynvml answers when asked directly."""

    index: int
    name: str
    memory_total: int
    driver: str
    cuda_driver: str | None
    compute_capability: str | None
    utilization_supported: bool
    power_supported: bool
    clock_supported: bool


def _direct(nvml: Any) -> list[Direct]:
    driver = _text(nvml.nvmlSystemGetDriverVersion())
    cuda = _ask(nvml.nvmlSystemGetCudaDriverVersion)
    found = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        capability = _ask(nvml.nvmlDeviceGetCudaComputeCapability, handle)
        found.append(
            Direct(
                index=index,
                name=_text(nvml.nvmlDeviceGetName(handle)),
                memory_total=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                driver=driver,
                cuda_driver=f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
                compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
                utilization_supported=_ask(nvml.nvmlDeviceGetUtilizationRates, handle) is not None,
                power_supported=_ask(nvml.nvmlDeviceGetPowerUsage, handle) is not None,
                clock_supported=_ask(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
                is not None,
            )
        )
    return found


def test_probe_reports_what_nvml_answers(real_nvml: Any) -> None:
    direct = _direct(real_nvml)
    gpus, error = probe_nvml()
    assert error is None
    assert len(gpus) == len(direct) >= 1
    for gpu, want in zip(gpus, direct, strict=True):
        assert gpu.index == want.index
        assert gpu.name == want.name and gpu.name.strip()
        assert gpu.memory_bytes == want.memory_total and want.memory_total > 2**30
        assert gpu.driver == want.driver and gpu.driver
        assert gpu.cuda_driver == want.cuda_driver
        assert want.compute_capability is not None
        assert gpu.compute_capability == want.compute_capability
        assert gpu.integrated is False
    found = probe()  # the whole probe takes NVML's GPUs, not the /proc fallback's
    assert found.has_gpu and found.nvml_error is None
    assert found.gpus == gpus
    assert found.gpu_summary() == direct[0].name


def test_device_cli_json_lists_the_gpus(real_nvml: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert device_main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    direct = _direct(real_nvml)
    assert [g["name"] for g in data["gpus"]] == [d.name for d in direct]
    assert [g["memory_bytes"] for g in data["gpus"]] == [d.memory_total for d in direct]
    assert data["nvml_error"] is None
    assert data["runtimes"]["nvml"]  # the nvidia-ml-py version


def test_probe_agrees_with_nvidia_smi(real_nvml: Any) -> None:
    """A second, independent reader of the same driver (skipped where it is not installed)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi is not on PATH")
    fields = "index,name,memory.total,driver_version,compute_cap"
    answer = subprocess.run(
        [smi, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if answer.returncode != 0:
        pytest.skip(f"nvidia-smi --query-gpu={fields} failed: {answer.stdout + answer.stderr}")
    rows = [[c.strip() for c in line.split(",")] for line in answer.stdout.splitlines() if line]
    gpus, _ = probe_nvml()
    assert len(rows) == len(gpus)
    for gpu, (index, name, mib, driver, capability) in zip(gpus, rows, strict=True):
        assert (str(gpu.index), gpu.name, gpu.driver) == (index, name, driver)
        assert gpu.memory_bytes is not None
        assert abs(gpu.memory_bytes / 2**20 - int(mib)) <= 1
        assert gpu.compute_capability == capability


def _scrape(service: MetricsService) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` over loopback, as Prometheus gets it: {sample name: {labels: value}}."""
    assert service.url is not None
    with urllib.request.urlopen(service.url, timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def test_collector_gauges_from_the_real_gpu_through_the_exporter(real_nvml: Any) -> None:
    direct = _direct(real_nvml)
    registry = MetricsRegistry()
    config = MetricsConfig(port=0, collectors=("gpu",), interval_s=0.5)
    with MetricsService(config, registry) as service:
        (collector,) = service.sampler.collectors
        assert isinstance(collector, GpuCollector)
        assert collector.available, collector.why_absent
        service.sampler.sample_once()
        samples = _scrape(service)
    assert samples["edgeloop_collector_up"] == {(("collector", "gpu"),): 1.0}

    def gauge(metric: str, gpu: Direct) -> float | None:
        key = (("gpu", str(gpu.index)), ("name", gpu.name))
        return samples.get(metric, {}).get(key)

    for gpu in direct:
        total = gauge("edgeloop_gpu_memory_total_bytes", gpu)
        used = gauge("edgeloop_gpu_memory_used_bytes", gpu)
        assert total == float(gpu.memory_total)
        assert used is not None and 0 <= used <= total
        celsius = gauge("edgeloop_gpu_temperature_celsius", gpu)
        assert celsius is not None
        assert PLAUSIBLE_CELSIUS[0] <= celsius <= PLAUSIBLE_CELSIUS[1]
        # present exactly where NVML answers the query directly, and then in range
        utilization = gauge("edgeloop_gpu_utilization_ratio", gpu)
        assert (utilization is not None) == gpu.utilization_supported
        if utilization is not None:
            assert 0.0 <= utilization <= 1.0
        watts = gauge("edgeloop_gpu_power_watts", gpu)
        assert (watts is not None) == gpu.power_supported
        if watts is not None:
            assert 0.0 < watts < MAX_WATTS
        hertz = gauge("edgeloop_gpu_sm_clock_hertz", gpu)
        assert (hertz is not None) == gpu.clock_supported
        if hertz is not None:
            assert 0.0 <= hertz <= MAX_SM_HERTZ
    assert len(samples["edgeloop_gpu_memory_total_bytes"]) == len(direct)
