"""A token bucket for publishes and bytes: the send-rate cap of a replay.

After an outage the spool may hold hours of results; sending them as fast as the socket takes
them would break AWS IoT Core's per-connection limit (100 publishes/s) and starve live traffic
on a thin uplink. :class:`RateLimiter` answers "how long must I wait before sending this?"
without sleeping itself, so the caller's loop keeps servicing its network while it waits.

The clock is injectable so tests can drive it without sleeping.

>>> now = [0.0]
>>> limiter = RateLimiter(RateCap(publishes_per_s=2), clock=lambda: now[0])
>>> limiter.delay(100), limiter.take(100), limiter.take(100), limiter.delay(100)
(0.0, None, None, 0.5)
>>> now[0] = 0.5
>>> limiter.delay(100)
0.0
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.outbox.config import RateCap

__all__ = ["RateLimiter"]


class _Bucket:
    __slots__ = ("capacity", "level", "rate")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = capacity

    def refill(self, elapsed: float) -> None:
        self.level = min(self.capacity, self.level + elapsed * self.rate)

    def delay(self, amount: float) -> float:
        # An amount larger than the bucket waits until the bucket is full, then goes (and
        # leaves it in debt): a 128 KB batch on a 64 KB/s cap is slowed, never stuck.
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class RateLimiter:
    """Publishes/s and (optional) bytes/s token buckets; a burst of one second is allowed."""

    def __init__(self, cap: RateCap, clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self._clock = clock
        self._last = clock()
        self._publishes = _Bucket(cap.publishes_per_s, max(1.0, cap.publishes_per_s))
        self._bytes = None if cap.bytes_per_s is None else _Bucket(cap.bytes_per_s, cap.bytes_per_s)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._publishes.refill(elapsed)
        if self._bytes is not None:
            self._bytes.refill(elapsed)

    def delay(self, nbytes: int) -> float:
        """Seconds to wait before a publish of ``nbytes`` fits the caps (0.0: send now)."""
        self._refill()
        wait = self._publishes.delay(1.0)
        if self._bytes is not None:
            wait = max(wait, self._bytes.delay(float(nbytes)))
        return wait

    def take(self, nbytes: int) -> None:
        """Account one publish of ``nbytes`` (call when it is sent)."""
        self._refill()
        self._publishes.level -= 1.0
        if self._bytes is not None:
            self._bytes.level -= float(nbytes)
