"""Command line of ``python -m bench``.

``python -m bench``             the standard suite on embedded defaults (for now: every micro
                                suite), tables on the terminal, a report folder on disk
``python -m bench micro``       micro-benchmarks side by side (``--only ring,preprocess,jpeg,
                                inference``)

Every command takes ``--json PATH`` (the machine-readable report), ``--quick`` (short budgets, for
smoke runs), ``--backend auto|onnxruntime|tensorrt`` and ``--threads 1,2`` (for the inference
suite) and exits non-zero with a one-line cause on failure -- a ``--backend`` that cannot run here
fails before anything is measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import env, report
from bench.micro import SUITES, MicroOptions, run_suite
from bench.timing import Budget
from core.device import BACKENDS, choose_backend, probe

DEFAULT_OUT = Path("bench-report")


def _progress_printer(quiet: bool) -> Callable[[str], None]:
    start = time.monotonic()

    def show(message: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    return show


def _suites(only: str | None) -> list[str]:
    if not only:
        return list(SUITES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ValueError(
            f"unknown micro suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}"
        )
    return names


def _threads(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise ValueError(f"--threads takes positive integers separated by commas, got {text!r}")
    return values


def run_micro(args: argparse.Namespace) -> dict[str, Any]:
    progress = _progress_printer(args.quiet)
    budget = Budget.quick() if args.quick else Budget(min_s=args.min_seconds)
    names = _suites(args.only)
    if "inference" in names and args.backend != "auto":
        choose_backend(args.backend, probe())  # fail now, in one line, not after other suites
    options = MicroOptions(
        budget=budget,
        quick=args.quick,
        progress=progress,
        backend=args.backend,
        threads=_threads(args.threads),
    )
    progress("capturing the environment")
    result = report.new_report(env.capture())
    result["micro"] = {}
    for i, name in enumerate(names, 1):
        progress(f"[{i}/{len(names)}] micro suite {name}")
        result["micro"][name] = run_suite(name, options)
    return result


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the JSON report here")
    parser.add_argument("--quick", action="store_true", help="short budgets (smoke test)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="minimum measuring time per contender (default 1.0)",
    )
    parser.add_argument(
        "--only", metavar="SUITES", help=f"comma-separated micro suites ({', '.join(SUITES)})"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="inference backend (default auto: TensorRT on a GPU with TensorRT, else ONNX Runtime)",
    )
    parser.add_argument(
        "--threads", metavar="N[,N]", help="ONNX Runtime intra-op threads to measure (default 1,2)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure edgeloop on this machine, side by side with the alternatives.",
    )
    _add_common(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"report folder for the standard suite (default {DEFAULT_OUT})",
    )
    sub = parser.add_subparsers(dest="command")
    micro = sub.add_parser("micro", help="micro-benchmarks: ring, preprocess, jpeg, inference")
    _add_common(micro)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = run_micro(args)
        print(report.render_text(result))
        if args.command is None:
            report.write_folder(result, args.out)
            print(f"report written to {args.out}/report.json and report.md")
        if args.json:
            report.write_json(result, args.json)
            print(f"JSON written to {args.json}")
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line with the cause, non-zero exit
        print(f"bench: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
