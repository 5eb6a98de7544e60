"""A real mosquitto for the MQTT tests: free ports, generated certificates, stop and restart.

:class:`Mosquitto` runs the Debian package's broker with three listeners on 127.0.0.1:

* ``plain``: plain TCP, anonymous (the test's subscriber, and publishers with ``transport: tcp``);
* ``tls``: mutual TLS with a server certificate for ``localhost``/``127.0.0.1``, client
  certificates required (signed by the test CA);
* ``wrong_tls``: the same, but its server certificate names ``wrong.example.com``, which a
  client connecting to ``localhost`` must refuse.

Persistence is on, so a subscriber with a persistent session (clean_session false) gets what was
published while it was away, across a broker restart: the tests count on the broker, not on
their own subscriber being faster than the publisher.

Certificates are made by :func:`make_pki` with ``cryptography`` (CA, servers, one client).
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import ipaddress
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.ports import free_port
from tests.required_tools import require


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    wrong_cert: Path
    wrong_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    cn: str,
    *,
    names: list[x509.GeneralName] | None,
    usage: x509.ObjectIdentifier,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(folder: Path) -> Pki:
    """A CA, a server certificate for localhost, one for wrong.example.com, a client one."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("edgeloop test CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = {
        n: folder / n
        for n in (
            "ca.pem",
            "server.pem",
            "server.key",
            "wrong.pem",
            "wrong.key",
            "client.pem",
            "client.key",
        )
    }
    paths["ca.pem"].write_bytes(ca.public_bytes(pem))
    server = "localhost"
    local = [x509.DNSName(server), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for stem, cn, names, usage in (
        ("server", server, local, ExtendedKeyUsageOID.SERVER_AUTH),
        (
            "wrong",
            "wrong.example.com",
            [x509.DNSName("wrong.example.com")],
            ExtendedKeyUsageOID.SERVER_AUTH,
        ),
        ("client", "edgeloop-test-thing", None, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        cert, key = _issue(ca_key, ca_name, cn, names=names, usage=usage)
        paths[f"{stem}.pem"].write_bytes(cert.public_bytes(pem))
        _write_key(key, paths[f"{stem}.key"])
    return Pki(
        paths["ca.pem"],
        paths["server.pem"],
        paths["server.key"],
        paths["wrong.pem"],
        paths["wrong.key"],
        paths["client.pem"],
        paths["client.key"],
    )


class Mosquitto:
    """A mosquitto process with a plain, a mutual-TLS and a wrong-hostname TLS listener."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pki = make_pki(folder / "pki")
        self.plain, self.tls, self.wrong_tls = free_port(), free_port(), free_port()
        data = folder / "data"
        data.mkdir(exist_ok=True)
        self.log = folder / "mosquitto.log"  # run as root, mosquitto would drop to its own user
        tls = "require_certificate true\nuse_identity_as_username true\nallow_anonymous true\n"
        p = self.pki
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"""per_listener_settings true
user {getpass.getuser()}
persistence true
persistence_location {data}/
autosave_interval 1
max_queued_messages 0
max_inflight_messages 20
log_dest file {self.log}
log_type error
log_type warning
log_type notice

listener {self.plain} 127.0.0.1
allow_anonymous true

listener {self.tls} 127.0.0.1
cafile {p.ca}
certfile {p.server_cert}
keyfile {p.server_key}
{tls}
listener {self.wrong_tls} 127.0.0.1
cafile {p.ca}
certfile {p.wrong_cert}
keyfile {p.wrong_key}
{tls}"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the broker and wait for its three listeners; fails the calling test where
        mosquitto is not installed (``make test`` installs it)."""
        if self.proc is not None:
            return
        self.proc = subprocess.Popen(
            [require("mosquitto"), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for port in (self.plain, self.tls, self.wrong_tls):
                wait_port(port)
        except OSError:
            self.stop()
            raise RuntimeError(
                f"mosquitto did not start: {self.log.read_text() if self.log.exists() else ''}"
            ) from None

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file), then wait for it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


class Mqtt311Broker:
    """A broker that speaks MQTT 3.1.1 only, as older ones do: a TCP proxy in front of a real
    mosquitto (which speaks 5 too) that answers an MQTT 5 CONNECT the way such a broker does,
    and passes every other connection through byte for byte.

    ``answer``: ``refuse`` replies what MQTT 3.1.1 prescribes for a protocol level it does not
    support (CONNACK, return code 1 "unacceptable protocol version") and closes; ``close``
    closes without a CONNACK, as some brokers do. ``levels`` lists each connection's CONNECT
    protocol level, in order.
    """

    def __init__(self, upstream_port: int, answer: str = "refuse") -> None:
        if answer not in ("refuse", "close"):
            raise ValueError(f"answer must be refuse or close, not {answer!r}")
        self.upstream_port = upstream_port
        self.answer = answer
        self.levels: list[int] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Mqtt311Broker:
        self._accepting.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self._accepting.join(timeout=5)

    def _keep(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=self._serve, args=(self._keep(client),), daemon=True).start()

    @staticmethod
    def _read(sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed mid-packet")
            data += chunk
        return data

    def _serve(self, client: socket.socket) -> None:
        try:
            # CONNECT: type byte, remaining length (1-4 bytes), protocol name "MQTT", level.
            head = self._read(client, 1)
            while True:
                byte = self._read(client, 1)
                head += byte
                if not byte[0] & 0x80:
                    break
            name = self._read(client, 6)  # length 4 + "MQTT"
            level = self._read(client, 1)
            self.levels.append(level[0])
            if level[0] == 5:
                if self.answer == "refuse":
                    client.sendall(bytes([0x20, 0x02, 0x00, 0x01]))
                client.close()
                return
            upstream = self._keep(socket.create_connection(("127.0.0.1", self.upstream_port)))
            upstream.sendall(head + name + level)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Recorder:
    """A subscriber with a persistent session on the plain listener: records every result
    batch's records, in arrival order, and every raw message of the topics it watches."""

    def __init__(
        self, port: int, topic: str = "edgeloop/+/results", client_id: str = "rec"
    ) -> None:
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topic = topic
        self.records: list[dict[str, object]] = []
        self.messages: list[tuple[str, bytes]] = []
        self.qos_of: dict[str, int] = {}  # record id -> QoS of the message that carried it
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.05, 0.3)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("recorder did not connect")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        client.subscribe(self.topic, qos=1)
        self.ready.set()

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        from core.mqtt import decode_batch

        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))
            if message.topic.endswith("/results"):
                records = decode_batch(message.payload)["records"]
                self.records.extend(records)
                for record in records:
                    self.qos_of[str(record["id"])] = message.qos

    def ids(self) -> set[str]:
        with self._lock:
            return {str(r["id"]) for r in self.records}

    def wait_for(self, ids: set[str], timeout: float = 60.0) -> set[str]:
        """Wait until every id in ``ids`` arrived (or ``timeout``); returns the missing ones."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = ids - self.ids()
            if not missing:
                return missing
            time.sleep(0.05)
        return ids - self.ids()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def check_order(records: list[dict[str, object]]) -> None:
    """Per stream: first arrivals in sequence order with no gap; a repeat carries the same id."""
    first: dict[str, int] = {}
    ids: dict[tuple[str, int], str] = {}
    for record in records:
        stream, seq, msg_id = str(record["stream"]), int(record["seq"]), str(record["id"])  # type: ignore[call-overload]
        key = (stream, seq)
        if key in ids:
            assert ids[key] == msg_id, f"{key} arrived again with another id"
            continue
        ids[key] = msg_id
        expected = first.get(stream, -1) + 1
        assert seq == expected, f"stream {stream}: seq {seq} arrived where {expected} was due"
        first[stream] = seq


FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
"""Credentials and region for boto3 against :class:`MotoServer` (never real ones)."""


class MotoServer:
    """moto's server mode (S3, DynamoDB over real HTTP) on a free port; stop and start again
    (its state is in memory: a restart is an empty account, as after an outage in a test)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import sys

        if self.proc is None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_port(self.port, timeout=60)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
