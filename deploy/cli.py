"""``python -m deploy``: the model registry (``model ...``).

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
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
        description="edgeloop deploy: the model registry (model publish|list|show|diff|promote)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    model = commands.add_parser(
        "model", help="the model registry: publish, list, show, diff, promote"
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
