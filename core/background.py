"""A loop on a daemon thread of its own, started and stopped from outside.

What the MQTT publisher (:mod:`core.mqtt.publisher`) and the cloud sync (:mod:`core.cloud.sync`)
share: each drains the outbox in a ``run`` loop that must return soon after :attr:`stopping` is
set (wait on it, never ``time.sleep``), so :meth:`BackgroundLoop.stop` is bounded.

>>> class Ticker(BackgroundLoop):
...     thread_name = "ticker"
...     ticks = 0
...     def run(self) -> None:
...         while not self.stopping.wait(0.001):
...             self.ticks += 1
>>> ticker = Ticker()
>>> ticker.start(); ticker.start()  # a second start is a no-op
>>> ticker.stop(); ticker.running
False
"""

from __future__ import annotations

import abc
import threading
from typing import ClassVar

from core.threadname import name_this_thread


class BackgroundLoop(abc.ABC):
    """:meth:`run` on a daemon thread named :attr:`thread_name`, from :meth:`start` to
    :meth:`stop`."""

    thread_name: ClassVar[str] = "edgeloop-loop"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def run(self) -> None:
        """The loop; returns soon after :attr:`stopping` is set."""

    def start(self) -> None:
        """Run :meth:`run` on a daemon thread until :meth:`stop` (once: started is started)."""
        if self._thread is not None:
            return
        self.stopping.clear()
        self._thread = threading.Thread(target=self._named_run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _named_run(self) -> None:
        name_this_thread(self.thread_name)
        self.run()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait up to ``timeout`` seconds for its thread."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
