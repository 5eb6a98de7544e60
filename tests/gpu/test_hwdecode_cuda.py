"""NVDEC through PyAV's CUDA hwaccel, on a machine with an NVIDIA GPU: ``hwaccel: auto``
chooses it, it decodes the same pictures as the CPU (H.264 is bit-exact between conforming
decoders, so only the colour conversion may differ), and the report says it ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import media
from core.sources import SourceConfig, open_source
from core.sources.hwdecode import HwAccelName, choose_hwaccel, decode_probe


@pytest.fixture(scope="module")
def cuda_decoding() -> None:
    choice = choose_hwaccel("auto", decode_probe(), "pyav")
    if choice.hwaccel != "cuda":
        pytest.skip(f"hwaccel auto chooses {choice.hwaccel} here: {choice.reason}")


def _frames(
    path: Path, hwaccel: HwAccelName, count: int
) -> tuple[list[np.ndarray], dict[str, Any]]:
    config = SourceConfig(kind="file", uri=str(path), hwaccel=hwaccel)
    with open_source(config, 0) as source:
        shape = source.open()
        frames = []
        for _ in range(count):
            out = np.empty((*shape, 3), np.uint8)
            assert source.read_into(out) is not None
            frames.append(out)
        return frames, source.facts()


def test_nvdec_decodes_what_the_cpu_decodes(cuda_decoding: None, tmp_path: Path) -> None:
    clip = media.synthetic_clip(640, 360, 30, 1, gop=10, bitrate=2_000_000, folder=tmp_path)
    gpu, facts = _frames(clip, "auto", 20)
    cpu, cpu_facts = _frames(clip, "cpu", 20)
    assert facts["hwaccel"] == "cuda" and cpu_facts["hwaccel"] == "cpu"
    for i, (a, b) in enumerate(zip(gpu, cpu, strict=True)):
        mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        psnr = 10 * np.log10(255.0**2 / mse) if mse else float("inf")
        assert psnr > 35.0, (i, psnr)
