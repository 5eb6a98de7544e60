"""What is worth sending: the motion gate before inference, the result filter after it.

Bandwidth from the edge costs more than compute on it, so the pipeline decides per frame
and per detection what leaves the device:

1. **Motion gate** (:class:`MotionGate`, before inference): a frame in which nothing moved
   (:mod:`core.motion`: fewer than ``min_fraction`` of its 8x8 cells changed by more than
   ``threshold`` levels in any colour channel) is neither inferred nor sent. The first frame
   of a stream always passes (there is nothing to compare it with).
2. **Score threshold and class allow-list**: detections below ``score_threshold``, with a
   non-finite score or box (a NaN model output: never sent), or of a class not in ``classes``
   are dropped.
3. **Per-object cooldown**: a detection of the same class as one sent on that stream less than
   ``cooldown_s`` ago, overlapping it by IoU >= ``cooldown_iou``, is the same object: not sent
   again. A matched object's box follows it (the cooldown tracks a moving object), its time
   does not (it is sent again once ``cooldown_s`` has passed: a heartbeat while it stays).
   Time is the frames' capture time, so decisions do not depend on how fast the pipeline ran.
4. **Selective transmission**: what a frame with something new sends: ``metadata`` (the
   detections as JSON), ``crops`` (plus a JPEG of each new detection, grown by ``crop_margin``),
   or ``frame`` (plus the whole frame as JPEG). :meth:`ResultFilter.encode` makes the images.

:class:`FilterDecision.reason` says which step decided: ``no-motion``, ``no-detections``
(nothing detected), ``filtered`` (nothing above the threshold in the allow-list),
``cooldown`` (only objects already sent: the information is delivered, not repeated) or
``sent``.

A model whose outputs are not decoded into detections (``model.format: raw``) leaves steps 2
and 3 out (``ResultFilter(..., detections=False)``): every inferred frame that passed the motion
gate is sent with its outputs' summary figures, at ``metadata`` level where ``crops`` is set
(there are no boxes to crop).

>>> import numpy as np
>>> from core.detections import Detections
>>> names = ("person", "car")
>>> f = ResultFilter(FilterConfig(score_threshold=0.5, classes=("car",)), names)
>>> dets = Detections(np.array([[0, 0, 10, 10], [20, 20, 40, 40]]), np.array([0.9, 0.8]),
...                   np.array([0, 1]), names)
>>> d = f.decide(0, capture_ns=0, detections=dets, motion_passed=True)
>>> d.send, d.level, d.reason, d.detections.labels()
(True, 'crops', 'sent', ['car'])
>>> f.decide(0, capture_ns=33_000_000, detections=dets, motion_passed=True).reason
'cooldown'
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from core import jpeg
from core.accuracy import box_iou
from core.config import at_least, checked, in_range, validate
from core.detections import Detections
from core.encoded_image import EncodedImage
from core.errors import ConfigError
from core.motion import MotionDetector, MotionResult

__all__ = [
    "MAX_TRACKED",
    "FilterConfig",
    "FilterDecision",
    "MotionGate",
    "MotionGateConfig",
    "ResultFilter",
    "crop_box",
]

Level = Literal["none", "metadata", "crops", "frame"]

MAX_TRACKED = 256
"""Most sent objects a stream's cooldown remembers (the oldest are forgotten first)."""


@dataclass(frozen=True)
class MotionGateConfig:
    """The motion gate (:mod:`core.motion` settings). As YAML::

    motion:
      enabled: true
      factor: 8            # cell size in pixels
      threshold: 12        # levels a cell's mean must change by, in any channel
      min_fraction: 0.001  # fraction of cells that must change

    ``threshold`` applies to the *mean* of each colour channel over a ``factor`` x ``factor``
    cell, where sensor noise is already averaged down (by ``factor``). 12 catches every onset
    of the synthetic quiet scene while passing no frame of the empty scene, and an object as
    bright as its background is seen at any threshold below its colour difference
    (docs/decisions/0004-per-channel-motion-gate.md).
    """

    enabled: bool = True
    factor: int = checked(8, in_range(1, 256))
    threshold: int = checked(12, in_range(0, 255))
    min_fraction: float = checked(0.001, in_range(0.0, 1.0))

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class FilterConfig:
    """What is worth sending (the module docstring says how each step decides). As YAML::

    filter:
      score_threshold: 0.5
      classes: [person, car]   # empty or absent: every class
      motion: {min_fraction: 0.002}
      cooldown_s: 2.0          # 0: no cooldown
      cooldown_iou: 0.3
      transmission: crops      # metadata | crops | frame
      jpeg_quality: 85
      crop_margin: 0.1         # each side grows by this fraction of the box's size
    """

    score_threshold: float = checked(0.5, in_range(0.0, 1.0))
    classes: tuple[str, ...] = ()
    motion: MotionGateConfig = field(default_factory=MotionGateConfig)
    cooldown_s: float = checked(2.0, at_least(0.0))
    cooldown_iou: float = checked(0.3, in_range(0.0, 1.0))
    transmission: Literal["metadata", "crops", "frame"] = "crops"
    jpeg_quality: int = checked(85, in_range(1, 100))
    crop_margin: float = checked(0.1, in_range(0.0, 2.0))

    def __post_init__(self) -> None:
        validate(self)


class MotionGate:
    """One :class:`~core.motion.MotionDetector` per stream; see step 1 of the module docstring.

    Frames of one stream must be checked in order, from one thread at a time (each detector
    keeps the previous frame's grid); different streams may be checked concurrently.
    """

    _UNCHECKED = MotionResult(1.0, None, 0)

    def __init__(self, config: MotionGateConfig) -> None:
        self.config = config
        self._detectors: dict[int, MotionDetector] = {}
        self._lock = threading.Lock()

    def check(self, stream_id: int, frame: np.ndarray) -> MotionResult:
        """Motion of ``frame`` against the stream's previous one (gate disabled: not computed,
        reported as all motion)."""
        if not self.config.enabled:
            return self._UNCHECKED
        detector = self._detectors.get(stream_id)
        if detector is None:
            with self._lock:
                detector = self._detectors.setdefault(
                    stream_id, MotionDetector(self.config.factor, self.config.threshold)
                )
        return detector.update(frame)

    def passes(self, result: MotionResult) -> bool:
        """Whether a frame with this motion goes on to inference (always, gate disabled)."""
        return not self.config.enabled or result.changed_fraction >= self.config.min_fraction

    def reset(self, stream_id: int) -> None:
        """Forget a stream's previous frame (after a gap: a reconnect, a seek); the next passes."""
        detector = self._detectors.get(stream_id)
        if detector is not None:
            detector.reset()


@dataclass(frozen=True)
class FilterDecision:
    """What the filter decided for one frame."""

    send: bool
    level: Level
    """``none`` when nothing is sent, else the configured transmission level."""
    detections: Detections
    """What is sent: above the threshold, allowed, not in cooldown (empty when ``send`` is
    False)."""
    reason: str
    """``no-motion``, ``no-detections``, ``filtered``, ``cooldown`` or ``sent``."""


class _Sent:
    """The objects a stream sent within the cooldown: boxes, classes, when sent."""

    def __init__(self) -> None:
        self.boxes = np.empty((0, 4), np.float32)
        self.classes = np.empty(0, np.int64)
        self.sent_ns = np.empty(0, np.int64)

    def forget_before(self, oldest_ns: int) -> None:
        live = self.sent_ns > oldest_ns
        if not live.all():
            self.boxes, self.classes, self.sent_ns = (
                self.boxes[live],
                self.classes[live],
                self.sent_ns[live],
            )

    def add(self, boxes: np.ndarray, classes: np.ndarray, now_ns: int) -> None:
        when = np.full(len(classes), now_ns, np.int64)
        self.boxes = np.concatenate([self.boxes, boxes])[-MAX_TRACKED:]
        self.classes = np.concatenate([self.classes, classes])[-MAX_TRACKED:]
        self.sent_ns = np.concatenate([self.sent_ns, when])[-MAX_TRACKED:]


class _Rules(NamedTuple):
    """What a :class:`ResultFilter` decides by, swapped as one (its ``reconfigure``)."""

    config: FilterConfig
    level: Level
    allowed: np.ndarray | None
    """The allow-list's class ids (None: every class)."""
    window_ns: int
    """The cooldown in ns."""


def without_detections(config: FilterConfig) -> tuple[Level, list[str]]:
    """The level a model without detections (``raw``) sends at, and what the filter does
    otherwise for it than ``config`` says, one phrase each (logged as warnings at start)."""
    changes = [
        "score_threshold and cooldown are off: every inferred frame that passed the motion "
        "gate is sent with its outputs' summary figures"
    ]
    if config.transmission == "crops":
        changes.append("transmission crops sends metadata: there are no boxes to crop")
        return "metadata", changes
    return config.transmission, changes


class ResultFilter:
    """Steps 2 to 4 of the module docstring, for any number of streams.

    ``class_names`` are the model's, in class-id order: an allow-list naming a class the model
    does not have is a :class:`~core.errors.ConfigError` here, before anything runs. Decisions
    for one stream must come in capture order from one thread at a time.
    """

    def __init__(
        self, config: FilterConfig, class_names: Sequence[str], *, detections: bool = True
    ) -> None:
        self.class_names = tuple(class_names)
        self.detections = detections
        self._rules = self._checked(config)
        self._sent: dict[int, _Sent] = {}
        self._lock = threading.Lock()
        self._empty = Detections(
            np.empty((0, 4), np.float32),
            np.empty(0, np.float32),
            np.empty(0, np.int64),
            self.class_names or None,
        )

    def _checked(self, config: FilterConfig) -> _Rules:
        if not self.detections and config.classes:
            raise ConfigError(
                f"classes: {', '.join(map(repr, config.classes))}: the model gives no "
                "detections (model.format: raw), so there are no classes to allow"
            )
        unknown = [name for name in config.classes if name not in self.class_names]
        if unknown:
            raise ConfigError(
                f"classes: {', '.join(map(repr, unknown))} not among the model's classes "
                f"({', '.join(self.class_names)})"
            )
        allowed = (
            np.array(sorted({self.class_names.index(n) for n in config.classes}), np.int64)
            if config.classes
            else None
        )
        level = config.transmission if self.detections else without_detections(config)[0]
        return _Rules(config, level, allowed, round(config.cooldown_s * 1e9))

    @property
    def config(self) -> FilterConfig:
        return self._rules.config

    @property
    def level(self) -> Level:
        return self._rules.level

    def reconfigure(self, config: FilterConfig) -> None:
        """Decide by ``config`` from the next frame on (a live change: thresholds, allow-list,
        cooldown, transmission level, JPEG quality, crop margin). Checked like a new filter's
        (:class:`~core.errors.ConfigError`, and nothing changes); what was sent stays
        remembered for the cooldown. The rules are swapped as one object, so a decision sees
        either the old ones or the new, never a mix."""
        self._rules = self._checked(config)

    def _skip(self, reason: str) -> FilterDecision:
        return FilterDecision(False, "none", self._empty, reason)

    def relevant(self, detections: Detections) -> np.ndarray:
        """Mask of the detections that pass the score threshold and the allow-list (a NaN or
        infinite score or box never does)."""
        rules = self._rules
        keep = np.isfinite(detections.scores) & (detections.scores >= rules.config.score_threshold)
        keep &= np.isfinite(detections.boxes).all(axis=1)
        if rules.allowed is not None:
            keep &= np.isin(detections.classes, rules.allowed)
        return keep

    def decide(
        self,
        stream_id: int,
        capture_ns: int,
        detections: Detections | None,
        motion_passed: bool,
    ) -> FilterDecision:
        """The decision for one frame (``detections`` None: it was not inferred)."""
        if not motion_passed:
            return self._skip("no-motion")
        rules = self._rules
        if not self.detections and detections is not None:
            return FilterDecision(True, rules.level, detections, "sent")
        if detections is None or len(detections) == 0:
            return self._skip("no-detections")
        keep = self.relevant(detections)
        if not keep.any():
            return self._skip("filtered")
        kept = detections.take(np.flatnonzero(keep))
        new = self._not_in_cooldown(stream_id, capture_ns, kept, rules)
        if not new.size:
            return self._skip("cooldown")
        return FilterDecision(True, rules.level, kept.take(new), "sent")

    def _not_in_cooldown(
        self, stream_id: int, now_ns: int, dets: Detections, rules: _Rules
    ) -> np.ndarray:
        """Indices of ``dets`` not sent within the cooldown; records them as sent now."""
        if rules.window_ns <= 0:
            return np.arange(len(dets))
        sent = self._sent.get(stream_id)
        if sent is None:
            with self._lock:
                sent = self._sent.setdefault(stream_id, _Sent())
        sent.forget_before(now_ns - rules.window_ns)
        new = np.ones(len(dets), bool)
        if len(sent.classes):
            iou = box_iou(dets.boxes, sent.boxes)
            iou[dets.classes[:, None] != sent.classes[None, :]] = -1.0
            for i in np.argsort(-dets.scores, kind="stable"):  # best first claims its match
                j = int(np.argmax(iou[i]))
                if iou[i, j] >= rules.config.cooldown_iou:
                    new[i] = False
                    sent.boxes[j] = dets.boxes[i]  # follow the object; its sent time stays
                    iou[:, j] = -1.0
        index = np.flatnonzero(new)
        sent.add(dets.boxes[index], dets.classes[index], now_ns)
        return index

    def reset(self, stream_id: int | None = None) -> None:
        """Forget what was sent (on one stream, or all): everything is new again."""
        with self._lock:
            if stream_id is None:
                self._sent.clear()
            else:
                self._sent.pop(stream_id, None)

    def encode(self, frame: np.ndarray, decision: FilterDecision) -> tuple[EncodedImage, ...]:
        """The JPEGs the decision's level sends: one crop per detection (``crops``), the whole
        frame (``frame``), none otherwise. Crops are encoded from views of ``frame`` (no copy)."""
        config = self._rules.config
        quality = config.jpeg_quality
        if not decision.send or decision.level == "metadata":
            return ()
        if decision.level == "frame":
            return (EncodedImage("frame", None, jpeg.encode(frame, quality=quality)),)
        height, width = frame.shape[:2]
        images: dict[tuple[float, float, float, float], EncodedImage] = {}
        for box in decision.detections.boxes.tolist():
            grown = crop_box(box, config.crop_margin, width, height)
            if grown is not None and grown not in images:  # a classifier's classes share one
                data = jpeg.encode_crop(frame, grown, quality=quality)
                images[grown] = EncodedImage("crop", grown, data)
        return tuple(images.values())


def crop_box(
    box: Sequence[float], margin: float, width: int, height: int
) -> tuple[float, float, float, float] | None:
    """``box`` (xyxy) grown by ``margin`` x its width and height on each side, snapped out to
    whole pixels and clipped to the frame; None when nothing of it is inside the frame.

    >>> crop_box((100, 50, 200, 150), 0.1, 640, 480)
    (90.0, 40.0, 210.0, 160.0)
    >>> crop_box((-30, 400, 20, 520), 0.0, 640, 480)
    (0.0, 400.0, 20.0, 480.0)
    """
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    left, top = max(0, math.floor(x0 - dx)), max(0, math.floor(y0 - dy))
    right, bottom = min(width, math.ceil(x1 + dx)), min(height, math.ceil(y1 + dy))
    if right <= left or bottom <= top:
        return None
    return (float(left), float(top), float(right), float(bottom))
