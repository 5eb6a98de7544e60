"""The MQTT publisher: drains the outbox's ``mqtt`` channel to a broker, at least once, in order.

One thread owns one paho-mqtt 2.x client (``CallbackAPIVersion.VERSION2``) and runs its network
loop itself, so callbacks, publishes and outbox acks happen on that thread without locks:

* **Connect** with MQTT 5 (clean start), falling back to 3.1.1 when the broker refuses the
  protocol or closes the connection before its CONNACK (``protocol: auto``). Mutual TLS with the
  hostname verified, or plain TCP only where ``transport: tcp`` says so. A failed attempt waits
  an exponential back-off with jitter (:func:`backoff_delay`) before the next.
* **Publish** batches (:mod:`core.mqtt.batch`) to ``edgeloop/{thing}/results`` as the outbox
  yields them, within ``max_inflight`` unacknowledged batches and the rate cap
  (:class:`core.outbox.RateLimiter`: 100 publishes/s by default, AWS IoT Core's limit).
* **Ack**: a batch's records are deleted from the outbox only in ``on_publish`` -- for QoS 1,
  the broker's PUBACK. Nothing is deleted for a batch that was written to a socket that died.
* **Reconnect**: every connection starts a fresh client and the replay starts again from the
  oldest unacknowledged record, so a broker outage and a crash of this process are the same
  case: records whose PUBACK was lost are sent again (same message ids), none is skipped, and
  per-stream order is kept because the outbox replays in insertion order.

* **QoS per level**: each record carries the QoS of its transmission level (metadata, crops,
  frame: :mod:`core.outbox.levels`); a batch holds records of one QoS. Batches are cut where
  the QoS changes in the spool's order, so per-stream order is kept across levels (the price:
  smaller batches where levels of different QoS interleave). Records stored without a QoS use
  ``mqtt.qos``.

Metrics: the broker families of :mod:`core.metrics.messaging` (``edgeloop_broker_*``:
connection state, reconnects, connect and publish failures by reason, publish-to-PUBACK round
trip, bytes sent and received, batches and records acknowledged), labelled ``broker`` =
``host:port``; the outbox records the ``edgeloop_spool_*`` families.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.background import BackgroundLoop
from core.errors import MqttConnectionError
from core.metrics.messaging import BrokerMetrics
from core.metrics.registry import MetricsRegistry
from core.mqtt.batch import SpoolBatches
from core.mqtt.commands import CommandDispatcher
from core.mqtt.config import BackoffConfig, MqttConfig
from core.mqtt.limits import validate_publish
from core.outbox.rate import RateLimiter
from core.outbox.store import Outbox

__all__ = ["CHANNEL", "MqttPublisher", "backoff_delay", "tls_context"]

log = logging.getLogger(__name__)

CHANNEL = "mqtt"
ASIDE_MAX = 64
"""Messages sent outside the outbox (:meth:`MqttPublisher.send`) held while disconnected: the
oldest go first when more come (health records: the latest state matters)."""
_UNSUPPORTED_PROTOCOL = (1, 132)  # CONNACK: 3.1.1 "unacceptable protocol", 5 "unsupported"


def backoff_delay(attempt: int, config: BackoffConfig, rng: random.Random) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based): ``initial_s * 2**attempt`` capped
    at ``max_s``, half of it fixed and half random ("equal jitter").

    >>> cfg = BackoffConfig(initial_s=1.0, max_s=8.0)
    >>> [round(backoff_delay(a, cfg, random.Random(1)), 2) for a in range(5)]
    [0.57, 1.13, 2.27, 4.54, 4.54]
    """
    cap = min(config.max_s, config.initial_s * 2.0 ** min(attempt, 30))
    return cap / 2 + rng.uniform(0, cap / 2)


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """The client's TLS context (None for ``transport: tcp``): the CA, this device's
    certificate and key, TLS >= 1.2, the broker's hostname checked."""
    if config.transport != "tls":
        return None
    tls = config.tls
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise MqttConnectionError(
            f"mqtt: cannot load TLS files (ca {tls.ca_file}, cert {tls.cert_file}, key "
            f"{tls.key_file}): {exc}"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Aside(NamedTuple):
    topic: str
    payload: bytes
    on_sent: Callable[[], None] | None


class MqttPublisher(BackgroundLoop):
    """Drains ``outbox`` to the broker in ``config`` (see the module docstring).

    ``start()`` runs it on its own thread, ``stop()`` ends it; :meth:`send` (any thread) and
    :meth:`publish` (its thread) send a message outside the outbox (health records, replies).
    """

    thread_name = "edgeloop-mqtt"

    def __init__(
        self,
        config: MqttConfig,
        outbox: Outbox,
        *,
        registry: MetricsRegistry | None = None,
        dispatcher: CommandDispatcher | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.dispatcher = dispatcher
        self.topic = config.topic("results")
        self._topic_bytes = self.topic.encode()
        validate_publish(self.topic, b"", config.qos)
        self._tls = tls_context(config)
        self._rng = random.Random(seed)
        self._limiter = RateLimiter(config.rate)
        self._protocol = mqtt.MQTTv311 if config.protocol == "3.1.1" else mqtt.MQTTv5
        self._client: mqtt.Client | None = None
        self._connack: Any = None
        self._connected = False
        self._ever_connected = False
        self._attempt = 0
        self._next_attempt = 0.0
        self._inflight: dict[int, tuple[list[int], float, int]] = {}
        """mid -> (row ids, monotonic time sent, QoS)."""
        self._early: set[int] = set()
        self._aside: deque[_Aside] = deque(maxlen=ASIDE_MAX)
        self._aside_inflight: dict[int, _Aside] = {}
        super().__init__()
        self.last_error: str | None = None
        registry = registry if registry is not None else MetricsRegistry()
        self.metrics = BrokerMetrics(registry, f"{config.host}:{config.port}")
        self._batches = SpoolBatches(outbox, CHANNEL, config, self.metrics)

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and disconnect. Unacknowledged records stay in the outbox."""
        super().stop(timeout)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def run(self) -> None:
        """The loop (what :meth:`start`'s thread runs): connect, publish, ack, repeat."""
        try:
            while not self.stopping.is_set():
                if not self._connected:
                    self._try_connect()
                    continue
                client = self._client
                assert client is not None
                rc = client.loop(timeout=self.config.poll_s)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not self._connected:
                    self._lost(f"network loop: {mqtt.error_string(rc)}")
                    continue
                self._send_aside(client)
                self._fill(client)
        finally:
            self._close_client()

    # -- connecting ------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        v5 = self._protocol == mqtt.MQTTv5
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.config.effective_client_id,
            protocol=self._protocol,
            clean_session=None if v5 else True,
        )
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.max_inflight_messages_set(self.config.max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _try_connect(self) -> None:
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            self.stopping.wait(min(wait, 0.1))
            return
        self._close_client()
        client = self._client = self._make_client()
        self._connack = None
        v5 = self._protocol == mqtt.MQTTv5
        where = f"{self.config.host}:{self.config.port}"
        try:
            client.connect(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=True if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            )
        except ssl.SSLError as exc:
            self._failed("tls", f"mqtt {where}: TLS handshake failed: {exc}")
            return
        except OSError as exc:
            self._failed("refused", f"mqtt {where}: cannot connect: {exc}")
            return
        deadline = time.monotonic() + self.config.connect_timeout_s
        while self._connack is None and time.monotonic() < deadline and not self.stopping.is_set():
            rc = client.loop(timeout=0.05)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._connack is None:
                break
        if self._connected:
            return
        if self._connack is None:
            if v5 and self.config.protocol == "auto":
                log.warning("mqtt %s closed before CONNACK to MQTT 5: trying 3.1.1", where)
                self._protocol = mqtt.MQTTv311
                self._next_attempt = 0.0
                return
            self._failed("timeout", f"mqtt {where}: no CONNACK")
            return
        code = getattr(self._connack, "value", self._connack)
        if v5 and self.config.protocol == "auto" and code in _UNSUPPORTED_PROTOCOL:
            log.warning("mqtt %s does not support MQTT 5: falling back to 3.1.1", where)
            self._protocol = mqtt.MQTTv311
            self._next_attempt = 0.0
            return
        self._failed("connack", f"mqtt {where}: connection refused: {self._connack}")

    def _failed(self, reason: str, message: str) -> None:
        self.metrics.connect_failed(reason)
        self._retry_later(message)

    def _retry_later(self, message: str) -> None:
        self.last_error = message
        delay = backoff_delay(self._attempt, self.config.backoff, self._rng)
        self._attempt += 1
        self._next_attempt = time.monotonic() + delay
        log.warning("%s; retrying in %.1f s", message, delay)
        self._close_client()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connack = reason_code
        if getattr(reason_code, "is_failure", False):
            return
        self._connected = True
        self.metrics.connected(True)
        if self._ever_connected:
            self.metrics.reconnected()
        self._ever_connected = True
        self._attempt = 0
        self._inflight.clear()
        self._requeue_aside()
        self._early.clear()
        self._batches.rewind()  # replay from the oldest unacknowledged record
        if self.dispatcher is not None:
            client.subscribe(self.dispatcher.topic, qos=1)
        log.info("mqtt connected to %s:%s", self.config.host, self.config.port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if client is self._client:
            self._connected = False
            self.metrics.connected(False)

    def _lost(self, why: str) -> None:
        if self._inflight:
            self.metrics.publish_failed("lost", len(self._inflight))
        self._connected = False
        self.metrics.connected(False)
        self.last_error = f"mqtt connection lost ({why})"
        log.warning("%s; %d batches unacknowledged will be sent again", why, len(self._inflight))
        self._inflight.clear()
        self._requeue_aside()
        self._retry_later(self.last_error)

    def _close_client(self) -> None:
        client, self._client = self._client, None
        self._connected = False
        self.metrics.connected(False)
        if client is not None:
            client.on_disconnect = None
            client.on_publish = None
            try:
                client.disconnect()
                client.loop(timeout=0.01)
            except (OSError, ValueError):
                pass
            sock = client.socket()
            if sock is not None:
                sock.close()

    # -- publishing ------------------------------------------------------------------------

    def _properties(self) -> Properties | None:
        if self._protocol != mqtt.MQTTv5:
            return None
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = "application/json"
        props.UserProperty = [("content-encoding", "gzip")]
        return props

    def _fill(self, client: mqtt.Client) -> None:
        while len(self._inflight) < self.config.max_inflight and not self.stopping.is_set():
            batch = self._batches.peek()
            if batch is None or self._limiter.delay(len(batch.payload)) > 0:
                return
            info = client.publish(
                self.topic, batch.payload, qos=batch.qos, properties=self._properties()
            )
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self.metrics.publish_failed("not-connected")
                return
            self._limiter.take(len(batch.payload))
            self.metrics.transferred(sent=len(self._topic_bytes) + len(batch.payload))
            rowids = self._batches.advance(batch)
            self._inflight[info.mid] = (rowids, time.monotonic(), batch.qos)
            if info.mid in self._early:
                self._early.discard(info.mid)
                self._acked(info.mid)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        if client is not self._client:
            return
        aside = self._aside_inflight.pop(mid, None)
        if aside is not None:
            if aside.on_sent is not None and not getattr(reason_code, "is_failure", False):
                aside.on_sent()
            return
        if mid not in self._inflight:
            self._early.add(mid)  # QoS 0 can complete inside publish(), before we saw its mid
            return
        if getattr(reason_code, "is_failure", False):
            self.metrics.publish_failed("refused")
            self._inflight.pop(mid)
            log.error("broker refused a batch (%s); it stays in the outbox", reason_code)
            self._lost(f"publish refused: {reason_code}")
            return
        self._acked(mid)

    def _acked(self, mid: int) -> None:
        rowids, sent, qos = self._inflight.pop(mid)
        if qos == 1:  # QoS 0 "completes" when written to the socket: no round trip
            self.metrics.round_trip(time.monotonic() - sent)
        self.outbox.ack(rowids)
        self.metrics.acknowledged(len(rowids), qos)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.metrics.transferred(received=len(message.topic) + len(message.payload))
        if self.dispatcher is not None:
            self.dispatcher.dispatch(message.topic, bytes(message.payload))

    def send(self, topic: str, payload: bytes, on_sent: Callable[[], None] | None = None) -> None:
        """Queue one QoS 1 message outside the outbox, from any thread: sent when connected, ahead
        of result batches, sent again after a reconnect until the broker acknowledged it;
        ``on_sent`` runs (on the publisher's thread) when it did. Held in memory only, at most
        :data:`ASIDE_MAX` (the oldest dropped): for health records, not for results. Limits
        are checked now (:class:`MqttLimitError`)."""
        validate_publish(topic, payload, 1)
        self._aside.append(_Aside(topic, payload, on_sent))

    @property
    def aside_pending(self) -> int:
        """Messages given to :meth:`send` not acknowledged yet."""
        return len(self._aside) + len(self._aside_inflight)

    def _send_aside(self, client: mqtt.Client) -> None:
        while self._aside and not self.stopping.is_set():
            message = self._aside.popleft()
            info = client.publish(message.topic, message.payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._aside.appendleft(message)
                return
            self.metrics.transferred(sent=len(message.topic.encode()) + len(message.payload))
            self._aside_inflight[info.mid] = message  # QoS 1: its PUBACK comes in a later loop

    def _requeue_aside(self) -> None:
        """What was sent aside on a connection that ended goes again, first."""
        if self._aside_inflight:
            self._aside.extendleft(reversed(list(self._aside_inflight.values())))
            self._aside_inflight.clear()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> int:
        """Send one message now, outside the outbox (not retried); returns its mid. Limits are
        checked first (:class:`MqttLimitError`); :class:`MqttConnectionError` if not connected.
        Call it from the publisher's thread or while it is not running."""
        validate_publish(topic, payload, qos)
        client = self._client
        if client is None or not self._connected:
            self.metrics.publish_failed("not-connected")
            raise MqttConnectionError(
                f"mqtt {self.config.host}:{self.config.port}: not connected"
                + (f" ({self.last_error})" if self.last_error else "")
            )
        info = client.publish(topic, payload, qos=qos)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.metrics.transferred(sent=len(topic.encode()) + len(payload))
        return int(info.mid)
