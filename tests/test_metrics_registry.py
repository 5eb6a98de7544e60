"""The metrics registry: names, labels, counters, gauges, histograms, snapshots, threads."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from core.errors import MetricsError
from core.metrics import MetricsRegistry
from core.metrics.registry import MAX_CHILDREN


def test_counter_gauge_histogram_snapshot() -> None:
    r = MetricsRegistry()
    drops = r.counter("edgeloop_drops_total", "Drops", ("stream", "reason"))
    drops.labels(stream=0, reason="overwritten").inc(2)
    drops.labels(stream="0", reason="overwritten").inc()
    occupancy = r.gauge("edgeloop_ring_occupancy", "Frames", ("stream",))
    occupancy.labels(stream=1).set(5)
    occupancy.labels(stream=1).dec(2)
    latency = r.histogram("edgeloop_e2e_latency_seconds", "E2E", buckets=(0.001, 0.01, 0.1))
    latency.observe(0.0005)
    latency.observe_many(np.array([0.002, 0.05, 3.0]))
    snap = r.snapshot()
    assert snap["edgeloop_drops_total"]["samples"] == [
        {"labels": {"stream": "0", "reason": "overwritten"}, "value": 3.0}
    ]
    assert snap["edgeloop_ring_occupancy"]["samples"][0]["value"] == 3.0
    hist = snap["edgeloop_e2e_latency_seconds"]["samples"][0]
    assert hist["buckets"] == [[0.001, 1], [0.01, 2], [0.1, 3], [math.inf, 4]]
    assert hist["count"] == 4 and hist["sum"] == pytest.approx(3.0525)
    assert snap["edgeloop_e2e_latency_seconds"]["type"] == "histogram"


def test_the_same_name_is_the_same_family() -> None:
    r = MetricsRegistry()
    a = r.counter("edgeloop_errors_total", "Errors", ("stage",))
    assert r.counter("edgeloop_errors_total", "Errors", ("stage",)) is a
    with pytest.raises(MetricsError, match="already registered"):
        r.gauge("edgeloop_errors_total", "Errors", ("stage",))
    with pytest.raises(MetricsError, match="already registered"):
        r.counter("edgeloop_errors_total", "Errors", ("stream",))


@pytest.mark.parametrize(
    "name", ["frames_total", "edgeloop_Frames_total", "edgeloop_frames-total", "edgeloop_"]
)
def test_names_follow_the_convention(name: str) -> None:
    with pytest.raises(MetricsError, match="edgeloop_<what>_<unit>"):
        MetricsRegistry().gauge(name, "x")


def test_counters_end_in_total_and_only_go_up() -> None:
    r = MetricsRegistry()
    with pytest.raises(MetricsError, match="_total"):
        r.counter("edgeloop_frames", "x")
    c = r.counter("edgeloop_frames_total", "x")
    with pytest.raises(MetricsError, match="only goes up"):
        c.inc(-1)


def test_labels_must_match_and_stay_few() -> None:
    r = MetricsRegistry()
    family = r.counter("edgeloop_frames_total", "x", ("stream",))
    with pytest.raises(MetricsError, match="takes labels"):
        family.labels(frame=1)
    with pytest.raises(MetricsError, match=r"use \.labels"):
        family.inc()
    for i in range(MAX_CHILDREN):
        family.labels(stream=i)
    with pytest.raises(MetricsError, match="never a frame id"):
        family.labels(stream="one too many")


def test_bad_buckets_are_refused() -> None:
    with pytest.raises(MetricsError, match="buckets"):
        MetricsRegistry().histogram("edgeloop_x_seconds", "x", buckets=(0.1, 0.01))


def test_threads_lose_no_increment() -> None:
    r = MetricsRegistry()
    counter = r.counter("edgeloop_frames_total", "x").labels()
    hist = r.histogram("edgeloop_stage_latency_seconds", "x", ("stage",)).labels(stage="infer")

    def work() -> None:
        for _ in range(5000):
            counter.inc()
            hist.observe(0.002)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.value == 20000 and hist.count == 20000
