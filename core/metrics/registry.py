"""One in-process metrics registry: counters, gauges and histograms with Prometheus-style names.

Every part of the edge runtime records into a :class:`MetricsRegistry` (the pipeline creates
one unless it is given one); exporters read :meth:`MetricsRegistry.snapshot`, a plain dict, so
nothing here depends on ``prometheus_client`` (the metrics issue adds the export).

Conventions, enforced where cheap:

* names are ``edgeloop_<what>_<unit>`` in base units (``_seconds``, ``_bytes``, ``_ratio``);
  counters end in ``_total``;
* labels are few and of low cardinality -- stream, stage, reason, model_version -- never a
  frame id or a timestamp: a family refuses more than :data:`MAX_CHILDREN` label sets;
* histograms have fixed buckets in base units (:data:`LATENCY_BUCKETS_S` by default).

Thread safety: each labelled child has its own lock, so two threads recording into different
children never contend. Cost: ``labels(...)`` costs a few times an ``inc`` or ``observe``, so
look a child up once and keep it on the hot path; ``Histogram.observe_many`` takes a NumPy
array for a small fraction of an ``observe`` a value, which is how the pipeline feeds its stage
latencies: in batches, from its monitor thread, off the per-frame path
(docs/decisions/0012-metrics-side-channel-cost.md).

>>> registry = MetricsRegistry()
>>> frames = registry.counter("edgeloop_frames_total", "Frames delivered", ("stream",))
>>> frames.labels(stream="0").inc(3)
>>> latency = registry.histogram("edgeloop_e2e_latency_seconds", "Capture to sink",
...                              buckets=(0.001, 0.01))
>>> latency.observe(0.004)
>>> snap = registry.snapshot()
>>> snap["edgeloop_frames_total"]["samples"]
[{'labels': {'stream': '0'}, 'value': 3.0}]
>>> snap["edgeloop_e2e_latency_seconds"]["samples"][0]["buckets"]
[[0.001, 0], [0.01, 1], [inf, 1]]
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from core.errors import MetricsError

__all__ = [
    "LATENCY_BUCKETS_S",
    "MAX_CHILDREN",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricFamily",
    "MetricsRegistry",
]

LATENCY_BUCKETS_S: tuple[float, ...] = (
    50e-6,
    100e-6,
    250e-6,
    500e-6,
    1e-3,
    2e-3,
    3e-3,
    5e-3,
    7.5e-3,
    10e-3,
    15e-3,
    20e-3,
    30e-3,
    50e-3,
    75e-3,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Default histogram buckets (seconds): fine around the 0.1-30 ms a pipeline stage takes."""

MAX_CHILDREN = 256
"""Label sets one family takes before refusing: a guard against frame ids as labels."""

_NAME = re.compile(r"^edgeloop_[a-z][a-z0-9_]*$")
_LABEL = re.compile(r"^[a-z_][a-z0-9_]*$")
Kind = Literal["counter", "gauge", "histogram"]


class Counter:
    """A value that only goes up (frames, drops, errors, bytes)."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0)."""
        if amount < 0:
            raise MetricsError(f"a counter only goes up; inc({amount}) is negative")
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        return self._value

    def _sample(self) -> dict[str, Any]:
        return {"value": self._value}


class Gauge:
    """A value that goes up and down (ring occupancy, busy ratio, queue depth)."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def set(self, value: float) -> None:
        self._value = float(value)  # one store: atomic under the GIL, no lock needed

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    @property
    def value(self) -> float:
        return self._value

    def _sample(self) -> dict[str, Any]:
        return {"value": self._value}


class Histogram:
    """Counts of observations per fixed bucket (upper bounds, base units), their sum and count."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Record one value (in the family's base unit: seconds for latencies)."""
        index = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def observe_many(self, values: npt.ArrayLike) -> None:
        """Record many values at once (a NumPy array: one sort-free pass, no Python loop)."""
        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size == 0:
            return
        index = np.searchsorted(np.asarray(self._bounds), array, side="left")
        counts = np.bincount(index, minlength=len(self._counts))
        total = float(array.sum())
        with self._lock:
            for i, c in enumerate(counts.tolist()):
                self._counts[i] += c
            self._sum += total

    @property
    def count(self) -> int:
        return sum(self._counts)

    @property
    def sum(self) -> float:
        return self._sum

    def cumulative(self) -> tuple[list[int], float]:
        """The cumulative count at each bound (the last at +Inf: the count) and the sum, read
        together: what an exposition writes."""
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        return list(itertools.accumulate(counts)), total  # NumPy's call costs more, for ~20

    def _sample(self) -> dict[str, Any]:
        cumulative, total = self.cumulative()
        bounds = [*self._bounds, math.inf]
        return {
            "buckets": [[b, c] for b, c in zip(bounds, cumulative, strict=True)],
            "sum": total,
            "count": cumulative[-1],
        }


M = TypeVar("M", bound="Counter | Gauge | Histogram")


class MetricFamily(Generic[M]):
    """One metric name, its help text and label names; a child per label set.

    A family without labels records directly (``family.inc()``, ``family.observe(v)``...);
    one with labels through ``family.labels(stream="0")`` (keep the child on hot paths).
    """

    def __init__(
        self,
        kind: Kind,
        name: str,
        help_text: str,
        labelnames: tuple[str, ...],
        make: Callable[[], M],
        *,
        bounds: tuple[float, ...] = (),
    ) -> None:
        self.kind = kind
        self.name = name
        self.help = help_text
        self.labelnames = labelnames
        self.bounds = bounds
        self._make: Callable[[], M] = make
        self._children: dict[tuple[str, ...], M] = {}
        self._lock = threading.Lock()
        self._unlabelled: M | None = None if labelnames else self._child(())

    def _child(self, key: tuple[str, ...]) -> M:
        child = self._children.get(key)
        if child is not None:
            return child
        with self._lock:
            child = self._children.get(key)
            if child is None:
                if len(self._children) >= MAX_CHILDREN:
                    raise MetricsError(
                        f"{self.name}: more than {MAX_CHILDREN} label sets; labels must have "
                        "low cardinality (stream, stage, reason), never a frame id"
                    )
                child = self._make()
                self._children[key] = child
        return child

    def labels(self, **values: object) -> M:
        """The child for these label values (created on first use)."""
        if set(values) != set(self.labelnames):
            raise MetricsError(
                f"{self.name} takes labels {list(self.labelnames)}, got {sorted(values)}"
            )
        return self._child(tuple(str(values[n]) for n in self.labelnames))

    def _only(self) -> M:
        if self._unlabelled is None:
            raise MetricsError(f"{self.name} has labels {list(self.labelnames)}: use .labels()")
        return self._unlabelled

    # Shorthands for families without labels.
    def inc(self, amount: float = 1.0) -> None:
        child: Any = self._only()
        child.inc(amount)

    def set(self, value: float) -> None:
        child: Any = self._only()
        child.set(value)

    def observe(self, value: float) -> None:
        child: Any = self._only()
        child.observe(value)

    def observe_many(self, values: npt.ArrayLike) -> None:
        child: Any = self._only()
        child.observe_many(values)

    def children(self) -> list[tuple[tuple[str, ...], M]]:
        """Each label set's values (in ``labelnames`` order) and its child, in the order they
        were created."""
        with self._lock:
            return list(self._children.items())

    def snapshot(self) -> dict[str, Any]:
        """``{"type", "help", "labelnames", "samples": [{"labels": {...}, ...}]}``."""
        samples = [
            {"labels": dict(zip(self.labelnames, key, strict=True)), **child._sample()}
            for key, child in self.children()
        ]
        return {
            "type": self.kind,
            "help": self.help,
            "labelnames": list(self.labelnames),
            "samples": samples,
        }


class MetricsRegistry:
    """Metric families by name. Asking again for a name returns the same family when type and
    labels agree (so independent parts can share ``edgeloop_errors_total``), else refuses."""

    def __init__(self) -> None:
        self._families: dict[str, MetricFamily[Any]] = {}
        self._lock = threading.Lock()

    def counter(
        self, name: str, help_text: str, labelnames: Sequence[str] = ()
    ) -> MetricFamily[Counter]:
        if not name.endswith("_total"):
            raise MetricsError(f"counter {name!r} must end in _total")
        return self._family("counter", name, help_text, labelnames, Counter)

    def gauge(
        self, name: str, help_text: str, labelnames: Sequence[str] = ()
    ) -> MetricFamily[Gauge]:
        return self._family("gauge", name, help_text, labelnames, Gauge)

    def histogram(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float] = LATENCY_BUCKETS_S,
    ) -> MetricFamily[Histogram]:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or not all(map(math.isfinite, bounds)):
            raise MetricsError(f"{name}: buckets must be finite, increasing and not empty")
        return self._family(
            "histogram", name, help_text, labelnames, lambda: Histogram(bounds), bounds=bounds
        )

    def _family(
        self,
        kind: Kind,
        name: str,
        help_text: str,
        labelnames: Sequence[str],
        make: Callable[[], M],
        *,
        bounds: tuple[float, ...] = (),
    ) -> MetricFamily[M]:
        if not _NAME.match(name):
            raise MetricsError(
                f"metric name {name!r} must look like edgeloop_<what>_<unit> "
                "(lower case, digits, underscores)"
            )
        labels = tuple(labelnames)
        for label in labels:
            if not _LABEL.match(label):
                raise MetricsError(f"{name}: label name {label!r} is not a valid identifier")
        with self._lock:
            family = self._families.get(name)
            if family is None:
                family = MetricFamily(kind, name, help_text, labels, make, bounds=bounds)
                self._families[name] = family
                return family
        if family.kind != kind or family.labelnames != labels or family.bounds != bounds:
            raise MetricsError(
                f"{name} is already registered as a {family.kind} with labels "
                f"{list(family.labelnames)}; one name, one meaning"
            )
        return family

    def get(self, name: str) -> MetricFamily[Any] | None:
        """The family registered under ``name``, if any."""
        return self._families.get(name)

    def names(self) -> list[str]:
        return sorted(self._families)

    def families(self) -> list[MetricFamily[Any]]:
        """Every family, by name."""
        with self._lock:
            families = list(self._families.values())
        return sorted(families, key=lambda f: f.name)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every family as plain data (JSON-ready but for ``inf`` bucket bounds)."""
        return {f.name: f.snapshot() for f in self.families()}
