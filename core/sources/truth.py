"""Ground truth beside a recording: what is really in each frame of a video file.

A recorded clip carries no truth of its own, so accuracy (``map50``) and the filter's
``relevant_recall`` could be measured only on the synthetic camera. A sidecar file gives a
file source the same per-frame :class:`~core.detections.GroundTruth` the synthetic camera
renders, by the frame's position in the file (a looping file starts again at position 0):

.. code-block:: json

    {"schema": "edgeloop.truth/1", "classes": ["person", "car"], "width": 1920,
     "height": 1080, "frames": 300,
     "objects": [[0, 1, 12.0, 40.5, 220.0, 180.0, 0.0], ...]}

``objects`` holds one row per object: frame position, class id (an index into ``classes``),
x1, y1, x2, y2 in frame pixels, and the fraction of the object hidden (0 when unknown).
``frames`` is how many frames the truth covers: a frame past it is an error, never a frame
with nothing in it. The sidecar of ``clip.mp4`` is ``clip.truth.json`` by convention
(:func:`truth_path_for`); ``SourceConfig.truth`` names it.

>>> import tempfile, numpy as np
>>> from core.detections import GroundTruth
>>> box = np.array([[1, 2, 30, 40]], np.float32)
>>> one = GroundTruth(box, np.array([1]), np.zeros(1, np.float32))
>>> none = GroundTruth(box[:0], np.zeros(0, np.int64), np.zeros(0, np.float32))
>>> path = Path(tempfile.mkdtemp()) / "clip.truth.json"
>>> _ = write_truth(path, ("person", "car"), (64, 48), [none, one])
>>> track = TruthTrack.load(path)
>>> track.frames, track.classes, track.at(1).boxes.tolist(), len(track.at(0).classes)
(2, ('person', 'car'), [[1.0, 2.0, 30.0, 40.0]], 0)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.cache import atomic_write_bytes
from core.detections import GroundTruth
from core.errors import SourceError

__all__ = ["SCHEMA", "TruthTrack", "truth_path_for", "write_truth"]

SCHEMA = "edgeloop.truth/1"
_COLUMNS = 7  # frame, class, x1, y1, x2, y2, occluded


def truth_path_for(video: str | Path) -> Path:
    """Where a recording's truth sidecar lies by convention: ``clip.mp4`` -> ``clip.truth.json``."""
    path = Path(video)
    return path.with_name(path.stem + ".truth.json")


class TruthTrack:
    """A loaded sidecar: ``classes``, the frame size it was made for, and each frame's truth."""

    def __init__(
        self,
        path: Path,
        classes: tuple[str, ...],
        size: tuple[int, int],
        rows: np.ndarray,
        frames: int,
    ) -> None:
        self.path = path
        self.classes = classes
        self.width, self.height = size
        self.frames = frames
        order = np.argsort(rows[:, 0], kind="stable")
        rows = rows[order]
        self._starts = np.searchsorted(rows[:, 0], np.arange(frames + 1))
        self._boxes = np.ascontiguousarray(rows[:, 2:6], np.float32)
        self._classes = rows[:, 1].astype(np.int64)
        self._occluded = np.ascontiguousarray(rows[:, 6], np.float32)

    @classmethod
    def load(cls, path: str | Path) -> TruthTrack:
        """Read and check a sidecar; :class:`~core.errors.SourceError` naming the file and what
        is wrong with it (missing, not JSON, another schema, a row out of range)."""
        path = Path(path)
        try:
            doc = json.loads(path.read_bytes())
        except OSError as exc:
            raise SourceError(f"truth {path}: cannot read it ({exc.strerror or exc})") from exc
        except ValueError as exc:
            raise SourceError(f"truth {path}: not JSON ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise SourceError(f"truth {path}: schema {found!r}, expected {SCHEMA!r}")
        try:
            classes = tuple(str(name) for name in doc["classes"])
            size = (int(doc["width"]), int(doc["height"]))
            frames = int(doc["frames"])
            rows = np.asarray(doc["objects"], np.float64).reshape(-1, _COLUMNS)
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(
                f"truth {path}: needs classes, width, height, frames and objects rows of "
                f"{_COLUMNS} numbers ({type(exc).__name__}: {exc})"
            ) from exc
        _check_rows(path, rows, len(classes), frames)
        return cls(path, classes, size, rows, frames)

    def at(self, position: int) -> GroundTruth:
        """The truth of the frame at ``position`` in the file (0: its first frame)."""
        if not 0 <= position < self.frames:
            raise SourceError(
                f"truth {self.path}: covers {self.frames} frames, the video has a frame at "
                f"position {position} (a sidecar made for another recording?)"
            )
        start, end = self._starts[position], self._starts[position + 1]
        return GroundTruth(
            self._boxes[start:end].copy(),
            self._classes[start:end].copy(),
            self._occluded[start:end].copy(),
        )


def _check_rows(path: Path, rows: np.ndarray, classes: int, frames: int) -> None:
    if frames < 1:
        raise SourceError(f"truth {path}: frames must be at least 1, got {frames}")
    if not np.isfinite(rows).all():
        raise SourceError(f"truth {path}: an object row holds a value that is not finite")
    bad: list[str] = []
    if ((rows[:, 0] < 0) | (rows[:, 0] >= frames) | (rows[:, 0] % 1 != 0)).any():
        bad.append(f"a frame position outside 0..{frames - 1}")
    if ((rows[:, 1] < 0) | (rows[:, 1] >= classes) | (rows[:, 1] % 1 != 0)).any():
        bad.append(f"a class id outside 0..{classes - 1}")
    if ((rows[:, 4] < rows[:, 2]) | (rows[:, 5] < rows[:, 3])).any():
        bad.append("a box whose x2 < x1 or y2 < y1")
    if ((rows[:, 6] < 0) | (rows[:, 6] > 1)).any():
        bad.append("an occluded fraction outside 0..1")
    if bad:
        raise SourceError(f"truth {path}: {'; '.join(bad)}")


def write_truth(
    path: str | Path,
    classes: Sequence[str],
    size: tuple[int, int],
    truths: Sequence[GroundTruth],
) -> Path:
    """Write the sidecar for frames ``truths`` (one per frame, in order) of a ``size``
    (width, height) recording, atomically."""
    rows: list[list[Any]] = []
    for position, truth in enumerate(truths):
        for box, cls, occluded in zip(truth.boxes, truth.classes, truth.occluded, strict=True):
            rows.append(
                [position, int(cls), *(round(float(v), 2) for v in box), round(float(occluded), 3)]
            )
    doc = {
        "schema": SCHEMA,
        "classes": list(classes),
        "width": int(size[0]),
        "height": int(size[1]),
        "frames": len(truths),
        "objects": rows,
    }
    text = json.dumps(doc, separators=(",", ":")).replace("],[", "],\n[")
    return atomic_write_bytes(Path(path), (text + "\n").encode())
