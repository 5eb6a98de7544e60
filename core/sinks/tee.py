"""One sink feeding several: the device app's outbox with a file sink beside it.

Every record goes to every sink, in order. A sink that fails (:class:`~core.errors.SinkError`)
does not keep the record from the others; the first failure is raised after all were tried, so
the pipeline counts it as for any sink.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.errors import SinkError
from core.sinks.base import ResultRecord, Sink

__all__ = ["TeeSink"]


class TeeSink(Sink):
    """``sinks`` fed alike (see the module docstring)."""

    name = "tee"

    def __init__(self, sinks: Sequence[Sink]) -> None:
        if not sinks:
            raise ValueError("a tee needs at least one sink")
        self.sinks = tuple(sinks)
        self.name = "+".join(sink.name for sink in self.sinks)

    def _each(self, call: Callable[[Sink], None]) -> None:
        first: SinkError | None = None
        for sink in self.sinks:
            try:
                call(sink)
            except SinkError as exc:
                first = first or exc
        if first is not None:
            raise first

    def open(self) -> None:
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open()
                opened.append(sink)
        except BaseException:
            for sink in opened:
                sink.close()
            raise

    def emit(self, record: ResultRecord) -> None:
        self._each(lambda sink: sink.emit(record))

    def flush(self) -> None:
        self._each(lambda sink: sink.flush())

    def close(self) -> None:
        self._each(lambda sink: sink.close())
