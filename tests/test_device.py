"""core.device: the probe on this machine, a faked Jetson and NVML, and the backend choice on
synthetic probes (every branch, without the hardware)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest

from core.backends import open_backend
from core.device import (
    CpuInfo,
    DeviceProbe,
    GpuInfo,
    RuntimeInfo,
    choose_backend,
    ort_providers,
    probe,
    probe_jetson,
    probe_nvidia_proc,
    probe_nvml,
)
from core.device.__main__ import main
from core.errors import BackendUnavailableError

CPU = CpuInfo("Test CPU", "x86_64", 2, 2, 2, ("avx2",), None, None, None)
NO_RUNTIMES = RuntimeInfo(None, (), None, None, None, None)
ORT_CPU = replace(NO_RUNTIMES, onnxruntime="1.20.0", ort_providers=("CPUExecutionProvider",))
ORT_GPU = replace(
    ORT_CPU,
    ort_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
)
A100 = GpuInfo(0, "NVIDIA A100", 40 << 30, "550.54", "12.4", "8.0", integrated=False)


def device(gpu: bool, runtimes: RuntimeInfo) -> DeviceProbe:
    return DeviceProbe(
        CPU, (A100,) if gpu else (), None, runtimes, None if gpu else "Library Not Found"
    )


# -- this machine -----------------------------------------------------------------------------


def test_probe_here_finds_the_cpu_and_says_why_there_is_no_gpu() -> None:
    here = probe()
    assert here.cpu.usable_cores >= 1 and here.cpu.arch
    assert here.runtimes.onnxruntime is not None
    assert "CPUExecutionProvider" in here.runtimes.ort_providers
    if not here.has_gpu:
        assert here.gpus == () and here.nvml_error
        assert "no NVIDIA GPU found" in here.gpu_summary()
    json.dumps(here.as_dict())


def test_cli_prints_the_probe_and_the_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cpu:") and "backend:" in out
    assert main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cpu"]["usable_cores"] >= 1 and data["backend"]["requested"] == "auto"


def test_cli_unavailable_backend_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    if not probe().has_gpu:
        assert main(["--backend", "tensorrt"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("core.device: error: tensorrt backend")


def test_cli_help_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "core.device", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "--json" in result.stdout


# -- faked hardware ---------------------------------------------------------------------------


def test_jetson_from_device_tree_and_tegra_release(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    (tmp_path / "etc/nv_tegra_release").write_text(
        "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64\n"
    )
    jetson = probe_jetson(tmp_path)
    assert jetson is not None
    assert jetson.model == "NVIDIA Jetson AGX Orin Developer Kit"
    assert (jetson.l4t, jetson.jetpack) == ("36.3.0", "6.0")
    assert probe_jetson(tmp_path / "elsewhere") is None


def test_unknown_l4t_release_gives_no_jetpack(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R99 (release), REVISION: 1.0, GCID: 1\n")
    jetson = probe_jetson(tmp_path)
    assert jetson is not None and jetson.l4t == "99.1.0" and jetson.jetpack is None
    assert jetson.model is None


def test_nvml_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    class NVMLError(Exception):
        pass

    def not_supported(handle: object) -> None:
        raise NVMLError("Not Supported")

    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: "550.54.15",
        nvmlSystemGetCudaDriverVersion=lambda: 12040,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: [b"NVIDIA L4", "NVIDIA H100 80GB HBM3"][h],
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=(h + 1) << 30),
        nvmlDeviceGetCudaComputeCapability=lambda h: (8, 9) if h == 0 else not_supported(h),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus, error = probe_nvml()
    assert error is None
    assert [(g.name, g.memory_bytes, g.cuda_driver, g.compute_capability) for g in gpus] == [
        ("NVIDIA L4", 1 << 30, "12.4", "8.9"),
        ("NVIDIA H100 80GB HBM3", 2 << 30, "12.4", None),  # unsupported field: None, not 0
    ]
    assert gpus[0].driver == "550.54.15" and not gpus[0].integrated


def test_gpus_from_the_kernel_driver_when_nvml_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "proc/driver/nvidia"
    (folder / "gpus/0000:00:05.0").mkdir(parents=True)
    (folder / "version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
    )
    (folder / "gpus/0000:00:05.0/information").write_text(
        "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 34\nBus Type: \t PCIe\n"
    )
    (gpu,) = probe_nvidia_proc(tmp_path)
    assert (gpu.name, gpu.driver, gpu.memory_bytes) == ("NVIDIA H100 80GB HBM3", "550.54.15", None)
    assert probe_nvidia_proc(tmp_path / "none") == ()


def test_nvml_without_a_driver_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=fail))
    assert probe_nvml() == ((), "NVML Shared Library Not Found")


# -- the choice ---------------------------------------------------------------------------------


def test_auto_picks_tensorrt_with_a_gpu_tensorrt_and_pycuda() -> None:
    runtimes = replace(ORT_GPU, tensorrt="10.3.0", pycuda="2024.1")
    choice = choose_backend("auto", device(True, runtimes))
    assert choice.backend == "tensorrt" and choice.providers == ()
    assert "NVIDIA A100" in choice.reason


def test_auto_picks_onnxruntime_cuda_when_tensorrt_is_missing() -> None:
    choice = choose_backend("auto", device(True, ORT_GPU))
    assert choice.backend == "onnxruntime"
    # No tensorrt module: ORT's TensorRT provider would not load either.
    assert choice.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert "tensorrt module is not installed" in choice.reason


def test_ort_tensorrt_provider_first_when_tensorrt_is_there_but_not_pycuda() -> None:
    found = device(True, replace(ORT_GPU, tensorrt="10.3.0"))
    assert ort_providers(found)[0] == "TensorrtExecutionProvider"
    assert choose_backend("auto", found).backend == "onnxruntime"


def test_auto_on_a_cpu_only_machine() -> None:
    choice = choose_backend("auto", device(False, ORT_GPU))  # GPU providers, but no GPU
    assert choice.backend == "onnxruntime" and choice.providers == ("CPUExecutionProvider",)
    assert "no NVIDIA GPU found" in choice.reason
    gpu_no_provider = choose_backend("auto", device(True, ORT_CPU))
    assert gpu_no_provider.providers == ("CPUExecutionProvider",)
    assert "onnxruntime-gpu" in gpu_no_provider.reason


def test_explicit_tensorrt_that_cannot_run_names_everything_missing() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        choose_backend("tensorrt", device(False, ORT_CPU))
    message = str(info.value)
    assert "\n" not in message and message.startswith("tensorrt backend requested")
    for missing in ("no NVIDIA GPU found", "tensorrt module is not installed", "pycuda"):
        assert missing in message
    with pytest.raises(BackendUnavailableError, match="cannot run here: pycuda") as info:
        choose_backend("tensorrt", device(True, replace(ORT_CPU, tensorrt="10.3.0")))
    assert "GPU" not in str(info.value)


def test_explicit_onnxruntime_and_unknown_names() -> None:
    assert choose_backend("onnxruntime", device(True, ORT_GPU)).backend == "onnxruntime"
    with pytest.raises(BackendUnavailableError, match="onnxruntime is not installed"):
        choose_backend("onnxruntime", device(False, NO_RUNTIMES))
    with pytest.raises(ValueError, match="unknown backend 'openvino'"):
        choose_backend("openvino", device(False, ORT_CPU))


def test_open_backend_tensorrt_here_fails_before_loading_anything(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="tensorrt backend requested"):
        open_backend(tmp_path / "missing.onnx", "tensorrt", device=device(False, ORT_CPU))
