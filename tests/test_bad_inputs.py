"""Bad models and sources meet the same checks on every path that opens them: ``bench pipeline``
(its naive loop included), the naive loop on its own, and the pipeline API. A truncated model, a
text file named ``.onnx`` and a missing file are :class:`~core.errors.ModelError`; a truncated
or empty MP4 is :class:`~core.errors.SourceError`; the bench command exits 2 with one line."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import cli, naive
from bench.cli import main
from core.errors import ModelError, ModelNotFoundError, SourceError
from core.models import reference_model_path
from core.pipeline import Pipeline, load_pipeline_config
from tests.onnx_models import conv_model
from tests.sample_videos import write_video

MODELS = {
    "truncated": (ModelError, "ONNX model file is truncated"),
    "text": (ModelError, "not an ONNX model"),
    "missing": (ModelNotFoundError, "model file not found"),
}
SOURCES = {
    "truncated-mp4": (SourceError, r"cannot open: .*(Invalid data|moov)"),
    "empty-mp4": (SourceError, r"the file is empty \(0 bytes\)"),
}


def _bad_model(case: str, folder: Path) -> Path:
    path = folder / f"{case}.onnx"
    if case == "truncated":  # an interrupted copy: the first 30 % of the reference detector
        data = reference_model_path("detector").read_bytes()
        path.write_bytes(data[: len(data) * 3 // 10])
    elif case == "text":
        path.write_text("a text file renamed to .onnx\n" * 20)
    return path  # "missing": never written


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short, complete H.264 MP4 (its index, the ``moov`` atom, at the end)."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", "h264", 30)


def _bad_source(case: str, folder: Path, video: Path) -> Path:
    path = folder / f"{case}.mp4"
    data = video.read_bytes()
    path.write_bytes(data[: len(data) * 4 // 10] if case == "truncated-mp4" else b"")
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# -- bench pipeline: the naive loop runs first, so it meets the input first ---------------------


@pytest.mark.parametrize("case", list(MODELS))
def test_bench_pipeline_refuses_a_bad_model_with_status_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error, words = MODELS[case]
    model = _bad_model(case, tmp_path)
    argv = ["pipeline", "--model", str(model), "--quick", "--quiet", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"bench: error: {error.__name__}: {words}") and str(model) in line


@pytest.mark.parametrize("case", list(SOURCES))
def test_bench_pipeline_refuses_a_bad_source_with_status_2(
    case: str, tmp_path: Path, video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error, words = SOURCES[case]
    source = _bad_source(case, tmp_path, video)
    argv = ["pipeline", "--source", str(source), "--quick", "--quiet", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert re.match(
        rf"bench: error: {error.__name__}: file:{re.escape(str(source))}: {words}", line
    ), line


def test_a_source_error_anywhere_in_a_command_is_one_line_and_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(args: object) -> None:
        raise SourceError("file:x.mp4: cannot open:\n  two lines from a library")

    monkeypatch.setitem(cli.COMMANDS, "pipeline", fails)
    assert main(["pipeline", "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert line == "bench: error: SourceError: file:x.mp4: cannot open: two lines from a library"


# -- the naive loop on its own (bench pipeline checks before it; the loop checks again) ---------


def _file_stream(path: Path) -> SimpleNamespace:
    """A file stream as any object with SourceConfig's fields (the loop's StreamSpec)."""
    return SimpleNamespace(
        kind="file", uri=str(path), width=320, height=192, fps=30.0, seed=0,
        quiet_fraction=None, max_objects=3,
    )  # fmt: skip


@pytest.mark.parametrize("case", list(MODELS))
def test_the_naive_loop_checks_the_model_before_its_bare_session(
    case: str, tmp_path: Path, video: Path
) -> None:
    error, words = MODELS[case]
    with pytest.raises(error, match=words):
        naive.NaiveLoop(_bad_model(case, tmp_path), _file_stream(video))


def test_the_naive_loop_reports_a_session_that_fails_to_load_as_the_backends_do(
    tmp_path: Path, video: Path
) -> None:
    data = bytearray(conv_model(tmp_path / "ok.onnx").read_bytes())
    start = data.index(b"Conv")
    data[start : start + 4] = b"Vnoc"  # complete ONNX, but an operator that does not exist
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"could not be loaded \(corrupt.*Vnoc"):
        naive.NaiveLoop(path, _file_stream(video))


@pytest.mark.parametrize("case", list(SOURCES))
def test_the_naive_loop_opens_a_source_as_the_pipeline_does(
    case: str, tmp_path: Path, video: Path
) -> None:
    error, words = SOURCES[case]
    source = _bad_source(case, tmp_path, video)
    with pytest.raises(error, match=rf"^file:{re.escape(str(source))}: {words}"):
        naive.NaiveLoop("detector", _file_stream(source))


def test_the_naive_loop_still_reads_a_good_file_with_opencv(video: Path) -> None:
    loop = naive.NaiveLoop("detector", _file_stream(video))
    assert loop.read(1).shape == (192, 320, 3)


# -- the pipeline API ---------------------------------------------------------------------------


def _run(*overrides: str) -> None:
    config = load_pipeline_config(
        overrides=["model.backend=onnxruntime", "stop_timeout_s=3", *overrides]
    )
    with Pipeline(config) as pipeline:
        pipeline.run()


@pytest.mark.parametrize("case", list(MODELS))
def test_the_pipeline_refuses_a_bad_model(case: str, tmp_path: Path) -> None:
    error, words = MODELS[case]
    with pytest.raises(error, match=words):
        _run(f"model.model={_bad_model(case, tmp_path)}")


@pytest.mark.parametrize("case", list(SOURCES))
def test_the_pipeline_refuses_a_bad_source(case: str, tmp_path: Path, video: Path) -> None:
    error, words = SOURCES[case]
    source = _bad_source(case, tmp_path, video)
    with pytest.raises(error, match=rf"^file:{re.escape(str(source))}: {words}"):
        _run(f"sources=[{{kind: file, uri: {source}}}]")
