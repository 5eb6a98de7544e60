"""The synthetic camera as a source: rendered straight into the ring slot, with ground truth.

The embedded default stream of ``bench`` and the tests: no file, no device, any size, and every
frame a pure function of its index (:mod:`core.synthetic`), so ``start_index`` costs nothing and
two runs see the same pixels. It never ends and never stalls.

>>> from core.sources import SourceConfig, open_source
>>> import numpy as np
>>> with open_source(SourceConfig(width=160, height=90, start_index=5), stream_id=0) as src:
...     out = np.empty((*src.open(), 3), np.uint8)
...     frame = src.read_into(out)
>>> src.name, frame.index, frame.truth is not None
('synthetic:0', 5, True)
"""

from __future__ import annotations

import numpy as np

from core.sources.base import Source, SourceConfig, SourceFrame
from core.synthetic import SceneConfig, SyntheticCamera


def scene_config(config: SourceConfig) -> SceneConfig:
    """The synthetic scene a source config describes (its size, rate, seed and objects): what
    anything else that renders the same stream (a naive baseline, a replay) should use."""
    return SceneConfig(
        width=config.width,
        height=config.height,
        fps=config.fps,
        seed=config.seed,
        max_objects=config.max_objects,
        quiet_fraction=config.quiet_fraction,
    )


class SyntheticSource(Source):
    """Frames of :class:`core.synthetic.SyntheticCamera` (built in :meth:`open`: about a
    second at 1080p to pre-render the background and noise, so not in the constructor)."""

    def __init__(self, config: SourceConfig, stream_id: int) -> None:
        super().__init__(config, stream_id)
        self.camera: SyntheticCamera | None = None

    def describe(self) -> str:
        return f"synthetic:{self.stream_id}"

    def open(self) -> tuple[int, int]:
        if self.camera is None:
            self.camera = SyntheticCamera(scene_config(self.config))
        return self._opened((self.config.height, self.config.width))

    @property
    def nominal_fps(self) -> float:
        return self.config.fps

    def read_into(self, out: np.ndarray) -> SourceFrame:
        self._check_out(out)
        assert self.camera is not None  # _check_out raised otherwise
        truth = self.camera.render_into(self._next_index, out)
        return self._delivered(truth=truth)

    def seek(self, index: int) -> bool:
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        self._next_index = int(index)
        return True

    def has_ground_truth(self) -> bool:
        return True
