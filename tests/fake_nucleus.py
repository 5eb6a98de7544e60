"""A fake Greengrass nucleus for the tests: the eventstream-RPC server side of the IPC socket,
enough of it for the unmodified ``awsiotsdk`` client (``GreengrassCoreIPCClientV2``) that the
device app uses. No nucleus can run on these machines, so this speaks its protocol instead:

* framing: AWS event stream messages (prelude with lengths and CRC32, typed headers, payload,
  message CRC32), with the RPC headers ``:message-type``, ``:message-flags``, ``:stream-id``;
* ``CONNECT`` (the ``authToken`` must be this nucleus's SVCUID) -> ``CONNECT_ACK``; ``PING``;
* operations (``operation`` header on a stream's first message, JSON payloads):
  ``UpdateState`` (recorded), ``PublishToIoTCore`` (recorded: topic, QoS, payload),
  ``GetConfiguration`` (from :attr:`FakeNucleus.configuration`),
  ``SubscribeToConfigurationUpdate`` (a stream: :meth:`FakeNucleus.update_configuration`
  pushes ``ConfigurationUpdateEvents`` to it) and ``SubscribeToIoTCore`` (a stream:
  :meth:`FakeNucleus.deliver` pushes ``IoTCoreMessage`` to the matching ones).

An operation it does not know is answered with an ``APPLICATION_ERROR``
(``aws.greengrass#UnauthorizedError``), as a nucleus answers one the recipe does not allow.
"""

from __future__ import annotations

import base64
import json
import os
import socketserver
import struct
import threading
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

APPLICATION_MESSAGE, APPLICATION_ERROR, PING, PING_RESPONSE, CONNECT, CONNECT_ACK = range(6)
CONNECTION_ACCEPTED, TERMINATE_STREAM = 1, 2
_BOOL_TRUE, _BOOL_FALSE, _BYTE, _INT16, _INT32, _INT64, _BYTES, _STRING = range(8)


# -- the event stream codec ------------------------------------------------------------------


def encode_headers(headers: Mapping[str, int | str | bytes]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw = name.encode()
        out += struct.pack(">B", len(raw)) + raw
        if isinstance(value, bool):
            out += struct.pack(">B", _BOOL_TRUE if value else _BOOL_FALSE)
        elif isinstance(value, int):
            out += struct.pack(">Bi", _INT32, value)
        elif isinstance(value, str):
            data = value.encode()
            out += struct.pack(">BH", _STRING, len(data)) + data
        else:
            out += struct.pack(">BH", _BYTES, len(value)) + value
    return bytes(out)


def decode_headers(data: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    at = 0
    while at < len(data):
        size = data[at]
        name = data[at + 1 : at + 1 + size].decode()
        at += 1 + size
        kind = data[at]
        at += 1
        value: Any
        if kind in (_BOOL_TRUE, _BOOL_FALSE):
            value = kind == _BOOL_TRUE
        elif kind == _BYTE:
            value, at = data[at], at + 1
        elif kind == _INT16:
            (value,), at = struct.unpack_from(">h", data, at), at + 2
        elif kind == _INT32:
            (value,), at = struct.unpack_from(">i", data, at), at + 4
        elif kind in (_INT64, 8):  # int64, timestamp
            (value,), at = struct.unpack_from(">q", data, at), at + 8
        elif kind in (_BYTES, _STRING):
            (length,) = struct.unpack_from(">H", data, at)
            value = data[at + 2 : at + 2 + length]
            value = value.decode() if kind == _STRING else bytes(value)
            at += 2 + length
        elif kind == 9:  # uuid
            value, at = bytes(data[at : at + 16]), at + 16
        else:
            raise ValueError(f"unknown header type {kind}")
        headers[name] = value
    return headers


def encode_message(headers: Mapping[str, int | str | bytes], payload: bytes = b"") -> bytes:
    head = encode_headers(headers)
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def read_message(stream: Any) -> tuple[dict[str, Any], bytes] | None:
    """One message from a file-like socket reader (None at EOF); CRCs checked."""
    prelude = stream.read(12)
    if len(prelude) < 12:
        return None
    total, head_len, crc = struct.unpack(">III", prelude)
    if zlib.crc32(prelude[:8]) != crc:
        raise ValueError("prelude CRC mismatch")
    rest = stream.read(total - 12)
    (message_crc,) = struct.unpack(">I", rest[-4:])
    if zlib.crc32(prelude + rest[:-4]) != message_crc:
        raise ValueError("message CRC mismatch")
    return decode_headers(rest[:head_len]), rest[head_len:-4]


# -- the server --------------------------------------------------------------------------------


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.lock = threading.Lock()
        self.nucleus = self.server.nucleus

    def send(
        self,
        stream_id: int,
        message_type: int,
        flags: int = 0,
        model: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        headers: dict[str, int | str | bytes] = {
            ":message-type": message_type,
            ":message-flags": flags,
            ":stream-id": stream_id,
        }
        if model is not None:
            headers[":content-type"] = "application/json"
            headers["service-model-type"] = model
        payload = json.dumps(body).encode() if body is not None else b""
        with self.lock:
            self.wfile.write(encode_message(headers, payload))
            self.wfile.flush()

    def handle(self) -> None:
        while True:
            try:
                message = read_message(self.rfile)
            except (OSError, ValueError):
                return
            if message is None:
                return
            headers, payload = message
            kind = headers.get(":message-type")
            stream_id = int(headers.get(":stream-id", 0))
            if kind == CONNECT:
                token = json.loads(payload or b"{}").get("authToken")
                accepted = token == self.nucleus.svcuid
                self.send(0, CONNECT_ACK, CONNECTION_ACCEPTED if accepted else 0)
                if not accepted:
                    return
            elif kind == PING:
                self.send(0, PING_RESPONSE)
            elif kind == APPLICATION_MESSAGE and "operation" in headers:
                self.nucleus.handle(self, stream_id, headers["operation"], json.loads(payload))


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    nucleus: FakeNucleus


class FakeNucleus:
    """The IPC socket at ``path``; the environment a component gets (:meth:`environment`)."""

    def __init__(self, path: Path, component: str = "com.edgeloop.Runtime") -> None:
        self.path = path
        self.component = component
        self.svcuid = base64.b16encode(os.urandom(8)).decode()
        self.states: list[str] = []
        self.published: list[tuple[str, int, bytes]] = []
        self.configuration: dict[str, Any] = {}
        self.subscribers: list[tuple[_Connection, int]] = []
        self.iot_subscribers: list[tuple[_Connection, int, str]] = []
        self.operations: list[str] = []
        self.refusals = 0
        """``PublishToIoTCore`` requests still to refuse (``ServiceError``: the nucleus's
        spooler is full, say)."""
        self._lock = threading.Lock()
        self._server = _Server(str(path), _Connection)
        self._server.nucleus = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def environment(self) -> dict[str, str]:
        return {
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(self.path),
            "SVCUID": self.svcuid,
        }

    def handle(self, conn: _Connection, stream_id: int, operation: str, body: Any) -> None:
        name = operation.split("#", 1)[-1]
        with self._lock:
            self.operations.append(name)
        reply = f"aws.greengrass#{name}Response"
        if name == "UpdateState":
            with self._lock:
                self.states.append(body["state"])
            conn.send(stream_id, APPLICATION_MESSAGE, TERMINATE_STREAM, reply, {})
        elif name == "PublishToIoTCore":
            data = base64.b64decode(body.get("payload", ""))
            with self._lock:
                refuse = self.refusals > 0
                self.refusals -= refuse
                if not refuse:
                    self.published.append((body["topicName"], int(body.get("qos", "0")), data))
            if refuse:
                error = {"message": "spooler full", "_errorCode": "ServiceError"}
                conn.send(
                    stream_id,
                    APPLICATION_ERROR,
                    TERMINATE_STREAM,
                    "aws.greengrass#ServiceError",
                    error,
                )
                return
            conn.send(stream_id, APPLICATION_MESSAGE, TERMINATE_STREAM, reply, {})
        elif name == "GetConfiguration":
            value: Any = self.configuration
            for key in body.get("keyPath") or []:
                value = value.get(key, {}) if isinstance(value, dict) else {}
            answer = {"componentName": self.component, "value": value}
            conn.send(stream_id, APPLICATION_MESSAGE, TERMINATE_STREAM, reply, answer)
        elif name == "SubscribeToConfigurationUpdate":
            conn.send(stream_id, APPLICATION_MESSAGE, 0, reply, {})
            with self._lock:
                self.subscribers.append((conn, stream_id))
        elif name == "SubscribeToIoTCore":
            conn.send(stream_id, APPLICATION_MESSAGE, 0, reply, {})
            with self._lock:
                self.iot_subscribers.append((conn, stream_id, body["topicName"]))
        else:
            error = {"message": f"{operation} is not authorized", "_errorCode": "Unauthorized"}
            conn.send(
                stream_id,
                APPLICATION_ERROR,
                TERMINATE_STREAM,
                "aws.greengrass#UnauthorizedError",
                error,
            )

    def update_configuration(self, value: dict[str, Any], key_path: list[str]) -> None:
        """Change the component's configuration and tell every subscriber."""
        self.configuration = value
        event = {"configurationUpdateEvent": {"componentName": self.component, "keyPath": key_path}}
        with self._lock:
            subscribers = list(self.subscribers)
        for conn, stream_id in subscribers:
            try:
                conn.send(
                    stream_id,
                    APPLICATION_MESSAGE,
                    0,
                    "aws.greengrass#ConfigurationUpdateEvents",
                    event,
                )
            except OSError:
                continue

    def deliver(self, topic: str, payload: bytes) -> int:
        """A message from IoT Core on ``topic``, to every matching ``SubscribeToIoTCore``
        stream; returns how many got it."""
        message = {"message": {"topicName": topic, "payload": base64.b64encode(payload).decode()}}
        with self._lock:
            subscribers = [(c, s) for c, s, f in self.iot_subscribers if _matches(f, topic)]
        for conn, stream_id in subscribers:
            conn.send(stream_id, APPLICATION_MESSAGE, 0, "aws.greengrass#IoTCoreMessage", message)
        return len(subscribers)

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> FakeNucleus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    want, got = pattern.split("/"), topic.split("/")
    for i, part in enumerate(want):
        if part == "#":
            return True
        if i >= len(got) or (part != "+" and part != got[i]):
            return False
    return len(want) == len(got)


__all__ = ["FakeNucleus", "decode_headers", "encode_headers", "encode_message", "read_message"]
