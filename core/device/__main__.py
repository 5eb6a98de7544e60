"""``python -m core.device``: what this machine has, the backend ``--backend`` gets here, and
the video decoder ``hwaccel: auto`` picks.

Exits 0 after printing; 1 with a one-line cause when the requested backend cannot run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from core.device import BACKENDS, DeviceProbe, choose_backend, probe
from core.errors import EdgeloopError
from core.sources.hwdecode import choose_hwaccel, decode_probe


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.1f} GiB"


def render(found: DeviceProbe) -> str:
    cpu, rt = found.cpu, found.runtimes
    lines = [
        f"cpu:      {cpu.model} ({cpu.arch}), {cpu.usable_cores} usable of "
        f"{cpu.logical_cores} logical cores, SIMD {' '.join(cpu.simd) or '-'}, "
        f"governor {cpu.governor or '-'}",
    ]
    if found.jetson is not None:
        j = found.jetson
        lines.append(f"jetson:   {j.model}, L4T {j.l4t or '-'}, JetPack {j.jetpack or '-'}")
    for gpu in found.gpus:
        lines.append(
            f"gpu {gpu.index}:    {gpu.name}, {_gib(gpu.memory_bytes)}, "
            f"driver {gpu.driver or '-'}, CUDA {gpu.cuda_driver or '-'}, "
            f"compute {gpu.compute_capability or '-'}"
        )
    if not found.gpus:
        lines.append(f"gpu:      {found.gpu_summary()}")
    providers = ", ".join(rt.ort_providers) or "-"
    lines += [
        f"runtimes: onnxruntime {rt.onnxruntime or '-'} ({providers}), "
        f"tensorrt {rt.tensorrt or '-'}, pycuda {rt.pycuda or '-'}, "
        f"nvidia-ml-py {rt.nvml or '-'}, trtexec {rt.trtexec or '-'}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.device",
        description="Probe this device (CPU, NVIDIA GPU, Jetson, runtimes) and pick a backend.",
    )
    parser.add_argument("--json", action="store_true", help="print the probe as JSON")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="auto", help="backend to check (default auto)"
    )
    args = parser.parse_args(argv)
    try:
        found = probe()
        choice = choose_backend(args.backend, found)
    except EdgeloopError as exc:
        print(f"core.device: error: {exc}", file=sys.stderr)
        return 1
    video = decode_probe()
    decoder = choose_hwaccel("auto", video)
    if args.json:
        data = found.as_dict()
        data["video"] = dataclasses.asdict(video)
        data["hwaccel"] = {"chosen": decoder.hwaccel, "reason": decoder.reason}
        data["backend"] = {
            "requested": args.backend,
            "chosen": choice.backend,
            "providers": list(choice.providers),
            "reason": choice.reason,
        }
        print(json.dumps(data, indent=2))
    else:
        print(render(found))
        print(f"backend:  {choice}")
        print(f"decoder:  {decoder.hwaccel} for hwaccel: auto ({decoder.reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
