"""``python -m core`` (the console script ``edgeloop``): run the device app, or check its config.

``run --config FILE [--set key=value ...] [--duration S] [--json]``
    the whole edge loop (:mod:`core.app.app`) until SIGTERM / SIGINT (a second one exits at
    once) or ``--duration``; SIGHUP reads the config file again and applies its live keys
    (:mod:`core.app.live`); logs on stderr; ``--json``: a summary on stdout at the end.
``check --config FILE [--set ...] [--json]``
    the resolved config (YAML, or JSON), nothing started.
``models status --config FILE [--set ...] [--json]``
    the model versions in the state dir (:mod:`core.app.models`): the serving one, the one
    before, the probation, the history and the last decision with its reason.

Exit status: 0 a clean stop (or a valid config), 1 a runtime failure (a crash, a stall with
``health.exit_on_stall``), 2 a config error (also a model or a source that cannot be opened),
each failure in one line on stderr naming the key, the path or the cause.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from core.errors import ConfigError, ModelError, SourceError

__all__ = ["main"]

PROG = "edgeloop"
CONFIG_ERRORS = (ConfigError, ModelError, SourceError)
"""What exits 2: the config, or a model or source it names, is at fault."""
log = logging.getLogger("edgeloop.app")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="the edgeloop device application")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run the edge loop until SIGTERM or --duration"),
        ("check", "print the resolved config and exit"),
        ("models", "show the model versions this device holds and serves"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        if name == "models":
            sub.add_argument("action", choices=["status"], help="status: what serves and why")
        sub.add_argument("--config", type=Path, required=True, help="the device YAML file")
        sub.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one key (key.path=value, YAML value); repeatable",
        )
        sub.add_argument("--json", action="store_true", help="JSON on stdout")
        if name == "run":
            sub.add_argument(
                "--duration", type=float, help="stop as on SIGTERM after this many seconds"
            )
    return parser


def _fail(exc: BaseException) -> int:
    print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, CONFIG_ERRORS) else 1


def _check(args: argparse.Namespace) -> int:
    from core.app.config import load_device_config, resolved  # noqa: PLC0415
    from core.app.state_dir import check_state_dir  # noqa: PLC0415

    config = load_device_config(args.config, args.overrides)
    check_state_dir(config.state_dir)
    data = resolved(config)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def _models(args: argparse.Namespace) -> int:
    from core.app.config import load_device_config  # noqa: PLC0415
    from core.app.models import MODELS_DIR, models_status  # noqa: PLC0415

    config = load_device_config(args.config, args.overrides)
    status = models_status(config.state_dir / MODELS_DIR)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    current = status["current"] or "the configured model (pipeline.model.model)"
    print(f"model:    {status['name'] or '-'}")
    print(f"serving:  {current}")
    print(f"previous: {status['previous'] or '-'}")
    watch = status["watch"]
    if watch:
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(watch["until"])))
        print(f"watch:    {watch['version']} on probation until {until}")
    else:
        print("watch:    none")
    print(f"history:  {', '.join(status['history']) or '-'}")
    print(f"on disk:  {', '.join(status['on_disk']) or '-'}")
    last = status["last_decision"]
    if last is not None:
        print(
            f"last:     {last['time']} {last['action']} {last['version'] or '-'}: "
            f"{last['result']} ({last['reason']})"
        )
    return 0


def _run(args: argparse.Namespace) -> int:
    from core.app.app import DeviceApp  # noqa: PLC0415
    from core.app.config import load_device_config  # noqa: PLC0415
    from core.app.logs import setup_logging  # noqa: PLC0415
    from core.app.state_dir import check_state_dir  # noqa: PLC0415

    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration: must be > 0, got {args.duration}")
    config = load_device_config(args.config, args.overrides)
    check_state_dir(config.state_dir)  # before anything starts, as check does
    setup_logging(config.logging)
    app = DeviceApp(
        config,
        reload=lambda: load_device_config(args.config, args.overrides),
        overrides=args.overrides,
        watchdog=True,
    )
    _handle_signals(app)
    report = app.run(args.duration)  # a crash is logged with its stack there
    outbox = app.outbox
    summary: dict[str, Any] = {
        "frames": report.frames,
        "errors": dict(report.errors),
        "spool_left": outbox.stats()["records"] if outbox is not None else None,
        "failure": app.failure,
    }
    if args.json:
        print(json.dumps(summary))
    if app.failure is not None:
        print(f"{PROG}: error: {app.failure}", file=sys.stderr)
        return 1
    log.info("stopped cleanly: %s", json.dumps(summary))
    return 0


def _handle_signals(app: Any) -> None:
    """SIGTERM and SIGINT stop cleanly, a second one exits at once (status 1); SIGHUP asks
    for the config file to be read again."""

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        if app.stop_requested.is_set():
            os.write(2, f"{PROG}: second {signal.Signals(signum).name}: exiting now\n".encode())
            os._exit(1)
        app.request_stop(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
    signal.signal(signal.SIGHUP, lambda signum, frame: app.supervisor.ask(app.reread))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        command = {"check": _check, "models": _models, "run": _run}[args.command]
        return command(args)
    except Exception as exc:
        return _fail(exc)
