"""bench.micro.jpeg and its tjbench runner: the report's shape, with and without tjbench.

Runs on a small image with a token budget: these check plumbing and parsing, not speed.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.micro import MicroOptions, run_suite, tjbench
from bench.micro import jpeg as jpeg_suite
from bench.timing import Budget
from tests.required_tools import require

TINY = Budget(warmup_s=0.0, warmup_count=1, min_s=0.01, min_count=3, max_count=20)


@pytest.fixture
def small_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jpeg_suite, "HEIGHT", 120)
    monkeypatch.setattr(jpeg_suite, "WIDTH", 160)


def _run() -> dict[str, Any]:
    messages: list[str] = []
    result = run_suite("jpeg", MicroOptions(budget=TINY, quick=True, progress=messages.append))
    assert messages and all(m.startswith("jpeg: ") for m in messages)
    return result


@pytest.mark.usefixtures("small_frames")
def test_suite_against_tjbench() -> None:
    require("tjbench")  # fails, not skips, without it: `make test` installs libjpeg-turbo-progs
    result = _run()
    encode, decode = result["encode1080q85"], result["decode1080"]
    names = [row["name"] for row in encode["rows"]]
    assert names[:2] == ["edgeloop core.jpeg.encode", "tjbench -accuratedct"]
    assert encode["ratio_vs_tjbench"] > 0
    assert encode["same_size_as_tjbench"] is True  # same library, same settings, same bytes
    assert encode["threads1_fps"] > 0 and encode["threads2_speedup"] > 0
    for row in encode["rows"]:
        assert {"name", "median_ms", "p99_ms", "n", "bytes"} <= row.keys(), row
    assert decode["ratio_vs_tjbench"] > 0
    assert any(row["name"] == "tjbench -scale 1/4" for row in decode["rows"])


@pytest.mark.usefixtures("small_frames")
def test_suite_without_tjbench(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tjbench, "find", lambda: None)
    result = _run()
    for case in result.values():
        assert case["ratio_vs_tjbench"] is None
        assert case["tjbench_problem"] == tjbench.INSTALL_HINT
        skipped = [row for row in case["rows"] if row.get("skipped")]
        assert skipped and skipped[0]["name"].startswith("tjbench")
    assert result["encode1080q85"]["threads2_fps"] > 0


def test_parse_decompress_and_garbage() -> None:
    text = (
        ">>>>>  JPEG 4:2:0 --> BGR (Top-down)  <<<<<\n\nImage size: 1920 x 1080\n"
        "Decompress    --> Frame rate:         266.515237 fps\n"
        "                  Throughput:         552.645995 Megapixels/sec\n"
    )
    run = tjbench.parse(text, "decompress")
    assert run.mean_ms == pytest.approx(1000 / 266.515237) and run.jpeg_bytes is None
    with pytest.raises(tjbench.TjbenchError, match="no compress frame rate"):
        tjbench.parse(text, "compress")
    with pytest.raises(tjbench.TjbenchError):
        tjbench.parse("Compress --> Frame rate: 0.000000 fps", "compress")
