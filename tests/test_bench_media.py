"""Benchmark clips: the synthetic scene in H.264, cached by its parameters, re-encoded when
damaged; ``--source clip720p`` resolves to one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from bench import media
from bench.pipeline_run import source_config
from core.errors import ConfigError
from core.synthetic import SceneConfig
from tests.required_tools import require_module

TINY: dict[str, Any] = {
    "width": 160,
    "height": 96,
    "fps": 10,
    "seconds": 1,
    "gop": 5,
    "bitrate": 200_000,
}
"""Ten frames, keyframes at 0 and 5."""


def decoded(path: Path) -> list[Any]:
    av = require_module("av")
    with av.open(str(path)) as container:
        return [frame for frame in container.decode(video=0)]


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Frame counts of the clips encoded while the test runs."""
    seen: list[int] = []
    encode = media._encode

    def counting(scene: SceneConfig, frames: int, *args: Any) -> bytes:
        seen.append(frames)
        return encode(scene, frames, *args)

    monkeypatch.setattr(media, "_encode", counting)
    return seen


def test_a_clip_decodes_to_its_frames_with_its_scene_beside_it(tmp_path: Path) -> None:
    progress: list[float] = []
    path = media.synthetic_clip(**TINY, folder=tmp_path, progress=lambda f, _: progress.append(f))
    assert path.name == "synthetic-v1-160x96-10fps-1s-gop5-200000bps-seed0.mp4"
    frames = decoded(path)
    assert len(frames) == 10
    assert {(f.width, f.height) for f in frames} == {(160, 96)}
    assert [i for i, f in enumerate(frames) if f.key_frame] == [0, 5]
    assert progress[-1] == 1.0
    facts = json.loads(path.with_suffix(".json").read_text())
    assert SceneConfig(**facts["scene"]) == SceneConfig(width=160, height=96, fps=10)
    assert (facts["frames"], facts["gop"], facts["bitrate"]) == (10, 5, 200_000)
    digest = path.with_name(path.name + ".sha256").read_text().strip()
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_clip_is_reused_and_reencoded_when_damaged(tmp_path: Path, encodes: list[int]) -> None:
    path = media.synthetic_clip(**TINY, folder=tmp_path)
    assert media.synthetic_clip(**TINY, folder=tmp_path) == path
    path.with_suffix(".json").unlink()  # the scene file alone is rewritten, not the clip
    media.synthetic_clip(**TINY, folder=tmp_path)
    assert path.with_suffix(".json").is_file()
    assert encodes == [10]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    media.synthetic_clip(**TINY, folder=tmp_path)
    assert encodes == [10, 10]
    path.write_bytes(bytes(data[:100]))
    media.synthetic_clip(**TINY, folder=tmp_path)
    assert encodes == [10, 10, 10] and len(decoded(path)) == 10


def test_every_parameter_names_its_own_clip(tmp_path: Path) -> None:
    base = media.clip_name(160, 96, 10, 1, gop=5, bitrate=200_000)
    others = {
        media.clip_name(162, 96, 10, 1, gop=5, bitrate=200_000),
        media.clip_name(160, 98, 10, 1, gop=5, bitrate=200_000),
        media.clip_name(160, 96, 12, 1, gop=5, bitrate=200_000),
        media.clip_name(160, 96, 10, 2, gop=5, bitrate=200_000),
        media.clip_name(160, 96, 10, 1, gop=6, bitrate=200_000),
        media.clip_name(160, 96, 10, 1, gop=5, bitrate=300_000),
        media.clip_name(160, 96, 10, 1, gop=5, bitrate=200_000, seed=1),
    }
    assert base not in others and len(others) == 7
    with pytest.raises(ConfigError, match="even width and height"):
        media.synthetic_clip(**{**TINY, "width": 161}, folder=tmp_path)
    with pytest.raises(ConfigError, match="gop"):
        media.synthetic_clip(**{**TINY, "gop": 0}, folder=tmp_path)


def test_source_clip720p_is_the_named_clip_looped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert media.CLIPS["clip720p"] == {
        "width": 1280,
        "height": 720,
        "fps": 30,
        "seconds": 20,
        "gop": 30,
        "bitrate": 4_000_000,
    }
    monkeypatch.setenv("EDGELOOP_CACHE", str(tmp_path))
    monkeypatch.setitem(media.CLIPS, "clip720p", TINY)  # the real one takes seconds to encode
    config = source_config("clip720p")
    assert (config.kind, config.loop) == ("file", True)
    assert Path(config.uri) == tmp_path / "clips" / media.clip_name(**TINY)
    assert source_config("synthetic").kind == "synthetic"
