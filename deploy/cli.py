"""``python -m deploy``: the model registry (``model ...``) and preparing models for it
(``model optimize``).

Every command takes ``--registry s3://BUCKET/PREFIX | file://DIR`` (default: the
``EDGELOOP_REGISTRY`` environment variable) and ``--json``. Exit status: 0 done; 1 the registry
refused or failed (a version published with other content, an unreachable bucket); 2 a command
line or input that cannot be used (a version that is not semantic versioning, a file that is not
a model). The cause is one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.backends.model_file import file_sha256
from core.errors import EdgeloopError, ModelError
from core.models.manifest import EVAL_FRAMES, Manifest, check_version
from deploy.models.registry import STAGES, Registry, RegistryError, open_registry
from deploy.models.sagemaker import fetch_model_package

REGISTRY_ENV = "EDGELOOP_REGISTRY"
DIFF_FIELDS = (
    "sha256",
    "size",
    "format",
    "task",
    "input_size",
    "class_names",
    "parent",
    "evaluation",
    "created",
)


class UsageError(Exception):
    """A command line or an input that cannot be used (exit 2)."""


def _registry(args: argparse.Namespace) -> Registry:
    url = args.registry or os.environ.get(REGISTRY_ENV)
    if not url:
        raise UsageError(
            f"no registry: pass --registry s3://BUCKET/PREFIX or file://DIR (or set {REGISTRY_ENV})"
        )
    return open_registry(url)


def _manifest_dict(manifest: Manifest) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(manifest.to_json())
    return result


def _latest(registry: Registry, name: str) -> str:
    versions = registry.versions(name)
    if not versions:
        raise RegistryError(f"{registry.url}: no version of {name} is published")
    return versions[-1]


def cmd_publish(args: argparse.Namespace) -> dict[str, Any]:
    if (args.model is None) == (args.from_sagemaker is None):
        raise UsageError("publish takes MODEL.onnx or --from-sagemaker ARN (one of the two)")
    try:
        check_version(args.version)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.eval not in (None, "synthetic"):
        raise UsageError(f"--eval {args.eval}: the synthetic set is the one built in")
    if args.from_sagemaker is not None:
        with tempfile.TemporaryDirectory(prefix="edgeloop-sagemaker-") as folder:
            model, source = fetch_model_package(args.from_sagemaker, Path(folder))
            return _publish(args, model, source)
    model = Path(args.model)
    if not model.is_file():
        raise UsageError(f"{model}: no such model file")
    return _publish(args, model, None)


def _publish(
    args: argparse.Namespace, model: Path, source: dict[str, Any] | None
) -> dict[str, Any]:
    frames = args.eval_frames if args.eval else None
    if frames:
        print(f"scoring {model.name} on {frames} synthetic frames...", file=sys.stderr)
    done = _registry(args).publish(
        model,
        name=args.name,
        version=args.version,
        labels=args.labels,
        source=source,
        evaluate=frames,
    )
    m = done.manifest
    print(
        f"{m.name} {m.version}: "
        + ("already published, same content" if done.already else "published")
        + f" (sha256 {m.sha256[:12]}, {m.format}, {m.input_size[0]}x{m.input_size[1]}, "
        f"{len(m.class_names)} classes"
        + (f", mAP@0.5 {m.evaluation['map50']:.3f}" if m.evaluation else "")
        + ")",
        file=sys.stderr if args.json else sys.stdout,
    )
    return {"published": not done.already, "manifest": _manifest_dict(m)}


def cmd_optimize(args: argparse.Namespace) -> dict[str, Any]:
    """An int8 copy of the model, its speed and accuracy against it, and (with --name and
    --version) published unless its mAP@0.5 dropped by more than --max-map-drop."""
    from deploy.models import optimize  # noqa: PLC0415 - onnxruntime.quantization

    if not args.int8:
        raise UsageError("optimize: say what to make; --int8 is the one built in")
    model = Path(args.model)
    if not model.is_file():
        raise UsageError(f"{model}: no such model file")
    if (args.name is None) != (args.version is None):
        raise UsageError("publishing takes both --name and --version (or neither)")
    if args.version is not None:
        try:
            check_version(args.version)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    out = args.out or model.with_name(f"{model.stem}.int8.onnx")
    say = sys.stderr if args.json else sys.stdout
    print(f"quantizing {model.name} to int8 on {args.calibration}...", file=sys.stderr)
    frames = optimize.int8_model(model, out, args.calibration, args.labels)
    speed = optimize.speed_ratio(model, out)
    print(f"scoring both on {args.eval_frames} synthetic frames...", file=sys.stderr)
    accuracy = optimize.accuracy_change(model, out, args.eval_frames, args.labels)
    drop = accuracy.drop
    optimization = {
        "kind": "int8-qdq",
        "parent_sha256": file_sha256(model),
        "calibration_frames": frames,
        "accuracy": {
            "dataset": "synthetic",
            "frames": accuracy.frames,
            "map50_fp32": accuracy.fp32,
            "map50_int8": accuracy.int8,
            "map_drop": None if drop is None else round(drop, 4),
        },
        "speed": {**speed, "host": platform.node(), "cpu": platform.processor() or None},
    }
    print(
        f"{out}: int8, {frames} calibration frames; time per frame {speed['fp32_ms']} -> "
        f"{speed['int8_ms']} ms (x{speed['speedup']} faster on one thread here); "
        + (
            f"mAP@0.5 {accuracy.fp32:.4f} -> {accuracy.int8:.4f} (drop {drop:.4f})"
            if drop is not None and accuracy.fp32 is not None and accuracy.int8 is not None
            else f"accuracy not measured ({accuracy.why_not})"
        ),
        file=say,
    )
    result: dict[str, Any] = {"model": str(out), "optimization": optimization, "published": False}
    if args.name is None:
        return result
    if drop is None:
        raise OptimizeRefused(
            f"{out.name} is not published: its accuracy drop cannot be measured on the "
            f"synthetic set ({accuracy.why_not}), and --max-map-drop must hold"
        )
    if drop > args.max_map_drop:
        raise OptimizeRefused(
            f"{out.name} is not published: its mAP@0.5 dropped by {drop:.4f} "
            f"({accuracy.fp32:.4f} -> {accuracy.int8:.4f}), over --max-map-drop "
            f"{args.max_map_drop} (the file is kept for a look)"
        )
    source = {"kind": "optimized", "path": str(model.resolve())}
    done = _registry(args).publish(
        out,
        name=args.name,
        version=args.version,
        labels=args.labels,
        source=source,
        optimization=optimization,
    )
    print(
        f"{args.name} {args.version}: "
        + ("already published, same content" if done.already else "published"),
        file=say,
    )
    result.update(published=not done.already, manifest=_manifest_dict(done.manifest))
    return result


class OptimizeRefused(EdgeloopError):
    """An optimized model that does not meet its bar is not published (exit 1)."""


def cmd_list(args: argparse.Namespace) -> dict[str, Any]:
    registry = _registry(args)
    names = [args.name] if args.name else registry.names()
    models = []
    for name in names:
        stages = registry.stages(name)
        versions = registry.versions(name)
        if args.name and not versions:
            raise RegistryError(f"{registry.url}: no version of {name} is published")
        models.append(
            {
                "name": name,
                "versions": versions,
                "stages": {stage: p.get("version") for stage, p in stages.items()},
            }
        )
        if not args.json:
            for version in versions:
                at = [s for s, p in stages.items() if p.get("version") == version]
                print(f"{name} {version}" + (f"  [{', '.join(at)}]" if at else ""))
    if not args.json and not models:
        print(f"{registry.url}: no model published")
    return {"registry": registry.url, "models": models}


def cmd_show(args: argparse.Namespace) -> dict[str, Any]:
    registry = _registry(args)
    version = args.version or _latest(registry, args.name)
    manifest = registry.manifest(args.name, version)
    stages = [s for s, p in registry.stages(args.name).items() if p.get("version") == version]
    data = _manifest_dict(manifest)
    if not args.json:
        for key, value in data.items():
            shown = ", ".join(value) if key == "class_names" else value
            print(f"{key:12} {shown}")
        print(f"{'stages':12} {', '.join(stages) or '-'}")
    return {"manifest": data, "stages": stages}


def cmd_diff(args: argparse.Namespace) -> dict[str, Any]:
    registry = _registry(args)
    a, b = (registry.manifest(args.name, v) for v in (args.a, args.b))
    rows = []
    for key in DIFF_FIELDS:
        left, right = getattr(a, key), getattr(b, key)
        field = key
        if key == "evaluation":  # its figure, side by side: what diff is read for
            field, left, right = "map50", (left or {}).get("map50"), (right or {}).get("map50")
        rows.append({"field": field, "a": left, "b": right, "same": left == right})
    if not args.json:
        width = max(len(str(r["a"])) for r in rows if r["field"] != "class_names")
        print(f"{'field':12} {args.a:{width}}  {args.b}")
        for row in rows:
            left, right = row["a"], row["b"]
            if row["field"] == "class_names":
                left, right = f"{len(left)} classes", f"{len(right)} classes"
            mark = "" if row["same"] else "  <- differs"
            print(f"{row['field']:12} {left!s:{width}}  {right}{mark}")
    return {"name": args.name, "a": args.a, "b": args.b, "fields": _jsonable(rows)}


def cmd_promote(args: argparse.Namespace) -> dict[str, Any]:
    pointer = _registry(args).promote(args.name, args.version, args.stage)
    print(
        f"{args.name} {args.version} is now {args.stage}",
        file=sys.stderr if args.json else sys.stdout,
    )
    return {"name": args.name, "stage": args.stage, **pointer}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy",
        description="edgeloop deploy: the model registry "
        "(model publish|list|show|diff|promote|optimize)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    model = commands.add_parser(
        "model", help="the model registry: publish, list, show, diff, promote, optimize"
    )
    actions = model.add_subparsers(dest="action", required=True)

    def action(name: str, text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--registry",
            metavar="URL",
            help=f"s3://BUCKET/PREFIX or file://DIR (default: ${REGISTRY_ENV})",
        )
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        return sub

    publish = action("publish", "publish an ONNX model as NAME VERSION (loaded and checked first)")
    publish.add_argument("model", metavar="MODEL.onnx", nargs="?")
    publish.add_argument(
        "--from-sagemaker",
        metavar="MODEL_PACKAGE_ARN",
        help="take an approved SageMaker model package's ONNX file instead of MODEL.onnx",
    )
    publish.add_argument("--name", required=True)
    publish.add_argument("--version", required=True, help="semantic version, e.g. 1.2.0")
    publish.add_argument("--labels", metavar="FILE|coco", help="class names (model.labels)")
    publish.add_argument(
        "--eval",
        metavar="DATASET",
        help="score it first: synthetic (mAP@0.5, the manifest's evaluation)",
    )
    publish.add_argument(
        "--eval-frames",
        type=int,
        default=EVAL_FRAMES,
        metavar="N",
        help=f"frames scored (default {EVAL_FRAMES})",
    )
    publish.set_defaults(run=cmd_publish)
    listing = action("list", "the models, or NAME's versions, with their stages")
    listing.add_argument("name", nargs="?")
    listing.set_defaults(run=cmd_list)
    show = action("show", "one version's manifest (default: the newest)")
    show.add_argument("name")
    show.add_argument("version", nargs="?")
    show.set_defaults(run=cmd_show)
    diff = action("diff", "two versions' manifests side by side")
    diff.add_argument("name")
    diff.add_argument("a", metavar="A")
    diff.add_argument("b", metavar="B")
    diff.set_defaults(run=cmd_diff)
    opt = action(
        "optimize",
        "an int8 copy of a model (ONNX Runtime static quantization, QDQ) calibrated on your "
        "frames; its speed and mAP against the original; published with --name/--version",
    )
    opt.add_argument("model", metavar="MODEL.onnx")
    opt.add_argument("--int8", action="store_true", help="quantize to int8 (QDQ)")
    opt.add_argument(
        "--calibration",
        type=Path,
        required=True,
        metavar="FRAMES_DIR",
        help="a folder of JPEG/PNG frames like the cameras', one size (at most 200 are read)",
    )
    opt.add_argument("--out", type=Path, metavar="FILE", help="default: MODEL.int8.onnx")
    opt.add_argument("--labels", metavar="FILE|coco", help="class names (model.labels)")
    opt.add_argument(
        "--max-map-drop",
        type=float,
        default=0.02,
        metavar="X",
        help="mAP@0.5 it may lose on the synthetic set and still be published (0.02)",
    )
    opt.add_argument(
        "--eval-frames",
        type=int,
        default=EVAL_FRAMES,
        metavar="N",
        help=f"synthetic frames both are scored on (default {EVAL_FRAMES})",
    )
    opt.add_argument("--name", help="publish it as NAME (with --version)")
    opt.add_argument("--version", help="semantic version to publish it as")
    opt.set_defaults(run=cmd_optimize)
    promote = action("promote", "point a stage at a published version")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--stage", required=True, choices=STAGES)
    promote.set_defaults(run=cmd_promote)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except UsageError as exc:
        print(f"deploy: error: {exc}", file=sys.stderr)
        return 2
    except ModelError as exc:  # the file given is not a model the pipeline can use
        print(f"deploy: error: {exc}", file=sys.stderr)
        return 2
    except (RegistryError, EdgeloopError) as exc:
        print(f"deploy: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_jsonable(result), indent=2))
    return 0
