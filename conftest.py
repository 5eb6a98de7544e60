"""Collection settings for the whole tree (pytest runs the doctests of ``core``, ``bench`` and
``native`` too).

The detector training modules (``examples/training/``) import torch, a development-only extra
(``.[train]``) that CI never installs: without it they are left out of doctest collection (when
``examples`` is named on the command line) rather than failing it.
"""

from __future__ import annotations

import importlib.util

collect_ignore: list[str] = []
if importlib.util.find_spec("torch") is None:
    collect_ignore += ["examples/training/detector_net.py", "examples/training/train_detector.py"]
