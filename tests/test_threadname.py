"""Pipeline threads carry their job's name for the kernel (``top -H``, ``ps -L``, ``perf``)."""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path

import pytest

from core.background import BackgroundLoop
from core.pipeline import Pipeline
from core.threadname import MAX_NAME_BYTES, name_this_thread, os_thread_name
from tests.pipeline_doubles import small_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux names")


def _kernel_name(tid: int) -> str:
    return Path(f"/proc/self/task/{tid}/comm").read_text().strip()


def test_a_thread_is_named_for_the_kernel_and_a_long_name_is_cut() -> None:
    seen: dict[str, str] = {}

    def body(name: str) -> None:
        seen[name] = (
            _kernel_name(threading.get_native_id()) if name_this_thread(name) else "refused"
        )

    for name in ("infer", "a-name-longer-than-the-kernel-keeps"):
        thread = threading.Thread(target=body, args=(name,))
        thread.start()
        thread.join()
    assert seen["infer"] == "infer"
    assert seen["a-name-longer-than-the-kernel-keeps"] == "a-name-longer-t"
    assert len(os_thread_name("é" * 20)) <= MAX_NAME_BYTES  # cut on a character boundary
    assert os_thread_name("é" * 20).decode("utf-8") == "é" * 7


def test_a_background_loop_runs_under_its_thread_name() -> None:
    named = threading.Event()
    seen: list[str] = []

    class Ticker(BackgroundLoop):
        thread_name = "edgeloop-tick"

        def run(self) -> None:
            seen.append(_kernel_name(threading.get_native_id()))
            named.set()
            self.stopping.wait()

    loop = Ticker()
    loop.start()
    try:
        assert named.wait(10.0)
    finally:
        loop.stop()
    assert seen == ["edgeloop-tick"]


def test_a_running_pipelines_threads_carry_their_stage_names() -> None:
    seen: set[str] = set()

    def look(_: object) -> None:
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):  # the thread ended meanwhile
                seen.add((task / "comm").read_text().strip())

    with Pipeline(small_config("rate=50", "infer_worker=thread")) as pipeline:
        pipeline.run(duration_s=0.6, progress=look)
    assert {"source-0", "ingest-0", "infer", "output"} <= seen, seen
