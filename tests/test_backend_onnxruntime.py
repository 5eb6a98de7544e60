"""The ONNX Runtime backend against bare ``InferenceSession.run``: same numbers, no copies, no
allocations in steady state, the batch planning, ``describe()``, timings, and bad model files.
"""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from core.backends import BatchPlan, open_backend
from core.backends.onnxruntime import OnnxRuntimeBackend, session_options
from core.errors import (
    BackendUnavailableError,
    ConfigError,
    FrameError,
    ModelError,
    ModelNotFoundError,
)
from core.models.classifier import classifier_path
from core.preprocess import PreprocessSpec, preprocess_into
from core.sample_media import scene_image
from tests.onnx_models import conv_model, identity_model, random_images


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return classifier_path(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def classifier_backend(classifier: Path) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(
        classifier, threads=1, batch_size=4, providers=["CPUExecutionProvider"]
    )


def bare_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"])


def cpu_backend(path: Path, **options: object) -> OnnxRuntimeBackend:
    options.setdefault("threads", 1)
    return OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"], **options)  # type: ignore[arg-type]


# -- same results as bare ONNX Runtime ---------------------------------------------------------


def test_classifier_outputs_equal_bare_onnxruntime_exactly(
    classifier: Path, classifier_backend: OnnxRuntimeBackend
) -> None:
    spec = classifier_backend.preprocess_spec(PreprocessSpec.imagenet())
    batch = classifier_backend.input_buffer(4)
    for i in range(4):
        preprocess_into(scene_image(120, 200, seed=i), batch[i], spec)
    bare = bare_session(classifier)
    for n in (1, 3, 4):
        (ours,) = classifier_backend.infer(n)
        (expected,) = bare.run(None, {"images": batch[:n]})
        assert ours.shape == (n, 1000)
        np.testing.assert_array_equal(ours, expected)


def test_tiny_model_both_outputs_equal_bare_run(tmp_path: Path) -> None:
    path = conv_model(tmp_path / "conv.onnx")
    backend = cpu_backend(path, batch_size=3)
    backend.input_buffer()[:] = random_images((3, 3, 32, 32))
    features, pooled = backend.infer()
    expected = bare_session(path).run(None, {"images": backend.input_buffer()})
    assert features.shape == (3, 4, 16, 16) and pooled.shape == (3, 4)
    np.testing.assert_array_equal(features, expected[0])
    np.testing.assert_array_equal(pooled, expected[1])


# -- zero copy, no allocation --------------------------------------------------------------


def test_the_session_reads_the_buffer_preprocess_wrote(
    classifier_backend: OnnxRuntimeBackend,
) -> None:
    buffer = classifier_backend.input_buffer(1)
    assert buffer is classifier_backend.input_buffer(1)  # made once, at load time
    bound = [v.data_ptr() for v in classifier_backend._keep]
    assert buffer.ctypes.data in bound  # the OrtValue ONNX Runtime reads wraps this memory
    spec = classifier_backend.preprocess_spec(PreprocessSpec.imagenet())
    preprocess_into(scene_image(90, 160, seed=1), buffer[0], spec)
    first = classifier_backend.infer(1)[0].copy()
    preprocess_into(scene_image(90, 160, seed=2), buffer[0], spec)  # in place, nothing else
    second = classifier_backend.infer(1)[0]
    assert not np.array_equal(first, second)


def test_outputs_are_the_same_preallocated_views_every_call(
    classifier_backend: OnnxRuntimeBackend,
) -> None:
    a = classifier_backend.infer(2)
    b = classifier_backend.infer(2)
    assert a is b and a[0] is b[0]
    assert a[0].base is classifier_backend.infer(4)[0].base


def test_steady_state_calls_allocate_nothing(tmp_path: Path) -> None:
    backend = cpu_backend(conv_model(tmp_path / "conv.onnx", ("batch", 3, 64, 64)), batch_size=4)

    def calls() -> None:
        for _ in range(200):
            backend.input_buffer(4)
            backend.infer(4)
            backend.infer(1)

    tracemalloc.start()
    try:
        calls()  # pybind11 and ONNX Runtime fill their caches on the first traced calls
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        calls()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One call's outputs are 4*4*32*32*4 = 64 KiB: nothing of that size is made, nothing kept.
    assert after - before < 256, after - before
    assert peak - before < 2048, peak - before


# -- input slots ------------------------------------------------------------------------------


def test_input_slots_have_their_own_buffers_and_outputs(tmp_path: Path) -> None:
    path = conv_model(tmp_path / "conv.onnx")
    backend = cpu_backend(path, batch_size=3, input_slots=2)
    assert backend.input_slots == 2 and backend.describe().input_slots == 2
    a, b = backend.input_buffer(3, slot=0), backend.input_buffer(3, slot=1)
    assert a.ctypes.data != b.ctypes.data  # distinct memory: fill one while the other runs
    a[:] = random_images((3, 3, 32, 32), seed=1)
    b[:] = random_images((3, 3, 32, 32), seed=2)
    bare = bare_session(path)
    out0 = backend.infer(3, slot=0)
    out1 = backend.infer(3, slot=1)
    assert out0[1] is not out1[1] and out0[1].base is not out1[1].base
    # Running slot 1 left slot 0's outputs alone: both read back exactly as bare runs.
    np.testing.assert_array_equal(out0[1], bare.run(["pooled"], {"images": a})[0])
    np.testing.assert_array_equal(out1[1], bare.run(["pooled"], {"images": b})[0])
    assert backend.infer(2, slot=1)[1] is backend.infer(2, slot=1)[1]  # views made at load


def test_input_slots_of_a_fixed_batch_model(tmp_path: Path) -> None:
    path = conv_model(tmp_path / "fixed2.onnx", (2, 3, 32, 32))
    backend = cpu_backend(path, batch_size=3, input_slots=3)
    images = random_images((3, 3, 3, 32, 32), seed=4)
    for slot in range(3):
        backend.input_buffer(3, slot=slot)[:] = images[slot]
    bare = bare_session(path)
    for slot in (2, 0, 1):  # any order: each slot runs its own bindings
        (_, pooled) = backend.infer(3, slot=slot)
        padded = np.concatenate([images[slot], np.zeros((1, 3, 32, 32), np.float32)])
        expected = np.concatenate(
            [bare.run(["pooled"], {"images": padded[i : i + 2]})[0] for i in (0, 2)]
        )
        np.testing.assert_array_equal(pooled, expected[:3])


def test_slots_outside_the_range_are_refused(tmp_path: Path) -> None:
    backend = cpu_backend(conv_model(tmp_path / "conv.onnx"), input_slots=2)
    with pytest.raises(FrameError, match=r"input slot 2 does not exist.*input_slots"):
        backend.infer(1, slot=2)
    with pytest.raises(FrameError, match="input slot -1"):
        backend.input_buffer(1, slot=-1)
    with pytest.raises(ConfigError, match="input_slots must be an int >= 1"):
        cpu_backend(conv_model(tmp_path / "conv.onnx"), input_slots=0)


def test_slotted_steady_state_allocates_nothing(tmp_path: Path) -> None:
    path = conv_model(tmp_path / "conv.onnx", ("batch", 3, 64, 64))
    backend = cpu_backend(path, batch_size=2, input_slots=2)

    def calls() -> None:
        for i in range(200):
            backend.input_buffer(2, slot=i % 2)
            backend.infer(2, slot=i % 2)

    tracemalloc.start()
    try:
        calls()
        before, _ = tracemalloc.get_traced_memory()
        calls()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 256, after - before


# -- batch planning ---------------------------------------------------------------------------


def test_fixed_batch_models_are_split_and_padded(tmp_path: Path) -> None:
    path = conv_model(tmp_path / "fixed2.onnx", (2, 3, 32, 32))
    backend = cpu_backend(path, batch_size=5)
    assert backend.plan == BatchPlan(model_batch=2, capacity=5)
    assert backend.describe().input_shape == (6, 3, 32, 32)  # three runs of 2
    images = random_images((6, 3, 32, 32), seed=3)
    backend.input_buffer()[:] = images[:5]
    bare = bare_session(path)
    padded = images.copy()
    padded[5] = backend._input[5]  # the padding row is whatever the buffer holds
    expected = np.concatenate(
        [bare.run(["pooled"], {"images": padded[i : i + 2]})[0] for i in (0, 2, 4)]
    )
    features, pooled = backend.infer(5)
    assert pooled.shape == (5, 4) and features.shape == (5, 4, 16, 16)
    np.testing.assert_array_equal(pooled, expected[:5])
    (_, one) = backend.infer(1)
    np.testing.assert_array_equal(one, expected[:1])


def test_model_batch_larger_than_the_capacity(tmp_path: Path) -> None:
    backend = cpu_backend(conv_model(tmp_path / "fixed4.onnx", (4, 3, 32, 32)), batch_size=1)
    assert backend.input_buffer().shape == (1, 3, 32, 32)
    assert backend._input.shape == (4, 3, 32, 32)
    assert backend.infer()[1].shape == (1, 4)


def test_batch_plan_chunks() -> None:
    assert BatchPlan(None, 8).chunks(8) == ((0, 8),)
    assert BatchPlan(1, 3).chunks(3) == ((0, 1), (1, 1), (2, 1))
    assert BatchPlan(1, 3).run_sizes == (1,)
    assert BatchPlan(None, 3).run_sizes == (1, 2, 3)
    with pytest.raises(FrameError):
        BatchPlan(None, 2).chunks(3)
    with pytest.raises(ConfigError):
        BatchPlan(None, 0)


def test_batches_outside_the_capacity_are_refused(classifier_backend: OnnxRuntimeBackend) -> None:
    with pytest.raises(FrameError, match=r"1\.\.4"):
        classifier_backend.infer(5)
    with pytest.raises(FrameError):
        classifier_backend.input_buffer(0)


def test_dynamic_height_and_width_take_the_configured_size(tmp_path: Path) -> None:
    path = conv_model(tmp_path / "dyn.onnx", ("n", 3, "h", "w"))
    assert cpu_backend(path, warmup_runs=0).input_size == (640, 640)
    backend = cpu_backend(path, input_size=(64, 96))
    assert backend.input_buffer().shape == (1, 3, 64, 96)
    assert backend.infer()[0].shape == (1, 4, 32, 48)
    spec = backend.preprocess_spec(PreprocessSpec.yolo())
    assert spec.size == (64, 96) and spec.mode == "letterbox"


def test_a_fixed_size_model_refuses_another_size(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"'images' is fixed at \[batch, 3, 32, 32\]"):
        cpu_backend(conv_model(tmp_path / "m.onnx"), input_size=64)


def test_float16_models_get_a_float16_buffer(tmp_path: Path) -> None:
    backend = cpu_backend(conv_model(tmp_path / "h.onnx", float16=True), batch_size=2)
    assert backend.input_dtype == np.float16
    spec = backend.preprocess_spec(PreprocessSpec.yolo())
    assert spec.dtype == "float16"
    preprocess_into(scene_image(40, 40), backend.input_buffer()[1], spec)
    assert backend.infer()[1].dtype == np.float16
    assert backend.describe().precision == "fp16"


# -- describe and timings ---------------------------------------------------------------------


def test_describe(classifier: Path, classifier_backend: OnnxRuntimeBackend) -> None:
    info = classifier_backend.describe()
    assert info.name == "onnxruntime" and info.version == ort.__version__
    assert info.provider == "CPUExecutionProvider" and info.precision == "fp32"
    assert info.model == str(classifier)
    assert info.model_sha256 == hashlib.sha256(classifier.read_bytes()).hexdigest()
    assert [(t.name, t.shape, t.dtype) for t in info.inputs] == [
        ("images", ("batch", 3, 224, 224), "float32")
    ]
    assert [(t.name, t.dtype) for t in info.outputs] == [("logits", "float32")]
    assert info.input_shape == (4, 3, 224, 224) and info.output_shapes == ((4, 1000),)
    assert info.model_batch is None and info.threads == 1
    assert info.extra["io_binding"] is True
    json.dumps(info.as_dict())  # JSON-ready


def test_load_first_inference_and_warmup_times_are_exposed(
    classifier_backend: OnnxRuntimeBackend,
) -> None:
    t = classifier_backend.timings
    assert t.load_s > 0 and t.first_inference_s > 0 and t.warmup_s > 0
    assert t.warmup_runs == 3 and t.engine_build_s is None


def test_open_backend_by_reference_name_and_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGELOOP_CACHE", str(tmp_path))
    backend = open_backend("classifier", "auto", threads=1, warmup_runs=0)
    assert backend.name == "onnxruntime"
    assert Path(backend.describe().model).parent == tmp_path / "models"
    assert backend.timings.warmup_runs == 0


# -- what cannot run ----------------------------------------------------------------------------


def test_unavailable_provider_and_precision(classifier: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
        OnnxRuntimeBackend(classifier, providers=["CUDAExecutionProvider"]) if (
            "CUDAExecutionProvider" not in ort.get_available_providers()
        ) else pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(BackendUnavailableError, match="precision='fp16' needs the tensorrt"):
        cpu_backend(classifier, precision="fp16")
    with pytest.raises(ConfigError):
        cpu_backend(classifier, precision="fp8")
    with pytest.raises(ConfigError, match="threads"):
        cpu_backend(classifier, threads=0)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="model file not found") as info:
        cpu_backend(tmp_path / "nope.onnx")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        open_backend(tmp_path / "nope.onnx", "onnxruntime")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "not an ONNX model"),
        (b"hello, I am a text file\n", "not an ONNX model"),
        (b"\x08\x07\x12\x08edgeloop", "not an ONNX model"),  # a header, then no graph at all
    ],
)
def test_files_that_are_not_onnx(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as info:
        cpu_backend(path)
    assert isinstance(info.value, ValueError) and str(path) in str(info.value)


def test_a_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="folder"):
        cpu_backend(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_model(tmp_path: Path, classifier: Path, keep: float) -> None:
    data = classifier.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelError, match="truncated"):
        cpu_backend(path)


def test_corrupt_inside_is_reported_with_the_runtime_message(tmp_path: Path) -> None:
    data = bytearray(conv_model(tmp_path / "ok.onnx").read_bytes())
    start = data.index(b"Conv")
    data[start : start + 4] = b"Vnoc"  # an operator that does not exist
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"could not be loaded.*Vnoc"):
        cpu_backend(path)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([("tokens", ("batch", 224, 224))], r"'tokens' has shape \[batch, 224, 224\] \(rank 3\)"),
        ([("gray", (1, 1, 224, 224))], r"'gray' has shape \[1, 1, 224, 224\]: 1 channels"),
        ([("nhwc", (1, 224, 224, 3))], r"'nhwc' has shape \[1, 224, 224, 3\].*channels-last"),
        ([("a", (1, 3, 8, 8)), ("b", (1, 3, 8, 8))], r"has 2 inputs \(a\[1, 3, 8, 8\] float32"),
    ],
)
def test_inputs_the_pipeline_cannot_feed(
    tmp_path: Path, inputs: list[tuple[str, tuple[int | str, ...]]], message: str
) -> None:
    path = identity_model(tmp_path / "m.onnx", inputs)
    with pytest.raises(ModelError, match=message):
        cpu_backend(path)


def test_outputs_must_lead_with_the_batch(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0)],
        "sum",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    path = tmp_path / "sum.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match=r"output 'total' \[\] came out as \[\] for a batch of 1"):
        cpu_backend(path)


def test_integer_inputs_other_than_uint8_pixels_are_refused(tmp_path: Path) -> None:
    path = identity_model(
        tmp_path / "i32.onnx", [("raw", (1, 3, 8, 8))], elem_type=TensorProto.INT32
    )
    with pytest.raises(ModelError, match=r"'raw' \[1, 3, 8, 8\] takes int32"):
        cpu_backend(path)


def test_a_uint8_input_takes_pixels_as_they_are(tmp_path: Path) -> None:
    path = identity_model(
        tmp_path / "u8.onnx", [("pixels", (1, 3, 8, 8))], elem_type=TensorProto.UINT8
    )
    with cpu_backend(path) as backend:
        assert backend.input_buffer().dtype == np.uint8
        spec = backend.preprocess_spec(PreprocessSpec(8, scale=1.0))
        assert spec.dtype == "uint8"
        frame = np.full((16, 16, 3), 200, np.uint8)
        preprocess_into(frame, backend.input_buffer()[0], spec)
        (out,) = backend.infer()
        assert out.dtype == np.uint8 and (out == 200).all()
        with pytest.raises(ConfigError, match="a uint8 input takes pixels as they are"):
            backend.preprocess_spec(PreprocessSpec(8))  # 0..1 cannot be uint8
