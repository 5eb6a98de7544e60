"""Network figures: bytes per interface (``/proc/net/dev`` through psutil, sampled), and the
broker's side (:class:`BrokerMetrics`), which the MQTT client and the outbox record as events
happen -- there is nothing to poll for a round trip or a reconnect.

==========================================  =========  =======================================
name                                        type       labels / meaning
==========================================  =========  =======================================
``edgeloop_network_received_bytes_total``   counter    ``interface`` (loopback left out)
``edgeloop_network_sent_bytes_total``       counter    ``interface``
``edgeloop_broker_connected``               gauge      1 connected, 0 not (``broker``)
``edgeloop_broker_reconnects_total``        counter    ``broker``
``edgeloop_broker_rtt_seconds``             histogram  ``broker``: ping or publish -> PUBACK
``edgeloop_broker_sent_bytes_total``        counter    ``broker``: what this process sent
``edgeloop_broker_received_bytes_total``    counter    ``broker``: what this process received
``edgeloop_publish_failures_total``         counter    ``broker``, ``reason``
``edgeloop_spool_depth``                    gauge      messages waiting in the outbox
``edgeloop_spool_bytes``                    gauge      their size on disk
==========================================  =========  =======================================
"""

from __future__ import annotations

import psutil

from core.metrics.collect import Collector, Totals
from core.metrics.registry import MetricsRegistry

__all__ = ["BROKER_RTT_BUCKETS_S", "BrokerMetrics", "NetworkCollector"]

BROKER_RTT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Round trips to a broker: a LAN broker answers in a millisecond, AWS IoT Core in 20-200 ms."""

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


class BrokerMetrics:
    """The families the MQTT client and the outbox record into: created up front, so a
    dashboard shows "disconnected" (0) for a broker that never connected rather than nothing.

    >>> registry = MetricsRegistry()
    >>> broker = BrokerMetrics(registry, "iot-core")
    >>> broker.connected(True); broker.round_trip(0.042); broker.spool(12, 4096)
    >>> registry.snapshot()["edgeloop_broker_connected"]["samples"][0]["value"]
    1.0
    """

    def __init__(self, registry: MetricsRegistry, broker: str) -> None:
        r = registry
        self.broker = broker
        labels = ("broker",)
        self._connected = r.gauge(
            "edgeloop_broker_connected", "1 while connected to the broker", labels
        ).labels(broker=broker)
        self._connected.set(0)
        self._reconnects = r.counter(
            "edgeloop_broker_reconnects_total", "Reconnections", labels
        ).labels(broker=broker)
        self._rtt = r.histogram(
            "edgeloop_broker_rtt_seconds",
            "Broker round trip (ping, or publish to PUBACK)",
            labels,
            buckets=BROKER_RTT_BUCKETS_S,
        ).labels(broker=broker)
        self._sent = r.counter(
            "edgeloop_broker_sent_bytes_total", "Bytes this process sent", labels
        ).labels(broker=broker)
        self._received = r.counter(
            "edgeloop_broker_received_bytes_total", "Bytes this process received", labels
        ).labels(broker=broker)
        self._failures = r.counter(
            "edgeloop_publish_failures_total", "Publishes that failed", ("broker", "reason")
        )
        self._depth = r.gauge("edgeloop_spool_depth", "Messages waiting in the outbox")
        self._spool_bytes = r.gauge("edgeloop_spool_bytes", "Outbox size on disk")

    def connected(self, up: bool) -> None:
        self._connected.set(1 if up else 0)

    def reconnected(self) -> None:
        self._reconnects.inc()

    def round_trip(self, seconds: float) -> None:
        self._rtt.observe(seconds)

    def transferred(self, sent: int = 0, received: int = 0) -> None:
        if sent:
            self._sent.inc(sent)
        if received:
            self._received.inc(received)

    def publish_failed(self, reason: str) -> None:
        """``reason``: a small fixed set (``timeout``, ``disconnected``, ``too_large``...)."""
        self._failures.labels(broker=self.broker, reason=reason).inc()

    def spool(self, depth: int, size_bytes: int) -> None:
        self._depth.set(depth)
        self._spool_bytes.set(size_bytes)
