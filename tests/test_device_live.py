"""The device app's parts that need no process: which config keys may change live, the
filter's rules swapped while it runs, the health assessment, and the crash files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core.app.config import load_device_config
from core.app.crash import CrashLog
from core.app.health import assess, health_record, probe_page
from core.app.live import LIVE_KEYS, changed_keys, not_live, with_overrides
from core.app.supervisor import STALE_S, Supervisor
from core.detections import Detections
from core.errors import ConfigError
from core.filter import FilterConfig, ResultFilter
from core.metrics.registry import MetricsRegistry
from core.pipeline.status import RunStatus, StreamStatus

RUNNING = load_device_config(overrides=["mqtt={transport: tcp}", "state_dir=/tmp/el-live"])


def test_live_keys_are_told_apart_from_the_rest() -> None:
    changed = with_overrides(
        RUNNING, ["pipeline.filter.score_threshold=0.7", "pipeline.rate=5", "logging.level=DEBUG"]
    )
    keys = changed_keys(RUNNING, changed)
    assert keys == ("logging.level", "pipeline.filter.score_threshold", "pipeline.rate")
    assert not not_live(keys) and set(keys) <= set(LIVE_KEYS)
    sources = with_overrides(RUNNING, ["pipeline.sources=[{kind: synthetic}, {kind: synthetic}]"])
    assert not_live(changed_keys(RUNNING, sources)) == ("pipeline.sources",)
    assert changed_keys(RUNNING, with_overrides(RUNNING, ["pipeline.rate=null"])) == ()
    with pytest.raises(ConfigError, match=r"pipeline\.filter\.score_threshold"):
        with_overrides(RUNNING, ["pipeline.filter.score_threshold=2"])


def _boxes(scores: list[float], classes: list[int]) -> Detections:
    n = len(scores)
    boxes = np.tile(np.array([[10, 10, 50, 50]], np.float32), (n, 1))
    boxes[:, 0] += np.arange(n, dtype=np.float32) * 100
    boxes[:, 2] += np.arange(n, dtype=np.float32) * 100
    return Detections(boxes, np.array(scores, np.float32), np.array(classes, np.int64), ("a", "b"))


def test_the_filter_takes_new_rules_while_running_or_refuses_them_whole() -> None:
    result_filter = ResultFilter(FilterConfig(score_threshold=0.5, cooldown_s=0), ("a", "b"))
    found = _boxes([0.6, 0.9], [0, 1])
    assert len(result_filter.decide(0, 1, found, True).detections) == 2
    result_filter.reconfigure(FilterConfig(score_threshold=0.8, cooldown_s=0, classes=("b",)))
    decision = result_filter.decide(0, 2, found, True)
    assert decision.detections.classes.tolist() == [1] and result_filter.level == "crops"
    with pytest.raises(ConfigError, match="'c' not among the model's classes"):
        result_filter.reconfigure(FilterConfig(classes=("c",), transmission="frame"))
    assert result_filter.config.classes == ("b",) and result_filter.level == "crops"


def _stream(state: str = "running", age: float = 0.05) -> StreamStatus:
    return StreamStatus(0, "cam", state, 100, 99, age, None if state == "running" else "eof")


@pytest.mark.parametrize(
    ("phase", "status", "outbox_error", "expected"),
    [
        ("starting", None, None, ("starting", True, False)),
        ("running", RunStatus((_stream(),), {"infer": 0.01}), None, ("running", True, True)),
        ("running", RunStatus((_stream("failed"),), {}), None, ("degraded", True, False)),
        ("running", RunStatus((_stream(),), {}), "disk full", ("degraded", True, False)),
        ("running", RunStatus((_stream(age=9.0),), {}), None, ("stalled", False, False)),
        ("running", RunStatus((_stream(),), {"output": 9.0}), None, ("stalled", False, False)),
        ("stopping", RunStatus((_stream("stopped"),), {}), None, ("stopping", True, False)),
        ("stopped", None, None, ("stopped", True, False)),
    ],
)
def test_health_is_assessed_from_streams_workers_and_the_outbox(
    phase: str, status: RunStatus | None, outbox_error: str | None, expected: tuple[object, ...]
) -> None:
    health = assess(phase, status, 5.0, outbox_error=outbox_error)
    assert (health.state, health.live, health.ready) == expected
    assert bool(health.problems) == (expected[0] in ("degraded", "stalled"))
    code, page = probe_page(health, ready=True)
    assert code == (200 if expected[2] else 503) and json.loads(page)["state"] == expected[0]


def test_a_dead_loop_makes_the_app_not_live() -> None:
    health = assess("running", RunStatus((_stream(),), {}), 5.0, dead_loops=["edgeloop-mqtt"])
    assert health.state == "stalled" and health.problems == ("edgeloop-mqtt: its thread died",)
    record = json.loads(
        health_record(
            health,
            thing="cam",
            version="1",
            model={"path": "m"},
            uptime_s=2.0,
            spool={"records": 3},
            last_error=None,
            event={"type": "config"},
        )
    )
    assert record["schema"] == "edgeloop.health/1" and record["streams"][0]["name"] == "cam"
    assert record["event"] == {"type": "config"} and record["live"] is False


def test_a_crash_is_counted_kept_and_reported_once(tmp_path: Path) -> None:
    registry = MetricsRegistry()
    crashes = CrashLog(tmp_path, registry)
    try:
        raise ValueError("bad frame")
    except ValueError as exc:
        crashes.record("thread output", exc)
    family = registry.counter("edgeloop_crashes_total", "", ("where",))
    assert family.labels(where="thread output").value == 1
    pending = CrashLog(tmp_path).pending()
    assert pending is not None and pending["error"] == "ValueError"
    assert any("raise ValueError" in line for line in pending["stack"])
    CrashLog(tmp_path).sent()
    assert CrashLog(tmp_path).pending() is None


def test_a_fatal_signals_stacks_become_the_pending_crash(tmp_path: Path) -> None:
    """A real segfault in a child with faulthandler on, as the app enables it."""
    crash = (
        "import faulthandler; f = open({!r}, 'a'); faulthandler.enable(f, all_threads=True); "
        "faulthandler._sigsegv()"
    ).format(str(tmp_path / "faulthandler.log"))
    assert subprocess.run([sys.executable, "-c", crash], check=False).returncode < 0
    pending = CrashLog(tmp_path).pending()
    assert pending is not None and pending["where"] == "fatal signal"
    assert pending["message"] == "Fatal Python error: Segmentation fault"
    assert not (tmp_path / "faulthandler.log").exists()
    assert (tmp_path / "faulthandler.log.1").exists()


def test_the_probe_pages_turn_stalled_when_the_control_loop_stops_assessing() -> None:
    class _App:
        config = RUNNING
        phase = "running"
        failure = None

        def run_status(self) -> RunStatus:
            return RunStatus((_stream(),), {})

        def dead_loops(self) -> list[str]:
            return []

        def outbox_error(self) -> None:
            return None

        def record_facts(self) -> dict[str, object]:
            return {
                "thing": "t",
                "version": "v",
                "model": {},
                "uptime_s": 0.0,
                "spool": {},
                "last_error": None,
            }

        def fail(self, reason: str) -> None:
            raise AssertionError(reason)

    supervisor = Supervisor(_App(), [])
    supervisor.tick()
    assert supervisor.current().state == "running"
    supervisor._thread = threading.Thread(target=lambda: None)  # started; its loop died
    supervisor.assessed -= STALE_S + 1
    stale = supervisor.current()
    assert stale.state == "stalled" and not stale.live
    assert "edgeloop-health: no assessment for" in stale.problems[0]
