"""The device's CPU, memory, temperatures, data volume and this process, read through psutil and
sysfs at a cost low enough to leave on (docs/decisions/0012-metrics-side-channel-cost.md).

What is read once, at construction, is what a device has: thermal sensors (``/sys/class/hwmon``
and ``/sys/class/thermal``), throttle counters, cpufreq policies, the block device under
``data_path``, whether there is swap. Each sample then reads only those files -- globbing sysfs
every second would cost more than everything else together. A device without a thermal sensor
(most VMs) exports no ``edgeloop_temperature_celsius`` series at all, rather than a temperature
of 0; one without cpufreq (most VMs) no ``edgeloop_cpu_frequency_hertz``, rather than the
nominal clock ``/proc/cpuinfo`` shows there.

=================================================  =========  ================================
name                                               type       labels / meaning
=================================================  =========  ================================
``edgeloop_cpu_usage_ratio``                       gauge      all cores, 0-1, since last sample
``edgeloop_cpu_core_usage_ratio``                  gauge      ``core``
``edgeloop_load_average``                          gauge      ``period``: 1m, 5m, 15m
``edgeloop_cpu_frequency_hertz``                   gauge      current, average over cores (cpufreq)
``edgeloop_cpu_throttle_events_total``             counter    ``core`` (x86 thermal_throttle)
``edgeloop_temperature_celsius``                   gauge      ``sensor``
``edgeloop_memory_available_bytes``                gauge
``edgeloop_memory_total_bytes``                    gauge
``edgeloop_swap_used_bytes``                       gauge      (absent without swap)
``edgeloop_swap_total_bytes``                      gauge
``edgeloop_process_resident_memory_bytes``         gauge      this process's RSS
``edgeloop_process_rss_growth_bytes_per_second``   gauge      least-squares slope over the window
``edgeloop_process_cpu_seconds_total``             counter    user + system
``edgeloop_process_threads``                       gauge
``edgeloop_process_start_time_seconds``            gauge      Unix time (uptime = now - it)
``edgeloop_filesystem_free_bytes``                 gauge      ``path``: space left to the user
``edgeloop_filesystem_size_bytes``                 gauge      ``path``
``edgeloop_disk_reads_completed_total``            counter    ``device`` of the data volume
``edgeloop_disk_writes_completed_total``           counter    ``device``
``edgeloop_disk_read_bytes_total``                 counter    ``device``
``edgeloop_disk_written_bytes_total``              counter    ``device``
``edgeloop_disk_read_time_seconds_total``          counter    ``device``: latency = this / reads
``edgeloop_disk_write_time_seconds_total``         counter    ``device``
=================================================  =========  ================================
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.metrics.collect import Collector, Totals
from core.metrics.registry import Gauge, MetricFamily, MetricsRegistry

__all__ = [
    "ClockDomain",
    "HardwareCollector",
    "RssTrend",
    "ThermalSensor",
    "block_device",
    "busy_fractions",
    "clock_domains",
    "cpu_jiffies",
    "process_stat",
    "thermal_sensors",
]

SECTOR_BYTES = 512  # /sys/block/*/stat counts 512-byte sectors whatever the device's own size
_PLAUSIBLE_C = (-60.0, 200.0)  # outside: a sensor that is not there (Jetson's -256 C)
_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_.-]+")


@dataclass(frozen=True)
class ThermalSensor:
    """One temperature file and the label it is exported under."""

    name: str
    path: Path


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_stat(path: Path = Path("/proc/self/stat")) -> tuple[float, int, int] | None:
    """This process's CPU seconds (user + system), threads and resident bytes, from one read of
    ``/proc/self/stat``; None where it cannot be read (not Linux).

    Why not psutil: its ``cpu_times``, ``num_threads`` and ``memory_info`` read three files
    (``stat``, ``status``, ``statm``) even under ``oneshot``, several times this one read's cost
    (docs/decisions/0012-metrics-side-channel-cost.md). The figures are the same (the kernel's
    ticks and resident pages).
    """
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2 :].split()  # after "pid (comm) ": field 3 on
    utime, stime, threads, rss = fields[11], fields[12], fields[17], fields[21]
    return (int(utime) + int(stime)) / _CLOCK_TICKS, int(threads), int(rss) * _PAGE_BYTES


def cpu_jiffies(path: Path = Path("/proc/stat")) -> dict[int, tuple[int, int]] | None:
    """Busy and total clock ticks of each CPU since boot, by CPU number, from one read of
    ``/proc/stat``; None where it cannot be read (not Linux). Counted as psutil counts them:
    busy is all but idle and iowait, and guest time is left out of the total (user and nice
    already hold it).

    Why not ``psutil.cpu_percent(percpu=True)``: its Python work per CPU costs more than this
    one read, the more so the more CPUs there are
    (docs/decisions/0012-metrics-side-channel-cost.md).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    ticks: dict[int, tuple[int, int]] = {}
    for line in data.split(b"\n")[1:]:  # the first line sums every CPU
        if not line.startswith(b"cpu"):
            break
        name, *fields = line.split(None, 9)
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[:8])
        total = user + nice + system + idle + iowait + irq + softirq + steal
        ticks[int(name[3:])] = (total - idle - iowait, total)
    return ticks


def busy_fractions(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[int, float]:
    """Each CPU's busy fraction (0-1) between two :func:`cpu_jiffies` readings; 0 for a CPU
    whose clock did not tick, none for one that was not there both times (hot-plugged).

    >>> busy_fractions({0: (100, 400), 1: (50, 400)}, {0: (175, 500), 1: (50, 400)})
    {0: 0.75, 1: 0.0}
    """
    fractions = {}
    for cpu, (busy, total) in after.items():
        if cpu not in before:
            continue
        was_busy, was_total = before[cpu]
        elapsed = total - was_total
        fractions[cpu] = min(1.0, max(0.0, (busy - was_busy) / elapsed)) if elapsed > 0 else 0.0
    return fractions


@dataclass(frozen=True)
class ClockDomain:
    """One cpufreq policy: the file with its current clock (kHz) and how many CPUs it clocks."""

    path: Path
    cpus: int


def clock_domains(sys_root: Path = Path("/sys")) -> list[ClockDomain]:
    """The device's cpufreq policies with a readable ``scaling_cur_freq``: one per core on most
    x86 machines, one per cluster on a Jetson; none in most VMs.

    Why not ``psutil.cpu_freq``: it reads three files per CPU each sample, and where there is
    no cpufreq it parses all of ``/proc/cpuinfo`` (work that grows with the CPUs), whose "cpu
    MHz" in a VM is a nominal figure, not a reading
    (docs/decisions/0012-metrics-side-channel-cost.md)."""
    domains = []
    for policy in sorted((sys_root / "devices/system/cpu/cpufreq").glob("policy[0-9]*")):
        current = policy / "scaling_cur_freq"
        cpus = (_read(policy / "related_cpus") or _read(policy / "affected_cpus") or "").split()
        if (_read(current) or "").isdigit():
            domains.append(ClockDomain(current, max(1, len(cpus))))
    return domains


def thermal_sensors(sys_root: Path = Path("/sys")) -> list[ThermalSensor]:
    """Every readable temperature of the device: hwmon chips (``<chip>_<label>``) and thermal
    zones (``zone_<type>``), each once, those reading an implausible value left out."""
    found: list[ThermalSensor] = []
    for chip in sorted((sys_root / "class/hwmon").glob("hwmon*")):
        chip_name = _read(chip / "name") or chip.name
        for temp in sorted(chip.glob("temp*_input")):
            label = _read(temp.with_name(temp.name.replace("_input", "_label")))
            found.append(ThermalSensor(f"{chip_name}_{label or temp.name[:-6]}", temp))
    for zone in sorted((sys_root / "class/thermal").glob("thermal_zone*")):
        kind = _read(zone / "type") or zone.name
        found.append(ThermalSensor(f"zone_{kind}", zone / "temp"))
    usable = []
    seen: set[str] = set()
    for sensor in found:
        name = _LABEL_CHARS.sub("_", sensor.name).lower()
        value = _millidegrees(sensor.path)
        if value is None or name in seen:
            continue
        seen.add(name)
        usable.append(ThermalSensor(name, sensor.path))
    return usable


def _millidegrees(path: Path) -> float | None:
    text = _read(path)
    try:
        value = int(text) / 1000.0 if text else None
    except ValueError:
        return None
    if value is None or not _PLAUSIBLE_C[0] < value < _PLAUSIBLE_C[1]:
        return None
    return value


def block_device(path: Path, sys_root: Path = Path("/sys")) -> tuple[str, Path] | None:
    """``(name, stat file)`` of the block device holding ``path``, or None where the file system
    has none (overlay, tmpfs, a network mount): its I/O is then absent."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    node = sys_root / "dev/block" / f"{os.major(dev)}:{os.minor(dev)}"
    stat = node / "stat"
    if os.major(dev) == 0 or not stat.is_file():
        return None
    return node.resolve().name, stat


class RssTrend:
    """The slope of RSS over a sliding window, by least squares: a leak detector that a
    one-off allocation (a model swap, a bigger batch) moves far less than steady growth.

    The slope is None until the samples span half the window (a process that just started
    grows while it warms up; that is not a leak).

    >>> trend = RssTrend(window_s=10)
    >>> for t in range(11):
    ...     trend.add(float(t), 1_000_000 + 2_000 * t)
    >>> round(trend.slope() or 0)
    2000
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, float]] = deque()

    def add(self, t: float, rss: float) -> None:
        self._points.append((t, rss))
        while self._points and t - self._points[0][0] > self.window_s:
            self._points.popleft()

    def slope(self) -> float | None:
        """Bytes per second, or None while the window is not half full."""
        points = self._points
        if len(points) < 3 or points[-1][0] - points[0][0] < self.window_s / 2:
            return None
        n = len(points)
        mean_t = sum(p[0] for p in points) / n
        mean_r = sum(p[1] for p in points) / n
        var = sum((p[0] - mean_t) ** 2 for p in points)
        if var == 0:
            return None
        return sum((p[0] - mean_t) * (p[1] - mean_r) for p in points) / var


class HardwareCollector(Collector):
    """CPU, memory, temperatures, data volume and this process, into ``registry``."""

    name = "hardware"

    def __init__(
        self,
        registry: MetricsRegistry,
        *,
        data_path: Path = Path("."),
        rss_window_s: float = 600.0,
        sys_root: Path = Path("/sys"),
        clock: Callable[[], float] = time.monotonic,
        swap: bool | None = None,
    ) -> None:
        """``sys_root``, ``clock`` and ``swap`` (None: whether the device has swap) are for
        tests, which lay out a device's sysfs and time elsewhere."""
        r = registry
        self._clock = clock
        self._totals = Totals()
        self._process = psutil.Process()
        self._trend = RssTrend(rss_window_s)
        self._data_path = data_path
        self._path_label = str(data_path.resolve())
        self._jiffies = cpu_jiffies()  # the reference the first sample measures from
        if self._jiffies is None:
            psutil.cpu_percent(percpu=True)  # the same for psutil: 0 otherwise

        self.cpu = r.gauge("edgeloop_cpu_usage_ratio", "CPU busy, all cores (0-1)")
        self.core = r.gauge("edgeloop_cpu_core_usage_ratio", "CPU busy per core (0-1)", ("core",))
        self.load = (
            r.gauge("edgeloop_load_average", "Run-queue load average", ("period",))
            if hasattr(os, "getloadavg")
            else None
        )
        self.clocks = clock_domains(sys_root)
        self.freq = (
            r.gauge("edgeloop_cpu_frequency_hertz", "Current CPU clock, mean over cores")
            if self.clocks
            else None
        )
        self.sensors = thermal_sensors(sys_root)
        self.temperature = (
            r.gauge("edgeloop_temperature_celsius", "Temperature per sensor", ("sensor",))
            if self.sensors
            else None
        )
        self.throttle_files = sorted(
            (sys_root / "devices/system/cpu").glob("cpu[0-9]*/thermal_throttle/core_throttle_count")
        )
        self.throttle = (
            r.counter("edgeloop_cpu_throttle_events_total", "Thermal throttling events", ("core",))
            if self.throttle_files
            else None
        )
        self.mem_available = r.gauge("edgeloop_memory_available_bytes", "Memory available")
        self.mem_total = r.gauge("edgeloop_memory_total_bytes", "Physical memory")
        self.has_swap = psutil.swap_memory().total > 0 if swap is None else swap
        self.swap_used = (
            r.gauge("edgeloop_swap_used_bytes", "Swap in use") if self.has_swap else None
        )
        self.swap_total = (
            r.gauge("edgeloop_swap_total_bytes", "Swap configured") if self.has_swap else None
        )
        self.rss = r.gauge("edgeloop_process_resident_memory_bytes", "This process's RSS")
        self._registry = r
        self.rss_growth: MetricFamily[Gauge] | None = None  # registered once it has a value
        self.proc_cpu = r.counter("edgeloop_process_cpu_seconds_total", "CPU time, user+system")
        self.threads = r.gauge("edgeloop_process_threads", "Threads of this process")
        r.gauge("edgeloop_process_start_time_seconds", "Process start, Unix time").set(
            self._process.create_time()
        )
        self.fs_free = r.gauge(
            "edgeloop_filesystem_free_bytes", "Space left on the data volume", ("path",)
        )
        self.fs_size = r.gauge("edgeloop_filesystem_size_bytes", "Data volume size", ("path",))
        self.block = block_device(data_path, sys_root)
        self.disk = None
        if self.block is not None:
            labels = ("device",)
            self.disk = (
                r.counter("edgeloop_disk_reads_completed_total", "Reads completed", labels),
                r.counter("edgeloop_disk_writes_completed_total", "Writes completed", labels),
                r.counter("edgeloop_disk_read_bytes_total", "Bytes read", labels),
                r.counter("edgeloop_disk_written_bytes_total", "Bytes written", labels),
                r.counter("edgeloop_disk_read_time_seconds_total", "Time spent reading", labels),
                r.counter("edgeloop_disk_write_time_seconds_total", "Time spent writing", labels),
            )

    def _frequency(self) -> float | None:
        """The current clock (Hz), averaged over CPUs (each policy weighted by its CPUs)."""
        khz = cpus = 0
        for domain in self.clocks:
            text = _read(domain.path)
            if text and text.isdigit():
                khz += int(text) * domain.cpus
                cpus += domain.cpus
        return khz * 1e3 / cpus if cpus else None

    def _busy(self) -> dict[int, float]:
        """Each CPU's busy fraction since the last sample."""
        now = cpu_jiffies()
        if now is None or self._jiffies is None:
            return {i: v / 100.0 for i, v in enumerate(psutil.cpu_percent(percpu=True))}
        before, self._jiffies = self._jiffies, now
        return busy_fractions(before, now)

    def sample(self) -> None:
        busy = self._busy()
        for cpu, fraction in busy.items():
            self.core.labels(core=cpu).set(fraction)
        if busy:
            self.cpu.set(sum(busy.values()) / len(busy))
        if self.load is not None:
            for period, value in zip(("1m", "5m", "15m"), os.getloadavg(), strict=True):
                self.load.labels(period=period).set(value)
        if self.freq is not None:
            hz = self._frequency()
            if hz:
                self.freq.set(hz)
        self._temperatures()
        memory = psutil.virtual_memory()
        self.mem_available.set(memory.available)
        self.mem_total.set(memory.total)
        if self.swap_used is not None and self.swap_total is not None:
            swap = psutil.swap_memory()
            self.swap_used.set(swap.used)
            self.swap_total.set(swap.total)
        self._process_figures()
        self._data_volume()

    def _temperatures(self) -> None:
        if self.temperature is not None:
            for sensor in self.sensors:
                value = _millidegrees(sensor.path)
                if value is not None:
                    self.temperature.labels(sensor=sensor.name).set(value)
        if self.throttle is not None:
            for path in self.throttle_files:
                text = _read(path)
                if text and text.isdigit():
                    core = path.parent.parent.name.removeprefix("cpu")
                    self._totals.advance(
                        ("throttle", core), self.throttle.labels(core=core), float(text)
                    )

    def _process_figures(self) -> None:
        figures = process_stat()
        if figures is None:
            with self._process.oneshot():
                times = self._process.cpu_times()
                figures = (
                    times.user + times.system,
                    self._process.num_threads(),
                    self._process.memory_info().rss,
                )
        cpu_s, threads, rss = figures
        self.rss.set(rss)
        self.threads.set(threads)
        self._totals.advance(("cpu",), self.proc_cpu.labels(), cpu_s)
        self._trend.add(self._clock(), rss)
        slope = self._trend.slope()
        if slope is None:
            return
        if self.rss_growth is None:
            self.rss_growth = self._registry.gauge(
                "edgeloop_process_rss_growth_bytes_per_second",
                "Slope of RSS over the leak detector's window (absent until half full)",
            )
        self.rss_growth.set(slope)

    def _data_volume(self) -> None:
        try:
            st = os.statvfs(self._data_path)
        except OSError:
            return
        self.fs_free.labels(path=self._path_label).set(st.f_bavail * st.f_frsize)
        self.fs_size.labels(path=self._path_label).set(st.f_blocks * st.f_frsize)
        if self.block is None or self.disk is None:
            return
        name, stat = self.block
        text = _read(stat)
        if not text:
            return
        fields = text.split()
        if len(fields) < 8:
            return
        reads, writes, rbytes, wbytes, rtime, wtime = self.disk
        values = (
            (reads, float(fields[0])),
            (writes, float(fields[4])),
            (rbytes, float(fields[2]) * SECTOR_BYTES),
            (wbytes, float(fields[6]) * SECTOR_BYTES),
            (rtime, float(fields[3]) / 1e3),
            (wtime, float(fields[7]) / 1e3),
        )
        for family, total in values:
            self._totals.advance((family.name, name), family.labels(device=name), total)
