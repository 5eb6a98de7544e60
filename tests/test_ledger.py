"""The bandwidth ledger's arithmetic: exact totals, the sampled JPEG estimate (also across
streams of different sizes), and exact counts under concurrent recording."""

from __future__ import annotations

import threading

import pytest

from core.errors import ConfigError
from core.ledger import BandwidthLedger

FRAME = 1920 * 1080 * 3


def test_sampling_every_frame_gives_exact_totals() -> None:
    ledger = BandwidthLedger(sample_every=1)
    for i in range(10):
        ledger.record(raw_bytes=FRAME, sent_bytes=0 if i % 2 else 1_000, jpeg_bytes=200_000 + i)
    assert ledger.totals() == {
        "raw": 10 * FRAME,
        "jpeg_all": 10 * 200_000 + sum(range(10)),
        "sent": 5 * 1_000,
        "jpeg_all_estimated": False,
        "frames": 10,
        "jpeg_samples": 10,
        "sample_every": 1,
    }


def test_unsampled_frames_are_scaled_by_the_sampled_ratio() -> None:
    ledger = BandwidthLedger(sample_every=30)
    jpeg_sizes = {0: 300_000, 30: 200_000, 60: 250_000}  # ratio: 750_000 / (3 * FRAME)
    for i in range(90):
        sampled = ledger.wants_sample(i)
        assert sampled == (i in jpeg_sizes)
        ledger.record(raw_bytes=FRAME, sent_bytes=0, jpeg_bytes=jpeg_sizes.get(i))
    totals = ledger.totals()
    assert totals["jpeg_all"] == 750_000 + round(87 * FRAME * 750_000 / (3 * FRAME))  # 90 x mean
    assert totals["jpeg_all"] == 90 * 250_000
    assert totals["jpeg_all_estimated"] is True and totals["jpeg_samples"] == 3


def test_the_estimate_scales_per_byte_so_frame_sizes_mix() -> None:
    ledger = BandwidthLedger(sample_every=2)
    ledger.record(raw_bytes=4_000, sent_bytes=0, jpeg_bytes=400)  # a big stream: 10 %
    ledger.record(raw_bytes=1_000, sent_bytes=0, jpeg_bytes=100)  # a small one: 10 %
    ledger.record(raw_bytes=4_000, sent_bytes=50)
    ledger.record(raw_bytes=1_000, sent_bytes=0)
    assert ledger.totals()["jpeg_all"] == 500 + 500
    assert ledger.totals()["raw"] == 10_000 and ledger.totals()["sent"] == 50


def test_no_sample_yet_means_no_estimate() -> None:
    ledger = BandwidthLedger()
    assert ledger.totals()["jpeg_all"] == 0 and ledger.totals()["frames"] == 0
    ledger.record(raw_bytes=FRAME, sent_bytes=10)
    assert ledger.totals()["jpeg_all"] == 0 and ledger.totals()["jpeg_all_estimated"] is True


def test_concurrent_records_are_all_counted() -> None:
    ledger = BandwidthLedger(sample_every=3)

    def work(stream: int) -> None:
        for i in range(2_000):
            jpeg = 10 if ledger.wants_sample(i) else None
            ledger.record(raw_bytes=100, sent_bytes=stream, jpeg_bytes=jpeg)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = ledger.totals()
    assert totals["frames"] == 8_000 and totals["raw"] == 800_000
    assert totals["sent"] == 2_000 * (0 + 1 + 2 + 3)
    assert totals["jpeg_samples"] == 4 * 667 and totals["jpeg_all"] == 80_000


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_sample_every_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(ConfigError, match="sample_every must be an integer >= 1"):
        BandwidthLedger(sample_every=bad)  # type: ignore[arg-type]


def test_negative_byte_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="byte counts must be >= 0"):
        BandwidthLedger().record(raw_bytes=-1, sent_bytes=0)
