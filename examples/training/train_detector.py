"""Train a reference detector on the synthetic camera, export it to ONNX, update its model card.

    python -m examples.training.train_detector --size s      # from the repository root

Development only: needs the ``train`` extra (``pip install -e '.[train]'``: PyTorch, CPU), and
lives outside the installed packages so devices never ship it. CI never runs this; the ONNX
files it writes (by default into ``core/models/``, where the runtime loads them) are committed.

Deterministic: every random choice comes from seeded generators (NumPy for the data, torch for
the weights), torch runs with deterministic algorithms on a fixed number of threads, and the
data are synthetic frames picked by index, so the same command, torch version and thread count
give the same weights. (Float sums may differ across CPU kinds: the card records the machine.)

Training sees exactly what inference sees: frames from :class:`core.synthetic.SyntheticCamera`
letterboxed by :func:`core.preprocess.preprocess_into` with the spec the runtime builds from the
ONNX input shape, boxes mapped through the same :class:`~core.preprocess.LetterboxTransform`.
Every step draws fresh frames (random access makes any frame of any scene equally cheap), from
a pool of scenes with different backgrounds, resolutions, noise and lighting; the card's
accuracy and the tests use scenes of other seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.models.detector import INPUT_NAME, METADATA_KEY, MODEL_DIR, OUTPUT_NAME
from core.preprocess import PreprocessSpec, preprocess_into
from core.synthetic import CLASS_NAMES, SceneConfig, SyntheticCamera
from examples.training.detector_net import (
    DetectorNet,
    Exported,
    NetConfig,
    Targets,
    assign,
    cell_centres,
    fold_batch_norm,
    loss,
)

PROG = "python -m examples.training.train_detector"
"""How this script is run (from the repository root); the card's "reproduce" row quotes it."""
SIZES = {
    "s": NetConfig("detector-s", (192, 320), (16, 32, 48, 96, 128), batch=32, steps=2000),
    "m": NetConfig("detector-m", (256, 448), (24, 48, 64, 128, 160), batch=24, steps=1400),
}
"""Input (height, width) and stage widths per size: 16:9 inputs, so a 1080p frame fills them."""
SEED = 20240611
TRAIN_SCENE_SEEDS = range(1000, 1024)
"""Scenes the detectors learn from; evaluation uses other seeds (``EVAL_SEED``, the tests')."""
TRAIN_RESOLUTIONS = ((1920, 1080),) * 16 + ((1280, 720),) * 4 + ((640, 480),) * 4
"""(width, height) of each training scene: mostly 1080p, some 720p and 4:3 (side padding)."""
FRAMES_PER_SCENE = 30 * 60 * 10
"""Training frames are drawn from each scene's first ten minutes at 30 fps."""
HIDDEN = 0.7
"""Objects hidden more than this are ignored in training (and in AP, ``core.accuracy``)."""
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 5e-4
WARMUP_STEPS = 100
EMA_DECAY = 0.998
THREADS = 2
OPSET = 13
"""Opset 13 / IR 7: what TensorRT 8.x, ONNX Runtime >= 1.8 and JetPack 4.6+ all read."""
IR_VERSION = 7


class TrainingScenes:
    """The training data: letterboxed frames of the scene pool with their targets."""

    def __init__(
        self,
        spec: PreprocessSpec,
        seed: int,
        resolutions: Sequence[tuple[int, int]] = TRAIN_RESOLUTIONS,
    ) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self.cameras: list[SyntheticCamera] = []
        seeds = TRAIN_SCENE_SEEDS[: len(resolutions)]  # fewer, smaller scenes: for tests
        for scene_seed, (width, height) in zip(seeds, resolutions, strict=True):
            knobs = np.random.default_rng(scene_seed)
            config = SceneConfig(
                width=width,
                height=height,
                seed=scene_seed,
                noise_sigma=float(knobs.uniform(1.0, 4.0)),
                lighting_drift=float(knobs.uniform(0.05, 0.25)),
            )
            self.cameras.append(SyntheticCamera(config))
        self.buffers = [
            np.empty((c.config.height, c.config.width, 3), np.uint8) for c in self.cameras
        ]
        self.centres = cell_centres(*spec.size).numpy()

    def batch(self, n: int) -> tuple[torch.Tensor, Targets]:
        """Letterboxed images and their targets for ``n`` fresh frames."""
        images = self.spec.empty_batch(n)
        owners, ignores, boxes, classes = [], [], [], []
        offset = 0
        for i in range(n):
            k = int(self.rng.integers(len(self.cameras)))
            truth = self.cameras[k].render_into(
                int(self.rng.integers(FRAMES_PER_SCENE)), self.buffers[k]
            )
            transform = preprocess_into(self.buffers[k], images[i], self.spec)
            net_boxes = transform.to_network(truth.boxes).astype(np.float32)
            owner, ignore = assign(self.centres, net_boxes, truth.classes, truth.occluded > HIDDEN)
            owners.append(np.where(owner >= 0, owner + offset, -1))
            ignores.append(ignore)
            boxes.append(net_boxes)
            classes.append(truth.classes)
            offset += len(net_boxes)
        return torch.from_numpy(images), Targets(
            torch.from_numpy(np.stack(owners)),
            torch.from_numpy(np.stack(ignores)),
            torch.from_numpy(np.concatenate([np.zeros((0, 4), np.float32), *boxes])),
            torch.from_numpy(np.concatenate([np.zeros(0, np.int64), *classes])),
        )


def learning_rate(step: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    if step < WARMUP_STEPS:
        return LEARNING_RATE * (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, steps - WARMUP_STEPS)
    return LEARNING_RATE * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    """What the model card reports about training."""

    net: DetectorNet
    seconds: float
    frames: int
    final_loss: dict[str, float]


def train(size: NetConfig, *, steps: int | None = None, log_every: int = 50) -> TrainResult:
    """Train ``size`` from scratch; returns the EMA weights' network (eval mode)."""
    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    steps = steps or size.steps
    spec = PreprocessSpec.yolo(size.input_size)
    data = TrainingScenes(spec, SEED)
    net = DetectorNet(size.widths, len(CLASS_NAMES))
    ema = DetectorNet(size.widths, len(CLASS_NAMES))
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False)
    decay = [p for p in net.parameters() if p.ndim > 1]
    rest = [p for p in net.parameters() if p.ndim <= 1]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}],
        lr=LEARNING_RATE,
    )
    centres = torch.from_numpy(data.centres)
    start = time.perf_counter()
    running: dict[str, float] = {}
    net.train()
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, steps)
        images, targets = data.batch(size.batch)
        total, parts = loss(net(images), centres, targets)
        optimiser.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        optimiser.step()
        with torch.no_grad():  # EMA, warming up so early weights fade fast
            d = EMA_DECAY * (1 - math.exp(-(step + 1) / 200))
            for e, p in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
                if e.dtype.is_floating_point:
                    e.mul_(d).add_(p.detach(), alpha=1 - d)
                else:
                    e.copy_(p)
        for key, value in parts.items():
            running[key] = 0.9 * running.get(key, value) + 0.1 * value
        if (step + 1) % log_every == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - start
            print(
                f"{size.name} step {step + 1}/{steps}  cls {running['cls']:.3f}  "
                f"box {running['box']:.3f}  iou {running['iou']:.3f}  "
                f"lr {learning_rate(step, steps):.5f}  {elapsed:.0f} s",
                flush=True,
            )
    ema.eval()
    return TrainResult(ema, time.perf_counter() - start, steps * size.batch, running)


def export(net: DetectorNet, size: NetConfig, path: Path) -> None:
    """Fold batch norm, add the decoding and write ONNX (dynamic batch, fixed H x W)."""
    import onnx  # noqa: PLC0415 - development path only

    fold_batch_norm(net)
    model = Exported(net, size.input_size).eval()
    dummy = torch.zeros(1, 3, *size.input_size)
    tmp = path.with_suffix(".tmp.onnx")
    # The TorchScript exporter on purpose: opset 13 (TensorRT 8.x), no onnxscript dependency;
    # torch 2.9+ calls it legacy and warns.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    tmp.unlink()
    proto.ir_version = IR_VERSION
    proto.producer_name = "edgeloop.examples.training.train_detector"
    proto.doc_string = f"edgeloop reference detector {size.name}; see MODEL_CARD.md"
    description = {
        "name": size.name,
        "class_names": list(CLASS_NAMES),
        "preprocess": "letterbox, bilinear, pad 114, RGB, 0..1 (PreprocessSpec.yolo)",
        "output": "(batch, anchors, 4 + classes): x1 y1 x2 y2 in input pixels, class scores",
    }
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(description, sort_keys=True)
    onnx.checker.check_model(proto)
    path.write_bytes(proto.SerializeToString())


def machine() -> str:
    """The CPU model and the cores this process may use, for the card."""
    name = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {len(os.sched_getaffinity(0))} cores"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), required=True)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--steps", type=int, help="override the size's step count (trials)")
    parser.add_argument(
        "--no-card", action="store_true", help="export only; do not measure or update the card"
    )
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{size.name}.onnx"
    result = train(size, steps=args.steps)
    export(result.net, size, path)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {result.seconds:.0f} s")
    command = f"{PROG} --size {args.size}"
    if args.steps:
        command += f" --steps {args.steps}"
    facts = {
        "command": command,
        "seconds": round(result.seconds),
        "frames": result.frames,
        "steps": args.steps or size.steps,
        "batch": size.batch,
        "seed": SEED,
        "scene_seeds": [TRAIN_SCENE_SEEDS.start, TRAIN_SCENE_SEEDS.stop - 1],
        "torch": torch.__version__,
        "threads": THREADS,
        "machine": machine(),
        "final_loss": {k: round(v, 4) for k, v in result.final_loss.items()},
    }
    facts_path = path.with_suffix(".training.json")
    facts_path.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    if not args.no_card:
        from core.models.model_card import write_card  # noqa: PLC0415 - measures with ORT

        write_card(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
