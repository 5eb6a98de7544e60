"""The device's model manager (core.app.models) around a running pipeline: an update is
downloaded, verified, loaded and swapped in; a bad candidate (wrong digest, NaN outputs,
too slow, another task) is refused at the step that catches it while the old model keeps
serving; a model that breaks a rule on probation is rolled back by itself, and one asked to
be; at start, an interrupted swap, a crash loop and a config that names another model are
each handled and said. Real registry folder, real ONNX Runtime, real pipeline."""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.degraded import batched_nan_variant, nan_variant
from core.app.config import ModelsConfig
from core.app.model_state import STATE_FILE, ModelState
from core.app.models import MODELS_DIR, ModelManager, Update, models_status
from core.metrics import MetricsRegistry
from core.models import reference_model_path
from core.models.classifier import classifier_path
from core.pipeline import Pipeline
from deploy.models.registry import open_registry
from tests.pipeline_doubles import small_config

SMALL = reference_model_path("detector-s")
LARGER = reference_model_path("detector-m")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gate 1.0.0 (detector-s), 1.1.0 (detector-m: 3-4 x the cost), 1.2.0 (detector-s whose
    outputs are NaN), 1.3.0 (detector-s that is NaN in batches only), 2.0.0 (a classifier):
    published once."""
    base = tmp_path_factory.mktemp("manager")
    root = base / "registry"
    registry = open_registry(f"file://{root}")
    registry.publish(SMALL, name="gate", version="1.0.0")
    registry.publish(LARGER, name="gate", version="1.1.0")
    nan = nan_variant(SMALL, base / "nan.onnx")
    registry.publish(nan, name="gate", version="1.2.0")
    batched = batched_nan_variant(SMALL, base / "batched-nan.onnx")
    registry.publish(batched, name="gate", version="1.3.0")
    registry.publish(classifier_path(), name="gate", version="2.0.0")
    return root


class Device:
    """A pipeline running on a thread, with a model manager, as the device app runs them: two
    synthetic streams at 30 fps in batches of two (a batch waits for its second frame, so the
    model that fails only in batches meets batches)."""

    def __init__(self, root: Path, state_dir: Path, **models: Any) -> None:
        self.registry_url = f"file://{root}"
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        config = ModelsConfig(**{"watch_s": 60.0, **models})
        self.manager = ModelManager(config, state_dir, MetricsRegistry(), self.events.put)
        pipeline_config, version = self.manager.startup(
            small_config("model.batch_size=2", "model.batch_timeout_ms=100", "rate=30", streams=2)
        )
        self.pipeline = Pipeline(pipeline_config, model_version=version)
        _ = self.pipeline.backend
        self.stop = threading.Event()
        self.versions: list[str] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        self.manager.attach(self.pipeline)

    def _run(self) -> None:
        from core.pipeline import FrameOutcome, RunObserver

        versions = self.versions

        class Seen(RunObserver):
            def on_frame(self, frame: FrameOutcome) -> None:
                versions.append(frame.model_version)

        self.pipeline.run(observers=[Seen()], stop=self.stop)

    def update(self, version: str, sha256: str | None = None) -> dict[str, Any]:
        self.manager.update(Update("gate", version, self.registry_url, sha256))
        return self.events.get(timeout=120)

    def serves(self, version: str, frames: int = 20) -> bool:
        """Whether ``frames`` frames in a row were served by ``version`` (waiting for them)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tail = self.versions[-frames:]
            if len(tail) == frames and set(tail) == {version}:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.manager.close()
        self.pipeline.close()


@pytest.fixture
def device(published: Path, tmp_path: Path) -> Iterator[Device]:
    root = tmp_path / "registry"
    shutil.copytree(published, root)
    made = Device(root, tmp_path / "state", max_latency_ratio=6.0)
    try:
        yield made
    finally:
        made.close()


def test_an_update_swaps_in_while_running_and_a_rollback_swaps_back(device: Device) -> None:
    base = device.pipeline.model_version
    assert device.serves(base)
    answer = device.update("1.1.0", _sha(LARGER))
    assert answer["type"] == "model-update" and answer["result"] == "applied", answer
    assert answer["version"] == "1.1.0" and answer["from"] == base
    assert set(answer["timings"]) == {"download_s", "verify_s", "load_s", "swap_s", "total_s"}
    assert answer["timings"]["swap_s"] < 1.0
    assert 2.0 < answer["cost_ratio"] < 6.0  # detector-m against detector-s
    assert device.serves("1.1.0") and device.pipeline.model_version == "1.1.0"
    status = models_status(device.manager.root)
    assert status["current"] == "1.1.0" and status["previous"] == base
    assert status["watch"]["version"] == "1.1.0" and status["on_disk"] == ["1.1.0"]

    device.manager.rollback("asked in a test")
    back = device.events.get(timeout=60)
    assert back["type"] == "model-rollback" and back["result"] == "applied", back
    assert back["version"] == base and back["from"] == "1.1.0"
    assert back["reason"] == "asked in a test"
    assert device.serves(base)
    status = models_status(device.manager.root)
    assert status["current"] is None and status["previous"] is None and status["watch"] is None
    device.manager.rollback("again")
    refused = device.events.get(timeout=60)
    assert refused["result"] == "refused" and "no earlier version" in refused["reason"]


@pytest.mark.parametrize(
    ("version", "step", "cause"),
    [
        ("1.0.0", "download", "wrong digest: asked for sha256 aaaaaaaaaaaa"),
        ("1.2.0", "verify", "output 0 holds NaN or infinity on the golden frames"),
        ("2.0.0", "load", "a classify model cannot take over from a detect model"),
        ("9.9.9", "download", "gate 9.9.9: not published"),
    ],
)
def test_a_bad_candidate_is_refused_at_its_step_and_the_old_model_keeps_serving(
    device: Device, version: str, step: str, cause: str
) -> None:
    base = device.pipeline.model_version
    digest = "a" * 64 if step == "download" and version == "1.0.0" else None
    answer = device.update(version, digest)
    assert answer["result"] == "refused" and answer["step"] == step, answer
    assert cause in answer["reason"]
    assert device.pipeline.model_version == base and device.serves(base)
    assert models_status(device.manager.root)["current"] is None


def test_a_candidate_slower_than_the_ratio_allows_is_refused(
    published: Path, tmp_path: Path
) -> None:
    root = tmp_path / "registry"
    shutil.copytree(published, root)
    device = Device(root, tmp_path / "state", max_latency_ratio=1.5)
    try:
        answer = device.update("1.1.0")
        assert answer["result"] == "refused" and answer["step"] == "latency", answer
        assert "over models.max_latency_ratio 1.5" in answer["reason"]
        assert device.serves(device.pipeline.model_version)
    finally:
        device.close()


def test_a_model_failing_on_probation_is_rolled_back_by_itself(device: Device) -> None:
    """1.3.0 passes every check (one image at a time it is detector-s) and fails on the live
    stream (NaN in batches of two): the error-rate rule swaps the old model back."""
    base = device.pipeline.model_version
    answer = device.update("1.3.0")
    assert answer["result"] == "applied", answer
    event = device.events.get(timeout=30)  # the rules are checked on the manager's thread
    assert event["type"] == "model-rollback" and event["result"] == "applied", event
    assert event["origin"] == "watch" and event["from"] == "1.3.0" and event["version"] == base
    assert "frames failed" in event["reason"] and "max_error_rate 5%" in event["reason"]
    assert device.serves(base)
    status = models_status(device.manager.root)
    assert status["current"] is None and status["last_decision"]["action"] == "rollback"


def _state(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / MODELS_DIR / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"schema": "edgeloop.models/1", "base": _sha(SMALL), "name": "gate", **fields}
    path.write_text(json.dumps(data))
    return path


def _start(tmp_path: Path) -> tuple[ModelManager, list[dict[str, Any]], Any, str | None]:
    events: list[dict[str, Any]] = []
    manager = ModelManager(ModelsConfig(), tmp_path, MetricsRegistry(), events.append)
    config, version = manager.startup(small_config())
    return manager, events, config, version


def test_at_start_the_updated_version_serves_and_a_crash_loop_rolls_back(
    published: Path, tmp_path: Path
) -> None:
    from core.models.library import ModelLibrary
    from core.models.store import open_store

    library = ModelLibrary(tmp_path / MODELS_DIR)
    for version in ("1.0.0", "1.1.0"):
        library.download(open_store(f"file://{published}"), "gate", version)
    watch = {"version": "1.1.0", "until": time.time() + 60, "starts": 1}
    _state(tmp_path, current="1.1.0", previous="1.0.0", watch=watch)
    _, events, config, version = _start(tmp_path)  # after one crash: still 1.1.0
    assert version == "1.1.0" and config.model.model.endswith("gate/1.1.0/model.onnx")
    assert events == [] and ModelState.load(tmp_path / MODELS_DIR / STATE_FILE).watch["starts"] == 2
    _, events, config, version = _start(tmp_path)  # after the second crash in a row
    assert version == "1.0.0" and config.model.model.endswith("gate/1.0.0/model.onnx")
    assert events[0]["type"] == "model-rollback"
    assert events[0]["reason"] == "1.1.0 crashed twice in a row on probation"


def test_at_start_an_interrupted_swap_or_another_configured_model_is_said(
    tmp_path: Path,
) -> None:
    _state(tmp_path, current=None, swap={"name": "gate", "from": None, "to": "1.1.0"})
    manager, events, config, version = _start(tmp_path)
    assert version is None and config.model.model == "detector"
    assert events[0]["type"] == "model-swap" and events[0]["result"] == "interrupted"
    assert "stopped during the swap to 1.1.0" in events[0]["reason"]
    assert manager.state.swap is None
    _state(tmp_path, base="0" * 64, current="1.1.0", previous=None)
    _, events, config, version = _start(tmp_path)
    assert version is None and events[0]["type"] == "model-config"
    assert "pipeline.model.model names another model" in events[0]["reason"]


def test_a_state_record_that_cannot_be_read_is_set_aside_and_the_configured_model_serves(
    tmp_path: Path,
) -> None:
    path = tmp_path / MODELS_DIR / STATE_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{torn")
    _, events, config, version = _start(tmp_path)
    assert version is None and config.model.model == "detector"
    assert events[0]["type"] == "model-state" and "cannot be read" in events[0]["reason"]
    assert path.with_name("state.json.corrupt").read_bytes() == b"{torn"


def _costs(frames: int, errors: int, latency_s: float, calls: int = 300) -> Any:
    """A model's counters as a run leaves them (a stand-in for a Serving)."""
    from types import SimpleNamespace

    from core.pipeline.serving import CallCosts

    costs = CallCosts()
    costs.decoded(frames, errors)
    for i in range(calls):
        wall = int(latency_s * (1 + 0.01 * (i % 7)) * 1e9)
        costs.add(1, wall, wall)
    return SimpleNamespace(version="x", costs=costs)


@pytest.mark.parametrize(
    ("new", "cause"),
    [
        (_costs(20, 20, 0.010), None),  # too few frames to judge
        (_costs(100, 2, 0.012), None),  # within both rules
        (_costs(100, 9, 0.010), "9 of 100 frames failed (9%), over models.max_error_rate 5%"),
        (_costs(100, 0, 0.020), "its p99 time per frame is 2.00 x the old model's"),
        (_costs(100, 0, 0.020, calls=150), None),  # too few calls to compare times
    ],
)
def test_the_probation_rules(new: Any, cause: str | None) -> None:
    from core.app.models import probation_breach

    old = _costs(1000, 0, 0.010)
    found = probation_breach(new, old, ModelsConfig())
    assert (found is None) == (cause is None) and (cause is None or cause in found), found
