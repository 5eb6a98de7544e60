"""Collection settings for the whole tree (pytest runs the doctests of ``core``, ``bench`` and
``native`` too).

The detector training modules import torch, a development-only extra (``.[train]``) that CI
never installs: without it they are left out of doctest collection rather than failing it.
"""

from __future__ import annotations

import importlib.util

collect_ignore: list[str] = []
if importlib.util.find_spec("torch") is None:
    collect_ignore += ["core/models/detector_net.py", "core/models/train_detector.py"]
