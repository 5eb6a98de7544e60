"""The messaging side's metric families, defined once: the broker connection
(:class:`BrokerMetrics`, recorded by :class:`core.mqtt.publisher.MqttPublisher`) and the outbox
spool (:class:`SpoolMetrics`, recorded by :class:`core.outbox.Outbox`).

Why here and not in the recorders: the dashboards and alert rules of ``deploy/monitoring``
name these families, so their names, types and labels are one contract kept in one module;
the publisher and the outbox only call methods. Every family and every child of a fixed label
set (the failure and drop reasons) is created up front, so a dashboard shows 0 -- connected
0, failures 0 -- for something that never happened rather than no series at all, and
``rate()`` sees the first failure.

==============================================  =========  ==================================
name                                            type       labels / meaning
==============================================  =========  ==================================
``edgeloop_broker_connected``                   gauge      ``broker``: 1 connected, 0 not
``edgeloop_broker_reconnects_total``            counter    ``broker``: connections after the
                                                           first
``edgeloop_broker_connect_failures_total``      counter    ``broker``, ``reason`` (refused,
                                                           tls, timeout, connack)
``edgeloop_broker_rtt_seconds``                 histogram  ``broker``: publish -> PUBACK
``edgeloop_broker_sent_bytes_total``            counter    ``broker``: topic + payload bytes
                                                           of the PUBLISHes this process sent
``edgeloop_broker_received_bytes_total``        counter    ``broker``: topic + payload bytes
                                                           of the messages it received
``edgeloop_broker_publish_failures_total``      counter    ``broker``, ``reason``
                                                           (not-connected, too-large, lost,
                                                           refused)
``edgeloop_broker_batches_total``               counter    ``broker``, ``qos``: batches acked
``edgeloop_broker_records_total``               counter    ``broker``: records acked
``edgeloop_spool_depth``                        gauge      records waiting in the outbox
``edgeloop_spool_bytes``                        gauge      their payload bytes
``edgeloop_spool_stored_total``                 counter    records stored
``edgeloop_spool_acked_total``                  counter    records a destination confirmed
``edgeloop_spool_dropped_total``                counter    ``reason`` (evicted, rejected,
                                                           expired)
``edgeloop_spool_corrupt_total``                counter    corrupt databases moved aside
==============================================  =========  ==================================

The byte counters count MQTT application bytes (topic and payload of each PUBLISH, at the
moment paho accepted it); fixed headers, PUBACKs, pings and TLS records are not counted -- a
few bytes per message, which the per-interface counters of :mod:`core.metrics.network` see.

>>> from core.metrics.registry import MetricsRegistry
>>> registry = MetricsRegistry()
>>> broker = BrokerMetrics(registry, "iot-core")
>>> broker.connected(True); broker.round_trip(0.042)
>>> spool = SpoolMetrics(registry); spool.depth(12, 4096)
>>> snap = registry.snapshot()
>>> snap["edgeloop_broker_connected"]["samples"][0]["value"]
1.0
>>> snap["edgeloop_spool_depth"]["samples"][0]["value"]
12.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from core.metrics.registry import Counter, MetricFamily, MetricsRegistry

__all__ = [
    "BROKER_RTT_BUCKETS_S",
    "CONNECT_FAILURE_REASONS",
    "DROP_REASONS",
    "PUBLISH_FAILURE_REASONS",
    "BrokerMetrics",
    "SpoolMetrics",
]

BROKER_RTT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Round trips to a broker: a LAN broker answers in a millisecond, AWS IoT Core in 20-200 ms."""

CONNECT_FAILURE_REASONS: Final = ("refused", "tls", "timeout", "connack")
"""Why a connection attempt failed: TCP refused/unreachable, TLS handshake (certificate,
hostname), no CONNACK in time, CONNACK with a failure code."""

PUBLISH_FAILURE_REASONS: Final = ("not-connected", "too-large", "lost", "refused")
"""Why a publish failed: no connection, a record over 128 KB (dropped), in flight when the
connection died (sent again), refused in the PUBACK (sent again)."""

DROP_REASONS: Final = ("evicted", "rejected", "expired")
"""Why the spool dropped a record: made room for a higher priority, refused by the full
policy, older than ``max_age_s``."""


def _per_reason(
    family: MetricFamily[Counter], broker: str, reasons: Sequence[str]
) -> dict[str, Counter]:
    """One child of a ``(broker, reason)`` family per known reason, made up front so that
    every reason is exported from the start (at 0), not only once it has happened."""
    return {reason: family.labels(broker=broker, reason=reason) for reason in reasons}


class BrokerMetrics:
    """The broker connection's families for one broker (``broker``: ``host:port``)."""

    def __init__(self, registry: MetricsRegistry, broker: str) -> None:
        r = registry
        self.broker = broker
        labels = ("broker",)
        self._connected = r.gauge(
            "edgeloop_broker_connected", "1 while connected to the broker", labels
        ).labels(broker=broker)
        self._connected.set(0)
        self._reconnects = r.counter(
            "edgeloop_broker_reconnects_total", "Connections made after the first", labels
        ).labels(broker=broker)
        self._connect_failures = _per_reason(
            r.counter(
                "edgeloop_broker_connect_failures_total",
                "Connection attempts that failed, by reason",
                ("broker", "reason"),
            ),
            broker,
            CONNECT_FAILURE_REASONS,
        )
        self._rtt = r.histogram(
            "edgeloop_broker_rtt_seconds",
            "Broker round trip: publish to PUBACK",
            labels,
            buckets=BROKER_RTT_BUCKETS_S,
        ).labels(broker=broker)
        self._sent = r.counter(
            "edgeloop_broker_sent_bytes_total", "Topic and payload bytes published", labels
        ).labels(broker=broker)
        self._received = r.counter(
            "edgeloop_broker_received_bytes_total", "Topic and payload bytes received", labels
        ).labels(broker=broker)
        self._failures = _per_reason(
            r.counter(
                "edgeloop_broker_publish_failures_total",
                "Publishes that failed, by reason",
                ("broker", "reason"),
            ),
            broker,
            PUBLISH_FAILURE_REASONS,
        )
        self._batches = r.counter(
            "edgeloop_broker_batches_total", "Batches the broker acknowledged", ("broker", "qos")
        )
        self._batches_by_qos = {q: self._batches.labels(broker=broker, qos=q) for q in (0, 1)}
        self._records = r.counter(
            "edgeloop_broker_records_total", "Records the broker acknowledged", labels
        ).labels(broker=broker)

    def connected(self, up: bool) -> None:
        self._connected.set(1 if up else 0)

    def reconnected(self) -> None:
        self._reconnects.inc()

    def connect_failed(self, reason: str) -> None:
        """``reason``: one of :data:`CONNECT_FAILURE_REASONS`."""
        self._connect_failures[reason].inc()

    def round_trip(self, seconds: float) -> None:
        self._rtt.observe(seconds)

    def transferred(self, sent: int = 0, received: int = 0) -> None:
        if sent:
            self._sent.inc(sent)
        if received:
            self._received.inc(received)

    def publish_failed(self, reason: str, count: int = 1) -> None:
        """``reason``: one of :data:`PUBLISH_FAILURE_REASONS`."""
        self._failures[reason].inc(count)

    def acknowledged(self, records: int, qos: int) -> None:
        """One batch of ``records`` acknowledged (QoS 1: PUBACK; QoS 0: written out)."""
        self._batches_by_qos[qos].inc()
        self._records.inc(records)


class SpoolMetrics:
    """The outbox spool's families (one spool per process, so no label)."""

    def __init__(self, registry: MetricsRegistry) -> None:
        r = registry
        self._depth = r.gauge("edgeloop_spool_depth", "Records waiting in the outbox")
        self._bytes = r.gauge("edgeloop_spool_bytes", "Payload bytes waiting in the outbox")
        self._stored = r.counter("edgeloop_spool_stored_total", "Records stored in the outbox")
        self._acked = r.counter(
            "edgeloop_spool_acked_total", "Records a destination confirmed (then deleted)"
        )
        dropped = r.counter(
            "edgeloop_spool_dropped_total", "Records the spool dropped, by reason", ("reason",)
        )
        self._dropped = {reason: dropped.labels(reason=reason) for reason in DROP_REASONS}
        self._corrupt = r.counter(
            "edgeloop_spool_corrupt_total", "Corrupt spool databases moved aside"
        )

    def depth(self, records: int, size_bytes: int) -> None:
        self._depth.set(records)
        self._bytes.set(size_bytes)

    def stored(self, records: int) -> None:
        if records:
            self._stored.inc(records)

    def acked(self, records: int) -> None:
        if records:
            self._acked.inc(records)

    def dropped(self, reason: str, records: int) -> None:
        """``reason``: one of :data:`DROP_REASONS`."""
        if records:
            self._dropped[reason].inc(records)

    def corrupt(self) -> None:
        self._corrupt.inc()
