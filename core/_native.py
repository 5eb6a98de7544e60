"""How ``core`` reaches the kernels of :mod:`native`: resolved once, failures in our error tree.

Resolving a kernel reads ``EDGELOOP_KERNELS`` and walks the preference order; doing that per
frame would cost microseconds for nothing, so the callable is cached per (kernel, requested
implementation, value of the variable) -- changing the variable (as the tests do) still takes
effect on the next call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from core.errors import KernelSelectionError, NativeBuildError
from native import kernels

_cache: dict[tuple[str, str | None, str | None], Callable[..., Any]] = {}


def kernel(name: str, impl: str | None = None) -> Callable[..., Any]:
    """The callable for kernel ``name``: from ``impl`` when given, else as ``native`` resolves it.

    Raises :class:`KernelSelectionError` when ``impl`` or ``EDGELOOP_KERNELS`` names an
    implementation that does not exist or does not load here, :class:`NativeBuildError` when
    no implementation loads at all.
    """
    forced = os.environ.get(kernels.ENV_VAR)
    key = (name, impl, forced)
    fn = _cache.get(key)
    if fn is not None:
        return fn
    chosen = impl or (forced.strip().lower() if forced and forced.strip() else None)
    try:
        fn = kernels.get(name, impl)
    except ValueError as exc:
        raise KernelSelectionError(str(exc)) from exc
    except ImportError as exc:
        if chosen is not None:
            raise KernelSelectionError(
                f"the {chosen!r} kernels do not load here ({exc}); "
                f"unset {kernels.ENV_VAR} or choose one of {', '.join(kernels.IMPLEMENTATIONS)}"
            ) from exc
        raise NativeBuildError(f"no kernel implementation loads here: {exc}") from exc
    _cache[key] = fn
    return fn
