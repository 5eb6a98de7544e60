"""Environment capture: what a figure was measured on, so reports can be compared honestly.

Everything is read, never assumed: a field a machine lacks is ``None`` (absent), not zero.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil

LIBRARIES = (
    "numpy",
    "numba",
    "Cython",
    "opencv-python-headless",
    "simplejpeg",
    "PyTurboJPEG",
    "pyzmq",
    "Pillow",
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorrt",
    "psutil",
)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_info() -> dict[str, Any]:
    """Model, cores, SIMD flags that matter to our kernels, governor and frequency."""
    model = None
    flags: list[str] = []
    cpuinfo = _read("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.split()
    wanted = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "asimd", "fphp")
    freq = psutil.cpu_freq()
    return {
        "model": model or platform.processor() or None,
        "arch": platform.machine(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)),
        "simd": [f for f in wanted if f in flags],
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "boost": _read("/sys/devices/system/cpu/cpufreq/boost"),
        "freq_mhz": round(freq.current) if freq else None,
    }


def cgroup_limits() -> dict[str, Any]:
    """CPU quota (cores) and memory limit (bytes) of this process's cgroup, when set."""
    cpus = None
    cpu_max = _read("/sys/fs/cgroup/cpu.max")
    if cpu_max and not cpu_max.startswith("max"):
        quota, period = cpu_max.split()[:2]
        cpus = int(quota) / int(period)
    memory = _read("/sys/fs/cgroup/memory.max")
    return {
        "cpu_quota_cores": cpus,
        "memory_limit_bytes": int(memory) if memory and memory.isdigit() else None,
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
    try:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "libturbojpeg0"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+\.\d+\.\d+)", result.stdout)
    return match.group(1) if match else None


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None


def kernels_in_use() -> dict[str, str] | None:
    try:
        from native import kernels  # noqa: PLC0415 - optional until the kernels are built

        return kernels.describe()
    except (ImportError, ValueError):
        return None


def capture() -> dict[str, Any]:
    """The ``env`` block of every report."""
    mem = psutil.virtual_memory()
    return {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpu": cpu_info(),
        "memory_bytes": mem.total,
        "cgroup": cgroup_limits(),
        "libraries": library_versions(),
        "kernels": kernels_in_use(),
        "kernels_forced": os.environ.get("EDGELOOP_KERNELS") or None,
        "git_commit": git_commit(),
    }
