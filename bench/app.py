"""``python -m bench app``: the whole device app measured against the bare pipeline, and a soak.

**Overhead** (the default): on the same streams and model, unpaced (capacity), rounds of the
bare pipeline (null sink, nothing else in the process) and of the whole app (outbox, MQTT to
a local mosquitto, the metrics exporter and health, the control loop), interleaved A B, B A, ...
so the machine's drift falls on both. Reported: each round's fps, the medians, and their ratio
``app_vs_bare`` (target >= 0.95).

**Soak** (``--soak``): the app as its own process (``python -m core run``), paced like cameras
(``--rate`` per stream, several streams), for ``--duration`` (600 s by default), sampled every
``--sample-s``: the app's RSS and that of its children, its open file descriptors and threads.
Reported: the series, and RSS at the end over RSS at minute 2 (target within 5 %): growth past
the warm-up is a leak.

Both need ``mosquitto`` (Debian's package; ``make test`` installs it): the app publishes to a
broker on a free port, as a device does. Without it the command stops with status 2.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError

__all__ = ["AppBenchOptions", "run_app_bench"]

SCHEMA = "edgeloop.bench.app/1"
OVERHEAD_TARGET = 0.95
RSS_TARGET = 0.05
RSS_BASE_S = 120.0
"""The soak compares RSS at the end with RSS at this time (minute 2: after the warm-up)."""


@dataclass(frozen=True)
class AppBenchOptions:
    """What ``python -m bench app`` runs (see the module docstring)."""

    duration_s: float = 15.0
    """Each round's run (overhead), or the whole soak."""
    rounds: int = 3
    streams: int = 1
    model: str = "detector"
    rate: float = 15.0
    """Frames/s per stream (the soak only: the overhead runs unpaced)."""
    soak: bool = False
    sample_s: float = 10.0


# -- a broker ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_broker(folder: Path) -> Iterator[int]:
    """A mosquitto on a free port of 127.0.0.1 (anonymous, no persistence) for the run."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if binary is None:
        raise ConfigError(
            "bench app: mosquitto is not installed (apt-get install mosquitto; make test "
            "installs it): the app publishes to a local broker"
        )
    port = _free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"mosquitto did not listen on {port}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


# -- the device config -------------------------------------------------------------------------


def device_data(options: AppBenchOptions, state: Path, port: int, *, paced: bool) -> dict[str, Any]:
    """The app's config as data: synthetic streams, the model, the outbox in ``state``, MQTT
    to the local broker, metrics on a free port, logs at WARNING."""
    return {
        "thing": "bench",
        "state_dir": str(state),
        "pipeline": {
            "sources": [{"kind": "synthetic", "seed": i} for i in range(options.streams)],
            "rate": options.rate if paced else None,
            "model": {"model": options.model},
            "sink": {"kind": "null"},
        },
        "mqtt": {"host": "127.0.0.1", "port": port, "transport": "tcp"},
        "metrics": {"port": 0},
        "logging": {"level": "WARNING"},
    }


# -- overhead ----------------------------------------------------------------------------------


def _bare_fps(data: dict[str, Any], duration_s: float) -> float:
    from core.app.config import device_config_from  # noqa: PLC0415
    from core.pipeline import Pipeline  # noqa: PLC0415

    config = device_config_from(data)
    with Pipeline(config.pipeline) as pipeline:
        _ = pipeline.backend
        return float(pipeline.run(duration_s=duration_s).fps)


def _app_fps(data: dict[str, Any], duration_s: float) -> tuple[float, int]:
    from core.app.app import DeviceApp  # noqa: PLC0415
    from core.app.config import device_config_from  # noqa: PLC0415

    app = DeviceApp(device_config_from(data))
    report = app.run(duration_s)
    left = app.outbox.depth() if app.outbox is not None else 0
    return float(report.fps), left


def run_overhead(
    options: AppBenchOptions, progress: Callable[[float, str], None]
) -> dict[str, Any]:
    bare: list[float] = []
    app: list[float] = []
    spool_left: list[int] = []
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-app-") as tmp:
        folder = Path(tmp)
        with local_broker(folder) as port:
            for i in range(options.rounds):
                order = ("bare", "app") if i % 2 == 0 else ("app", "bare")
                for j, kind in enumerate(order):
                    progress((2 * i + j) / (2 * options.rounds), f"round {i + 1}: {kind}")
                    data = device_data(options, folder / f"state-{i}", port, paced=False)
                    if kind == "bare":
                        bare.append(_bare_fps(data, options.duration_s))
                    else:
                        fps, left = _app_fps(data, options.duration_s)
                        app.append(fps)
                        spool_left.append(left)
    ratio = statistics.median(app) / statistics.median(bare)
    return {
        "rounds": options.rounds,
        "duration_s": options.duration_s,
        "streams": options.streams,
        "bare_fps": [round(v, 2) for v in bare],
        "app_fps": [round(v, 2) for v in app],
        "bare_fps_median": round(statistics.median(bare), 2),
        "app_fps_median": round(statistics.median(app), 2),
        "round_ratios": [round(a / b, 4) for a, b in zip(app, bare, strict=True)],
        "spool_left": spool_left,
        "target": {
            "app_vs_bare": f">= {OVERHEAD_TARGET}",
            "measured": round(ratio, 4),
            "met": ratio >= OVERHEAD_TARGET,
        },
    }


# -- soak --------------------------------------------------------------------------------------


def _sample(pid: int, start: float) -> dict[str, Any] | None:
    import psutil  # noqa: PLC0415

    try:
        proc = psutil.Process(pid)
        children = proc.children(recursive=True)
        rss = proc.memory_info().rss
        child_rss = 0
        for child in children:
            try:
                child_rss += child.memory_info().rss
            except psutil.Error:
                continue
        return {
            "t_s": round(time.monotonic() - start, 1),
            "rss_bytes": rss,
            "children_rss_bytes": child_rss,
            "fds": proc.num_fds(),
            "threads": proc.num_threads(),
            "children": len(children),
        }
    except psutil.Error:
        return None


def run_soak(options: AppBenchOptions, progress: Callable[[float, str], None]) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-soak-") as tmp:
        folder = Path(tmp)
        with local_broker(folder) as port:
            config = folder / "device.yaml"
            config.write_text(
                yaml.safe_dump(device_data(options, folder / "state", port, paced=True))
            )
            command = [sys.executable, "-m", "core", "run", "--config", str(config), "--json"]
            command += ["--duration", str(options.duration_s)]
            log = (folder / "app.log").open("w")
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
            start = time.monotonic()
            while proc.poll() is None:
                sample = _sample(proc.pid, start)
                if sample is not None:
                    samples.append(sample)
                    progress(
                        min(1.0, sample["t_s"] / options.duration_s),
                        f"{sample['t_s']:.0f} s: RSS {sample['rss_bytes'] / 2**20:.1f} MiB, "
                        f"{sample['fds']} fds",
                    )
                time.sleep(options.sample_s)
            out, _ = proc.communicate()
            log.close()
            if proc.returncode != 0:
                tail = (folder / "app.log").read_text()[-2000:]
                raise RuntimeError(f"the app exited {proc.returncode}: {tail}")
    summary = json.loads(out.strip().splitlines()[-1])
    base = next((s for s in samples if s["t_s"] >= RSS_BASE_S), None)
    end = samples[-1] if samples else None
    growth = (end["rss_bytes"] / base["rss_bytes"] - 1) if base and end else None
    return {
        "duration_s": options.duration_s,
        "streams": options.streams,
        "rate": options.rate,
        "frames": summary["frames"],
        "spool_left": summary["spool_left"],
        "samples": samples,
        "rss_at_2min_bytes": base["rss_bytes"] if base else None,
        "rss_at_end_bytes": end["rss_bytes"] if end else None,
        "fds_at_2min": base["fds"] if base else None,
        "fds_at_end": end["fds"] if end else None,
        "target": {
            "rss_growth_after_2min": f"<= {RSS_TARGET}",
            "measured": None if growth is None else round(growth, 4),
            "met": None if growth is None else abs(growth) <= RSS_TARGET,
        },
    }


def run_app_bench(
    options: AppBenchOptions, progress: Callable[[float, str], None] | None = None
) -> dict[str, Any]:
    """The report (``schema`` ``edgeloop.bench.app/1``) of the overhead runs or the soak."""
    say = progress or (lambda fraction, message: None)
    part = "soak" if options.soak else "overhead"
    result = run_soak(options, say) if options.soak else run_overhead(options, say)
    return {"schema": SCHEMA, "host": os.uname().nodename, part: result}


def render(result: dict[str, Any]) -> str:
    """A few lines for a person."""
    if "overhead" in result:
        o = result["overhead"]
        t = o["target"]
        return (
            f"app vs bare pipeline ({o['streams']} stream(s), {o['rounds']} rounds of "
            f"{o['duration_s']:g} s, unpaced): app {o['app_fps_median']} fps, bare "
            f"{o['bare_fps_median']} fps, ratio {t['measured']} (target {t['app_vs_bare']}: "
            f"{'met' if t['met'] else 'missed'}); rounds {o['round_ratios']}"
        )
    s = result["soak"]
    t = s["target"]
    mib = 2**20
    at2 = s["rss_at_2min_bytes"]
    end = s["rss_at_end_bytes"]
    return (
        f"soak {s['duration_s']:g} s, {s['streams']} stream(s) at {s['rate']:g} fps: "
        f"{s['frames']} frames, spool left {s['spool_left']}; RSS at 2 min "
        f"{at2 / mib if at2 else float('nan'):.1f} MiB, at the end "
        f"{end / mib if end else float('nan'):.1f} MiB (growth {t['measured']}, target "
        f"{t['rss_growth_after_2min']}: {'met' if t['met'] else 'missed'}); fds "
        f"{s['fds_at_2min']} -> {s['fds_at_end']}"
    )
