"""The kernel contract: which names every implementation provides, and which one is in use.

Like pyzmq's ``zmq.backend.select``, this is the one place that knows the implementations:

* ``cython`` -- C kernels compiled into :mod:`native._kernels` (GIL released, run-time CPU
  dispatch);
* ``numba``  -- :mod:`native.numba_kernels`, JIT-compiled (cached) when it loads, never on a frame;
* ``numpy``  -- :mod:`native.numpy_kernels`, vectorised NumPy, always available, slowest.

``EDGELOOP_KERNELS=cython|numba|numpy`` forces one. Without it, each kernel takes the first of its
``PREFERENCE`` order that loads (the order is what ``python -m bench micro`` measured fastest:
docs/decisions/0021-kernel-preference-order.md), and when none loads the first import failure
is re-raised.

The contract (all arrays already validated by the ``core`` wrappers; kernels only re-check cheaply):

``preprocess_into(src, dst, region, scale, bias, pad, swap_rb, interpolation) -> None``
    ``src``: HxWx3 uint8, channels contiguous, rows may be padded (a crop of a bigger frame).
    ``dst``: 3xOHxOW float32 or float16, C-contiguous (one image of the backend's input batch).
    ``region``: ``(x0, y0, w, h)``, where in ``dst`` the resized image goes; the rest is ``pad``.
    Sampling: ``sx = (x + 0.5) * W / w - 0.5`` (OpenCV's ``INTER_LINEAR`` centres), clamped.
    ``scale``/``bias``/``pad``: float32[3] in *output* channel order: ``out = pixel*scale + bias``.
    ``swap_rb``: output channel 0 reads input channel 2 (BGR in, RGB out).
    ``interpolation``: ``BILINEAR`` or ``AREA`` (box filter for strong downscale).
``nms(boxes, scores, classes, iou_threshold, score_threshold, top_k) -> int64[K]``
    Greedy, class-aware NMS on float32 xyxy boxes; returns kept indices by descending score
    (ties: lower index first); a box is suppressed when IoU > ``iou_threshold`` with a kept box
    of the same class; boxes with score < ``score_threshold`` never kept; at most ``top_k``.
    ``classes``: int64[N] or None (one class). Boxes or scores that are not finite are never
    kept. Scores compare with the threshold in float64, and IoU is float64 from the float32
    coordinates in one fixed order (``native/src/nms.c``), so implementations agree exactly;
    ``0 <= iou_threshold <= 1``.
``motion_cells(src, factor, out) -> None``
    Block mean of each channel over ``factor``x``factor`` blocks into uint8 ``out`` of shape
    ``(H // factor, W // factor, 3)`` (the input's channel order); integer floor mean;
    ``1 <= factor <= 256``.
``motion_diff(prev, cur, threshold) -> (changed, x0, y0, x1, y1)``
    Count of cells (``(rows, cols, channels)`` uint8 grids) where any channel moved by more
    than ``threshold``, and their bounding box (half-open; all zero when nothing changed).
``add_wrapped(base, level, noise, out) -> None``
    ``out = (base + level + noise) mod 256``, byte by byte (the synthetic camera's sensor pass:
    background, brightness, noise). Three HxWx3 uint8 images of one size, rows may be padded;
    ``out`` overlaps neither input; ``0 <= level <= 255``.
``paint_wrapped(out, mask, colour, noise) -> None``
    ``out = (colour + noise) mod 256`` on the pixels where ``mask`` is set, the others left as
    they are (an object drawn through the sensor noise). ``out`` and ``noise``: HxWx3 uint8, rows
    may be padded, not overlapping; ``mask``: HxW bool; ``colour``: 3 uint8 values.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

KERNEL_NAMES: tuple[str, ...] = (
    "preprocess_into",
    "nms",
    "motion_cells",
    "motion_diff",
    "add_wrapped",
    "paint_wrapped",
)
IMPLEMENTATIONS: tuple[str, ...] = ("cython", "numba", "numpy")
MODULES: dict[str, str] = {
    "cython": "native._kernels",
    "numba": "native.numba_kernels",
    "numpy": "native.numpy_kernels",
}
# Per kernel, the order to try without EDGELOOP_KERNELS: fastest first, as measured by
# `python -m bench micro`; numpy always last. The C kernels win every kernel, so the order is
# cython, numba, numpy (docs/decisions/0021-kernel-preference-order.md).
PREFERENCE: dict[str, tuple[str, ...]] = {name: IMPLEMENTATIONS for name in KERNEL_NAMES}

BILINEAR = 0
AREA = 1

ENV_VAR = "EDGELOOP_KERNELS"

_loaded: dict[str, ModuleType] = {}
_failures: dict[str, BaseException] = {}


def load_implementation(impl: str) -> ModuleType:
    """Import one implementation, check it provides every kernel, and warm it up.

    Raises the import failure itself (not a summary) so a missing build says how to build.
    """
    if impl not in MODULES:
        raise ValueError(
            f"unknown kernel implementation {impl!r}; choose one of {', '.join(IMPLEMENTATIONS)}"
        )
    if impl in _loaded:
        return _loaded[impl]
    if impl in _failures:
        raise _failures[impl]
    try:
        module = _import(impl)
        missing = [name for name in KERNEL_NAMES if not callable(getattr(module, name, None))]
        if missing:
            raise ImportError(f"{MODULES[impl]} does not provide {', '.join(missing)}")
        warm_up = getattr(module, "warm_up", None)
        if callable(warm_up):
            warm_up()
    except ImportError as exc:
        _failures[impl] = exc
        raise
    _loaded[impl] = module
    return module


def _import(impl: str) -> ModuleType:
    """Import an implementation's module; a compiled one that was not built says how to build."""
    name = MODULES[impl]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name or impl != "cython":
            raise
        raise ImportError(
            f"{name} is not built: run `make native` (or `python setup.py build_ext --inplace`) "
            "in the source tree, or install a wheel",
            name=name,
        ) from exc


def available_implementations() -> list[str]:
    """Every implementation that loads here, in preference order (for equivalence tests)."""
    found = []
    for impl in IMPLEMENTATIONS:
        try:
            load_implementation(impl)
        except ImportError:
            continue
        found.append(impl)
    return found


def forced_implementation() -> str | None:
    """The implementation ``EDGELOOP_KERNELS`` forces, or None (validated)."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if not value:
        return None
    if value not in MODULES:
        raise ValueError(
            f"{ENV_VAR}={value!r} is not an implementation; use one of {', '.join(IMPLEMENTATIONS)}"
        )
    return value


def implementation_for(kernel: str) -> str:
    """Name of the implementation that ``kernel`` resolves to in this process."""
    if kernel not in KERNEL_NAMES:
        raise ValueError(f"unknown kernel {kernel!r}; kernels are {', '.join(KERNEL_NAMES)}")
    forced = forced_implementation()
    if forced is not None:
        load_implementation(forced)
        return forced
    first_error: BaseException | None = None
    for impl in PREFERENCE[kernel]:
        try:
            load_implementation(impl)
        except ImportError as exc:
            first_error = first_error or exc
            continue
        return impl
    assert first_error is not None
    raise first_error


def get(kernel: str, impl: str | None = None) -> Callable[..., Any]:
    """The callable for ``kernel``: from ``impl`` when given, else as resolved above."""
    chosen = impl if impl is not None else implementation_for(kernel)
    fn: Callable[..., Any] = getattr(load_implementation(chosen), kernel)
    return fn


def describe() -> dict[str, str]:
    """Which implementation each kernel uses here (bench's environment capture reads this)."""
    return {name: implementation_for(name) for name in KERNEL_NAMES}
