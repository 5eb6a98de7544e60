"""The loop a user writes without edgeloop: the baseline of ``speedup_vs_naive``.

One thread, every frame: **read** (the same synthetic stream the pipeline reads -- a new array
per frame, as ``cv2.VideoCapture.read()`` returns; a file or URL through ``cv2.VideoCapture``),
**preprocess** with OpenCV (letterbox: ``cv2.resize`` + ``cv2.copyMakeBorder`` +
``cv2.cvtColor``, then ``/ 255`` and a transpose to NCHW float32; a classifier: resize and
ImageNet normalisation), **infer** with ``onnxruntime.InferenceSession.run`` (default session
options: what a user gets), **post-process** in NumPy (score threshold, boxes back through the
letterbox, greedy per-class NMS; a classifier: softmax top-5) and **encode** the whole frame
with ``cv2.imencode(".jpg")`` at the pipeline's JPEG quality -- the upload a user sends for
every frame because nothing told them which frames matter.

It is measured like everything else (:mod:`bench.timing`'s rules): warm-up bounded by time and
count, then frames until both the minimum duration and the minimum count are met; model load
and first inference are timed apart from the steady state; each frame's latency (read start to
JPEG done) is kept raw, in ns, with the time spent in each step.

Only its reading and its session are a user's own: the model file and the source first pass the
checks every edgeloop path applies (:func:`core.backends.model_file.check_model_file`,
:func:`core.sources.check_source`), and a session that fails to load is reported as the
backends report it, so a bad input is the same :class:`~core.errors.ModelError` or
:class:`~core.errors.SourceError`, in the same words, whichever path meets it first.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from bench.stats import window_rates, window_values
from bench.timing import Budget
from core.errors import BackendUnavailableError, SourceError

STEPS = ("read", "preprocess", "infer", "postprocess", "encode")
PAD = 114
"""Letterbox padding grey, as YOLO users write it."""
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
DEFAULT_BUDGET = Budget(warmup_s=1.0, warmup_count=5, min_s=10.0, min_count=100, max_count=100_000)


class StreamSpec(Protocol):
    """What the naive loop reads of a source's configuration (``core.sources.SourceConfig``
    has these fields; so may any object)."""

    kind: str
    uri: str | None
    width: int
    height: int
    fps: float
    seed: int
    quiet_fraction: float | None
    max_objects: int


@dataclass
class NaiveResult:
    """Figures and raw samples of one naive run (``as_dict`` is its report block)."""

    fps: float
    frames: int
    duration_s: float
    latency_ns: np.ndarray
    end_ns: np.ndarray
    step_ns: dict[str, np.ndarray]
    load_s: float
    first_inference_s: float
    warmup_frames: int
    jpeg_bytes: int
    model: str
    segment_frames: list[int] | None = None
    """Frames per measured segment, in order (None: one segment)."""
    segment_s: list[float] | None = None
    """Measured seconds per segment, in order (None: one segment)."""
    extra: dict[str, Any] = field(default_factory=dict)


def _cv2() -> Any:
    try:
        import cv2  # noqa: PLC0415 - in the bench extra, not a runtime dependency
    except ImportError as exc:
        raise BackendUnavailableError(
            "the naive loop needs OpenCV: pip install opencv-python-headless "
            "(or pip install -e '.[bench]')"
        ) from exc
    return cv2


def _checked_source(stream: StreamSpec) -> str:
    """The stream's name once edgeloop's own source opens it (:func:`core.sources.check_source`:
    a :class:`~core.errors.SourceError` naming the source and the cause where it cannot)."""
    from core.sources import SourceConfig, SourceKind, check_source  # noqa: PLC0415 - on demand

    config: object = stream  # a SourceConfig, or any object with its fields
    if not isinstance(config, SourceConfig):
        config = SourceConfig(kind=cast(SourceKind, stream.kind), uri=stream.uri)
    return check_source(config)


def _reader(stream: StreamSpec) -> Callable[[int], np.ndarray]:
    """Frame ``i`` of the stream as a new array."""
    if stream.kind == "synthetic":
        from core.synthetic import SceneConfig, SyntheticCamera  # noqa: PLC0415

        camera = SyntheticCamera(
            SceneConfig(
                width=stream.width,
                height=stream.height,
                fps=stream.fps,
                seed=stream.seed,
                quiet_fraction=stream.quiet_fraction,
                max_objects=stream.max_objects,
            )
        )
        return lambda i: camera.frame(i)[0]
    cv2 = _cv2()
    name = _checked_source(stream)
    capture = cv2.VideoCapture(stream.uri)
    if not capture.isOpened():
        raise SourceError(
            f"{name}: the naive loop reads with OpenCV's VideoCapture, which cannot open it "
            "(video files, streams and cameras only, not image folders); run without the "
            "naive loop: bench pipeline --no-naive"
        )

    def read(i: int) -> np.ndarray:
        ok, frame = capture.read()
        if not ok:  # loop a file, as the pipeline's benchmark sources do
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = capture.read()
        if not ok:
            raise SourceError(f"{name}: OpenCV's VideoCapture gives no frame from it")
        return np.asarray(frame)

    return read


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS as found in countless repositories: best first, drop overlaps."""
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = area[i] + area[rest] - inter
        order = rest[inter / np.maximum(union, 1e-9) <= iou]
    return keep


NAIVE_LAYOUTS = ("edgeloop", "yolov8", "yolov5", "end2end", "classifier", "raw")
"""The output formats the naive loop decodes, in NumPy as a user would (end2end: rows of 6; raw:
the first output's minimum, maximum and mean)."""


class _Model:
    """The model as a naive user drives it: ORT session, OpenCV preprocessing, NumPy decoding."""

    def __init__(self, path: Path, score_threshold: float, iou_threshold: float) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        from core.backends.model_file import check_model_file, load_failure  # noqa: PLC0415

        self.cv2 = _cv2()
        path = check_model_file(path)  # ModelError naming the cause, as every backend's
        start = time.perf_counter()
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime's errors derive from Exception only
            raise load_failure(path, exc) from exc
        self.load_s = time.perf_counter() - start
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        height, width = inp.shape[2], inp.shape[3]
        self.size = (
            height if isinstance(height, int) else 640,
            width if isinstance(width, int) else 640,
        )
        self.detector = len(self.session.get_outputs()[0].shape) == 3
        self.layout = "edgeloop" if self.detector else "classifier"
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.letterbox: tuple[float, int, int] = (1.0, 0, 0)

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        cv2 = self.cv2
        height, width = self.size
        if not self.detector:
            image = cv2.cvtColor(cv2.resize(frame, (width, height)), cv2.COLOR_BGR2RGB)
            image = image.astype(np.float32) / 255.0
            if self.layout == "classifier":
                image = (image - IMAGENET_MEAN) / IMAGENET_STD
            return np.ascontiguousarray(image.transpose(2, 0, 1)[None])
        h, w = frame.shape[:2]
        r = min(height / h, width / w)
        nh, nw = round(h * r), round(w * r)
        top, left = (height - nh) // 2, (width - nw) // 2
        resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        padded = cv2.copyMakeBorder(
            resized,
            top,
            height - nh - top,
            left,
            width - nw - left,
            cv2.BORDER_CONSTANT,
            value=(PAD, PAD, PAD),
        )
        self.letterbox = (r, left, top)
        rgb = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0

    def infer(self, blob: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.session.run(None, {self.input_name: blob})[0]
        return out

    def read_layout(self, path: Path, blob: np.ndarray) -> None:
        """Which output layout to decode, as the pipeline reads it (:mod:`core.formats`), from
        one run's output shapes and the model's metadata; a detection layout this loop does not
        decode is a :class:`~core.errors.ModelError` (never boxes read the wrong way)."""
        from core.backends.tensor_spec import TensorSpec  # noqa: PLC0415
        from core.errors import ModelError  # noqa: PLC0415
        from core.formats import ModelFacts, OutputShape, choose_format  # noqa: PLC0415

        outputs = self.session.run(None, {self.input_name: blob})
        inp = self.session.get_inputs()[0]
        facts = ModelFacts(
            path.name,
            TensorSpec(inp.name, tuple(inp.shape), "float32"),
            self.size,
            tuple(
                OutputShape(spec.name, tuple(out.shape))
                for spec, out in zip(self.session.get_outputs(), outputs, strict=True)
            ),
            dict(self.session.get_modelmeta().custom_metadata_map),
        )
        self.layout = choose_format(facts).name
        if self.layout not in NAIVE_LAYOUTS:
            raise ModelError(
                f"{path.name}: the naive loop decodes {', '.join(NAIVE_LAYOUTS)} outputs, not "
                f"{self.layout}: run without it (bench pipeline --no-naive)"
            )
        self.detector = self.layout not in ("classifier", "raw")

    def postprocess(self, raw: np.ndarray) -> list[dict[str, Any]]:
        if self.layout == "raw":
            return [{"min": float(raw.min()), "max": float(raw.max()), "mean": float(raw.mean())}]
        if not self.detector:
            logits = raw[0] - raw[0].max()
            prob = np.exp(logits) / np.exp(logits).sum()
            top = prob.argsort()[::-1][:5]
            return [{"class": int(c), "score": float(prob[c])} for c in top]
        rows = raw[0].T if self.layout == "yolov8" else raw[0]
        if self.layout == "end2end":  # x1, y1, x2, y2, score, class: NMS done in the model
            kept = rows[rows[:, 4] >= self.score_threshold]
            boxes, conf, classes = kept[:, :4].copy(), kept[:, 4], kept[:, 5].astype(int)
        else:
            first = 5 if self.layout == "yolov5" else 4
            scores = rows[:, first:]
            if first == 5:
                scores = scores * rows[:, 4:5]
            classes = scores.argmax(axis=1)
            conf = scores.max(axis=1)
            chosen = conf >= self.score_threshold
            boxes, conf, classes = rows[chosen, :4].copy(), conf[chosen], classes[chosen]
            if self.layout != "edgeloop":  # cx, cy, w, h
                boxes[:, :2] -= boxes[:, 2:4] / 2
                boxes[:, 2:4] += boxes[:, :2]
        r, left, top = self.letterbox
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - left) / r
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - top) / r
        found = []
        if self.layout == "end2end":
            return [
                {"class": int(c), "score": float(s), "box": b.tolist()}
                for b, s, c in zip(boxes, conf, classes, strict=True)
            ]
        for c in np.unique(classes):
            idx = np.flatnonzero(classes == c)
            for k in _nms(boxes[idx], conf[idx], self.iou_threshold):
                j = idx[k]
                found.append({"class": int(c), "score": float(conf[j]), "box": boxes[j].tolist()})
        return found


class NaiveLoop:
    """The naive loop on ``stream`` with ``model`` (a path or a reference model's name), loaded
    once (load and first inference timed) and measured in one or more segments.

    Why segments: the naive loop is also ``bench compare``'s control, the same code in both
    runs whose change is the machine's, and a shared machine's speed drifts within a minute, so
    a control measured only after the pipeline misses the drift the pipeline met
    (docs/decisions/0006-naive-loop-as-control.md). The standard suite measures a segment
    before, between and after the pipeline runs; their frames make one result."""

    def __init__(
        self,
        model: str | Path,
        stream: StreamSpec,
        *,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        jpeg_quality: int = 85,
    ) -> None:
        from core.backends import resolve_model  # noqa: PLC0415 - loads the models on demand

        self.path = resolve_model(str(model))
        self.net = _Model(self.path, score_threshold, iou_threshold)
        self.read = _reader(stream)
        self.jpeg_quality = jpeg_quality
        self.encode_args = [int(self.net.cv2.IMWRITE_JPEG_QUALITY), jpeg_quality]
        first = self.net.preprocess(self.read(0))
        start = time.perf_counter()
        self.net.infer(first)
        self.first_inference_s = time.perf_counter() - start
        self.net.read_layout(self.path, first)  # after the first inference: that one is timed
        self.index = 1
        self.segments: list[np.ndarray] = []
        """Per segment, one row of step marks (ns) per measured frame."""
        self.starts_ns: list[int] = []
        self.warmup_frames = 0
        self.jpeg_bytes = 0

    def _one(self, marks: list[int]) -> int:
        clock, net = time.perf_counter_ns, self.net
        marks[0] = clock()
        frame = self.read(self.index)
        marks[1] = clock()
        blob = net.preprocess(frame)
        marks[2] = clock()
        raw = net.infer(blob)
        marks[3] = clock()
        net.postprocess(raw)
        marks[4] = clock()
        ok, data = net.cv2.imencode(".jpg", frame, self.encode_args)
        marks[5] = clock()
        self.index += 1
        return len(data) if ok else 0

    def measure(self, budget: Budget, progress: Callable[[float], None] | None = None) -> None:
        """One segment: warm-up bounded by time and count, then frames until ``budget``'s
        minimum duration and count are both met; ``progress`` gets the elapsed fraction."""
        clock = time.perf_counter_ns
        marks = [0] * 6
        warmed, start_ns = 0, clock()
        while warmed < budget.warmup_count or clock() - start_ns < budget.warmup_s * 1e9:
            self._one(marks)
            warmed += 1
        self.warmup_frames += warmed
        rows: list[list[int]] = []
        start_ns = clock()
        while len(rows) < budget.max_count:
            self.jpeg_bytes += self._one(marks)
            rows.append(list(marks))
            elapsed = clock() - start_ns
            if progress is not None and len(rows) % 8 == 0:
                progress(min(1.0, elapsed / (budget.min_s * 1e9)))
            if len(rows) >= budget.min_count and elapsed >= budget.min_s * 1e9:
                break
        self.segments.append(np.asarray(rows, dtype=np.int64))
        self.starts_ns.append(start_ns)

    def result(self, window_s: float = 1.0) -> NaiveResult:
        """Every measured segment as one result (fps: their frames over their durations)."""
        if not self.segments:
            raise ValueError("the naive loop has measured nothing yet")
        times = np.concatenate(self.segments)
        durations = [
            float(t[-1, 5] - s) / 1e9 for t, s in zip(self.segments, self.starts_ns, strict=True)
        ]
        duration_s = float(sum(durations))
        return NaiveResult(
            fps=len(times) / duration_s,
            frames=len(times),
            duration_s=duration_s,
            latency_ns=times[:, 5] - times[:, 0],
            end_ns=times[:, 5],
            step_ns={step: times[:, i + 1] - times[:, i] for i, step in enumerate(STEPS)},
            load_s=self.net.load_s,
            first_inference_s=self.first_inference_s,
            warmup_frames=self.warmup_frames,
            jpeg_bytes=self.jpeg_bytes,
            model=str(self.path),
            segment_frames=[len(t) for t in self.segments],
            segment_s=durations,
            extra={
                "window_s": window_s,
                "segments": len(self.segments),
                "intra_op_threads": "onnxruntime default",
                "jpeg_quality": self.jpeg_quality,
            },
        )


def run_naive(
    model: str | Path,
    stream: StreamSpec,
    budget: Budget = DEFAULT_BUDGET,
    *,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    jpeg_quality: int = 85,
    window_s: float = 1.0,
    progress: Callable[[float], None] | None = None,
) -> NaiveResult:
    """The naive loop measured in one segment (:class:`NaiveLoop`)."""
    loop = NaiveLoop(
        model,
        stream,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        jpeg_quality=jpeg_quality,
    )
    loop.measure(budget, progress)
    return loop.result(window_s)


def _segments(result: NaiveResult) -> list[slice]:
    bounds = np.cumsum([0, *(result.segment_frames or [result.frames])])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def _per_segment(
    result: NaiveResult, windows: Callable[[slice], list[tuple[float, float]]]
) -> list[list[tuple[float, float]]]:
    """Each segment's own windows (``t_s`` from the segment's first frame): no window spans
    the gap between two segments (other runs)."""
    return [windows(part) for part in _segments(result)]


def _joined(series: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Segments' windows one after the other: ``t_s`` counts measured time only."""
    out: list[tuple[float, float]] = []
    offset = 0.0
    for found in series:
        out.extend((offset + t, v) for t, v in found)
        offset += found[-1][0] if found else 0.0
    return out


def segment_fps_windows(result: NaiveResult) -> list[list[tuple[float, float]]]:
    """Per segment, ``(t_s, fps)`` per window."""
    window_s = float(result.extra["window_s"])
    return _per_segment(result, lambda part: window_rates(result.end_ns[part], window_s))


def segment_latency_windows(result: NaiveResult) -> list[list[tuple[float, float]]]:
    """Per segment, ``(t_s, median latency ms)`` per window."""
    window_s = float(result.extra["window_s"])
    latency_ms = result.latency_ns / 1e6
    return _per_segment(
        result, lambda part: window_values(result.end_ns[part], latency_ms[part], window_s)
    )


def fps_windows(result: NaiveResult) -> list[tuple[float, float]]:
    """``(t_s, fps)`` per window of the measured segments."""
    return _joined(segment_fps_windows(result))


def latency_windows(result: NaiveResult) -> list[tuple[float, float]]:
    """``(t_s, median latency ms)`` per window of the measured segments."""
    return _joined(segment_latency_windows(result))


def segment_fps(result: NaiveResult, which: slice = slice(None)) -> float:
    """Frames per second over the segments ``which`` selects (their frames over their
    measured seconds): e.g. ``slice(0, 2)``, the two around the flat-out run."""
    frames = (result.segment_frames or [result.frames])[which]
    seconds = (result.segment_s or [result.duration_s])[which]
    return sum(frames) / sum(seconds) if sum(seconds) > 0 else 0.0
