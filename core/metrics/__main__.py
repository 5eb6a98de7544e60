"""``python -m core.metrics``: the metrics side channel from the command line.

``snapshot``   sample every collector once and print the figures (``--json``: the JSON
               snapshot of :mod:`core.metrics.snapshot`; ``--emf``: CloudWatch EMF lines)
``serve``      run the collectors and the ``/metrics`` endpoint until interrupted

Both take ``--config FILE`` (:mod:`core.metrics.config`) and ``--set key=value`` overrides.
Exit 0 on success; 1 with a one-line cause on failure; 2 for a command line that cannot be used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import EdgeloopError
from core.metrics.config import MetricsConfig, load_metrics_config
from core.metrics.emf import emf_lines
from core.metrics.service import MetricsService
from core.metrics.snapshot import device_name, json_snapshot, take_snapshot


def _labels(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{{{inner}}}" if inner else ""


def render(snapshot: dict[str, Any]) -> str:
    """The snapshot as ``name{labels} value`` lines, absent collectors first."""
    lines = [
        f"# {name}: absent ({info['why_absent']})"
        for name, info in snapshot["collectors"].items()
        if not info["available"]
    ]
    for name, family in snapshot["metrics"].items():
        for sample in family["samples"]:
            labels = _labels(sample["labels"])
            if family["type"] == "histogram":
                lines.append(f"{name}_count{labels} {sample['count']}")
                lines.append(f"{name}_sum{labels} {sample['sum']:.6g}")
            else:
                lines.append(f"{name}{labels} {sample['value']:.6g}")
    return "\n".join(lines)


def _config(args: argparse.Namespace) -> MetricsConfig:
    overrides = list(args.set)
    if getattr(args, "address", None):
        overrides.append(f"address={args.address}")
    if getattr(args, "port", None) is not None:
        overrides.append(f"port={args.port}")
    return load_metrics_config(args.config, overrides)


def snapshot(args: argparse.Namespace) -> int:
    config = _config(args)
    registry, sampler = take_snapshot(config, settle_s=args.settle)
    if args.emf:
        for line in emf_lines(
            registry.snapshot(), device=device_name(config), timestamp_ms=int(time.time() * 1000)
        ):
            print(line)
        return 0
    document = json_snapshot(config, registry, sampler)
    print(json.dumps(document, indent=2) if args.json else render(document))
    return 0


def serve(args: argparse.Namespace) -> int:
    config = _config(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with MetricsService(config) as service:
        if args.json:
            print(json.dumps({"url": service.url, "interval_s": config.interval_s}), flush=True)
        else:
            print(f"serving {service.url} (sampling every {config.interval_s:g} s)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.metrics",
        description="Sample this device's metrics once, or serve them to Prometheus.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, metavar="FILE", help="metrics config (YAML)")
        p.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")

    snap = sub.add_parser("snapshot", help="sample every collector once and print the figures")
    common(snap)
    snap.add_argument("--emf", action="store_true", help="CloudWatch Embedded Metric Format lines")
    snap.add_argument(
        "--settle",
        type=float,
        default=0.5,
        metavar="S",
        help="seconds between the two samples CPU busy is measured over (default 0.5)",
    )
    srv = sub.add_parser("serve", help="run the collectors and /metrics until interrupted")
    common(srv)
    srv.add_argument("--address", help="listen address (default 127.0.0.1)")
    srv.add_argument("--port", type=int, help="listen port (default 9464; 0: any free one)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return snapshot(args) if args.command == "snapshot" else serve(args)
    except EdgeloopError as exc:
        print(f"core.metrics: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
