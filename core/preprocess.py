"""Frames to network input: resize or letterbox, channel order, normalisation, NCHW layout.

One call per frame writes straight into the backend's input batch (a ``(3, H, W)`` slice of
its ``(N, 3, H, W)`` tensor): no intermediate image, no copy of the frame, no allocation. The
pixel work is one fused native kernel (see :mod:`native.kernels`); this module checks the
arguments, works out the geometry and folds the normalisation into two constants per channel.

>>> import numpy as np
>>> spec = PreprocessSpec(size=(4, 6), mode="letterbox", scale=1 / 255, pad_value=0)
>>> frame = np.full((10, 30, 3), 255, np.uint8)       # a white 30x10 frame
>>> batch = spec.empty_batch(2)
>>> transform = preprocess_into(frame, batch[0], spec)
>>> batch[0, 0]                                      # 6x2 image centred vertically, black pad
array([[0., 0., 0., 0., 0., 0.],
       [1., 1., 1., 1., 1., 1.],
       [1., 1., 1., 1., 1., 1.],
       [0., 0., 0., 0., 0., 0.]], dtype=float32)
>>> transform.to_source(np.array([[0.0, 1.0, 6.0, 3.0]]))  # network box -> frame pixels
array([[ 0.,  0., 30., 10.]])

Accuracy: every implementation is within 1/255 (one grey level) of an exact float64 resize,
in the pixel domain, before the mean and standard deviation are applied; float16 output adds
its own rounding on top (``tests/test_preprocess.py`` checks both). A ``uint8`` input (a model
that takes pixels as they are, as the TF Object Detection API's exports do) is resampled into
a float32 scratch image and rounded to whole levels.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core._native import kernel
from core.errors import ConfigError, FrameError
from native.kernels import AREA, BILINEAR

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet channel means in RGB order, for pixels scaled to 0..1."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviations in RGB order, for pixels scaled to 0..1."""
AUTO_AREA_FACTOR = 2.0
"""``interpolation="auto"`` uses area from this downscale factor (in both axes) on."""

Mode = Literal["resize", "letterbox"]
Interpolation = Literal["bilinear", "area", "auto"]
ChannelOrder = Literal["BGR", "RGB"]
DType = Literal["float32", "float16", "uint8"]
Triple = tuple[float, float, float]
Region = tuple[int, int, int, int]


def _triple(name: str, value: object) -> Triple:
    """One number or three as a tuple of three finite floats (spec fields accept either)."""
    items = [value] * 3 if isinstance(value, (int, float)) else value
    try:
        values = [float(v) for v in items]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3 or not all(np.isfinite(values)):
        raise ConfigError(f"{name} must be one finite number or three, got {value!r}")
    return (values[0], values[1], values[2])


def _constant(values: Sequence[float] | np.ndarray) -> npt.NDArray[np.float32]:
    array = np.asarray(values, dtype=np.float32)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class LetterboxTransform:
    """Where a frame landed in the network input, to map boxes back to the frame.

    A network-input coordinate ``x`` comes from frame coordinate ``(x - pad_x) / scale_x``
    (pixel edges map to pixel edges). Plain resizing is the case ``pad_x == pad_y == 0``.
    """

    scale_x: float
    """Network pixels per frame pixel, horizontally."""
    scale_y: float
    """Network pixels per frame pixel, vertically."""
    pad_x: int
    """Columns of padding left of the image in the network input."""
    pad_y: int
    """Rows of padding above the image in the network input."""
    src_size: tuple[int, int]
    """(height, width) of the frame."""

    def to_source(self, boxes: npt.ArrayLike) -> np.ndarray:
        """xyxy boxes (``(..., 4)``) in network-input pixels to frame pixels, clipped to it.

        Float32 stays float32; anything else comes back as float64.
        """
        b = np.asarray(boxes)
        out = np.array(b, dtype=np.float32 if b.dtype == np.float32 else np.float64)
        if out.shape[-1:] != (4,):
            raise FrameError(f"boxes must have shape (..., 4) (x1, y1, x2, y2), got {out.shape}")
        height, width = self.src_size
        for coords, pad, scale, limit in (
            (out[..., 0::2], self.pad_x, self.scale_x, width),
            (out[..., 1::2], self.pad_y, self.scale_y, height),
        ):  # in place on the copy; minimum/maximum rather than np.clip's slower wrapper
            np.subtract(coords, pad, out=coords)
            np.divide(coords, scale, out=coords)
            np.minimum(np.maximum(coords, 0, out=coords), limit, out=coords)
        return out

    def to_network(self, boxes: npt.ArrayLike) -> np.ndarray:
        """xyxy boxes in frame pixels to network-input pixels (the inverse of ``to_source``)."""
        b = np.asarray(boxes)
        out = np.array(b, dtype=np.float32 if b.dtype == np.float32 else np.float64)
        if out.shape[-1:] != (4,):
            raise FrameError(f"boxes must have shape (..., 4) (x1, y1, x2, y2), got {out.shape}")
        out[..., 0::2] = out[..., 0::2] * self.scale_x + self.pad_x
        out[..., 1::2] = out[..., 1::2] * self.scale_y + self.pad_y
        return out


def _square(size: tuple[int, int] | int) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else size


@dataclass(frozen=True)
class PreprocessSpec:
    """What the network expects, in one immutable value (build it once, use it per frame).

    ``out = (pixel * scale - mean) / std`` per channel, in ``output_order``; ``mean`` and
    ``std`` apply *after* ``scale`` (torchvision's convention: ``scale=1/255`` with ImageNet's
    0..1 statistics). ``pad_value`` is in pixel units (0..255) and is normalised like a pixel.

    ``mode="resize"`` stretches the frame to ``size``; ``"letterbox"`` keeps its aspect ratio,
    centres it and pads the rest (YOLO's convention: ``r = min(H_out/H, W_out/W)``, the image
    is ``round(W*r) x round(H*r)`` at ``((W_out - w) // 2, (H_out - h) // 2)``).

    ``interpolation="bilinear"`` (the default) samples like OpenCV's ``INTER_LINEAR`` and so
    like ``cv2.dnn.blobFromImage``; ``"area"`` averages every covered pixel (a box filter, like
    ``INTER_AREA``: no aliasing on strong downscale, about eight times the cost); ``"auto"`` picks
    area when the frame is downscaled by at least ``AUTO_AREA_FACTOR`` (2) in both axes -- from
    there on bilinear skips source pixels altogether -- and bilinear otherwise.
    """

    size: tuple[int, int]
    """(height, width) of the network input (an int given here means a square)."""
    mode: Mode = "resize"
    interpolation: Interpolation = "bilinear"
    input_order: ChannelOrder = "BGR"
    """Channel order of the frames (OpenCV and most decoders give BGR)."""
    output_order: ChannelOrder = "RGB"
    """Channel order the network expects."""
    scale: float = 1 / 255
    mean: Triple = (0.0, 0.0, 0.0)
    """Per output channel, subtracted after ``scale`` (one number is taken for all three)."""
    std: Triple = (1.0, 1.0, 1.0)
    """Per output channel, divides after the mean (one number is taken for all three)."""
    pad_value: Triple = (114.0, 114.0, 114.0)
    """Per output channel, in pixel units (one number is taken for all three)."""
    dtype: DType = "float32"
    _scale: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)
    _bias: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)
    _pad: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)
    _layouts: dict[tuple[int, int], tuple[Region, LetterboxTransform, int]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        raw: Any = self.size
        if isinstance(raw, (int, np.integer)):
            raw = (raw, raw)
        size = tuple(raw) if isinstance(raw, (tuple, list)) else ()
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise ConfigError(f"size must be (height, width) of positive ints, got {self.size!r}")
        height, width = size
        choices = {
            "mode": ("resize", "letterbox"),
            "interpolation": ("bilinear", "area", "auto"),
            "input_order": ("BGR", "RGB"),
            "output_order": ("RGB", "BGR"),
            "dtype": ("float32", "float16", "uint8"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        mean, std = _triple("mean", self.mean), _triple("std", self.std)
        pad = _triple("pad_value", self.pad_value)
        if not np.isfinite(self.scale) or self.scale == 0 or 0.0 in std:
            raise ConfigError("scale and every std must be finite and non-zero")
        if self.dtype == "uint8" and (self.scale != 1 or mean != (0.0,) * 3 or std != (1.0,) * 3):
            raise ConfigError(
                "a uint8 input takes pixels as they are (0..255): scale 1, mean 0 and std 1, "
                f"got scale {self.scale:g}, mean {mean}, std {std} (model.preprocess sets them)"
            )
        object.__setattr__(self, "size", (int(height), int(width)))
        for name, value in (("mean", mean), ("std", std), ("pad_value", pad)):
            object.__setattr__(self, name, value)
        scale = [self.scale / s for s in std]
        bias = [-m / s for m, s in zip(mean, std, strict=True)]
        object.__setattr__(self, "_scale", _constant(scale))
        object.__setattr__(self, "_bias", _constant(bias))
        # Normalised exactly as a pixel of that value would be (float32 arithmetic).
        pad32 = _constant(pad) * self._scale + self._bias
        object.__setattr__(self, "_pad", _constant(pad32))

    @classmethod
    def imagenet(cls, size: tuple[int, int] | int = 224, **changes: Any) -> PreprocessSpec:
        """Classification input: resized, RGB, ImageNet mean and std (torchvision's recipe)."""
        options: dict[str, Any] = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, **changes}
        return cls(_square(size), **options)

    @classmethod
    def yolo(cls, size: tuple[int, int] | int = 640, **changes: Any) -> PreprocessSpec:
        """Detection input: letterboxed with grey (114) padding, RGB, 0..1 (Ultralytics' recipe)."""
        options: dict[str, Any] = {"mode": "letterbox", **changes}
        return cls(_square(size), **options)

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        """``dtype`` as a NumPy dtype."""
        return np.dtype(self.dtype)

    @property
    def channel_scale(self) -> npt.NDArray[np.float32]:
        """Per output channel, ``scale / std``: ``out = pixel * channel_scale + channel_bias``."""
        return self._scale

    @property
    def channel_bias(self) -> npt.NDArray[np.float32]:
        """Per output channel, ``-mean / std``."""
        return self._bias

    @property
    def normalised_pad(self) -> npt.NDArray[np.float32]:
        """Per output channel, the value padding gets (``pad_value`` normalised, float32)."""
        return self._pad

    def batch_shape(self, n: int) -> tuple[int, int, int, int]:
        """Shape of an input batch of ``n`` images: ``(n, 3, height, width)``."""
        return (n, 3, *self.size)

    def empty_batch(self, n: int) -> np.ndarray:
        """A new C-contiguous batch of ``n`` images (for callers without a backend buffer)."""
        return np.empty(self.batch_shape(n), dtype=self.numpy_dtype)

    def layout(self, height: int, width: int) -> tuple[Region, LetterboxTransform]:
        """Where a ``height x width`` frame goes (``(x0, y0, w, h)``) and the inverse map."""
        region, transform, _ = self._layout(height, width)
        return region, transform

    def _layout(self, height: int, width: int) -> tuple[Region, LetterboxTransform, int]:
        cached = self._layouts.get((height, width))
        if cached is not None:
            return cached
        out_h, out_w = self.size
        if self.mode == "letterbox":
            r = min(out_h / height, out_w / width)
            w = min(out_w, max(1, round(width * r)))
            h = min(out_h, max(1, round(height * r)))
            region = ((out_w - w) // 2, (out_h - h) // 2, w, h)
        else:
            region = (0, 0, out_w, out_h)
        x0, y0, w, h = region
        transform = LetterboxTransform(w / width, h / height, x0, y0, (height, width))
        strong = width / w >= AUTO_AREA_FACTOR and height / h >= AUTO_AREA_FACTOR
        area = self.interpolation == "area" or (self.interpolation == "auto" and strong)
        entry = (region, transform, AREA if area else BILINEAR)
        if len(self._layouts) >= 16:  # a stream has one size; stay small if sizes vary
            self._layouts.clear()
        self._layouts[(height, width)] = entry
        return entry


def check_frame(frame: object) -> np.ndarray:
    """``frame`` as an HxWx3 uint8 array the kernels can read, or a :class:`FrameError`.

    Pixels must be packed (strides ``(row, 3, 1)``); rows may be further apart than ``3*W``
    bytes, so a crop of a bigger frame (``frame[y0:y1, x0:x1]``) works without a copy.
    """
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a NumPy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise FrameError(f"frame must be uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(
            f"frame must be HxWx3 (three colour channels), got shape {frame.shape}; "
            "convert grey or BGRA frames with cv2.cvtColor first"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"frame is empty: shape {frame.shape}")
    if frame.strides[1:] != (3, 1) or frame.strides[0] < 3 * frame.shape[1]:
        raise FrameError(
            f"frame's pixels must be packed with rows running forward (strides (row, 3, 1)), "
            f"got strides {frame.strides}; np.ascontiguousarray(frame) makes such a copy"
        )
    return frame


def _check_out(out: object, spec: PreprocessSpec) -> np.ndarray:
    expected = (3, *spec.size)
    if not isinstance(out, np.ndarray):
        raise FrameError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.shape != expected:
        raise FrameError(
            f"out must have shape {expected} (one image of a {spec.batch_shape(1)[1:]} batch: "
            f"pass batch[i]), got {out.shape}"
        )
    if out.dtype != spec.numpy_dtype:
        raise FrameError(f"out must be {spec.dtype} as the spec says, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise FrameError(
            "out must be C-contiguous: batch[i] of a C-contiguous batch is, a strided view "
            "(batch[:, :, ::2], a transpose) is not"
        )
    if not out.flags.writeable or not out.flags.aligned:
        raise FrameError("out must be writeable and aligned")
    return out


def preprocess_into(
    frame: np.ndarray, out: np.ndarray, spec: PreprocessSpec, *, impl: str | None = None
) -> LetterboxTransform:
    """Write ``frame`` (HxWx3 uint8) into ``out`` (3xHxW of ``spec.dtype``) as ``spec`` says.

    ``out`` is typically ``batch[i]`` of the backend's input tensor; nothing else in the batch
    is touched. ``impl`` forces one kernel implementation (``cython``, ``numba``, ``numpy``;
    for tests and benchmarks). Returns the map from network-input boxes back to ``frame``.
    Raises :class:`FrameError` for a frame or output of the wrong shape, dtype or layout.
    """
    check_frame(frame)
    _check_out(out, spec)
    region, transform, interpolation = spec._layout(frame.shape[0], frame.shape[1])
    swap_rb = spec.input_order != spec.output_order
    target = _float_scratch(out.shape) if spec.dtype == "uint8" else out
    kernel("preprocess_into", impl)(
        frame, target, region, spec._scale, spec._bias, spec._pad, swap_rb, interpolation
    )
    if target is not out:  # uint8: pixels rounded back to whole levels
        np.rint(target, out=target)
        np.copyto(out, np.clip(target, 0, 255, out=target), casting="unsafe")
    return transform


_scratch = threading.local()


def _float_scratch(shape: tuple[int, ...]) -> np.ndarray:
    """This thread's float32 image of ``shape``: where a uint8 input is resampled first (the
    kernels write float32 or float16), kept between frames."""
    buffer: np.ndarray | None = getattr(_scratch, "image", None)
    if buffer is None or buffer.shape != shape:
        buffer = _scratch.image = np.empty(shape, np.float32)
    return buffer


def preprocess_batch(
    frames: Sequence[np.ndarray],
    out: np.ndarray,
    spec: PreprocessSpec,
    *,
    impl: str | None = None,
) -> list[LetterboxTransform]:
    """:func:`preprocess_into` for ``frames[i]`` into ``out[i]`` of an ``(N, 3, H, W)`` batch.

    Frames may differ in size. With fewer frames than ``N`` the remaining images of ``out``
    are left as they are.
    """
    if not isinstance(out, np.ndarray) or out.ndim != 4:
        raise FrameError(f"out must be an (N, 3, H, W) batch, got {getattr(out, 'shape', out)}")
    if len(frames) > out.shape[0]:
        raise FrameError(f"{len(frames)} frames do not fit a batch of {out.shape[0]}")
    return [preprocess_into(f, out[i], spec, impl=impl) for i, f in enumerate(frames)]
