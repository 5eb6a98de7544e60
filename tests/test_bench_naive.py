"""bench.naive: the loop a user writes runs a few frames, measures each step, and its NumPy
NMS keeps what edgeloop's keeps (a fair baseline)."""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace

import numpy as np
import pytest

from bench import naive
from bench.standard import AROUND_FLAT_RUN, naive_block
from bench.timing import Budget
from core.detections import nms

TINY = Budget(warmup_s=0.0, warmup_count=1, min_s=0.01, min_count=4, max_count=20)


STREAM = SimpleNamespace(
    kind="synthetic",
    uri=None,
    width=320,
    height=180,
    fps=30.0,
    seed=0,
    quiet_fraction=None,
    max_objects=3,
)


def test_naive_loop_runs_a_few_frames() -> None:
    stream = STREAM
    seen: list[float] = []
    result = naive.run_naive("detector", stream, TINY, window_s=0.001, progress=seen.append)
    assert 4 <= result.frames <= 20 and result.fps > 0 and result.duration_s > 0
    assert result.latency_ns.shape == (result.frames,) and (result.latency_ns > 0).all()
    assert set(result.step_ns) == set(naive.STEPS)
    steps = sum(result.step_ns.values())
    assert np.array_equal(steps, result.latency_ns)  # the steps add up to the frame
    assert result.jpeg_bytes > 0 and result.load_s > 0 and result.first_inference_s > 0
    assert result.warmup_frames >= 1 and result.model.endswith("detector-s.onnx")
    assert naive.fps_windows(result)


def test_segments_make_one_result_without_the_gaps_between_them() -> None:
    """Measured in segments with other work between them (here a sleep): the frames add up,
    the fps counts measured time only, and no window spans a gap (it would read ~0 fps)."""
    budget = Budget(warmup_s=0.0, warmup_count=1, min_s=0.2, min_count=4, max_count=2000)
    loop = naive.NaiveLoop("detector", STREAM)
    loop.measure(budget)
    time.sleep(0.5)
    loop.measure(budget)
    result = loop.result(window_s=0.1)
    assert result.segment_frames is not None and len(result.segment_frames) == 2
    assert sum(result.segment_frames) == result.frames == result.latency_ns.size
    assert result.warmup_frames >= 2 and result.extra["segments"] == 2
    assert 0.4 <= result.duration_s < 0.9  # two segments of 0.2 s and more, not the sleep
    assert result.fps == pytest.approx(result.frames / result.duration_s)
    windows = naive.fps_windows(result)
    times = [t for t, _ in windows]
    assert times == sorted(times) and times[-1] <= result.duration_s + 1e-9
    first = result.segment_frames[0]
    spans = [result.end_ns[:first], result.end_ns[first:]]
    whole = [int((e[-1] - e[0]) / 1e9 // 0.1) for e in spans]
    assert len(windows) == sum(whole)  # each segment's own windows; none across the sleep
    assert len(naive.latency_windows(result)) <= len(windows)
    with pytest.raises(ValueError, match="measured nothing"):
        naive.NaiveLoop("detector", STREAM).result()


def test_numpy_nms_agrees_with_the_native_kernel() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, (300, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(0.3, 1.0, 300).astype(np.float32)
    ours = naive._nms(boxes, scores, 0.45)
    reference = nms(boxes, scores, iou_threshold=0.45, score_threshold=0.0, top_k=300)
    assert ours == reference.tolist()


def _segmented(rates: list[list[float]], window_s: float = 1.0) -> naive.NaiveResult:
    """A naive result whose segments ran at ``rates`` (frames/s per window of each segment),
    the segments minutes apart, each frame 10 ms, and one frame more that closes a segment's
    last window (windows count from the first frame)."""
    ends: list[int] = []
    frames: list[int] = []
    seconds: list[float] = []
    start = 0
    for windows in rates:
        count = 0
        for w, rate in enumerate(windows):
            n = round(rate * window_s)
            ends += [start + int((w + k / n) * window_s * 1e9) for k in range(n)]
            count += n
        ends.append(start + int(len(windows) * window_s * 1e9))  # closes the last window
        frames.append(count + 1)
        seconds.append(len(windows) * window_s)
        start += int(300e9)  # five minutes of other runs in between
    end_ns = np.asarray(ends, np.int64)
    latency = np.full(end_ns.size, 10_000_000, np.int64)
    return naive.NaiveResult(
        fps=sum(frames) / sum(seconds),
        frames=sum(frames),
        duration_s=sum(seconds),
        latency_ns=latency,
        end_ns=end_ns,
        step_ns={"infer": latency},
        load_s=0.1,
        first_inference_s=0.01,
        warmup_frames=5,
        jpeg_bytes=1000 * sum(frames),
        model="detector",
        segment_frames=frames,
        segment_s=seconds,
        extra={"window_s": window_s, "segments": len(rates)},
    )


def test_segments_are_reported_not_judged_and_the_speedup_uses_those_around_the_run() -> None:
    """Three segments at 66, 59 and 81 frames/s (the machine sped up between them), the second
    swinging within itself: the verdict is LoadGen's minimums, the swings and the drift are
    reported, and naive_fps for the speed-up is the two segments around the flat-out run."""
    budget = Budget(warmup_s=0.0, warmup_count=1, min_s=9.0, min_count=100)
    drifting = _segmented([[66, 66, 66], [61, 55, 61], [80, 81, 81]])
    block = naive_block(drifting, budget)
    assert block["verdict"]["result"] == "VALID", block["verdict"]
    assert [c["name"] for c in block["verdict"]["checks"]] == ["min_duration", "min_count"]
    assert [round(v) for v in block["segments_fps"]] == [66, 59, 81]
    mean = np.mean(block["segments_fps"])
    assert block["machine_drift"] == pytest.approx((block["segments_fps"][2] - mean) / mean)
    assert block["segments_spread"]["fps"] == pytest.approx(4 / 59)  # 55 among 61s: mean 59
    assert block["segments_spread"]["latency"] == 0.0  # every frame took 10 ms
    around = naive.segment_fps(drifting, AROUND_FLAT_RUN)
    assert around == pytest.approx((199 + 178) / 6.0)
    assert naive.segment_fps(drifting) == pytest.approx(drifting.fps)
    short = naive_block(drifting, dataclasses.replace(budget, min_s=20.0))["verdict"]
    assert short["result"] == "INVALID" and short["reason"].startswith("min_duration")
