"""``python -m core.models inspect MODEL [--json]``: how edgeloop reads a model.

Opens the model as the pipeline does (ONNX Runtime on the CPU), then prints its detected
format, class names, input and preprocessing, its outputs; or the reason it is refused, in one
line. Exit status: 0 read, 2 refused (a model that cannot be used as given), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from core.errors import ConfigError, EdgeloopError, ModelError

SHOWN_NAMES = 10
"""Class names the text view lists (``--json`` has them all)."""


def inspect_model(model: str, wanted: str = "auto", labels: str | None = None) -> dict[str, Any]:
    """Everything ``inspect`` prints, as plain data (see the module docstring)."""
    from core.backends import open_backend  # noqa: PLC0415 - heavy, on demand
    from core.formats import backend_facts  # noqa: PLC0415
    from core.formats.model import settle_model  # noqa: PLC0415

    with open_backend(model, "onnxruntime", threads=1) as backend:
        facts = backend_facts(backend)
        choice = settle_model(facts, wanted, labels)
        spec = choice.preprocess()
        return {
            "model": str(backend.model_path),
            **choice.summary(),
            "layout": choice.format.summary,
            "class_names": list(choice.class_names),
            "input": {"name": facts.input.name, "shape": list(facts.input.shape)},
            "outputs": [{"name": o.name, "shape": list(o.shape)} for o in facts.outputs],
            "preprocess": {
                "mode": spec.mode,
                "order": spec.output_order,
                "scale": spec.scale,
                "mean": list(spec.mean),
                "std": list(spec.std),
                "pad_value": list(spec.pad_value),
            },
            "metadata_keys": sorted(facts.metadata),
        }


def render(found: dict[str, Any]) -> str:
    names = found["class_names"]
    shown = ", ".join(names[:SHOWN_NAMES]) + (
        f", ... ({len(names)} in all)" if len(names) > SHOWN_NAMES else ""
    )
    pre = found["preprocess"]
    size = "x".join(map(str, found["input_size"]))
    outputs = ", ".join(f"{o['name']} {o['shape']}" for o in found["outputs"])
    classes = f"{found['classes'] or '-'} from {found['class_names_from']}: {shown or '-'}"
    return "\n".join(
        [
            f"model:      {found['model']}",
            f"format:     {found['format']} ({found['task']}): {found['layout']}",
            f"classes:    {classes}",
            f"input:      {found['input']['name']} {found['input']['shape']}, fed at {size}",
            f"outputs:    {outputs}",
            f"preprocess: {pre['mode']}, {pre['order']}, scale {pre['scale']:g}, mean "
            f"{pre['mean']}, std {pre['std']}, pad {pre['pad_value']}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.models", description="Inspect how edgeloop reads a model."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect = commands.add_parser("inspect", help="a model's format, classes and preprocessing")
    inspect.add_argument("model", help="an ONNX file, or a reference model's name")
    inspect.add_argument("--format", default="auto", help="the format to read it as (auto)")
    inspect.add_argument("--labels", help="class names: a file, one a line, or coco")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        found = inspect_model(args.model, args.format, args.labels)
    except (ModelError, ConfigError) as exc:
        print(f"core.models: refused: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except EdgeloopError as exc:
        print(f"core.models: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=2) if args.json else render(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
