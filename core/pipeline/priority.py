"""Who gets a core first when the stages want more cores than there are.

On a small CPU-only box (2 cores), inference is the bottleneck and the other stages together
need most of the second core. Whenever three workers are ready at once, the scheduler shares
the cores evenly, and the bottleneck loses time that no other stage can give back: measured
here (1080p, the reference detector, 2 cores), inference ran 4-8 % slower inside the pipeline
than alone. The ingest and compress workers therefore run ``stage_nice`` steps nicer than the
inference worker (``PipelineConfig.stage_nice``): they still get all the CPU time inference
leaves, and inference keeps its core. Raising niceness needs no privilege, so this works for a
Greengrass component's unprivileged user; a thread's niceness is its own on Linux
(``setpriority`` on its thread id), and a process started from it inherits it.

The output thread (decode, filter, compress, sink) keeps inference's priority: it takes a
fraction of a millisecond a frame, but every frame waits for it after inference, and nicer it
waited for the heavy ingest thread's time slice. Measured paced at 260 fps (1080p, reference
detector, 2 cores, four runs each, interleaved): postprocess p99 3.3-3.5 ms nicer against
0.7-0.8 ms not; end-to-end p99 minus inference p99 3.7-5.4 ms against 3.7-4.4 ms; flat-out fps
the same within the runs' spread (316-358 against 315-359). Again a day later at 256 fps, four
runs each, interleaved: the median window's p99 8.4-9.1 ms nicer against 8.1-8.7 ms not, p50
4.40-4.63 against 4.32-4.59 ms (stall windows of 12-35 ms came in both).

The ledger's JPEG sampler goes further (:func:`run_when_idle`): it runs only on idle time.
"""

from __future__ import annotations

import os
import threading

SAMPLER_NICE = 10
"""How much nicer the ledger's JPEG sampler runs where ``SCHED_IDLE`` is not available."""


def be_nicer(steps: int) -> bool:
    """Make the calling thread ``steps`` nicer (lower priority); False where not allowed."""
    if steps <= 0:
        return True
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + steps)
    except (AttributeError, OSError):  # pragma: no cover - not Linux, or not allowed
        return False
    return True


def run_when_idle(nice: int = SAMPLER_NICE) -> str:
    """Let the calling thread run only on CPU time nobody else wants: Linux's ``SCHED_IDLE``
    (a thread of any other policy that wakes takes the CPU from it at once), else ``nice``
    steps nicer. Returns which it got ("idle", "nice" or "none").

    Measured paced at 80 % of capacity (1080p, the reference detector, 2 cores): at nice +10
    the sampler's 4 ms encode every 30th frame still delayed the frames beside it -- end-to-end
    p99 8.8 to 30 ms against 7.0 ms without the sampler."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread (Linux)
        return "idle"
    except (AttributeError, OSError):
        pass
    return "nice" if be_nicer(nice) else "none"
