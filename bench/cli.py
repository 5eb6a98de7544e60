"""Command line of ``python -m bench``: a thin parser; the work is in the modules it names.

``python -m bench``                 the standard suite (:mod:`bench.standard`): environment, a
                                    short micro summary, the pipeline flat out, paced and on a
                                    quiet scene, the naive loop; a summary table and a report
                                    folder (``--out``, default ``bench-report/``)
``python -m bench micro``           every micro-benchmark (``--only ring,preprocess,jpeg,
                                    inference,outbox,metrics,synthetic``)
``python -m bench pipeline``        one pipeline run and the naive loop (``--model``,
                                    ``--source``, ``--streams``, ``--batch``, ``--infer-workers``,
                                    ``--backend``, ``--duration``, ``--rate``, ``--config``)
``python -m bench scenario NAME``   an MLPerf LoadGen scenario on the inference path
                                    (:mod:`bench.scenario`)
``python -m bench compare A B``     B against A (:mod:`bench.compare`)

Every command takes ``--json PATH`` (the machine-readable report) and ``--quiet`` (no
progress); the measuring commands also ``--push-gateway URL`` and ``--prom-textfile PATH`` (the
run's summary as Prometheus metrics, :mod:`bench.publish`). Every command exits
non-zero with a one-line cause on failure: 1 for a failed run (or, for
``compare``, a significant regression), 2 for a command line or input that cannot be used
(argparse's own convention; ``compare`` also refuses different machines or models with 2).

A run that completes exits 0 whatever its verdict, unless ``--strict`` (the standard suite,
``pipeline``, ``scenario``: the commands whose report has a verdict) asks for CI's gate: then
1, after the JSON and the summary are written, when the report's ``verdict.result`` is not
VALID or one of its ``targets`` was measured and missed (``met`` false; null, not measured,
is no miss), the cause in one line on stderr (:func:`strict_failure`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from bench import compare, env, report, scenario, schema, standard
from bench import verdict as checks
from bench.micro import SUITES, MicroOptions, run_suite
from bench.progress import ProgressBar
from bench.timing import Budget
from core.device import BACKENDS, choose_backend, probe
from core.errors import ConfigError, ModelError, SourceError

DEFAULT_OUT = Path("bench-report")
STRICT_COMMANDS = (None, "pipeline", "scenario")
"""The commands ``--strict`` applies to: those whose report has a verdict."""


class UsageError(ValueError):
    """A command line that cannot be run (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the cause and where help is) instead of the usage
    block: a CI log then shows what went wrong in the line it prints."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def _positive(kind: type[int] | type[float], *, zero: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` for numbers > 0 (>= 0 with ``zero``; argparse then says which
    option is wrong)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if value < 0 or (value == 0 and not zero):
            word = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"must be {word} {'>=' if zero else '>'} 0, got {text!r}"
            )
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE_INT = _positive(int)
NON_NEGATIVE_INT = _positive(int, zero=True)
POSITIVE = _positive(float)


def _bar(args: argparse.Namespace, phases: Sequence[tuple[str, float]]) -> ProgressBar:
    return ProgressBar(phases, enabled=not args.quiet)


# -- commands ------------------------------------------------------------------------------------


def run_micro(args: argparse.Namespace) -> Mapping[str, Any]:
    budget = Budget.quick() if args.quick else Budget(min_s=args.min_seconds)
    names = _suites(args.only)
    if "inference" in names and args.backend != "auto":
        choose_backend(args.backend, probe())  # fail now, in one line, not after other suites
    bar = _bar(args, [(name, 1.0) for name in names])
    options = MicroOptions(
        budget=budget,
        quick=args.quick,
        progress=bar.message,
        backend=args.backend,
        threads=_threads(args.threads),
    )
    bar.message("capturing the environment")
    result = report.new_report(env.capture())
    result["micro"] = {}
    for i, name in enumerate(names, 1):
        bar.phase(name, f"[{i}/{len(names)}] micro suite {name}")
        result["micro"][name] = run_suite(name, options)
    bar.finish()
    print(report.render_text(result))
    return result


def _suite_options(args: argparse.Namespace, **parts: Any) -> standard.SuiteOptions:
    options = standard.SuiteOptions(
        config_file=args.config,
        model=args.model,
        source=args.source,
        streams=args.streams,
        batch=args.batch,
        backend=args.backend,
        rate=getattr(args, "rate", None),
        infer_workers=args.infer_workers,
        **parts,
    )
    if args.duration is not None:
        options = dataclasses.replace(options, duration_s=args.duration)
    options = options.shortened() if args.quick else options
    if args.max_trials is not None:
        options = dataclasses.replace(options, max_trials=args.max_trials)
    return options


def _run_suite(
    args: argparse.Namespace, options: standard.SuiteOptions, out: Path | None
) -> Mapping[str, Any]:
    if options.backend not in (None, "auto"):
        choose_backend(options.backend, probe())  # one line, before anything is measured
    bar = _bar(args, options.phases())
    run = standard.run_suite_parts(options, bar)
    written = standard.write_folder(run, out, bar) if out is not None else []
    bar.finish()
    print(report.render_text(run.report))
    if written:
        print(f"report written to {out}/ ({', '.join(p.name for p in written)})")
    return run.report


def run_standard(args: argparse.Namespace) -> Mapping[str, Any]:
    return _run_suite(args, _suite_options(args, micro=not args.no_micro), args.out)


def run_pipeline(args: argparse.Namespace) -> Mapping[str, Any]:
    options = _suite_options(
        args,
        micro=False,
        paced=False,
        quiet=False,
        naive=not args.no_naive,
        multistream=0,
        default_source=None,
    )
    return _run_suite(args, options, args.out)


def run_scenario(args: argparse.Namespace) -> Mapping[str, Any]:
    from bench import verdict  # noqa: PLC0415

    if args.backend != "auto":
        choose_backend(args.backend, probe())
    options = scenario.ScenarioOptions(
        scenario=args.name,
        model=args.model or "detector",
        backend=args.backend,
        threads=args.threads,
        batch=args.batch or 8,
        duration_s=args.duration if args.duration is not None else 5.0,
        min_queries=args.min_queries,
        samples=args.samples,
        target_qps=args.target_qps,
        target_latency_ms=args.target_latency_ms,
        user_conf=args.user_conf,
        log_dir=args.log_dir,
    )
    bar = _bar(args, [("scenario", 1.0)])
    result = scenario.run_scenario(options, progress=bar.message)
    bar.finish()
    out = report.new_report(env.capture(result["model"]))
    ok = result["result"] == verdict.VALID
    why = result.get("invalid_reason") or result.get("early_stopping") or "see the LoadGen log"
    out["verdict"] = {
        "result": result["result"],
        "reason": "LoadGen: VALID" if ok else f"LoadGen: {why}",
    }
    out["scenario"] = cast(schema.Scenario, result)  # bench.scenario's result, as declared
    print(scenario.render(result) + f"\n{report.verdict_line(out)}")
    return out


def run_app(args: argparse.Namespace) -> Mapping[str, Any]:
    from bench import app  # noqa: PLC0415 - starts the device app

    soak = bool(args.soak)
    options = app.AppBenchOptions(
        duration_s=args.duration if args.duration is not None else (600.0 if soak else 15.0),
        rounds=args.rounds,
        streams=args.streams if args.streams is not None else (3 if soak else 1),
        model=args.model or "detector",
        rate=args.rate,
        soak=soak,
        sample_s=args.sample_s,
    )
    bar = _bar(args, [("soak" if soak else "app vs bare", 1.0)])
    result = app.run_app_bench(options, progress=lambda fraction, message: bar.message(message))
    bar.finish()
    print(app.render(result))
    return result


def run_swap(args: argparse.Namespace) -> Mapping[str, Any]:
    from bench import swap  # noqa: PLC0415 - starts pipelines and the model manager

    options = swap.SwapBenchOptions(
        source=args.source, rate=args.rate, swaps=args.swaps, model=args.model or "detector"
    )
    bar = _bar(args, [("model swaps", 1.0)])
    result = swap.run_swap_bench(options, progress=lambda fraction, message: bar.message(message))
    bar.finish()
    print(swap.render(result))
    return result


def run_compare(args: argparse.Namespace) -> Mapping[str, Any]:
    for option in ("max_regression", "max_latency_regression"):
        if getattr(args, option) < 0:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} must be >= 0 percent, got {getattr(args, option)}")
    try:
        base, new = compare.load_side(args.base), compare.load_side(args.new)
        result = compare.compare(
            base,
            new,
            max_regression=args.max_regression,
            max_latency_regression=args.max_latency_regression,
            force=args.force,
        )
    except compare.CompareRefused as exc:
        raise UsageError(str(exc)) from None
    print(compare.render(result))
    return result


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def strict_failure(result: Mapping[str, Any]) -> str | None:
    """Why ``--strict`` fails a report, in one line, or None when it passes: the report's
    ``verdict.result`` is not VALID (or it has no verdict), or a target in ``targets`` was
    measured and missed (``met`` false; ``met`` null, not measured, is no miss).

    >>> strict_failure({"verdict": {"result": "VALID"}, "targets": {"a": {"met": None}}})
    >>> strict_failure({"verdict": {"result": "INVALID", "reason": "pipeline: stable: fps 12 %"},
    ...     "targets": {"efficiency": {"target": ">= 0.95", "measured": 0.8834, "met": False}}})
    'verdict INVALID (pipeline: stable: fps 12 %); target missed: efficiency 0.883 (>= 0.95)'
    """
    causes = []
    verdict = result.get("verdict")
    if not isinstance(verdict, dict):
        causes.append("the report has no verdict")
    elif verdict.get("result") != checks.VALID:
        causes.append(f"verdict {verdict.get('result')} ({verdict.get('reason')})")
    targets = result.get("targets")
    missed = [
        f"{name} {_shown(target.get('measured'))} ({target.get('target')})"
        for name, target in (targets.items() if isinstance(targets, dict) else ())
        if isinstance(target, dict) and target.get("met") is False
    ]
    if missed:
        causes.append(f"target{'s' if len(missed) > 1 else ''} missed: {', '.join(missed)}")
    return " ".join("; ".join(causes).split()) or None


# -- parser ----------------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _publish(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--push-gateway",
        metavar="URL",
        help="push the run's summary to this Pushgateway (job edgeloop_bench, device, commit)",
    )
    parser.add_argument(
        "--prom-textfile",
        type=Path,
        metavar="PATH",
        help="write the run's summary in node_exporter's textfile format (*.prom)",
    )


def publish(args: argparse.Namespace, result: Mapping[str, Any]) -> None:
    """``--push-gateway`` and ``--prom-textfile``, after the run (its JSON is written first)."""
    url = getattr(args, "push_gateway", None)
    textfile = getattr(args, "prom_textfile", None)
    if not url and not textfile:
        return
    from bench import publish as out  # noqa: PLC0415 - prometheus_client only when asked

    if url:
        key = out.push(result, url)
        where = f"job {out.JOB}, device {key['device']}, commit {key['commit']}"
        print(f"summary pushed to {url} ({where})")
    if textfile:
        out.write_textfile(result, textfile)
        print(f"summary written to {textfile}")


def _strict(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--strict``: on the top-level parser defaulting to False; on a command's parser left
    unset unless given, so that ``bench --strict pipeline`` keeps the top-level's True."""
    parser.add_argument(
        "--strict",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="exit 1 when the verdict is not VALID or a measured target is missed (CI's gate)",
    )


def _pipeline_options(parser: argparse.ArgumentParser, *, rate: bool, source: str) -> None:
    parser.add_argument(
        "--model", metavar="PATH|NAME", help="ONNX file or reference model (classifier, detector)"
    )
    parser.add_argument(
        "--source",
        metavar="SRC",
        help=f"{source} (default), "
        + ", ".join(n for n in ("clip1080p", "clip720p", "synthetic") if n != source)
        + ", a video file (NAME.truth.json beside it: its ground truth), a folder, "
        "/dev/videoN, a URL",
    )
    parser.add_argument(
        "--streams", type=POSITIVE_INT, metavar="N", help="streams of the source (default 1)"
    )
    parser.add_argument(
        "--batch", type=POSITIVE_INT, metavar="N", help="inference batch size (default 1)"
    )
    parser.add_argument(
        "--infer-workers",
        type=POSITIVE_INT,
        metavar="N",
        help="inference processes side by side (default: the config's, 1)",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, help="inference backend (default: the config's, auto)"
    )
    parser.add_argument(
        "--duration",
        type=POSITIVE,
        metavar="S",
        help="measured seconds of the flat-out run (default 20)",
    )
    parser.add_argument(
        "--max-trials",
        type=NON_NEGATIVE_INT,
        metavar="N",
        help=(
            "measure a run on, 5 s at a time, while its last three 5 s windows disagree, up to "
            f"N windows in all (perf_analyzer's; default {checks.MAX_TRIALS}, 0: never)"
        ),
    )
    if rate:
        parser.add_argument(
            "--rate", type=POSITIVE, metavar="FPS", help="pace the sources at FPS frames/s in all"
        )
    parser.add_argument("--config", type=Path, metavar="FILE", help="pipeline config (YAML)")
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (smoke test)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m bench",
        description="Measure edgeloop on this machine, side by side with the alternatives.",
        epilog="With no command: the standard suite on the embedded defaults.",
    )
    _common(parser)
    _publish(parser)
    _strict(parser, top=True)
    _pipeline_options(parser, rate=False, source=standard.MAIN_SOURCE)
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"report folder (default {DEFAULT_OUT})",
    )
    parser.add_argument("--no-micro", action="store_true", help="skip the micro summary")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    micro = sub.add_parser("micro", help="micro-benchmarks: " + ", ".join(SUITES))
    _common(micro)
    _publish(micro)
    micro.add_argument("--quick", action="store_true", help="short budgets (smoke test)")
    micro.add_argument(
        "--min-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="minimum measuring time per contender (default 1.0)",
    )
    micro.add_argument(
        "--only", metavar="SUITES", help=f"comma-separated micro suites ({', '.join(SUITES)})"
    )
    micro.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend")
    micro.add_argument(
        "--threads", metavar="N[,N]", help="ONNX Runtime intra-op threads to measure (default 1,2)"
    )

    pipe = sub.add_parser("pipeline", help="one pipeline run and the naive loop")
    _common(pipe)
    _publish(pipe)
    _strict(pipe)
    _pipeline_options(pipe, rate=True, source="synthetic")
    pipe.add_argument("--out", type=Path, metavar="DIR", help="also write a report folder")
    pipe.add_argument("--no-naive", action="store_true", help="skip the naive loop")

    scen = sub.add_parser("scenario", help="an MLPerf LoadGen scenario on the inference path")
    _common(scen)
    _publish(scen)
    _strict(scen)
    scen.add_argument(
        "name", choices=list(scenario.SCENARIOS), metavar="NAME", help=", ".join(scenario.SCENARIOS)
    )
    scen.add_argument("--model", metavar="PATH|NAME", help="default: detector")
    scen.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend")
    scen.add_argument(
        "--threads", type=POSITIVE_INT, metavar="N", help="ONNX Runtime intra-op threads"
    )
    scen.add_argument(
        "--batch", type=POSITIVE_INT, metavar="N", help="largest batch the SUT runs (8)"
    )
    scen.add_argument("--duration", type=POSITIVE, metavar="S", help="LoadGen min_duration (5 s)")
    scen.add_argument(
        "--min-queries", type=POSITIVE_INT, metavar="N", help="LoadGen min_query_count"
    )
    scen.add_argument(
        "--samples", type=POSITIVE_INT, default=64, metavar="N", help="QSL samples (64)"
    )
    scen.add_argument("--target-qps", type=POSITIVE, metavar="QPS", help="server: target rate")
    scen.add_argument("--target-latency-ms", type=POSITIVE, metavar="MS", help="server: bound")
    scen.add_argument("--user-conf", type=Path, metavar="FILE", help="LoadGen user.conf")
    scen.add_argument("--log-dir", type=Path, metavar="DIR", help="keep LoadGen's logs here")

    app = sub.add_parser(
        "app",
        help="the whole device app against the bare pipeline, or a soak (--soak)",
        description="The device app (outbox, MQTT to a local mosquitto, metrics, health) "
        "against the bare pipeline on the same unpaced streams, rounds interleaved; or, with "
        "--soak, the app as its own process for minutes: RSS and file descriptors over time.",
    )
    _common(app)
    app.add_argument("--model", metavar="PATH|NAME", help="default: detector")
    app.add_argument("--streams", type=POSITIVE_INT, metavar="N", help="1 (soak: 3)")
    app.add_argument("--duration", type=POSITIVE, metavar="S", help="each run 15 s (soak: 600)")
    app.add_argument("--rounds", type=POSITIVE_INT, default=3, metavar="N", help="default 3")
    app.add_argument("--soak", action="store_true", help="one long paced run, sampled")
    app.add_argument(
        "--rate", type=POSITIVE, default=15.0, metavar="FPS", help="soak: per stream (15)"
    )
    app.add_argument(
        "--sample-s", type=POSITIVE, default=10.0, metavar="S", help="soak: sampling (10 s)"
    )

    swap = sub.add_parser(
        "swap",
        help="model updates on a running pipeline: swaps, and the rollback of a bad version",
        description="The device's model manager updates a pipeline on the main stream, paced "
        "like a camera: each step's time, the p99 before and during each swap, frames dropped; "
        "then a version that fails on the live streams, and how soon it is rolled back.",
    )
    _common(swap)
    swap.add_argument("--model", metavar="PATH|NAME", help="default: detector")
    swap.add_argument(
        "--source",
        metavar="SRC",
        default=standard.MAIN_SOURCE,
        help=f"default {standard.MAIN_SOURCE} (as --source of the suite)",
    )
    swap.add_argument("--rate", type=POSITIVE, default=30.0, metavar="FPS", help="per stream (30)")
    swap.add_argument("--swaps", type=POSITIVE_INT, default=3, metavar="N", help="default 3")

    comp = sub.add_parser(
        "compare",
        help="compare two report.json files (or two folders of runs)",
        description="Did NEW regress against BASE? Each is a report.json, or a folder of "
        "several runs of the same code (its *.json files and */report.json): several runs a "
        "side put the run-to-run spread in the intervals.",
    )
    _common(comp)
    comp.add_argument("base", type=Path, metavar="BASE", help="report.json, or a folder of runs")
    comp.add_argument("new", type=Path, metavar="NEW", help="report.json, or a folder of runs")
    comp.add_argument(
        "--max-regression",
        type=float,
        default=compare.DEFAULT_MAX_REGRESSION,
        metavar="PCT",
        help=f"tolerated fps drop in percent (default {compare.DEFAULT_MAX_REGRESSION:g})",
    )
    comp.add_argument(
        "--max-latency-regression",
        type=float,
        default=compare.DEFAULT_MAX_LATENCY_REGRESSION,
        metavar="PCT",
        help="tolerated latency rise in percent "
        f"(default {compare.DEFAULT_MAX_LATENCY_REGRESSION:g})",
    )
    comp.add_argument("--force", action="store_true", help="compare different machines/models")
    return parser


COMMANDS: dict[str | None, Callable[[argparse.Namespace], Mapping[str, Any]]] = {
    None: run_standard,
    "micro": run_micro,
    "pipeline": run_pipeline,
    "scenario": run_scenario,
    "app": run_app,
    "swap": run_swap,
    "compare": run_compare,
}


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (a runtime's may span several): what a CI log shows."""
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.strict and args.command not in STRICT_COMMANDS:
        parser.error(
            "--strict applies to the standard suite, pipeline and scenario (the reports with "
            f"a verdict), not to {args.command}"
        )
    try:
        result = COMMANDS[args.command](args)
        if args.json:
            report.write_json(result, args.json)
            print(f"JSON written to {args.json}")
        publish(args, result)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"bench: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (ConfigError, ModelError, SourceError, FileNotFoundError) as exc:  # unusable input
        print(f"bench: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line with the cause, non-zero exit
        print(f"bench: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1
    if args.command == "compare" and result["comparison"]["regressed"]:
        return 1
    if args.strict and (cause := strict_failure(result)):
        print(f"bench: strict: {cause}", file=sys.stderr)
        return 1
    return 0
