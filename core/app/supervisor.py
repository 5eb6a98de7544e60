"""The device app's control loop, on a thread of its own (``edgeloop-health``): it assesses
health a few times a second (:mod:`core.app.health`), sends a record at every change of state
and every ``health.interval_s``, runs what other threads ask of it (a config change from
SIGHUP, a command or Greengrass; a command's answer) one at a time, and stops the app when
it stalls with ``health.exit_on_stall``.

Why one thread: a signal handler and the MQTT network thread must not do work (a handler
may interrupt anything; a slow callback stalls the connection), and changes must not race.
They hand a request here (:meth:`Supervisor.ask`) and return.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from core.app.config import DeviceConfig
from core.app.health import Health, assess, health_record
from core.background import BackgroundLoop
from core.pipeline.status import RunStatus

__all__ = ["HealthOut", "Request", "SupervisedApp", "Supervisor"]

log = logging.getLogger("edgeloop.app")

TICK_S = 0.25
STALE_S = 5.0
"""An assessment older than this means the control loop itself stopped ticking."""
Request = Callable[[], "Mapping[str, Any] | None"]
"""Work for the control thread; what it returns (if anything) goes out as a health event."""
HealthOut = Callable[[bytes, "Callable[[], None] | None"], None]
"""Where health records go: (record, called once it was delivered)."""


class SupervisedApp(Protocol):
    """What the control loop reads of the app (:class:`core.app.app.DeviceApp`)."""

    config: DeviceConfig
    phase: str
    failure: str | None

    def run_status(self) -> RunStatus | None: ...
    def dead_loops(self) -> list[str]: ...
    def outbox_error(self) -> str | None: ...
    def record_facts(self) -> dict[str, Any]: ...
    def fail(self, reason: str) -> None: ...


class Supervisor(BackgroundLoop):
    """See the module docstring; ``outs`` receive every record, ``on_state`` each new state."""

    thread_name = "edgeloop-health"

    def __init__(
        self,
        app: SupervisedApp,
        outs: list[HealthOut],
        on_state: list[Callable[[str], None]] | None = None,
    ) -> None:
        super().__init__()
        self.app = app
        self.outs = outs
        self.on_state = on_state if on_state is not None else []
        """Called with the new state at each change (Greengrass's ``UpdateState``)."""
        self.health = Health("starting", True, False)
        self.assessed = time.monotonic()
        """When :attr:`health` was last assessed."""
        self.records = 0
        self._requests: queue.SimpleQueue[tuple[Request, Callable[[], None] | None]] = (
            queue.SimpleQueue()
        )
        self._next_record = 0.0
        self._sent_state: str | None = None

    def ask(self, request: Request, on_sent: Callable[[], None] | None = None) -> None:
        """Run ``request`` on the control thread soon (safe from a signal handler or any
        thread); its event, if any, goes out with ``on_sent`` called once delivered."""
        self._requests.put((request, on_sent))

    def assess(self) -> Health:
        app = self.app
        status = app.run_status()
        phase = app.phase
        if phase == "starting" and status is not None:
            phase = app.phase = "running"
        return assess(
            phase,
            status,
            app.config.health.stall_s,
            dead_loops=app.dead_loops() if phase == "running" else (),
            outbox_error=app.outbox_error(),
        )

    def run(self) -> None:
        while True:
            self.tick()
            if self.stopping.wait(TICK_S):
                return

    def tick(self) -> None:
        """Run the requests waiting, assess, send what is due, act on a stall."""
        while True:
            try:
                request, on_sent = self._requests.get_nowait()
            except queue.Empty:
                break
            try:
                event = request()
            except Exception as exc:  # a request is one change, not the app: answer, go on
                log.exception("a control request failed")
                event = {"type": "error", "result": "failed", "reason": f"{exc}"}
            if event is not None:
                self.health = self.assess()
                self.send(event, on_sent)
        health = self.health = self.assess()
        self.assessed = time.monotonic()
        changed = health.state != self._sent_state
        if changed:
            quiet = ("starting", "running", "stopping")
            log_at = logging.INFO if health.state in quiet else logging.WARNING
            log.log(log_at, "health: %s%s", health.state, _why(health))
        if changed or time.monotonic() >= self._next_record:
            self.send()
        config = self.app.config.health
        if health.state == "stalled" and config.exit_on_stall and self.app.failure is None:
            self.app.fail(f"stalled: {'; '.join(health.problems)}")

    def send(
        self,
        event: Mapping[str, Any] | None = None,
        on_sent: Callable[[], None] | None = None,
        health: Health | None = None,
    ) -> None:
        """One record of ``health`` (the last assessment), to every out."""
        health = health if health is not None else self.health
        record = health_record(health, **self.app.record_facts(), event=event)
        if health.state != self._sent_state:
            for hook in self.on_state:
                try:
                    hook(health.state)
                except Exception as exc:
                    log.error("a state hook failed: %s", exc)
        self._sent_state = health.state
        self._next_record = time.monotonic() + self.app.config.health.interval_s
        self.records += 1
        for out in self.outs:
            try:
                out(record, on_sent)
            except Exception as exc:
                log.error("a health record could not go out: %s", exc)

    def current(self) -> Health:
        """The last assessment, or ``stalled`` when the loop stopped making them (what the
        probe pages serve: a page must not say "ok" for a loop that died)."""
        age = time.monotonic() - self.assessed
        if age > STALE_S and self._thread is not None:  # started, not stopped
            return Health(
                "stalled", False, False, (f"{self.thread_name}: no assessment for {age:.1f} s",)
            )
        return self.health

    def final(self, phase: str) -> None:
        """The last record (``stopped`` or ``failed``), after the loop stopped."""
        self.stop()
        self.health = assess(phase, None, self.app.config.health.stall_s)
        log.log(logging.INFO if phase == "stopped" else logging.ERROR, "health: %s", phase)
        self.send()


def _why(health: Health) -> str:
    return f" ({'; '.join(health.problems)})" if health.problems else ""
