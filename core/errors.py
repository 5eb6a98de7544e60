"""The one error tree of edgeloop.

Every class also inherits the built-in exception a caller would naturally catch (``ValueError``,
``TimeoutError``, ``FileNotFoundError``...), as PyAV's errors do, so ``except ValueError`` keeps
working for code that does not know edgeloop. Messages name the cause and, where there is one,
the fix.
"""

from __future__ import annotations


class EdgeloopError(Exception):
    """Base of every error edgeloop raises on purpose."""


class NativeBuildError(EdgeloopError, ImportError):
    """A compiled module of ``native/`` is missing or was built for another interpreter."""


class KernelSelectionError(EdgeloopError, ValueError):
    """``EDGELOOP_KERNELS`` names an implementation that does not exist or cannot load."""


class FrameError(EdgeloopError, ValueError):
    """A frame (or tensor) has the wrong shape, dtype, layout or memory order for its use."""


class RingError(EdgeloopError):
    """Base of FrameRing errors."""


class RingNotFoundError(RingError, FileNotFoundError):
    """Attaching to a ring that nobody created (or that was already unlinked)."""


class RingExistsError(RingError, FileExistsError):
    """Creating a ring under a name that is already taken."""


class RingVersionError(RingError, ValueError):
    """The shared-memory segment was written by an incompatible edgeloop version (or is no ring)."""


class RingTimeoutError(RingError, TimeoutError):
    """Waiting for a slot or a frame took longer than the caller allowed."""


class RingClosedError(RingError, EOFError):
    """The ring (or this end of it) was closed: no more frames will come."""


class RingUsageError(RingError, RuntimeError):
    """The ring was used out of protocol (a second producer, releasing a frame twice...)."""


class JpegError(EdgeloopError, ValueError):
    """Base of JPEG errors."""


class CorruptJpegError(JpegError):
    """The bytes are not a complete, valid JPEG (truncated, corrupt, or not a JPEG at all)."""


class ConfigError(EdgeloopError, ValueError):
    """A setting (a preprocess spec field, a threshold, a block size) is out of its range."""


class ModelError(EdgeloopError, ValueError):
    """A model file the pipeline cannot use: not ONNX, truncated or corrupt, or an input it
    cannot feed (wrong rank, channel count or dtype; the message names the input and its shape).
    """


class ModelNotFoundError(ModelError, FileNotFoundError):
    """The model file does not exist (or names no reference model)."""


class BackendUnavailableError(EdgeloopError, RuntimeError):
    """The inference backend asked for cannot run here; the one-line message names what is
    missing (a module, a GPU, an execution provider) and how to get it."""


class InferenceProcessError(EdgeloopError, RuntimeError):
    """The inference process (``infer_worker: process``) failed: it did not start in time, it
    died, or one of its calls failed there; the message carries the cause it gave."""


class SourceError(EdgeloopError, IOError):
    """A frame source cannot deliver: missing or unreadable file, undecodable stream, device
    gone, connection refused. The message starts with the source's name and says the cause."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A file or folder a source was asked to read does not exist."""


class SourceStalledError(SourceError, TimeoutError):
    """A source delivered no frame within its ``timeout_s`` (a camera or network stream that
    stopped sending): raised instead of blocking, so the pipeline never hangs on a source."""


class SourceFrameError(SourceError, FrameError):
    """One frame from a source is unusable (the wrong size for the stream, a corrupt image or
    packet); the source itself goes on, and the next read moves past it."""


class SinkError(EdgeloopError, IOError):
    """A sink could not take a result (disk full, permission denied, broker gone); the message
    names the path or endpoint and, for OS errors, the errno. The pipeline counts it, goes on."""


class MetricsError(EdgeloopError, ValueError):
    """A metric used against the registry's rules: a bad name, labels that do not match the
    family, a counter going down, or labels of unbounded cardinality (a frame id)."""


class PipelineError(EdgeloopError, RuntimeError):
    """The pipeline could not start or run: a stage failed to start, a worker did not stop
    within its timeout. Per-frame problems are counted, never raised."""


class OutboxError(SinkError):
    """The outbox spool cannot take or keep records (disk full, spool locked by another
    process, a database that cannot be created); the message names the spool's path."""


class OutboxFullError(OutboxError):
    """The spool is at its byte bound and its ``full_policy`` refused the new record
    (``reject-new``, or ``drop-lowest`` with nothing of lower or equal priority to drop)."""


class MqttLimitError(EdgeloopError, ValueError):
    """A topic, QoS, client id or payload outside MQTT's or AWS IoT Core's limits, refused
    before anything is sent; the message names the value, the limit and the fix."""


class MqttConnectionError(EdgeloopError, ConnectionError):
    """The MQTT client cannot connect (refused, TLS handshake or certificate check failed,
    bad credentials); the message names the broker and the cause. The publisher retries."""


class CommandError(EdgeloopError, ValueError):
    """A command received on ``edgeloop/{thing}/cmd/#`` is unknown or its payload does not
    validate; it is rejected, logged and counted, never run."""


class CloudSyncError(EdgeloopError, ConnectionError):
    """A batch could not be written to S3 or DynamoDB (endpoint down, access denied, checksum
    mismatch); its records stay in the outbox and the sync retries."""


class MetricsExportError(EdgeloopError, OSError):
    """Metrics could not leave the process: the exporter's port is taken or not allowed, a
    Pushgateway or textfile path refused them. The message names the endpoint and the cause."""
