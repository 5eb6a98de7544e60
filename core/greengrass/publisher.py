"""``mqtt.transport: greengrass-ipc``: results published through the nucleus's
``PublishToIoTCore``, so the component needs no certificate of its own (the nucleus's MQTT
connection, spooler and IoT policy carry them), with the same spool, batches, QoS and rate cap
as the direct publisher (:mod:`core.mqtt.publisher`).

A batch's records are deleted from the outbox when the nucleus answered its request: for QoS 1
the nucleus has then taken it (into its spooler, sent with its own retries). A failed request
(the nucleus refused it, the IPC connection broke) is sent again, from the oldest record not
acknowledged, after a back-off: as with the broker, a record may arrive twice, always with
the same message id, and none is skipped. Commands (``edgeloop/{thing}/cmd/#``) come through
the nucleus too (``SubscribeToIoTCore``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from core.background import BackgroundLoop
from core.greengrass.ipc import ipc_client
from core.metrics.messaging import BrokerMetrics
from core.metrics.registry import MetricsRegistry
from core.mqtt.batch import SpoolBatches
from core.mqtt.commands import CommandDispatcher
from core.mqtt.config import MqttConfig
from core.mqtt.limits import validate_publish
from core.mqtt.publisher import ASIDE_MAX, CHANNEL, backoff_delay
from core.outbox.rate import RateLimiter
from core.outbox.store import Outbox

__all__ = ["IpcPublisher"]

log = logging.getLogger("edgeloop.greengrass")


_Aside = tuple[str, bytes, "Callable[[], None] | None"]


class _Sent(NamedTuple):
    future: concurrent.futures.Future[Any]
    rowids: list[int]
    """The batch's outbox rows (empty for a message set aside)."""
    sent: float
    qos: int
    aside: _Aside | None


class IpcPublisher(BackgroundLoop):
    """Drains ``outbox``'s ``mqtt`` channel through the nucleus (see the module docstring);
    the same face as :class:`core.mqtt.publisher.MqttPublisher` (``start``, ``stop``,
    ``connected``, ``last_error``, ``send``)."""

    thread_name = "edgeloop-ipc"

    def __init__(
        self,
        config: MqttConfig,
        outbox: Outbox,
        *,
        registry: MetricsRegistry | None = None,
        dispatcher: CommandDispatcher | None = None,
        client_factory: Callable[[], Any] = ipc_client,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.outbox = outbox
        self.dispatcher = dispatcher
        self.topic = config.topic("results")
        validate_publish(self.topic, b"", config.qos)
        self._client_factory = client_factory
        self._client: Any = None
        self._limiter = RateLimiter(config.rate)
        self._rng = random.Random(seed)
        self._attempt = 0
        self._next_attempt = 0.0
        self._inflight: list[_Sent] = []
        self._aside: deque[_Aside] = deque(maxlen=ASIDE_MAX)
        self.last_error: str | None = None
        registry = registry if registry is not None else MetricsRegistry()
        self.metrics = BrokerMetrics(registry, "greengrass-ipc")
        self._batches = SpoolBatches(outbox, CHANNEL, config, self.metrics)

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def aside_pending(self) -> int:
        return len(self._aside) + sum(1 for s in self._inflight if s.aside is not None)

    def send(self, topic: str, payload: bytes, on_sent: Callable[[], None] | None = None) -> None:
        """One QoS 1 message outside the outbox (health), from any thread (as the direct
        publisher's ``send``)."""
        validate_publish(topic, payload, 1)
        self._aside.append((topic, payload, on_sent))

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if self._client is None:
                    self._connect()
                    continue
                self._settle()
                if self._client is None:
                    continue
                self._send_aside()
                self._fill()
                self._wait()
        finally:
            self._close()

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> None:
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            self.stopping.wait(min(wait, 0.1))
            return
        try:
            self._client = self._client_factory()
        except Exception as exc:
            self.metrics.connect_failed("refused")
            self._retry_later(f"greengrass ipc: cannot connect to the nucleus: {exc}")
            return
        self._attempt = 0
        self._batches.rewind()  # from the oldest record not acknowledged
        if self.dispatcher is not None and not self._subscribe(self.dispatcher):
            return
        self.metrics.connected(True)
        log.info("greengrass ipc connected: publishing to IoT Core through the nucleus")

    def _subscribe(self, dispatcher: CommandDispatcher) -> bool:
        """Commands from IoT Core (``SubscribeToIoTCore`` on ``cmd/#``) to ``dispatcher``,
        whose handlers only hand work off: they run on the SDK's thread."""

        def deliver(event: Any) -> None:
            message = event.message
            payload = bytes(message.payload or b"")
            self.metrics.transferred(received=len(message.topic_name) + len(payload))
            dispatcher.dispatch(message.topic_name, payload)

        try:
            self._client.subscribe_to_iot_core(
                topic_name=dispatcher.topic, qos="1", on_stream_event=deliver
            )
        except Exception as exc:
            self.metrics.connect_failed("refused")
            self._close()
            self._retry_later(f"greengrass ipc: cannot subscribe to {dispatcher.topic}: {exc}")
            return False
        return True

    def _retry_later(self, message: str) -> None:
        self.last_error = message
        delay = backoff_delay(self._attempt, self.config.backoff, self._rng)
        self._attempt += 1
        self._next_attempt = time.monotonic() + delay
        log.warning("%s; retrying in %.1f s", message, delay)

    def _lost(self, why: str) -> None:
        """A request failed: everything in flight goes again, on a fresh connection."""
        if self._inflight:
            self.metrics.publish_failed("lost", len(self._inflight))
        for sent in reversed(self._inflight):  # what was set aside goes again, first
            if sent.aside is not None:
                self._aside.appendleft(sent.aside)
        self._inflight.clear()
        self._close()
        self._retry_later(f"greengrass ipc: {why}")

    def _close(self) -> None:
        client, self._client = self._client, None
        self.metrics.connected(False)
        if client is not None:
            try:
                client.close()
            except Exception as exc:
                log.debug("closing the IPC client: %s", exc)

    # -- publishing ----------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, qos: int) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = self._client.publish_to_iot_core_async(
            topic_name=topic, qos=str(qos), payload=payload
        )
        self.metrics.transferred(sent=len(topic.encode()) + len(payload))
        return future

    def _send_aside(self) -> None:
        while self._aside and len(self._inflight) < self.config.max_inflight:
            aside = self._aside.popleft()
            future = self._publish(aside[0], aside[1], 1)
            self._inflight.append(_Sent(future, [], time.monotonic(), 1, aside))

    def _fill(self) -> None:
        while len(self._inflight) < self.config.max_inflight and not self.stopping.is_set():
            batch = self._batches.peek()
            if batch is None or self._limiter.delay(len(batch.payload)) > 0:
                return
            future = self._publish(self.topic, batch.payload, batch.qos)
            self._limiter.take(len(batch.payload))
            rowids = self._batches.advance(batch)
            self._inflight.append(_Sent(future, rowids, time.monotonic(), batch.qos, None))

    def _wait(self) -> None:
        futures = [s.future for s in self._inflight]
        if futures:
            concurrent.futures.wait(
                futures, timeout=self.config.poll_s, return_when=concurrent.futures.FIRST_COMPLETED
            )
        else:
            self.stopping.wait(self.config.poll_s)

    def _settle(self) -> None:
        """Ack what the nucleus answered; on a failure, start over from the oldest record."""
        still: list[_Sent] = []
        failure: str | None = None
        for sent in self._inflight:
            if not sent.future.done():
                still.append(sent)
                continue
            error = sent.future.exception()
            if error is not None:
                failure = failure or f"PublishToIoTCore failed: {type(error).__name__}: {error}"
                still.append(sent)  # sent again (see _lost)
                continue
            if sent.aside is not None:
                if sent.aside[2] is not None:
                    sent.aside[2]()
                continue
            if sent.qos == 1:
                self.metrics.round_trip(time.monotonic() - sent.sent)
            self.outbox.ack(sent.rowids)
            self.metrics.acknowledged(len(sent.rowids), sent.qos)
        self._inflight = still
        if failure is not None:
            self._lost(failure)
