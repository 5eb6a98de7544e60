"""Measure the committed detectors and write ``MODEL_CARD.md``: what they are, how they were
made, how well and how fast they run.

    python -m core.models.model_card [MODEL_DIR]

:mod:`examples.training.train_detector` calls this after each export; run it alone to refresh
the card (latency on another machine, say). Figures: parameters and GFLOPs counted from the
ONNX graph itself (convolutions' multiply-adds times two, at batch 1: the rest is negligible),
AP at IoU 0.5 on fresh 1080p frames of a scene no training frame came from, ONNX Runtime
latency at batch 1. Training facts come from the ``<name>.training.json`` the training script
writes beside the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.accuracy import evaluate
from core.models.detector import (
    DETECTORS,
    MODEL_DIR,
    evaluate_detector,
    latency_ms,
    load_detector,
)
from core.synthetic import CLASS_NAMES, SceneConfig

EVAL_SEED = 2024
"""Scene seed of the card's accuracy figures (training uses 1000..1023, the tests 7)."""
EVAL_FRAMES = 500
COCO_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
"""IoU thresholds of COCO's mAP@0.5:0.95: where the sizes differ most (localisation)."""
CARD = "MODEL_CARD.md"


def graph_figures(path: Path) -> tuple[int, int]:
    """(parameters, FLOPs at batch 1) of an ONNX model: weights of its convolutions, and two
    FLOPs per multiply-add of each convolution at its inferred output shape."""
    import onnx  # noqa: PLC0415 - a development dependency of this tool only

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    weights = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    shapes = {}
    for info in [*graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    params = flops = 0
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        params += sum(weights.get(name, 0) for name in node.input[1:])
        out = shapes[node.output[0]]
        kernel_elems = weights[node.input[1]] // out[1]  # c_in / groups * kh * kw
        flops += 2 * int(np.prod(out[1:])) * kernel_elems
    return params, flops


def measure(path: Path) -> dict[str, Any]:
    """Everything the card says about one model file."""
    params, flops = graph_figures(path)
    detector = load_detector(path, threads=2)
    report, predictions, truths = evaluate_detector(
        detector, SceneConfig(seed=EVAL_SEED), EVAL_FRAMES
    )
    strict = [
        evaluate(predictions, truths, len(CLASS_NAMES), iou_threshold=t).map
        for t in COCO_THRESHOLDS
    ]
    return {
        "file_bytes": path.stat().st_size,
        "parameters": params,
        "gflops": flops / 1e9,
        "input": detector.spec.size,
        "map50": report.map,
        "map75": strict[COCO_THRESHOLDS.index(0.75)],
        "map50_95": float(np.mean(strict)),
        "per_class_ap": dict(zip(CLASS_NAMES, report.per_class_ap, strict=True)),
        "recall": dict(zip(CLASS_NAMES, report.recall, strict=True)),
        "objects": sum(report.num_ground_truth),
        "latency_ms": {
            threads: latency_ms(load_detector(path, threads=threads)) for threads in (1, 2)
        },
    }


def _section(name: str, facts: dict[str, Any], training: dict[str, Any]) -> list[str]:
    h, w = facts["input"]
    lines = [
        f"## {name}",
        "",
        "| | |",
        "|---|---|",
        f"| input | `images` (batch, 3, {h}, {w}) float32 RGB 0..1, letterboxed |",
        f"| parameters | {facts['parameters']:,} |",
        f"| GFLOPs (batch 1) | {facts['gflops']:.3f} |",
        f"| file size | {facts['file_bytes'] / 1e6:.2f} MB |",
        f"| mAP@0.5, {EVAL_FRAMES} fresh 1080p frames (seed {EVAL_SEED}) | "
        f"**{facts['map50']:.3f}** ({facts['objects']} objects) |",
        f"| mAP@0.75; mAP@0.5:0.95 (COCO's ten thresholds), same frames | "
        f"{facts['map75']:.3f}; {facts['map50_95']:.3f} |",
        "| AP@0.5 per class | "
        + ", ".join(f"{k} {v:.3f}" for k, v in facts["per_class_ap"].items())
        + " |",
        f"| ORT latency, batch 1, 1 thread | {facts['latency_ms'][1]:.2f} ms |",
        f"| ORT latency, batch 1, 2 threads | {facts['latency_ms'][2]:.2f} ms |",
    ]
    if training:
        lines += [
            f"| training | {training['steps']} steps x {training['batch']} frames = "
            f"{training['frames']:,} frames, {training['seconds'] / 60:.1f} min on "
            f"{training['machine']}, {training['threads']} threads, torch {training['torch']} |",
            f"| seed | {training['seed']} (weights, frame choice); scenes "
            f"{training['scene_seeds'][0]}..{training['scene_seeds'][1]} |",
            f"| reproduce | `{training['command']}` |",
        ]
    return [*lines, ""]


HEADER = """# Reference detectors: model card

`detector-s` and `detector-m` (`core.models.reference_model_path("detector")` is
`detector-s`) find the five object classes of edgeloop's synthetic camera
(`core.synthetic`: {classes}).
They exist so that `bench`, the tests and HIL replays run a detector that *really detects*,
with a real accuracy/speed trade-off between two sizes, without downloading anything. They
know nothing of real-world images.

**Network.** Anchor-free, single-level, YOLOX/FCOS-style (`examples/training/detector_net.py`):
five stride-2 conv-BN-SiLU stages, a top-down neck to stride 8, one head predicting per
stride-8 cell the distances to the four box sides and a score per class (quality focal
loss + GIoU, FCOS centre sampling). Batch norm is folded; the decoding to boxes is in the
graph. Opset 13, IR 7, dynamic batch.

**Input and output.** `images`: float32 RGB 0..1, letterboxed with grey (114) padding, as
`PreprocessSpec.yolo((H, W))` makes it; inputs are 16:9 so a 1080p frame fills them.
`detections`: `(batch, anchors, 4 + 5)`: `x1 y1 x2 y2` in input pixels, then the five class
scores; `core.postprocess.decode_detections` maps boxes to frame pixels and runs the native
NMS. The ONNX metadata (`edgeloop` key) carries the class names.

**Data.** Every training step renders fresh frames from 24 synthetic scenes (seeds
1000..1023: sixteen 1920x1080, four 1280x720, four 640x480; sensor noise 1..4 grey levels,
lighting drift 0.05..0.25), picked by random frame index within each scene's first ten
minutes, letterboxed by `core.preprocess` exactly as at inference. Objects more than 70 %
hidden (behind others or outside the frame) are ignored in training and in AP.

**Evaluation.** mAP@0.5: all-point interpolated AP per class (`core.accuracy`), mean over the
five classes, detections at score >= 0.01 after NMS at IoU 0.45, on {frames} frames (37 frames
apart) of a 1080p scene of seed {seed}, which no training frame came from. The stricter IoU
thresholds show the sizes' gap best: it is mostly in localisation.
`tests/test_reference_detector.py` checks the committed files on frames of yet another seed.
Latency: ONNX Runtime {ort}, CPU provider, median of 50 runs after 5 warm-ups, on the training
machine (a shared 2-core VM: read the two sizes' ratio rather than absolute times).

**Determinism.** Same command, torch version, thread count and CPU kind give the same weights
(seeded NumPy and torch generators, `torch.use_deterministic_algorithms(True)`).
Training needs the `train` extra (`pip install -e '.[train]'`, torch CPU); CI never trains.

"""


def write_card(model_dir: Path = MODEL_DIR) -> Path:
    """Measure every detector present in ``model_dir`` and (re)write its ``MODEL_CARD.md``."""
    import onnxruntime as ort  # noqa: PLC0415

    body = [
        HEADER.format(
            classes=", ".join(CLASS_NAMES), frames=EVAL_FRAMES, seed=EVAL_SEED, ort=ort.__version__
        )
    ]
    for name in DETECTORS:
        path = model_dir / f"{name}.onnx"
        if not path.is_file():
            continue
        training_path = path.with_suffix(".training.json")
        training = json.loads(training_path.read_text()) if training_path.is_file() else {}
        facts = measure(path)
        print(f"{name}: {json.dumps(facts, default=str)}", flush=True)
        body.extend(line + "\n" for line in _section(name, facts, training))
    card = model_dir / CARD
    card.write_text("".join(body).rstrip() + "\n")
    return card


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m core.models.model_card", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model_dir", nargs="?", type=Path, default=MODEL_DIR)
    args = parser.parse_args(argv)
    print(f"wrote {write_card(args.model_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
