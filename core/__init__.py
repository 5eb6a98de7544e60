"""edgeloop's edge runtime: the public API that ``bench``, ``hil`` and ``deploy`` use.

Frames travel through :class:`core.ring.FrameRing` slots; pixel work goes through the checked
wrappers in :mod:`core.preprocess`, :mod:`core.detections`, :mod:`core.motion` and :mod:`core.jpeg`,
which call whichever ``native`` implementation loaded. Errors come from :mod:`core.errors`.
"""

__version__ = "0.1.0"
