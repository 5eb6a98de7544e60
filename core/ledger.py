"""The bandwidth ledger: what the frames weigh raw, as JPEGs, and what actually left the device.

Three totals, one per way of shipping a camera's output:

* ``raw``: the decoded frames' bytes (HxWx3), what streaming uncompressed would cost;
* ``jpeg_all``: every frame JPEG-encoded at the filter's quality, the naive "upload everything"
  baseline. Encoding every frame only to weigh it would cost the pipeline a full encode per
  frame, so the pipeline encodes every ``sample_every``-th frame (:meth:`BandwidthLedger.
  wants_sample`) and the ledger scales: ``jpeg_all`` = the sampled JPEG bytes + the other
  frames' raw bytes x (sampled JPEG bytes / sampled raw bytes). The ratio is per byte, so
  streams of different sizes mix correctly. ``jpeg_all_estimated`` says whether any frame was
  scaled rather than weighed (``sample_every=1`` weighs them all);
* ``sent``: the bytes the filter let out (:attr:`core.sinks.ResultRecord.payload_bytes`).

>>> ledger = BandwidthLedger(sample_every=2)
>>> for i in range(4):
...     ledger.record(raw_bytes=1000, sent_bytes=10 if i == 3 else 0,
...                   jpeg_bytes=100 if ledger.wants_sample(i) else None)
>>> ledger.totals()
{'raw': 4000, 'jpeg_all': 400, 'sent': 10, 'jpeg_all_estimated': True, 'frames': 4, \
'jpeg_samples': 2, 'sample_every': 2}
"""

from __future__ import annotations

import threading

from core.errors import ConfigError

__all__ = ["BandwidthLedger"]


class BandwidthLedger:
    """Thread-safe counters of raw, JPEG and sent bytes (see the module docstring)."""

    def __init__(self, sample_every: int = 30) -> None:
        if isinstance(sample_every, bool) or not isinstance(sample_every, int) or sample_every < 1:
            raise ConfigError(f"sample_every must be an integer >= 1, got {sample_every!r}")
        self.sample_every = sample_every
        self._lock = threading.Lock()
        self._frames = 0
        self._raw = 0
        self._sent = 0
        self._samples = 0
        self._sampled_raw = 0
        self._sampled_jpeg = 0

    def wants_sample(self, frame_number: int) -> bool:
        """Whether the frame with this running number (0, 1, ... per stream or overall) should
        be JPEG-encoded to weigh it: every ``sample_every``-th, starting with the first."""
        return frame_number % self.sample_every == 0

    def record(self, *, raw_bytes: int, sent_bytes: int, jpeg_bytes: int | None = None) -> None:
        """Count one frame: its raw size, the bytes sent for it (0 when the filter sent
        nothing), and its size as a full JPEG where it was weighed (None otherwise)."""
        if raw_bytes < 0 or sent_bytes < 0 or (jpeg_bytes is not None and jpeg_bytes < 0):
            raise ValueError(
                f"byte counts must be >= 0, got raw={raw_bytes} sent={sent_bytes} jpeg={jpeg_bytes}"
            )
        with self._lock:
            self._frames += 1
            self._raw += raw_bytes
            self._sent += sent_bytes
            if jpeg_bytes is not None:
                self._samples += 1
                self._sampled_raw += raw_bytes
                self._sampled_jpeg += jpeg_bytes

    def totals(self) -> dict[str, int | float | bool]:
        """``raw``, ``jpeg_all`` (estimate), ``sent``, ``jpeg_all_estimated``, ``frames``,
        ``jpeg_samples`` and ``sample_every`` (no JPEG sample yet: ``jpeg_all`` is 0)."""
        with self._lock:
            unsampled_raw = self._raw - self._sampled_raw
            scaled = (
                round(unsampled_raw * self._sampled_jpeg / self._sampled_raw)
                if self._sampled_raw
                else 0
            )
            return {
                "raw": self._raw,
                "jpeg_all": self._sampled_jpeg + scaled,
                "sent": self._sent,
                "jpeg_all_estimated": self._samples < self._frames,
                "frames": self._frames,
                "jpeg_samples": self._samples,
                "sample_every": self.sample_every,
            }
