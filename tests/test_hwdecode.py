"""Which decoder a video source uses: the device's hardware (a Jetson's nvv4l2decoder, an
NVIDIA GPU's NVDEC through CUDA, an iGPU's VAAPI) where it has one, else the CPU; a named one
that cannot run is refused naming all it lacks; what ran is in the report. The hardware itself
is exercised on a lent GPU machine (tests/gpu/test_hwdecode_cuda.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import media
from core.errors import SourceError
from core.sources import SourceConfig, decoders, open_source
from core.sources.decoders import PyAvDecoder
from core.sources.hwdecode import (
    DecodeProbe,
    choose_hwaccel,
    decode_probe,
    gstreamer_pipeline,
    read_decode_probe,
)

NOTHING = DecodeProbe(
    jetson=False,
    nvidia_gpu=False,
    pyav_hwdevices=("cuda", "qsv", "drm"),
    opencv_gstreamer=False,
    nvv4l2_plugin=False,
    render_nodes=(),
)
JETSON = dataclasses.replace(NOTHING, jetson=True, opencv_gstreamer=True, nvv4l2_plugin=True)
GPU = dataclasses.replace(NOTHING, nvidia_gpu=True)
IGPU = dataclasses.replace(
    NOTHING, pyav_hwdevices=("vaapi", "drm"), render_nodes=("/dev/dri/renderD128",)
)


@pytest.mark.parametrize(
    ("probe", "hwaccel", "library"),
    [(JETSON, "nvv4l2", "opencv"), (GPU, "cuda", "pyav"), (IGPU, "vaapi", "pyav")],
)
def test_auto_takes_the_hardware_the_device_has(
    probe: DecodeProbe, hwaccel: str, library: str
) -> None:
    choice = choose_hwaccel("auto", probe)
    assert (choice.hwaccel, choice.library, choice.chosen) == (hwaccel, library, True)


def test_auto_decodes_on_the_cpu_saying_what_each_hardware_lacks() -> None:
    choice = choose_hwaccel("auto", NOTHING)
    assert choice.hwaccel == "cpu" and choice.chosen
    assert choice.reason == (
        "nvv4l2: not a Jetson; cuda: no NVIDIA GPU found; vaapi: PyAV's FFmpeg was built "
        "without vaapi (it has: cuda, qsv, drm)"
    )


def test_auto_keeps_to_the_library_the_source_names() -> None:
    both = dataclasses.replace(JETSON, nvidia_gpu=True)
    assert choose_hwaccel("auto", both).hwaccel == "nvv4l2"
    assert choose_hwaccel("auto", both, "pyav").hwaccel == "cuda"
    assert choose_hwaccel("auto", GPU, "opencv").hwaccel == "cpu"


def test_a_named_decoder_that_cannot_run_names_all_it_lacks() -> None:
    with pytest.raises(SourceError) as caught:
        choose_hwaccel("nvv4l2", NOTHING, "pyav")
    assert str(caught.value) == (
        "hwaccel nvv4l2 cannot decode here: decoder: pyav cannot use it (OpenCV's GStreamer "
        "does); not a Jetson; this OpenCV has no GStreamer (JetPack's OpenCV has); GStreamer's "
        "nvv4l2decoder plugin (libgstnvvideo4linux2.so) is not installed"
    )
    with pytest.raises(SourceError, match=r"vaapi cannot decode here: .*no GPU render node"):
        choose_hwaccel("vaapi", NOTHING)
    assert choose_hwaccel("cuda", GPU).chosen is False
    assert choose_hwaccel("cpu", GPU).hwaccel == "cpu"
    with pytest.raises(ValueError, match="unknown hwaccel 'nvdec'"):
        choose_hwaccel("nvdec", GPU)


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_probe_reads_a_jetson_a_gpu_and_render_nodes_from_the_filesystem(
    tmp_path: Path,
) -> None:
    bare = read_decode_probe(tmp_path)
    assert not (bare.jetson or bare.nvidia_gpu or bare.nvv4l2_plugin or bare.render_nodes)
    _touch(tmp_path / "etc/nv_tegra_release", "# R36 (release), REVISION: 3.0, GCID: 1")
    _touch(tmp_path / "usr/lib/aarch64-linux-gnu/gstreamer-1.0/libgstnvvideo4linux2.so")
    _touch(tmp_path / "proc/driver/nvidia/gpus/0000:01:00.0/information", "Model: NVIDIA H100")
    _touch(tmp_path / "dev/dri/renderD128")
    found = read_decode_probe(tmp_path)
    assert found.jetson and found.nvidia_gpu and found.nvv4l2_plugin
    assert found.render_nodes == (str(tmp_path / "dev/dri/renderD128"),)
    assert found.pyav_hwdevices == decode_probe().pyav_hwdevices  # this process's PyAV


def test_the_jetson_pipeline_parses_decodes_on_nvdec_and_hands_over_bgr() -> None:
    assert gstreamer_pipeline('clips/a "b".mp4', live=False) == (
        'filesrc location="clips/a \\"b\\".mp4" ! parsebin ! nvv4l2decoder ! nvvidconv ! '
        "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink sync=false"
    )
    live = gstreamer_pipeline("rtsp://cam:554/main", live=True)
    assert live.startswith('rtspsrc location="rtsp://cam:554/main" protocols=tcp latency=100 ! ')
    assert live.endswith("appsink sync=false max-buffers=2 drop=true")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    tiny: dict[str, Any] = {"width": 160, "height": 96, "fps": 10, "seconds": 1}
    return media.synthetic_clip(**tiny, gop=5, bitrate=200_000, folder=tmp_path)


def test_here_a_file_decodes_on_the_cpu_and_says_so(clip: Path) -> None:
    with open_source(SourceConfig(kind="file", uri=str(clip)), 0) as source:
        out = np.empty((*source.open(), 3), np.uint8)
        assert source.read_into(out) is not None
        assert source.facts()["hwaccel"] == choose_hwaccel("auto", decode_probe()).hwaccel


def test_a_named_hardware_decoder_this_machine_lacks_fails_the_open(clip: Path) -> None:
    if choose_hwaccel("auto", decode_probe()).hwaccel == "cuda":
        pytest.skip("this machine decodes on CUDA: tests/gpu/test_hwdecode_cuda.py covers it")
    config = SourceConfig(kind="file", uri=str(clip), hwaccel="cuda")
    with open_source(config, 0) as source, pytest.raises(SourceError, match="cuda"):
        source.open()


def test_ffmpeg_failing_to_open_a_device_is_a_source_error_naming_it(clip: Path) -> None:
    if choose_hwaccel("auto", decode_probe()).hwaccel == "cuda":
        pytest.skip("this machine decodes on CUDA: tests/gpu/test_hwdecode_cuda.py covers it")
    with pytest.raises(SourceError, match=r"^clip: cannot open the cuda decoder: "):
        PyAvDecoder(str(clip), name="clip", timeout_s=5.0, hwaccel="cuda")


def test_a_chosen_decoder_that_fails_falls_back_to_the_cpu_with_a_warning(
    clip: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe says a GPU is here (as on a machine whose driver then refuses FFmpeg): the
    real CUDA open fails, and ``auto`` decodes on the CPU instead of failing the stream."""
    if choose_hwaccel("auto", decode_probe()).hwaccel == "cuda":
        pytest.skip("this machine decodes on CUDA: tests/gpu/test_hwdecode_cuda.py covers it")
    monkeypatch.setattr(decoders, "decode_probe", lambda: GPU)
    decoder = decoders.open_decoder(str(clip), name="clip")
    try:
        assert decoder.facts()["hwaccel"] == "cpu" and decoder.read() is not None
    finally:
        decoder.close()
    assert "cuda (an NVIDIA GPU with PyAV's CUDA hwaccel) chosen, but it failed" in caplog.text
    monkeypatch.setattr(decoders, "decode_probe", lambda: GPU)
    with pytest.raises(SourceError, match="cannot open the cuda decoder"):
        decoders.open_decoder(str(clip), name="clip", hwaccel="cuda")
