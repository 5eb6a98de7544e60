"""A synthetic camera: moving objects of a few classes over a textured scene, with ground truth.

The embedded default source of ``bench`` and the tests (and later of HIL replays): no file, no
network, any resolution and frame rate, and every frame a pure function of ``(config, index)``,
so frame 10 000 costs what frame 0 costs (random access) and two runs see the same pixels.

What a frame holds, and why:

* a :func:`core.sample_media.scene_image` background (sky, textured ground) without its static
  shapes, so nothing in the background looks like an object class;
* up to ``max_objects`` objects, each class a distinct shape in its own colour family
  (:data:`CLASS_NAMES`, :data:`CLASS_COLOURS`). Slot 0 is *resident*: it stays in the frame,
  jumping to a new class and place every 8 to 16 s, so a scene is never empty by accident;
  the other slots cross the frame on straight, wobbling paths, entering and leaving at the
  edges, now and then idle for a pass. Sizes breathe (approach, recede); later slots may be
  drawn over earlier ones (occlusion by draw order, back to front by a per-pass depth);
* a slow brightness drift (periods of 13 and 47 s) and sensor noise (a pre-generated noise field
  seen through a window that moves every frame: cheap, and different every frame).

Geometry is in frame units (positions in fractions of width and height, sizes and speeds in
fractions of the height), so a scene looks the same at 640x480 and 1920x1080.

Speed: a frame is one full-frame ``uint8`` pass -- background plus brightness plus noise, the
native ``add_wrapped`` kernel, without the GIL -- and one masked fill per object (its colour plus
brightness plus the same noise). Both are wrapping 8-bit adds, made exact by keeping every
pixel at least the largest drift plus noise away from 0 and 255 (the cost: a little less
contrast). Why native: the paced camera of a benchmark runs beside the pipeline it feeds, and
NumPy's two passes hand the GIL back and forth where the kernel is one call without it
(docs/decisions/0018-synthetic-camera-native-passes.md).

>>> cam = SyntheticCamera(SceneConfig(width=160, height=90, seed=1))
>>> frame, truth = cam.frame(42)
>>> frame.shape, frame.dtype.name
((90, 160, 3), 'uint8')
>>> truth.boxes.shape[1], truth.boxes.dtype.name, truth.classes.dtype.name
(4, 'float32', 'int64')
>>> bool((cam.frame(42)[0] == frame).all())       # a pure function of the index
True
>>> cam.capture_ns(30)                            # 30 frames at 30 fps: one second
1000000000
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from core._native import kernel
from core.detections import GroundTruth
from core.errors import ConfigError, FrameError
from core.preprocess import check_frame
from core.sample_media import scene_image

__all__ = [
    "CLASS_COLOURS",
    "CLASS_NAMES",
    "GroundTruth",
    "SceneConfig",
    "SyntheticCamera",
]

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring")
"""Object classes, in class-id order."""

CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (40, 45, 205),  # circle: red
    (200, 70, 25),  # square: blue
    (45, 185, 50),  # triangle: green
    (30, 200, 225),  # cross: yellow
    (195, 50, 190),  # ring: magenta
)
"""Base colour (BGR) of each class; each object varies it by up to ``COLOUR_JITTER`` a channel."""

COLOUR_JITTER = 25
"""Largest per-channel difference between an object's colour and its class's base colour."""

RING_INNER = 0.55
"""Inner radius of a ring, as a fraction of its outer radius."""

QUIET_CYCLE_S = 20.0
"""Quiet mode: each cycle of this many seconds holds one episode with objects."""

RESIDENT_PERIOD_S = (8.0, 16.0)
"""Slot 0's object changes (class, place) every this many seconds (uniform, per scene)."""

TRANSIENT_PERIOD_S = (6.0, 14.0)
"""One pass of another slot's object across the frame takes this many seconds."""

IDLE_PROBABILITY = 0.2
"""Chance that a non-resident slot sits out a pass (so the object count varies)."""

_NOISE_PAD = 16
"""The noise field is this many pixels larger than the frame on each axis; frames see windows."""

_DRIFT_PERIODS_S = (47.0, 13.0)
_DRIFT_WEIGHTS = (0.7, 0.3)


@dataclass(frozen=True)
class SceneConfig:
    """What the synthetic camera shows; validated on construction (:class:`ConfigError`).

    ``min_size`` and ``max_size`` are object sizes (the side of the object's square extent) as
    fractions of the frame height. ``quiet_fraction`` (None: objects always) makes a *quiet
    scene*: objects are present only in that fraction of the frames, as one contiguous episode
    per ``QUIET_CYCLE_S`` seconds. ``noise_sigma`` is the sensor noise in grey levels (clipped
    at three sigma), ``lighting_drift`` the largest brightness change as a fraction of full scale.
    """

    width: int = 1920
    height: int = 1080
    fps: float = 30.0
    seed: int = 0
    max_objects: int = 5
    quiet_fraction: float | None = None
    noise_sigma: float = 2.0
    lighting_drift: float = 0.15
    min_size: float = 0.05
    max_size: float = 0.22

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 32 <= value <= 16384:
                raise ConfigError(f"{name} must be an int in [32, 16384] pixels, got {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {self.seed!r}")
        if not isinstance(self.max_objects, (int, np.integer)) or not 0 <= self.max_objects <= 64:
            raise ConfigError(f"max_objects must be an int in [0, 64], got {self.max_objects!r}")
        checks: list[tuple[str, object, float, float]] = [
            ("fps", self.fps, 1e-3, 1e4),
            ("noise_sigma", self.noise_sigma, 0.0, 8.0),
            ("lighting_drift", self.lighting_drift, 0.0, 0.25),
            ("min_size", self.min_size, 1e-3, 1.0),
            ("max_size", self.max_size, 1e-3, 1.0),
        ]
        if self.quiet_fraction is not None:
            checks.append(("quiet_fraction", self.quiet_fraction, 0.0, 1.0))
        for name, value, low, high in checks:
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
        if self.min_size > self.max_size:
            raise ConfigError(
                f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})"
            )

    @property
    def margin(self) -> int:
        """Grey levels every pixel keeps from 0 and 255 so drift plus noise never saturates."""
        return math.ceil(3 * self.noise_sigma) + math.ceil(self.lighting_drift * 127)


class _Pass(NamedTuple):
    """One object's pass through the scene: what it is and where it goes (frame units)."""

    cls: int
    colour: npt.NDArray[np.int64]
    depth: float
    start: tuple[float, float]
    """Where the pass starts (x, y); the resident's centre of motion."""
    end: tuple[float, float]
    """Where the pass ends (x, y); the resident's amplitudes on each axis."""
    size: float
    breathe: tuple[float, float, float]
    """Size changes by a factor ``1 + amp * sin(2 pi freq tau + phase)``: (amp, freq, phase)."""
    wobble: tuple[float, float, float]
    """Sideways sway in frame heights (amp, freq, phase); the resident: (x freq, y freq, phase)."""


class _Object(NamedTuple):
    """An object at one instant, in pixels: centre, half side, class, colour, depth."""

    cx: float
    cy: float
    half: float
    cls: int
    colour: npt.NDArray[np.int64]
    depth: float

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The object's extent clipped to the frame (xyxy, pixels)."""
        return (
            min(max(self.cx - self.half, 0.0), width),
            min(max(self.cy - self.half, 0.0), height),
            min(max(self.cx + self.half, 0.0), width),
            min(max(self.cy + self.half, 0.0), height),
        )


_AREA_FACTOR = (
    math.pi,  # circle: pi r^2 over r^2
    4.0,  # square
    2.0,  # triangle: base 2r, height 2r
    20.0 / 9.0,  # cross: two 2r x 2r/3 bars less their shared square
    math.pi * (1.0 - RING_INNER**2),  # ring
)


def _shape_mask(cls: int, dx: np.ndarray, dy: np.ndarray, r: float) -> npt.NDArray[np.bool_]:
    """Which pixels (offsets ``dx`` (1, w), ``dy`` (h, 1) from the centre) the shape covers."""
    if cls == 0:
        return np.asarray(dx * dx + dy * dy <= r * r)
    if cls == 1:
        return np.asarray((np.abs(dx) <= r) & (np.abs(dy) <= r))
    if cls == 2:  # pointing up: apex at the top, base at the bottom
        return np.asarray((np.abs(dx) <= (dy + r) / 2) & (dy <= r))
    if cls == 3:
        bar = r / 3
        ax, ay = np.abs(dx), np.abs(dy)
        return np.asarray(((ax <= bar) & (ay <= r)) | ((ay <= bar) & (ax <= r)))
    d2 = dx * dx + dy * dy
    return np.asarray((d2 <= r * r) & (d2 > (RING_INNER * r) ** 2))


def _point_on_edge(rng: np.random.Generator, side: int, out: float) -> tuple[float, float]:
    """A point just outside the frame on ``side`` (0 left, 1 top, 2 right, 3 bottom)."""
    along = float(rng.uniform(0.1, 0.9))
    if side == 0:
        return (-out, along)
    if side == 1:
        return (along, -out)
    if side == 2:
        return (1.0 + out, along)
    return (along, 1.0 + out)


class SyntheticCamera:
    """Renders frame ``index`` of the scene ``config`` describes, with its ground truth.

    Construction pre-renders the background and a noise field (about a second at 1080p); after
    that a frame costs a few milliseconds. Thread-safe for rendering into distinct buffers.
    """

    def __init__(self, config: SceneConfig | None = None) -> None:
        self.config = config = config if config is not None else SceneConfig()
        h, w = config.height, config.width
        margin = config.margin
        texture = scene_image(h, w, config.seed, shapes=0).astype(np.float32)
        # Squeeze into [margin, 255 - margin]: wrapping uint8 adds below are then exact.
        squeezed = margin + texture * ((255 - 2 * margin) / 255)
        self._background = np.round(squeezed).astype(np.uint8)
        rng = self._rng(1)
        clip = math.ceil(3 * config.noise_sigma)
        noise = rng.standard_normal((h + _NOISE_PAD, w + _NOISE_PAD, 3), dtype=np.float32)
        noise = np.clip(np.round(noise * config.noise_sigma), -clip, clip)
        self._noise = noise.astype(np.int8).view(np.uint8)  # two's complement: adds subtract
        self._has_noise = clip > 0
        self._periods = [
            float(
                self._rng(2, slot).uniform(
                    *(RESIDENT_PERIOD_S if slot == 0 else TRANSIENT_PERIOD_S)
                )
            )
            for slot in range(config.max_objects)
        ]
        self._phases = [float(self._rng(3, slot).random()) for slot in range(config.max_objects)]
        drift = self._rng(4).uniform(0, 2 * math.pi, 2)
        self._drift_phase = (float(drift[0]), float(drift[1]))
        self._passes: dict[tuple[int, int], _Pass | None] = {}

    def _rng(self, *keys: int) -> np.random.Generator:
        """An independent generator per (seed, purpose, ...) key: no state shared across frames."""
        return np.random.default_rng([self.config.seed, *keys])

    # -- time -------------------------------------------------------------------------------

    def capture_ns(self, index: int) -> int:
        """When frame ``index`` was captured, in ns since the stream started (``index / fps``)."""
        return round(self._check_index(index) * 1e9 / self.config.fps)

    def _check_index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise FrameError(f"frame index must be a non-negative int, got {index!r}")
        return int(index)

    def _active(self, t: float) -> bool:
        """Whether quiet mode lets objects show at ``t`` seconds (always without quiet mode)."""
        fraction = self.config.quiet_fraction
        if fraction is None or fraction >= 1.0:
            return True
        cycle = math.floor(t / QUIET_CYCLE_S)
        offset = float(self._rng(5, cycle).random()) * (1.0 - fraction) * QUIET_CYCLE_S
        start = cycle * QUIET_CYCLE_S + offset
        return start <= t < start + fraction * QUIET_CYCLE_S

    def brightness(self, index: int) -> int:
        """The lighting drift at frame ``index``: grey levels added to every pixel."""
        t = self._check_index(index) / self.config.fps
        wave = sum(
            weight * math.sin(2 * math.pi * t / period + phase)
            for weight, period, phase in zip(
                _DRIFT_WEIGHTS, _DRIFT_PERIODS_S, self._drift_phase, strict=True
            )
        )
        return round(self.config.lighting_drift * 127 * wave)

    # -- objects ----------------------------------------------------------------------------

    def _pass(self, slot: int, number: int) -> _Pass | None:
        """Parameters of pass ``number`` of ``slot`` (None: the slot sits this one out), cached."""
        key = (slot, number)
        if key in self._passes:
            return self._passes[key]
        rng = self._rng(6, slot, number)
        cfg = self.config
        cls = int(rng.integers(len(CLASS_NAMES)))
        colour = np.asarray(CLASS_COLOURS[cls], np.int64) + rng.integers(
            -COLOUR_JITTER, COLOUR_JITTER + 1, 3
        )
        size = float(np.exp(rng.uniform(np.log(cfg.min_size), np.log(cfg.max_size))))
        breathe = (
            float(rng.uniform(0.0, 0.2)),
            float(rng.uniform(0.3, 1.5)),
            float(rng.uniform(0, 7)),
        )
        idle = slot > 0 and rng.random() < IDLE_PROBABILITY
        if slot == 0:  # resident: a Lissajous figure inside the frame
            start = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.25, 0.8)))
            end = (float(rng.uniform(0.05, 0.15)), float(rng.uniform(0.05, 0.15)))  # amplitudes
            wobble = (
                float(rng.uniform(0.3, 1.2)),
                float(rng.uniform(0.3, 1.2)),
                float(rng.uniform(0, 7)),
            )
        else:
            side = int(rng.integers(4))
            out = size * cfg.height / cfg.width  # half a size beyond the edge, in width units
            start = _point_on_edge(rng, side, out)
            end = _point_on_edge(rng, (side + int(rng.integers(1, 4))) % 4, out)
            wobble = (
                float(rng.uniform(0.0, 0.05)),
                float(rng.uniform(0.5, 2.0)),
                float(rng.uniform(0, 7)),
            )
        result = (
            None
            if idle
            else _Pass(cls, colour, float(rng.random()), start, end, size, breathe, wobble)
        )
        if len(self._passes) >= 4096:  # a long random-access run: stay small
            self._passes.clear()
        self._passes[key] = result
        return result

    def _objects(self, index: int) -> list[_Object]:
        """Objects at frame ``index`` whose extent overlaps the frame, back to front."""
        t = self._check_index(index) / self.config.fps
        if not self._active(t):
            return []
        cfg = self.config
        w, h = cfg.width, cfg.height
        found: list[_Object] = []
        for slot in range(cfg.max_objects):
            position = t / self._periods[slot] + self._phases[slot]
            number = math.floor(position)
            tau = position - number
            p = self._pass(slot, number)
            if p is None:
                continue
            amp, freq, phase = p.breathe
            half = 0.5 * p.size * h * (1.0 + amp * math.sin(2 * math.pi * freq * tau + phase))
            wamp, wfreq, wphase = p.wobble
            if slot == 0:
                x = p.start[0] + p.end[0] * math.sin(2 * math.pi * wamp * tau + wphase)
                y = p.start[1] + p.end[1] * math.sin(2 * math.pi * wfreq * tau)
                cx, cy = x * w, y * h
            else:
                dx, dy = (p.end[0] - p.start[0]) * w, (p.end[1] - p.start[1]) * h
                norm = math.hypot(dx, dy) or 1.0
                sway = wamp * h * math.sin(2 * math.pi * wfreq * tau + wphase)
                cx = p.start[0] * w + dx * tau - dy / norm * sway
                cy = p.start[1] * h + dy * tau + dx / norm * sway
            obj = _Object(cx, cy, half, p.cls, p.colour, p.depth + (slot > 0))
            x1, y1, x2, y2 = obj.box(w, h)
            if x2 - x1 >= 1.0 and y2 - y1 >= 1.0:
                found.append(obj)
        found.sort(key=lambda o: o.depth)  # the resident (depth < 1) at the back
        return found

    def has_objects(self, index: int) -> bool:
        """Whether frame ``index`` shows any object (no rendering: for gating and recall)."""
        return bool(self._objects(index))

    # -- pixels -----------------------------------------------------------------------------

    def render_into(self, index: int, out: np.ndarray) -> GroundTruth:
        """Draw frame ``index`` into ``out`` (HxWx3 uint8 BGR, rows may be strided: a ring slot).

        Returns the objects' boxes (their extent clipped to the frame, back to front), classes,
        and the fraction of each object hidden behind later ones or outside the frame.
        """
        cfg = self.config
        check_frame(out)
        if out.shape[:2] != (cfg.height, cfg.width):
            raise FrameError(
                f"out must be {cfg.height}x{cfg.width}x3 as the scene config says, got {out.shape}"
            )
        if not out.flags.writeable:
            raise FrameError("out must be writeable")
        level = self.brightness(index)
        noise = None
        if self._has_noise:
            dy0, dx0 = self._noise_offset(index)
            noise = self._noise[dy0 : dy0 + cfg.height, dx0 : dx0 + cfg.width]
            kernel("add_wrapped")(self._background, level % 256, noise, out)
        else:
            np.add(self._background, np.uint8(level % 256), out=out)
        objects = self._objects(index)
        paint = kernel("paint_wrapped")
        masks: list[tuple[int, int, int, int, npt.NDArray[np.bool_]]] = []
        for obj in objects:
            x1, y1, x2, y2 = obj.box(cfg.width, cfg.height)
            c0, r0 = math.floor(x1), math.floor(y1)
            c1, r1 = max(math.ceil(x2), c0 + 1), max(math.ceil(y2), r0 + 1)
            dx = (np.arange(c0, c1, dtype=np.float32) + 0.5 - obj.cx)[None, :]
            dy = (np.arange(r0, r1, dtype=np.float32) + 0.5 - obj.cy)[:, None]
            mask = _shape_mask(obj.cls, dx, dy, obj.half)
            colour = (np.clip(obj.colour, cfg.margin, 255 - cfg.margin) + level).astype(np.uint8)
            if noise is None:
                np.copyto(out[r0:r1, c0:c1], colour, where=mask[..., None])
            else:  # the object seen through the same noise (wraps, as above)
                paint(out[r0:r1, c0:c1], mask, colour, noise[r0:r1, c0:c1])
            masks.append((r0, r1, c0, c1, mask))
        return self._truth(objects, masks)

    def _noise_offset(self, index: int) -> tuple[int, int]:
        """Where frame ``index``'s noise window starts (a cheap hash: a new window every frame)."""
        mixed = (index * 0x9E3779B1 + self.config.seed * 0x85EBCA77) & 0xFFFFFFFF
        return (mixed >> 8) % _NOISE_PAD, (mixed >> 20) % _NOISE_PAD

    def _truth(
        self,
        objects: list[_Object],
        masks: list[tuple[int, int, int, int, npt.NDArray[np.bool_]]],
    ) -> GroundTruth:
        cfg = self.config
        boxes = np.array([o.box(cfg.width, cfg.height) for o in objects], np.float32).reshape(-1, 4)
        classes = np.array([o.cls for o in objects], np.int64)
        occluded = np.empty(len(objects), np.float32)
        for i, (r0, r1, c0, c1, mask) in enumerate(masks):
            visible = mask.copy()
            for s0, s1, d0, d1, other in masks[i + 1 :]:
                top, bottom, left, right = max(r0, s0), min(r1, s1), max(c0, d0), min(c1, d1)
                if top < bottom and left < right:
                    visible[top - r0 : bottom - r0, left - c0 : right - c0] &= ~other[
                        top - s0 : bottom - s0, left - d0 : right - d0
                    ]
            full = _AREA_FACTOR[objects[i].cls] * objects[i].half ** 2
            occluded[i] = min(1.0, max(0.0, 1.0 - float(visible.sum()) / max(full, 1.0)))
        return GroundTruth(boxes, classes, occluded)

    def frame(self, index: int) -> tuple[npt.NDArray[np.uint8], GroundTruth]:
        """Frame ``index`` in a new array, with its ground truth."""
        out = np.empty((self.config.height, self.config.width, 3), np.uint8)
        return out, self.render_into(index, out)
