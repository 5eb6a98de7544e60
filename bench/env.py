"""Environment capture: what a figure was measured on, so reports can be compared honestly.

Everything is read, never assumed: a field a machine lacks is ``None`` (absent), not zero.
Paths are relative to ``root`` so the tests can fake a Jetson or a cgroup. What is read, and
from where:

* CPU model, cores (logical, physical, usable), SIMD flags, governor, boost, clock:
  :func:`core.device.probe_cpu` (``/proc/cpuinfo``, ``/sys/devices/system/cpu``);
  each core's current clock from ``cpu*/cpufreq/scaling_cur_freq``.
* Memory (total, available); OS, kernel, Python.
* cgroup limits: v2 ``/sys/fs/cgroup/{cpu,memory}.max``, else v1 ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us`` and ``memory.limit_in_bytes``. A container with a CPU quota of 1.5
  cores on a 16-core host measures 1.5 cores, and a report must say so.
* GPUs (name, memory, driver, highest CUDA the driver supports), TensorRT and ONNX Runtime
  with its providers: :func:`core.device.probe`; the CUDA toolkit from
  ``/usr/local/cuda/version.json`` (or ``version.txt``).
* Jetson: model and L4T/JetPack (:func:`core.device.probe_jetson`: ``/proc/device-tree/model``,
  ``/etc/nv_tegra_release``), power mode (``nvpmodel -q``), GPU and memory clocks
  (``devfreq/*/cur_freq``), and on every machine the thermal zones' temperatures
  (``/sys/class/thermal``) and throttle counters (x86 ``thermal_throttle``, Jetson soctherm
  over-current events under ``/sys/class/hwmon``).
* Library versions, which kernel implementation each native kernel uses, the git commit (and
  whether the tree had uncommitted changes), and the model's SHA-256 when a run names one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil

from core.device import choose_backend, probe, probe_cpu
from core.errors import EdgeloopError
from core.sources.hwdecode import choose_hwaccel, decode_probe

LIBRARIES = (
    "numpy",
    "numba",
    "Cython",
    "opencv-python-headless",
    "simplejpeg",
    "PyTurboJPEG",
    "pyzmq",
    "Pillow",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorrt",
    "pycuda",
    "nvidia-ml-py",
    "psutil",
    "mlcommons-loadgen",
    "matplotlib",
)
ROOT = Path("/")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _run(*command: str) -> str | None:
    """stdout of ``command`` (5 s at most), or None when it is missing or fails."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=5, check=False, cwd=ROOT
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def cpu_info(root: Path = ROOT) -> dict[str, Any]:
    """Model, cores, SIMD flags, governor, boost and clock (:func:`core.device.probe_cpu`, the
    one CPU probe), plus every core's current clock in MHz."""
    info = dataclasses.asdict(probe_cpu(root))
    clocks = []
    for path in sorted(
        (root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"),
        key=lambda p: int(p.parent.parent.name[3:]),
    ):
        khz = _read_int(path)
        if khz is not None:
            clocks.append(round(khz / 1000))
    info["cur_freq_mhz"] = clocks or None
    return info


def device_info() -> dict[str, Any]:
    """NVIDIA GPUs, Jetson, inference runtimes and the backend ``auto`` picks here; what can
    decode video and the decoder ``hwaccel: auto`` picks (``video``, ``auto_hwaccel``)."""
    found = probe()
    data = found.as_dict()
    del data["cpu"]  # reported once, under env.cpu
    try:
        data["auto_backend"] = str(choose_backend("auto", found))
    except EdgeloopError as exc:
        data["auto_backend"] = f"none: {exc}"
    video = decode_probe()
    data["video"] = dataclasses.asdict(video)
    data["auto_hwaccel"] = str(choose_hwaccel("auto", video))
    return data


def cuda_toolkit(root: Path = ROOT) -> str | None:
    """The CUDA toolkit's version where one is installed (``/usr/local/cuda``)."""
    text = _read(root / "usr/local/cuda/version.json")
    if text:
        try:
            return str(json.loads(text)["cuda"]["version"])
        except (ValueError, KeyError, TypeError):
            pass
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", _read(root / "usr/local/cuda/version.txt") or "")
    return match.group(1) if match else None


def cgroup_limits(root: Path = ROOT) -> dict[str, Any]:
    """CPU quota (cores) and memory limit (bytes) of this process's cgroup, v2 or v1, when
    set; None when unlimited or not readable.

    >>> cgroup_limits(Path("/nonexistent"))
    {'cpu_quota_cores': None, 'memory_limit_bytes': None, 'version': None}
    """
    fs = root / "sys/fs/cgroup"
    cpu_max = _read(fs / "cpu.max")
    if cpu_max is not None or (fs / "memory.max").exists():
        cpus = None
        if cpu_max and not cpu_max.startswith("max"):
            quota, period = cpu_max.split()[:2]
            cpus = int(quota) / int(period)
        return {
            "cpu_quota_cores": cpus,
            "memory_limit_bytes": _read_int(fs / "memory.max"),
            "version": 2,
        }
    cpu_dir = next((d for d in (fs / "cpu", fs / "cpu,cpuacct") if d.is_dir()), fs / "cpu")
    quota_us = _read_int(cpu_dir / "cpu.cfs_quota_us")
    period_us = _read_int(cpu_dir / "cpu.cfs_period_us")
    memory = _read_int(fs / "memory/memory.limit_in_bytes")
    found = quota_us is not None or memory is not None
    cores = quota_us / period_us if quota_us and quota_us > 0 and period_us else None
    return {
        "cpu_quota_cores": cores,  # -1: no quota
        # v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages)
        "memory_limit_bytes": memory if memory is not None and memory < 1 << 62 else None,
        "version": 1 if found else None,
    }


def thermal(root: Path = ROOT) -> dict[str, float] | None:
    """Each thermal zone's temperature in °C by its type (``cpu-thermal``, ``GPU-therm``,
    ``x86_pkg_temp``), None where the machine exposes none (most VMs)."""
    zones: dict[str, float] = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        millideg = _read_int(zone / "temp")
        if millideg is None:
            continue
        name = _read(zone / "type") or zone.name
        key, n = name, 1
        while key in zones:
            n += 1
            key = f"{name}#{n}"
        zones[key] = millideg / 1000.0
    return zones or None


def throttling(root: Path = ROOT) -> dict[str, int] | None:
    """Throttle event counters since boot: x86 per-core and package thermal throttles (summed
    over CPUs), Jetson soctherm over-current events; None where none exists."""
    counts: dict[str, int] = {}
    cpus = root / "sys/devices/system/cpu"
    for name in ("core_throttle_count", "package_throttle_count"):
        values = [_read_int(p) for p in cpus.glob(f"cpu[0-9]*/thermal_throttle/{name}")]
        known = [v for v in values if v is not None]
        if known:
            counts[name] = sum(known)
    for path in sorted((root / "sys/class/hwmon").glob("hwmon*/oc*_event_cnt")):
        value = _read_int(path)
        if value is not None:
            counts[f"{path.parent.name}/{path.name}"] = value
    return counts or None


def device_clocks(root: Path = ROOT) -> dict[str, int] | None:
    """Current clocks (Hz) of devfreq devices: a Jetson's GPU (``17000000.gpu`` or ``gpu.0``),
    its memory controller and accelerators; None where there are none."""
    clocks: dict[str, int] = {}
    for path in sorted((root / "sys/class/devfreq").glob("*/cur_freq")):
        value = _read_int(path)
        if value is not None:
            clocks[path.parent.name] = value
    emc = _read_int(root / "sys/kernel/debug/bpmp/debug/clk/emc/rate")  # root only
    if emc is not None:
        clocks["emc"] = emc
    return clocks or None


def parse_nvpmodel(text: str) -> dict[str, Any] | None:
    """``nvpmodel -q``'s answer as ``{"name", "id"}``.

    >>> parse_nvpmodel("NV Power Mode: MAXN\\n0\\n")
    {'name': 'MAXN', 'id': 0}
    >>> parse_nvpmodel("nothing") is None
    True
    """
    match = re.search(r"NV Power Mode:\s*(\S+)(?:\s+(\d+))?", text)
    if not match:
        return None
    return {"name": match.group(1), "id": int(match.group(2)) if match.group(2) else None}


def jetson_power(root: Path = ROOT) -> dict[str, Any] | None:
    """A Jetson's power mode and clocks; None on anything that is not a Jetson."""
    if (
        _read(root / "etc/nv_tegra_release") is None
        and "jetson" not in (_read(root / "proc/device-tree/model") or "").lower()
    ):
        return None
    answer = _run("nvpmodel", "-q") if root == ROOT else None
    return {
        "nvpmodel": parse_nvpmodel(answer) if answer else None,
        "clocks_hz": device_clocks(root),
    }


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["libjpeg-turbo"] = _turbojpeg_version()
    return out


def _turbojpeg_version() -> str | None:
    """The system libjpeg-turbo, as dpkg knows it (the library itself has no version call)."""
    match = re.search(
        r"(\d+\.\d+\.\d+)", _run("dpkg-query", "-W", "-f=${Version}", "libturbojpeg0") or ""
    )
    return match.group(1) if match else None


def git_state() -> dict[str, Any]:
    """The checkout's commit and whether it had uncommitted changes (None outside git)."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=5, check=False, cwd=here
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD") or None
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def kernels_in_use() -> dict[str, str] | None:
    try:
        from native import kernels  # noqa: PLC0415 - optional until the kernels are built

        return kernels.describe()
    except (ImportError, ValueError):
        return None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``env.model`` block: which file, its size and SHA-256 (compare refuses two reports
    of different models)."""
    resolved = Path(path).resolve()
    return {
        "path": str(resolved),
        "bytes": resolved.stat().st_size,
        "sha256": file_sha256(resolved),
    }


def machine_fingerprint(env: dict[str, Any]) -> dict[str, Any]:
    """What makes two reports' machines the same for ``bench compare``: CPU model and cores,
    the cgroup's CPU quota, the GPUs, the Jetson model and power mode. Not the host name:
    CI's VMs of one kind get a new name every run."""
    cpu = env.get("cpu") or {}
    device = env.get("device") or {}
    power = env.get("jetson_power") or {}
    return {
        "cpu_model": cpu.get("model"),
        "logical_cores": cpu.get("logical_cores"),
        "usable_cores": cpu.get("usable_cores"),
        "cpu_quota_cores": (env.get("cgroup") or {}).get("cpu_quota_cores"),
        "gpus": [g.get("name") for g in device.get("gpus") or []],
        "jetson": (device.get("jetson") or {}).get("model"),
        "nvpmodel": (power.get("nvpmodel") or {}).get("name"),
    }


def capture(model: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The ``env`` block of every report (``model``: the model file a run measures)."""
    mem = psutil.virtual_memory()
    env: dict[str, Any] = {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpu": cpu_info(),
        "memory_bytes": mem.total,
        "memory_available_bytes": mem.available,
        "cgroup": cgroup_limits(),
        "device": device_info(),
        "cuda_toolkit": cuda_toolkit(),
        "jetson_power": jetson_power(),
        "temperatures_c": thermal(),
        "throttling": throttling(),
        "libraries": library_versions(),
        "kernels": kernels_in_use(),
        "kernels_forced": os.environ.get("EDGELOOP_KERNELS") or None,
        **git_state(),
        "model": model_info(model) if model is not None else None,
    }
    return env
