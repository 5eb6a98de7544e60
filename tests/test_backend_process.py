"""The inference process (``core.backends.process``): the same outputs as in-process ONNX
Runtime through shared memory, calls in order, its own timings, errors that name the cause,
and nothing left in /dev/shm whichever side ends first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.backends import open_backend
from core.backends.pool import ProcessPool, inference_pids
from core.backends.process import ProcessBackend
from core.errors import BackendUnavailableError, ConfigError, InferenceProcessError, ModelError
from core.pipeline import Pipeline
from core.shm import segment_names
from tests.pipeline_doubles import RecordingSink, send_everything, small_config

OPEN = {"threads": 1, "batch_size": 2, "input_slots": 3, "spinning": False}


def _ours() -> set[str]:
    return {name for name in segment_names() if name.startswith("infer.")}


@pytest.fixture(scope="module")
def remote() -> Iterator[ProcessBackend]:
    backend = ProcessBackend("detector", "onnxruntime", **OPEN)
    yield backend
    backend.close()


def test_outputs_match_the_backend_in_this_process(remote: ProcessBackend) -> None:
    local = open_backend("detector", "onnxruntime", **OPEN)
    images = np.random.default_rng(0).random(local.input_buffer(2, 1).shape, np.float32)
    for backend in (remote, local):
        backend.input_buffer(2, 1)[:] = images
    (got,) = remote.infer(2, 1)
    (expected,) = local.infer(2, 1)
    np.testing.assert_array_equal(got, expected)
    info = remote.describe()
    assert info.name == "onnxruntime" and info.input_slots == 3
    assert info.extra["process_pid"] == remote.pid != os.getpid()
    assert inference_pids(remote) == [remote.pid] and inference_pids(local) == []
    assert info.model_sha256 == local.describe().model_sha256
    assert remote.timings.load_s > 0 and remote.timings.warmup_runs == 3


def test_submitted_calls_come_back_in_order_with_the_childs_timings(
    remote: ProcessBackend,
) -> None:
    rng = np.random.default_rng(1)
    for slot in range(3):
        remote.input_buffer(1, slot)[:] = rng.random(remote.input_buffer(1, slot).shape)
        remote.submit(1, slot)
    for slot in range(3):
        reply = remote.collect(slot)
        assert reply.error is None and reply.outputs[0].shape[0] == 1
        assert reply.cost.end_ns > reply.cost.start_ns and reply.cost.cpu_ns > 0
        assert remote.last_call == reply.cost
    remote.submit(1, 0)
    with pytest.raises(InferenceProcessError, match="expected slot 2"):
        remote.collect(2)  # the reply was slot 0's: a caller out of protocol is told


def test_the_buffers_are_unlinked_once_mapped(remote: ProcessBackend) -> None:
    assert not _ours()  # both sides hold the mappings; no name is left to leak


def test_a_model_the_child_cannot_open_raises_its_own_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelError, match=r"truncated\.onnx"):
        ProcessBackend(bad, "onnxruntime", **OPEN)
    with pytest.raises(BackendUnavailableError):
        ProcessBackend("detector", "tensorrt", **OPEN)  # no GPU here: the child says why
    assert not _ours()
    # The child stops on its own after reporting: reaped, not killed (nor said to be).
    assert "did not stop" not in caplog.text


def test_a_killed_child_is_reported_not_waited_on() -> None:
    backend = ProcessBackend("detector", "onnxruntime", **OPEN)
    try:
        os.kill(backend.pid, signal.SIGKILL)
        with pytest.raises(InferenceProcessError, match="is gone"):
            for _ in range(3):  # the first send may still land in the pipe's buffer
                backend.infer(1, 0)
    finally:
        backend.close()
    assert not backend.alive() and not _ours()


def test_a_pipeline_with_an_inference_process_keeps_order_and_counts() -> None:
    config = small_config(
        *send_everything("model.batch_size=2"), "infer_worker=process", "model.threads=1"
    )  # one process, whatever share of the cores inference would get
    with Pipeline(config) as pipeline:
        report = pipeline.run(max_frames=40)
        costs = pipeline.stage_costs(frames=6)
    assert report.frames == 40 and sum(report.errors.values()) == 0
    assert report.backend.input_slots == 4 and "process_pid" in report.backend.extra
    assert report.stage_ns["infer"].size > 0 and report.busy_frac["infer"] > 0
    stream = report.streams[0]
    assert stream.produced == stream.delivered and stream.occupancy_end == 0
    assert costs["infer"].cpu_ns > 0  # the child's CPU, which the parent's clock cannot see
    assert not _ours()


def test_a_script_without_a_main_guard_can_start_one(tmp_path: Path) -> None:
    """The child is a fresh ``python -m core.backends.process``, not multiprocessing's spawn,
    which would re-run this script's top level and fail."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from core.backends.process import ProcessBackend\n"
        "backend = ProcessBackend('detector', 'onnxruntime', batch_size=1)\n"
        "print(backend.infer(1)[0].shape)\n"
        "backend.close()\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("(1, ")


def test_waiting_for_a_reply_survives_being_preempted_between_clock_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait before polling reads the clock once: a thread pre-empted for longer than the
    time left (CI load did it) used to read it again and ask ``time.sleep`` for a negative
    length, which crashed the output worker. A clock that jumps 5 ms at every read stands in
    for the pre-emption."""
    from core.backends import process

    now = [0]

    def jumpy_clock() -> int:
        now[0] += 5_000_000
        return now[0]

    slept: list[float] = []  # the module's clock and sleep only (no threads of its own)
    monkeypatch.setattr(
        process, "time", SimpleNamespace(perf_counter_ns=jumpy_clock, sleep=slept.append)
    )
    waiting = SimpleNamespace(_replies=SimpleNamespace(poll=lambda timeout: True), _row_ns=0.0)
    due_ns = 5_000_000 + process.POLL_NS + 1_000_000  # due just past the first read + POLL_NS
    ProcessBackend._await_reply(waiting, due_ns)  # type: ignore[arg-type]
    assert slept and all(s >= 0 for s in slept)


def test_a_pool_runs_each_slot_in_its_own_child_with_in_process_results() -> None:
    """Two inference processes as one backend: slots interleaved over the children, calls
    submitted to both and collected in order, each output what ONNX Runtime here computes."""
    local = open_backend("detector", "onnxruntime", **OPEN)
    pool = ProcessPool("detector", "onnxruntime", workers=2, **OPEN)
    try:
        assert pool.input_slots == 4  # 3 asked for, rounded up to 2 per child
        assert len(set(pool.pids)) == 2 and os.getpid() not in pool.pids
        assert pool.describe().extra["process_pids"] == pool.pids
        assert inference_pids(pool) == pool.pids
        rng = np.random.default_rng(2)
        images = [rng.random(local.input_buffer(1, 0).shape, np.float32) for _ in range(4)]
        for slot, image in enumerate(images):
            pool.input_buffer(1, slot)[:] = image
            pool.submit(1, slot)
        for slot, image in enumerate(images):
            reply = pool.collect(slot)
            local.input_buffer(1, 0)[:] = image
            (expected,) = local.infer(1, 0)
            assert reply.error is None
            np.testing.assert_array_equal(reply.outputs[0], expected)
        pool.input_buffer(1, 3)[:] = images[0]
        (again,) = pool.infer(1, 3)  # the synchronous call, on the second child
        local.input_buffer(1, 0)[:] = images[0]
        np.testing.assert_array_equal(again, local.infer(1, 0)[0])
    finally:
        pool.close()
        local.close()
    assert not pool.alive() and not _ours()
    with pytest.raises(ConfigError, match="infer_workers must be an int >= 1"):
        ProcessPool("detector", "onnxruntime", workers=0, **OPEN)


def test_a_pipeline_with_two_inference_processes_sends_what_one_sends() -> None:
    """Batches alternate between two children and come back in order: every stream's records,
    frame by frame, the same as with one inference process."""
    records = {}
    for workers in (1, 2):
        sink = RecordingSink()
        config = small_config(
            *send_everything("model.batch_size=1"),
            "infer_worker=process",
            f"infer_workers={workers}",
            "model.threads=1",
            streams=2,
        )
        with Pipeline(config, sink=sink) as pipeline:
            report = pipeline.run(max_frames=60)
        assert report.frames == 60 and sum(report.errors.values()) == 0
        assert report.backend.input_slots == 4 * workers
        assert len(report.backend.extra.get("process_pids", [0])) == workers
        assert report.busy_frac["infer"] > 0
        for stream in report.streams:
            assert stream.produced == stream.delivered and stream.occupancy_end == 0
        mine = [
            (r.stream_id, r.seq, r.frame_index, r.detections.boxes.tolist()) for r in sink.records
        ]
        for stream in (0, 1):  # each stream's in order (streams interleave as they come)
            seqs = [r[1] for r in mine if r[0] == stream]
            assert seqs == list(range(1, len(seqs) + 1))
        records[workers] = sorted(mine)
    assert records[2] and records[2] == records[1]
    assert not _ours()


def test_several_inference_workers_need_an_inference_process() -> None:
    config = small_config("infer_worker=thread", "infer_workers=2")
    with (
        Pipeline(config) as pipeline,
        pytest.raises(ConfigError, match=r"infer_workers: 2 .* need infer_worker: process"),
    ):
        pipeline.run(max_frames=2)
