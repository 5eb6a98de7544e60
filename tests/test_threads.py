"""Inference's intra-op threads when ``model.threads`` is None: its share of the cores, measured
with one thread; one where it cannot be measured; the configured number otherwise."""

from __future__ import annotations

import pytest

from core.errors import SourceError
from core.pipeline import Pipeline
from core.pipeline.threads import choose_threads, threads_for
from core.sources import Source, SourceConfig
from tests.pipeline_doubles import small_config


@pytest.mark.parametrize(
    ("infer_ms", "other_ms", "cores", "slowest_ms", "threads"),
    [
        (4.6, 2.1, 2, None, 1),  # the reference detector beside 1080p frames: 1.4 cores
        (60.0, 8.0, 2, None, 2),  # a heavy model: 1.8 cores
        (60.0, 8.0, 2, 2.4, 2),  # ... which its source keeps up with
        (60.0, 8.0, 1, None, 1),
        (30.0, 30.0, 4, None, 2),  # half a frame's CPU on 4 cores
        (10.0, 0.0, 4, None, 4),
        (4.6, 2.1, 16, 1.3, 4),  # 16 cores: as many as keep up with a 1.3 ms source
        (0.0, 0.0, 2, None, 1),
    ],
)
def test_inference_gets_its_share_of_the_cores(
    infer_ms: float, other_ms: float, cores: int, slowest_ms: float | None, threads: int
) -> None:
    chosen, why = threads_for(
        infer_cpu_ms=infer_ms, other_cpu_ms=other_ms, cores=cores, slowest_other_ms=slowest_ms
    )
    assert chosen == threads and f"on {cores} cores" in why


def test_a_run_measures_and_reports_what_it_chose() -> None:
    """Small frames put the reference detector near the boundary, so either choice may come:
    the report says which was made and why, consistently with the backend it ran."""
    with Pipeline(small_config("infer_worker=thread", "model.threads=null")) as pipeline:
        threads = pipeline.backend.describe().threads
        report = pipeline.run(max_frames=4)
    assert report.backend.threads == threads
    assert report.threads_why.startswith("inference is ") and " cores: " in report.threads_why
    assert report.threads_why.endswith(": 2 intra-op threads") == (threads == 2)


def test_configured_threads_are_kept() -> None:
    with Pipeline(small_config("model.threads=2", "infer_worker=thread")) as pipeline:
        assert pipeline.backend.describe().threads == 2
        assert pipeline.threads_why == "model.threads"


def _broken(config: SourceConfig, stream_id: int) -> Source:
    raise SourceError(f"stream {stream_id}: cannot open")


def test_one_thread_where_it_cannot_be_measured() -> None:
    with Pipeline(small_config("infer_worker=thread", "model.threads=null")) as pipeline:
        backend = pipeline.backend
        live = small_config(kind="rtsp", uri="rtsp://127.0.0.1:9/none")
        assert choose_threads(live, backend, _broken, cores=2) == (
            1,
            "not measured on a live source (rtsp): set model.threads",
        )
        assert choose_threads(pipeline.config, backend, _broken, cores=2) == (
            1,
            "not measured (SourceError): one thread",
        )
        assert choose_threads(pipeline.config, backend, _broken, cores=1) == (1, "one core")


def test_inference_given_two_cores_runs_in_two_one_thread_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the measure gives inference two cores (forced here: on small frames the reference
    detector sits near the boundary), it runs as two one-thread inference processes, the run
    counts two infer workers, and closing the pipeline hands back the configuration as given
    (the next load measures afresh)."""
    from core.pipeline import runtime

    monkeypatch.setattr(runtime, "choose_threads", lambda *args, **kw: (2, "measured (test)"))
    config = small_config("infer_worker=process", "model.threads=null")
    with Pipeline(config) as pipeline:
        report = pipeline.run(max_frames=20)
        assert pipeline.config.infer_workers == 2
        assert pipeline.threads_why == "measured (test): 2 inference processes of one thread"
    assert report.workers["infer"] == 2 and report.backend.threads == 1
    assert len(report.backend.extra["process_pids"]) == 2
    assert 0 < report.busy_frac["infer"] <= 1.0
    assert pipeline.config is config
    monkeypatch.setattr(runtime, "choose_threads", lambda *args, **kw: (2, "measured (test)"))
    with Pipeline(small_config("infer_worker=thread", "model.threads=null")) as pipeline:
        assert pipeline.backend.describe().threads == 2
        assert pipeline.threads_why == "measured (test): 2 intra-op threads"
