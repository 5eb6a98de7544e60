"""Network figures: bytes per interface (``/proc/net/dev`` through psutil, sampled).

==========================================  =========  =======================================
name                                        type       labels / meaning
==========================================  =========  =======================================
``edgeloop_network_received_bytes_total``   counter    ``interface`` (loopback left out)
``edgeloop_network_sent_bytes_total``       counter    ``interface``
==========================================  =========  =======================================

The broker's side (connection state, round trip, reconnects, publish failures, the bytes this
process sent to the broker) and the outbox spool's depth are recorded as events happen by the
MQTT publisher and the outbox, into the families of :mod:`core.metrics.messaging`.
"""

from __future__ import annotations

import psutil

from core.metrics.collect import Collector, Totals
from core.metrics.registry import MetricsRegistry

__all__ = ["NetworkCollector"]

MAX_INTERFACES = 32  # a container host with a veth per container: keep the first ones


class NetworkCollector(Collector):
    """Bytes received and sent per network interface (loopback excluded)."""

    name = "network"

    def __init__(self, registry: MetricsRegistry) -> None:
        self._totals = Totals()
        try:
            counters = psutil.net_io_counters(pernic=True)
        except OSError as exc:  # no /proc/net/dev (a sandbox)
            counters = {}
            self.why_absent = str(exc)
        self.interfaces = sorted(n for n in counters if n != "lo")[:MAX_INTERFACES]
        self.available = bool(self.interfaces)
        if not self.available:
            self.why_absent = self.why_absent or "no network interface besides loopback"
            return
        self.received = registry.counter(
            "edgeloop_network_received_bytes_total", "Bytes received", ("interface",)
        )
        self.sent = registry.counter(
            "edgeloop_network_sent_bytes_total", "Bytes sent", ("interface",)
        )

    def sample(self) -> None:
        counters = psutil.net_io_counters(pernic=True)
        for name in self.interfaces:
            c = counters.get(name)
            if c is None:  # the interface went away; its series stops being updated
                continue
            self._totals.advance(("rx", name), self.received.labels(interface=name), c.bytes_recv)
            self._totals.advance(("tx", name), self.sent.labels(interface=name), c.bytes_sent)
