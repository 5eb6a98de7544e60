"""Hardware video decoding: which decoder a file or network source uses, chosen as the
inference backend is (:mod:`core.device`).

=========  =================================================  ==================================
hwaccel    where                                              through
=========  =================================================  ==================================
``nvv4l2`` a Jetson (NVDEC behind V4L2)                       OpenCV's GStreamer backend:
                                                              ``parsebin ! nvv4l2decoder``
``cuda``   a machine with an NVIDIA GPU (NVDEC)               PyAV: FFmpeg's CUDA hwaccel
``vaapi``  an x86 box with an Intel or AMD iGPU (``/dev/dri``) PyAV: FFmpeg's VAAPI hwaccel
``cpu``    anywhere                                           PyAV, else OpenCV, in software
=========  =================================================  ==================================

``SourceConfig.hwaccel: auto`` (the default) takes the first of those the device has
(:func:`choose_hwaccel` on a :class:`DecodeProbe`, read once per process by
:func:`decode_probe`: a Jetson, an NVIDIA GPU, the hardware device types PyAV's FFmpeg was built
with, OpenCV's GStreamer, the ``nvv4l2decoder`` plugin, DRI render nodes). A hardware decoder
that ``auto`` chose but that fails to open falls back to the CPU with a warning; one asked for
by name that cannot run is a :class:`~core.errors.SourceError` naming everything it lacks.

PyAV's wheels bundle an FFmpeg with ``cuda`` but without ``vaapi``; OpenCV's wheels have no
GStreamer. So on a Jetson, ``nvv4l2`` needs JetPack's OpenCV (built with GStreamer), and VAAPI
needs a PyAV built against the system's FFmpeg.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import SourceError

__all__ = [
    "HWACCELS",
    "DecodeProbe",
    "HwAccelChoice",
    "HwAccelName",
    "choose_hwaccel",
    "decode_probe",
    "gstreamer_pipeline",
]

HwAccelName = Literal["auto", "cpu", "nvv4l2", "cuda", "vaapi"]
HWACCELS: tuple[str, ...] = ("auto", "cpu", "nvv4l2", "cuda", "vaapi")
HARDWARE: tuple[str, ...] = ("nvv4l2", "cuda", "vaapi")
"""In the order ``auto`` tries them."""
NVV4L2_PLUGIN = "libgstnvvideo4linux2.so"
"""JetPack's GStreamer plugin that holds ``nvv4l2decoder``."""
GSTREAMER_PLUGIN_DIRS = (
    "usr/lib/aarch64-linux-gnu/gstreamer-1.0",
    "usr/lib/x86_64-linux-gnu/gstreamer-1.0",
    "usr/lib/gstreamer-1.0",
)


@dataclass(frozen=True)
class DecodeProbe:
    """What this machine offers for decoding video (see the module docstring)."""

    jetson: bool
    nvidia_gpu: bool
    """A discrete NVIDIA GPU the kernel driver lists."""
    pyav_hwdevices: tuple[str, ...]
    """FFmpeg hardware device types PyAV was built with (empty: no PyAV)."""
    opencv_gstreamer: bool
    nvv4l2_plugin: bool
    render_nodes: tuple[str, ...]
    """``/dev/dri/renderD*``: a GPU VAAPI can open."""


@dataclass(frozen=True)
class HwAccelChoice:
    hwaccel: str
    """``nvv4l2``, ``cuda``, ``vaapi`` or ``cpu``."""
    library: str
    """``opencv`` for ``nvv4l2``, ``pyav`` for ``cuda`` and ``vaapi``, ``auto`` for ``cpu``
    (the source's ``decoder`` picks)."""
    reason: str
    chosen: bool
    """True when ``auto`` chose it (a failure to open then falls back to the CPU)."""

    def __str__(self) -> str:
        return f"{self.hwaccel} ({self.reason})"


def _opencv_gstreamer() -> bool:
    try:
        import cv2  # noqa: PLC0415 - optional (the video extra)
    except ImportError:
        return False
    return re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) is not None


def _pyav_hwdevices() -> tuple[str, ...]:
    try:
        from av.codec.hwaccel import hwdevices_available  # noqa: PLC0415 - optional
    except ImportError:
        return ()
    return tuple(hwdevices_available())


def read_decode_probe(root: Path = Path("/")) -> DecodeProbe:
    """Read now what :class:`DecodeProbe` holds (files under ``root``, so tests can fake a
    Jetson; the libraries are this process's)."""
    from core.device.probe import probe_jetson, probe_nvidia_proc  # noqa: PLC0415

    gpus = probe_nvidia_proc(root)
    plugin = any((root / folder / NVV4L2_PLUGIN).is_file() for folder in GSTREAMER_PLUGIN_DIRS)
    return DecodeProbe(
        jetson=probe_jetson(root) is not None,
        nvidia_gpu=bool(gpus) or (root / "dev/nvidia0").exists(),
        pyav_hwdevices=_pyav_hwdevices(),
        opencv_gstreamer=_opencv_gstreamer(),
        nvv4l2_plugin=plugin,
        render_nodes=tuple(str(p) for p in sorted((root / "dev/dri").glob("renderD*"))),
    )


@functools.cache
def decode_probe() -> DecodeProbe:
    """:func:`read_decode_probe` of this machine, once per process."""
    return read_decode_probe()


def _missing(hwaccel: str, probe: DecodeProbe, library: str) -> list[str]:
    """What ``hwaccel`` lacks here with ``decoder: library``, as phrases (empty: it can run)."""
    missing: list[str] = []
    if hwaccel == "nvv4l2":
        if library == "pyav":
            missing.append("decoder: pyav cannot use it (OpenCV's GStreamer does)")
        if not probe.jetson:
            missing.append("not a Jetson")
        if not probe.opencv_gstreamer:
            missing.append("this OpenCV has no GStreamer (JetPack's OpenCV has)")
        if not probe.nvv4l2_plugin:
            missing.append(f"GStreamer's nvv4l2decoder plugin ({NVV4L2_PLUGIN}) is not installed")
    else:  # cuda, vaapi: FFmpeg's hwaccels through PyAV
        if library == "opencv":
            missing.append("decoder: opencv cannot use it (PyAV does)")
        if not probe.pyav_hwdevices:
            missing.append("PyAV is not installed (pip install 'edgeloop[video]')")
        elif hwaccel not in probe.pyav_hwdevices:
            built = ", ".join(probe.pyav_hwdevices)
            missing.append(f"PyAV's FFmpeg was built without {hwaccel} (it has: {built})")
        if hwaccel == "cuda" and not probe.nvidia_gpu:
            missing.append("no NVIDIA GPU found")
        if hwaccel == "vaapi" and not probe.render_nodes:
            missing.append("no GPU render node (/dev/dri/renderD*)")
    return missing


def choose_hwaccel(requested: str, probe: DecodeProbe, library: str = "auto") -> HwAccelChoice:
    """The decoder for ``hwaccel: requested`` with ``decoder: library`` on ``probe``.

    Raises :class:`~core.errors.SourceError` (one line naming what is missing) when a named
    hardware decoder cannot run here, ``ValueError`` for an unknown name."""
    if requested not in HWACCELS:
        raise ValueError(f"unknown hwaccel {requested!r}; choose from {', '.join(HWACCELS)}")
    if requested == "cpu":
        return HwAccelChoice("cpu", library, "requested", chosen=False)
    if requested != "auto":
        missing = _missing(requested, probe, library)
        if missing:
            raise SourceError(f"hwaccel {requested} cannot decode here: " + "; ".join(missing))
        return HwAccelChoice(requested, _library(requested), "requested", chosen=False)
    lacking = []
    for hwaccel in HARDWARE:
        missing = _missing(hwaccel, probe, library)
        if not missing:
            return HwAccelChoice(hwaccel, _library(hwaccel), _why(hwaccel), chosen=True)
        lacking.append(f"{hwaccel}: {missing[0]}")
    return HwAccelChoice("cpu", library, "; ".join(lacking), chosen=True)


def _library(hwaccel: str) -> str:
    return "opencv" if hwaccel == "nvv4l2" else "pyav"


def _why(hwaccel: str) -> str:
    return {
        "nvv4l2": "a Jetson with GStreamer's nvv4l2decoder",
        "cuda": "an NVIDIA GPU with PyAV's CUDA hwaccel",
        "vaapi": "a GPU render node with PyAV's VAAPI hwaccel",
    }[hwaccel]


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gstreamer_pipeline(uri: str, *, live: bool) -> str:
    """The GStreamer pipeline OpenCV opens to decode ``uri`` (a file path or an RTSP URL) on a
    Jetson's NVDEC: parse whatever the container or the RTP stream holds (H.264, H.265),
    decode with ``nvv4l2decoder``, convert to BGR in system memory for the ring. A live stream
    keeps only the newest frames (``drop``), as the other live readers do.

    >>> gstreamer_pipeline("clips/gate.mp4", live=False).split(" ! ")[:3]
    ['filesrc location="clips/gate.mp4"', 'parsebin', 'nvv4l2decoder']
    >>> gstreamer_pipeline("rtsp://cam/1", live=True).split(" ! ")[0]
    'rtspsrc location="rtsp://cam/1" protocols=tcp latency=100'
    """
    if uri.startswith(("rtsp://", "rtsps://")):
        source = f"rtspsrc location={_quoted(uri)} protocols=tcp latency=100"
    elif "://" in uri:
        source = (
            f"souphttpsrc location={_quoted(uri)}"
            if uri.startswith("http")
            else (f"urisourcebin uri={_quoted(uri)}")
        )
    else:
        source = f"filesrc location={_quoted(uri)}"
    sink = "appsink sync=false max-buffers=2 drop=true" if live else "appsink sync=false"
    return " ! ".join(
        (
            source,
            "parsebin",
            "nvv4l2decoder",
            "nvvidconv",
            "video/x-raw,format=BGRx",
            "videoconvert",
            "video/x-raw,format=BGR",
            sink,
        )
    )
