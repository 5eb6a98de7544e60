"""A known slowdown of the pipeline's stages, for tests only: what proves that ``bench
compare`` flags a regression, and what makes a pipeline slower than its camera in the drop
tests.

``EDGELOOP_TEST_SLOWDOWN=F`` makes every stage's work but the source's (which stands for the
camera) take the fraction ``F`` longer (``0.1``: the code got 10 % slower; ``30``: 31 times
slower than the camera). The bench reads it (:func:`from_env`) and gives the pipeline a
:class:`Slowdown` as its stage-call wrapper (:data:`core.pipeline.StageCallWrapper`); the
runtime itself knows nothing of it. Never set it in production: the bench warns, and records
it in the report (``suite.test_slowdown``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

TEST_SLOWDOWN_ENV = "EDGELOOP_TEST_SLOWDOWN"

log = logging.getLogger("edgeloop.bench")


class Slowdown:
    """A stage-call wrapper: after each call it sleeps ``fraction`` of the call's own time.

    A sleep, not a spin: it slows a stage without taking the GIL or a core from the others, as
    slower native code would. What a sleep overshoots or falls short by is carried to the next
    call (per thread), so the average is exact. Picklable: an inference process applies it to
    its own calls.

    >>> stretched = Slowdown(0.5)("infer", lambda: time.sleep(0.004))
    >>> start = time.perf_counter(); _ = [stretched() for _ in range(5)]
    >>> time.perf_counter() - start >= 5 * 0.006 * 0.9
    True
    """

    def __init__(self, fraction: float) -> None:
        if not fraction >= 0.0:  # also NaN
            raise ValueError(f"a slowdown is a fraction >= 0, got {fraction!r}")
        self.fraction = float(fraction)

    def __call__(self, stage: str, call: Callable[..., Any]) -> Callable[..., Any]:
        fraction = self.fraction
        debt = threading.local()
        clock = time.perf_counter_ns

        def stretched(*args: Any) -> Any:
            start = clock()
            result = call(*args)
            owed = getattr(debt, "ns", 0) + int((clock() - start) * fraction)
            if owed > 0:
                before = clock()
                time.sleep(owed / 1e9)
                owed -= clock() - before
            debt.ns = owed
            return result

        stretched.__name__ = f"slowed_{stage}"
        return stretched

    def __repr__(self) -> str:
        return f"Slowdown({self.fraction:g})"


def read_fraction(environ: Mapping[str, str] | None = None) -> float:
    """:data:`TEST_SLOWDOWN_ENV` as a fraction; 0.0 when unset, or (with a warning) when it is
    not a number >= 0."""
    raw = (os.environ if environ is None else environ).get(TEST_SLOWDOWN_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0.0:
        log.warning("%s=%r is not a fraction >= 0: ignored", TEST_SLOWDOWN_ENV, raw)
        return 0.0
    return value


def from_env(environ: Mapping[str, str] | None = None) -> Slowdown | None:
    """The :class:`Slowdown` :data:`TEST_SLOWDOWN_ENV` asks for (with a warning), else None."""
    fraction = read_fraction(environ)
    if not fraction:
        return None
    log.warning(
        "%s=%g: TEST-ONLY slowdown, every stage after the source takes %.0f %% longer",
        TEST_SLOWDOWN_ENV,
        fraction,
        fraction * 100,
    )
    return Slowdown(fraction)
