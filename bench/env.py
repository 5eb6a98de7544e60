"""Environment capture: what a figure was measured on, so reports can be compared honestly.

Everything is read, never assumed: a field a machine lacks is ``None`` (absent), not zero.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
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
)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_info() -> dict[str, Any]:
    """Model, cores, SIMD flags that matter to our kernels, governor and frequency (read by
    :func:`core.device.probe_cpu`, the one CPU probe)."""
    return dataclasses.asdict(probe_cpu())


def device_info() -> dict[str, Any]:
    """NVIDIA GPUs, Jetson, inference runtimes and the backend ``auto`` picks here."""
    found = probe()
    data = found.as_dict()
    del data["cpu"]  # reported once, under env.cpu
    try:
        data["auto_backend"] = str(choose_backend("auto", found))
    except EdgeloopError as exc:
        data["auto_backend"] = f"none: {exc}"
    return data


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
        "device": device_info(),
        "memory_bytes": mem.total,
        "cgroup": cgroup_limits(),
        "libraries": library_versions(),
        "kernels": kernels_in_use(),
        "kernels_forced": os.environ.get("EDGELOOP_KERNELS") or None,
        "git_commit": git_commit(),
    }
