"""Class names for a model: from its ONNX metadata, from a labels file, or the built-in COCO list.

>>> names_from_metadata({"names": "{0: 'person', 1: 'bicycle'}"})
('person', 'bicycle')
>>> names_from_metadata({"edgeloop": '{"class_names": ["car", "truck"]}'})
('car', 'truck')
>>> len(load_labels("coco")), load_labels("coco")[:3]
(80, ('person', 'bicycle', 'car'))
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path

from core.coco import COCO
from core.errors import ConfigError

EDGELOOP_KEY = "edgeloop"
"""The ONNX metadata key edgeloop's own exports write (JSON with ``class_names``)."""
ULTRALYTICS_NAMES = "names"
"""The key Ultralytics and YOLOv5 write: a Python dict literal ``{0: 'person', ...}``."""

BUILT_IN = {"coco": COCO}


def names_from_metadata(metadata: Mapping[str, str]) -> tuple[str, ...] | None:
    """The class names a model's metadata carries (edgeloop's key first, then Ultralytics'
    ``names``), or None when it carries none or they cannot be read."""
    raw = metadata.get(EDGELOOP_KEY)
    if raw:
        try:
            names = json.loads(raw).get("class_names")
        except (ValueError, AttributeError):
            names = None
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return tuple(names)
    raw = metadata.get(ULTRALYTICS_NAMES)
    if raw:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
        if isinstance(value, dict) and value and all(isinstance(k, int) for k in value):
            ordered = [value[k] for k in sorted(value)]
            if sorted(value) == list(range(len(value))):
                return tuple(str(n) for n in ordered)
        if isinstance(value, list) and value:
            return tuple(str(n) for n in value)
    return None


def load_labels(spec: str) -> tuple[str, ...]:
    """``coco`` (the built-in list) or a text file with one class name a line (blank lines
    and ``#`` comments skipped); :class:`ConfigError` naming the file otherwise."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"model.labels: {spec!r} is neither a built-in list ({', '.join(BUILT_IN)}) nor a "
            f"readable file ({exc.strerror or exc})"
        ) from None
    names = tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
    if not names:
        raise ConfigError(f"model.labels: {path} holds no class names (one a line)")
    return names
