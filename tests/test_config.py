"""core.config: YAML + overrides -> typed, validated dataclasses; errors point at the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from core.config import apply_overrides, from_mapping, in_range, load, positive, to_mapping
from core.errors import ConfigError


@dataclass(frozen=True)
class Motion:
    enabled: bool = True
    threshold: int = field(default=25, metadata={"check": in_range(0, 255)})


@dataclass(frozen=True)
class Source:
    kind: Literal["synthetic", "file"] = "synthetic"
    uri: str | None = None
    size: tuple[int, int] = (1080, 1920)


@dataclass(frozen=True)
class Demo:
    sources: tuple[Source, ...] = (Source(),)
    motion: Motion = Motion()
    fps: float = field(default=30.0, metadata={"check": positive})
    classes: list[str] = field(default_factory=list)
    out: Path = Path("out")


def test_defaults_run_without_any_file() -> None:
    assert load(Demo) == Demo()


def test_yaml_and_overrides_build_typed_objects(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "sources:\n  - kind: file\n    uri: a.mp4\n  - size: [480, 640]\nmotion:\n  threshold: 9\n"
    )
    config = load(Demo, path, ["fps=15", "motion.enabled=false", "classes=[car, bus]"])
    assert config.sources == (Source("file", "a.mp4"), Source(size=(480, 640)))
    assert config.motion == Motion(enabled=False, threshold=9)
    assert config.fps == 15.0 and isinstance(config.fps, float)
    assert config.classes == ["car", "bus"]
    assert to_mapping(config)["sources"][1]["size"] == [480, 640]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"motion": {"threshold": 300}}, r"motion\.threshold: must be between 0 and 255"),
        ({"motion": {"treshold": 3}}, r"motion\.treshold: unknown key; known keys here are"),
        ({"fps": 0}, r"fps: must be > 0"),
        ({"fps": "fast"}, r"fps: must be a number"),
        ({"motion": {"enabled": "yes"}}, r"motion\.enabled: must be true or false"),
        (
            {"sources": [{"kind": "rtsp"}]},
            r"sources\[0\]\.kind: must be one of 'synthetic', 'file'",
        ),
        ({"sources": [{"size": [1, 2, 3]}]}, r"sources\[0\]\.size: must have 2 items"),
        ({"motion": 5}, r"motion: must be a mapping"),
    ],
)
def test_errors_point_at_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        from_mapping(Demo, data)
    assert isinstance(info.value, ValueError)


def test_bad_files_and_overrides_name_the_cause(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(Demo, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("motion: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(Demo, bad)
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        apply_overrides({}, ["fps"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"fps": 3}, ["fps.x=1"])
