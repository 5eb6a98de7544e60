"""The collectors on this machine (what it lacks is absent) and their parsers: tegrastats lines
recorded on three Jetson generations (plus one built in their format for cores that are off),
NVML answers replayed through a stand-in (no NVIDIA driver here), sysfs trees laid out as the
kernel writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest

from core.metrics import MetricsRegistry, hardware
from core.metrics.collect import Sampler, Totals
from core.metrics.gpu import GpuCollector, GpuReading, read_gpus, record_gpus
from core.metrics.hardware import (
    HardwareCollector,
    RssTrend,
    block_device,
    busy_fractions,
    clock_domains,
    cpu_jiffies,
    process_stat,
    thermal_sensors,
)
from core.metrics.jetson import TegrastatsCollector, parse_tegrastats, record_tegra
from core.metrics.messaging import BrokerMetrics, SpoolMetrics
from core.metrics.network import NetworkCollector

# tegrastats lines as devices printed them (public recordings; one per format generation).
NANO = (  # Jetson Nano, L4T 32: power in mW without a unit, GR3D without a clock
    "RAM 2015/3964MB (lfb 98x4MB) SWAP 29/1982MB (cached 3MB) CPU [6%@102,5%@102,4%@102,3%@102] "
    "EMC_FREQ 0% GR3D_FREQ 0% PLL@28C CPU@31.5C PMIC@100C GPU@30.5C AO@36C thermal@31.25C "
    "POM_5V_IN 1388/1388 POM_5V_GPU 122/122 POM_5V_CPU 163/163"
)
XAVIER_NX = (  # Xavier NX, JetPack 5.1.2
    "07-09-2024 13:31:31 RAM 3168/6851MB (lfb 2x4MB) SWAP 161/3426MB (cached 0MB) "
    "CPU [23%@1397,17%@1192,16%@1190,13%@1190,23%@1190,10%@1190] EMC_FREQ 2%@204 "
    "GR3D_FREQ 0%@[114] VIC_FREQ 115 APE 150 AUX@45C CPU@46.5C thermal@45.6C AO@45C "
    "GPU@45.5C PMIC@50C VDD_IN 2763mW/2846mW VDD_CPU_GPU_CV 650mW/670mW VDD_SOC 650mW/711mW"
)
AGX_ORIN = (  # AGX Orin 64 GB, JetPack 6: absent sensors at -256C, NC rails, two GPCs
    "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) "
    "CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] "
    "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C "
    "Tboard@32C SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C "
    "SOC1@41.25C CV2@-256C VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW "
    "VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"
)
ORIN_NANO_OFF = (  # built in the Orin Nano's L4T 36 format: two cores off, the GPU busy
    "10-08-2026 04:35:02 RAM 6712/7620MB (lfb 12x4MB) SWAP 369/3810MB (cached 8MB) "
    "CPU [38%@1497,2%@729,off,off] EMC_FREQ 61%@2133 GR3D_FREQ 99%@[611] NVDEC off "
    "cpu@58.562C soc2@52.593C gpu@59.625C tj@59.312C VDD_IN 9251mW/8535mW "
    "VDD_CPU_GPU_CV 3512mW/2944mW VDD_SOC 2720mW/2659mW"
)


def test_tegrastats_nano() -> None:
    s = parse_tegrastats(NANO)
    assert s.ram_used_bytes == 2015 * 2**20 and s.ram_total_bytes == 3964 * 2**20
    assert s.swap_used_bytes == 29 * 2**20
    assert s.cpu_load_ratio == (0.06, 0.05, 0.04, 0.03)
    assert s.cpu_frequency_hertz == (102e6,) * 4
    assert s.gpu_load_ratio == 0.0 and s.gpu_frequency_hertz is None
    assert s.emc_load_ratio == 0.0 and s.emc_frequency_hertz is None
    assert s.temperatures_celsius["gpu"] == 30.5 and s.temperatures_celsius["thermal"] == 31.25
    assert s.power_watts == {"POM_5V_IN": 1.388, "POM_5V_GPU": 0.122, "POM_5V_CPU": 0.163}


def test_tegrastats_xavier() -> None:
    s = parse_tegrastats(XAVIER_NX)
    assert len(s.cpu_load_ratio) == 6 and s.cpu_load_ratio[0] == 0.23
    assert s.gpu_frequency_hertz == 114e6 and s.emc_frequency_hertz == 204e6
    assert s.power_watts["VDD_IN"] == 2.763 and s.power_average_watts["VDD_IN"] == 2.846
    assert set(s.temperatures_celsius) == {"aux", "cpu", "thermal", "ao", "gpu", "pmic"}


def test_tegrastats_orin_absent_sensors_and_nc_rails() -> None:
    s = parse_tegrastats(AGX_ORIN)
    assert "gpu" not in s.temperatures_celsius and "cv0" not in s.temperatures_celsius
    assert s.temperatures_celsius["tj"] == 44.343
    assert "NC" not in s.power_watts and s.power_watts["VIN_SYS_5V0"] == 4.025
    assert s.gpu_load_ratio == 0.0 and s.gpu_frequency_hertz == 0.0
    assert len(s.cpu_load_ratio) == 12


def test_tegrastats_cores_off_are_absent_and_recorded() -> None:
    s = parse_tegrastats(ORIN_NANO_OFF)
    assert s.cpu_load_ratio == (0.38, 0.02, None, None)
    assert s.gpu_load_ratio == 0.99 and s.gpu_frequency_hertz == 611e6
    registry = MetricsRegistry()
    record_tegra(registry, s)
    snap = registry.snapshot()
    assert snap["edgeloop_jetson_gpu_load_ratio"]["samples"][0]["value"] == 0.99
    power = snap["edgeloop_jetson_power_watts"]["samples"]
    rails = {x["labels"]["rail"]: x["value"] for x in power}
    assert rails["VDD_IN"] == 9.251


def test_tegrastats_absent_here() -> None:
    collector = TegrastatsCollector(MetricsRegistry(), executable="tegrastats-not-here")
    assert not collector.available and "not on PATH" in (collector.why_absent or "")
    collector.close()


class RecordedNvml:
    """A stand-in for ``pynvml`` with the functions :func:`read_gpus` calls, answering in
    NVML's own units (percent, bytes, degrees, milliwatts, MHz) figures of the order an H100
    80GB shows under load -- not a recording: no GPU machine was lent to this work, so the
    collector's NVML path still wants a run on a real GPU. Power raises ``NotSupported`` on
    GPU 1 (as on some boards): that figure must be absent there."""

    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1

    class NVMLError(Exception):
        pass

    class _Util:
        gpu, memory = 37, 12

    class _Memory:
        total, used, free = 85_520_809_984, 10_414_260_224, 75_106_549_760

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return self._Util()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return self._Memory()

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 41

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if handle == 1:
            raise self.NVMLError("Not Supported")
        return 118_713

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        return 1980

    def nvmlShutdown(self) -> None:
        pass


def test_nvml_readings_in_base_units() -> None:
    readings = read_gpus(RecordedNvml())
    assert readings[0] == GpuReading(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        utilization_ratio=0.37,
        memory_used_bytes=10_414_260_224.0,
        memory_total_bytes=85_520_809_984.0,
        temperature_celsius=41.0,
        power_watts=118.713,
        sm_clock_hertz=1.98e9,
    )
    assert readings[1].power_watts is None
    registry = MetricsRegistry()
    record_gpus(registry, readings)
    power = registry.snapshot()["edgeloop_gpu_power_watts"]["samples"]
    assert [p["labels"]["gpu"] for p in power] == ["0"]


def test_nvml_absent_on_this_machine() -> None:
    """No NVIDIA driver on the CI VM: absent, with the reason, and no gpu family at all."""
    registry = MetricsRegistry()
    collector = GpuCollector(registry)
    if collector.available:
        pytest.skip("this machine has an NVIDIA GPU")
    assert collector.why_absent
    Sampler(registry, [collector]).sample_once()
    assert not [n for n in registry.names() if n.startswith("edgeloop_gpu_")]
    up = registry.snapshot()["edgeloop_collector_up"]["samples"]
    assert up == [{"labels": {"collector": "gpu"}, "value": 0.0}]


def sysfs(root: Path) -> None:
    """A sysfs tree as a Raspberry Pi-like board with one hwmon chip and two zones writes it,
    one zone reading an impossible value (a sensor that is not fitted)."""
    chip = root / "class/hwmon/hwmon0"
    chip.mkdir(parents=True)
    (chip / "name").write_text("coretemp\n")
    (chip / "temp1_input").write_text("45000\n")
    (chip / "temp1_label").write_text("Package id 0\n")
    (chip / "temp2_input").write_text("43500\n")
    throttle = root / "devices/system/cpu/cpu0/thermal_throttle"
    throttle.mkdir(parents=True)
    (throttle / "core_throttle_count").write_text("7\n")
    for i, (cpus, khz) in enumerate((("0 1 2 3", "1190400"), ("4 5", "2201600"))):
        policy = root / f"devices/system/cpu/cpufreq/policy{i * 4}"
        policy.mkdir(parents=True)
        (policy / "related_cpus").write_text(cpus + "\n")
        (policy / "scaling_cur_freq").write_text(khz + "\n")
    offline = root / "devices/system/cpu/cpufreq/policy6"  # a cluster switched off: no reading
    offline.mkdir()
    (offline / "related_cpus").write_text("6 7\n")
    for i, (kind, value) in enumerate((("cpu-thermal", "51234"), ("cv0-thermal", "-256000"))):
        zone = root / f"class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(value + "\n")


def test_thermal_sensors_found_once_and_implausible_left_out(tmp_path: Path) -> None:
    sysfs(tmp_path)
    sensors = thermal_sensors(tmp_path)
    assert [s.name for s in sensors] == [
        "coretemp_package_id_0",
        "coretemp_temp2",
        "zone_cpu-thermal",
    ]
    registry = MetricsRegistry()
    collector = HardwareCollector(registry, sys_root=tmp_path, data_path=tmp_path)
    collector.sample()
    temps = registry.snapshot()["edgeloop_temperature_celsius"]["samples"]
    assert {t["labels"]["sensor"]: t["value"] for t in temps}["zone_cpu-thermal"] == 51.234
    throttled = registry.snapshot()["edgeloop_cpu_throttle_events_total"]["samples"]
    assert throttled == [{"labels": {"core": "0"}, "value": 7.0}]


def test_cpu_clock_is_the_mean_over_cpus_of_the_cpufreq_policies(tmp_path: Path) -> None:
    """Each policy weighs as many CPUs as it clocks; a policy without a reading is left out;
    a device without cpufreq exports no clock at all (not /proc/cpuinfo's nominal one)."""
    sysfs(tmp_path)
    assert [(d.path.parent.name, d.cpus) for d in clock_domains(tmp_path)] == [
        ("policy0", 4),
        ("policy4", 2),
    ]
    registry = MetricsRegistry()
    HardwareCollector(registry, sys_root=tmp_path, data_path=tmp_path).sample()
    (clock,) = registry.snapshot()["edgeloop_cpu_frequency_hertz"]["samples"]
    assert clock["value"] == pytest.approx((4 * 1190400 + 2 * 2201600) / 6 * 1e3)
    bare = MetricsRegistry()
    HardwareCollector(bare, sys_root=tmp_path / "none", data_path=tmp_path).sample()
    assert "edgeloop_cpu_frequency_hertz" not in bare.names()


def test_hardware_on_this_machine(tmp_path: Path) -> None:
    registry = MetricsRegistry()
    collector = HardwareCollector(registry, data_path=tmp_path)
    collector.sample()
    snap = registry.snapshot()
    value = {n: f["samples"][0]["value"] for n, f in snap.items() if f["samples"]}
    assert 0 < value["edgeloop_memory_available_bytes"] <= value["edgeloop_memory_total_bytes"]
    assert value["edgeloop_memory_total_bytes"] == psutil.virtual_memory().total
    assert value["edgeloop_process_resident_memory_bytes"] > 1e6
    assert 0 <= value["edgeloop_cpu_usage_ratio"] <= 1
    cores = snap["edgeloop_cpu_core_usage_ratio"]["samples"]
    assert len(cores) == psutil.cpu_count()
    free = snap["edgeloop_filesystem_free_bytes"]["samples"][0]
    assert free["labels"]["path"] == str(tmp_path.resolve()) and free["value"] > 0
    if not thermal_sensors():
        assert "edgeloop_temperature_celsius" not in snap  # absent, not 0
    if not clock_domains():
        assert "edgeloop_cpu_frequency_hertz" not in snap  # a VM's nominal clock is no reading
    if psutil.swap_memory().total == 0:
        assert "edgeloop_swap_used_bytes" not in snap
    assert "edgeloop_process_rss_growth_bytes_per_second" not in snap  # window not half full
    if block_device(tmp_path) is not None:
        reads = snap["edgeloop_disk_reads_completed_total"]["samples"][0]["value"]
        assert reads > 0
    else:
        assert "edgeloop_disk_reads_completed_total" not in snap


def test_process_stat_reads_what_psutil_reads(tmp_path: Path) -> None:
    """One read of /proc/self/stat gives the CPU seconds, threads and RSS that psutil takes
    from three files: ours lies between psutil's readings just before and just after (other
    tests' threads may come and go meanwhile; RSS within 4 MB)."""
    process = psutil.Process()

    def theirs() -> tuple[float, int, int]:
        with process.oneshot():
            times = process.cpu_times()
            return times.user + times.system, process.num_threads(), process.memory_info().rss

    before = theirs()
    figures = process_stat()
    after = theirs()
    assert figures is not None
    (cpu_s, threads, rss), bounds = figures, list(zip(before, after, strict=True))
    assert min(bounds[0]) - 1e-9 <= cpu_s <= max(bounds[0]) + 1e-9  # psutil adds two quotients
    assert min(bounds[1]) <= threads <= max(bounds[1])
    # The kernel sums its per-CPU page counters a little differently for stat and statm.
    assert min(bounds[2]) - 4e6 <= rss <= max(bounds[2]) + 4e6 and rss > 1e6
    assert process_stat(tmp_path / "no-such-stat") is None  # not Linux: psutil reads them


def test_cpu_jiffies_counts_as_psutil_does(tmp_path: Path) -> None:
    """Busy = all but idle and iowait; guest time left out of the total (user holds it); CPUs
    by number, an offline one simply absent; no /proc/stat: None (psutil then)."""
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  300 0 100 1000 50 0 10 0 40 0\n"
        "cpu0 200 0 60 500 20 0 5 0 40 0\n"
        "cpu2 100 0 40 500 30 0 5 0 0 0\n"
        "intr 12345 0 0\n"
    )
    assert cpu_jiffies(stat) == {0: (265, 785), 2: (145, 675)}
    assert cpu_jiffies(tmp_path / "none") is None
    later = {0: (365, 985), 2: (145, 775), 3: (10, 20)}  # cpu3 came online meanwhile
    assert busy_fractions({0: (265, 785), 2: (145, 675)}, later) == {0: 0.5, 2: 0.0}


def test_figures_come_from_psutil_without_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where /proc/self/stat and /proc/stat cannot be read (not Linux), the process figures and
    the cores' usage come from psutil."""
    monkeypatch.setattr(hardware, "process_stat", lambda: None)
    monkeypatch.setattr(hardware, "cpu_jiffies", lambda: None)
    registry = MetricsRegistry()
    HardwareCollector(registry, data_path=tmp_path).sample()
    snap = registry.snapshot()
    value = {n: f["samples"][0]["value"] for n, f in snap.items() if f["samples"]}
    assert value["edgeloop_process_resident_memory_bytes"] > 1e6
    assert value["edgeloop_process_threads"] == psutil.Process().num_threads()
    assert value["edgeloop_process_cpu_seconds_total"] > 0
    cores = snap["edgeloop_cpu_core_usage_ratio"]["samples"]
    assert len(cores) == psutil.cpu_count()
    assert all(0.0 <= c["value"] <= 1.0 for c in cores)


def test_block_device_of_a_volume_without_one() -> None:
    assert block_device(Path("/proc")) is None  # procfs: no block device, no I/O series
    assert block_device(Path("/does/not/exist")) is None


def test_rss_trend_is_a_slope_and_ignores_a_one_off_step() -> None:
    steady = RssTrend(window_s=100)
    for t in range(0, 101, 5):
        steady.add(float(t), 50e6 + 1000.0 * t)
    assert steady.slope() == pytest.approx(1000.0)
    step = RssTrend(window_s=100)
    for t in range(0, 101, 5):
        step.add(float(t), 50e6 + (20e6 if t == 100 else 0))  # one allocation at the end
    leak = RssTrend(window_s=100)
    for t in range(0, 101, 5):
        leak.add(float(t), 50e6 + 200_000.0 * t)  # the same 20 MB, grown steadily
    assert (step.slope() or 0) < (leak.slope() or 0)
    young = RssTrend(window_s=100)
    young.add(0.0, 1.0)
    young.add(10.0, 2.0)
    young.add(20.0, 3.0)
    assert young.slope() is None


def test_rss_growth_appears_once_the_window_is_half_full(tmp_path: Path) -> None:
    clock = iter(float(t) for t in range(100))
    registry = MetricsRegistry()
    collector = HardwareCollector(
        registry, data_path=tmp_path, rss_window_s=10, clock=lambda: next(clock)
    )
    for _ in range(7):
        collector.sample()
    assert "edgeloop_process_rss_growth_bytes_per_second" in registry.names()


def test_totals_become_counters_and_survive_a_reset() -> None:
    registry = MetricsRegistry()
    counter = registry.counter("edgeloop_network_sent_bytes_total", "x", ("interface",))
    child = counter.labels(interface="eth0")
    totals = Totals()
    totals.advance(("tx",), child, 100)
    totals.advance(("tx",), child, 150)
    totals.advance(("tx",), child, 30)  # the interface was re-created: counts from 0 again
    assert child.value == 180


def test_network_on_this_machine() -> None:
    registry = MetricsRegistry()
    collector = NetworkCollector(registry)
    interfaces = [n for n in psutil.net_io_counters(pernic=True) if n != "lo"]
    assert collector.available == bool(interfaces)
    if not collector.available:
        return
    collector.sample()
    sent = registry.snapshot()["edgeloop_network_sent_bytes_total"]["samples"]
    assert {s["labels"]["interface"] for s in sent} <= set(interfaces)
    assert "lo" not in {s["labels"]["interface"] for s in sent}


def test_broker_metrics_exist_before_the_first_connection() -> None:
    registry = MetricsRegistry()
    broker = BrokerMetrics(registry, "local")
    snap = registry.snapshot()
    assert snap["edgeloop_broker_connected"]["samples"][0]["value"] == 0.0
    broker.connected(True)
    broker.reconnected()
    broker.round_trip(0.004)
    # Every fixed-reason child exists at 0 before its first event (rate() sees the first one).
    failures = snap["edgeloop_broker_publish_failures_total"]["samples"]
    assert {s["labels"]["reason"]: s["value"] for s in failures} == {
        "not-connected": 0,
        "too-large": 0,
        "lost": 0,
        "refused": 0,
    }
    broker.publish_failed("lost", 2)
    broker.transferred(sent=1200, received=40)
    broker.acknowledged(50, qos=0)
    SpoolMetrics(registry).depth(3, 9000)
    snap = registry.snapshot()
    assert snap["edgeloop_broker_rtt_seconds"]["samples"][0]["count"] == 1
    failures = snap["edgeloop_broker_publish_failures_total"]["samples"]
    assert {s["labels"]["reason"]: s["value"] for s in failures}["lost"] == 2
    assert snap["edgeloop_broker_sent_bytes_total"]["samples"][0]["value"] == 1200
    batches = snap["edgeloop_broker_batches_total"]["samples"]
    assert {s["labels"]["qos"]: s["value"] for s in batches} == {"0": 1, "1": 0}
    assert snap["edgeloop_spool_depth"]["samples"][0]["value"] == 3
    with pytest.raises(KeyError):
        broker.publish_failed("timeout")  # reasons are a fixed set: a typo fails loudly


def test_sampler_skips_a_broken_collector_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    from core.metrics.collect import Collector

    class Broken(Collector):
        name = "broken"
        calls = 0

        def sample(self) -> None:
            Broken.calls += 1
            raise OSError("sensor gone")

    registry = MetricsRegistry()
    sampler = Sampler(registry, [Broken(), NetworkCollector(registry)])
    sampler.sample_once()
    sampler.sample_once()
    assert Broken.calls == 1 and "broken failed" in caplog.text
    assert registry.snapshot()["edgeloop_collector_sample_seconds"]["samples"][0]["value"] > 0


def test_sampler_thread_starts_and_stops(tmp_path: Path) -> None:
    registry = MetricsRegistry()
    sampler = Sampler(registry, [HardwareCollector(registry, data_path=tmp_path)], 0.05)
    sampler.start()
    sampler.stop()
    assert sampler._thread is None
