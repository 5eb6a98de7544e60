"""A model's input or output as its file declares it: the value type backends, model-file
checks and the TensorRT plan share.

A module of its own so that :mod:`core.backends.base` (the contract) and
:mod:`core.backends.model_file` (checking files against it) both import it and neither imports
the other back.
"""

from __future__ import annotations

from dataclasses import dataclass

Dim = int | str | None
"""A declared dimension: an int when fixed, its symbolic name (or None) when dynamic."""


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the model file declares it."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str
    """NumPy dtype name (``float32``), or the runtime's own name for types NumPy lacks."""

    def shape_text(self) -> str:
        """``[batch, 3, 224, 224]``: dynamic dimensions by name, ``?`` when unnamed.

        >>> TensorSpec("images", ("batch", 3, None, 640), "float32").shape_text()
        '[batch, 3, ?, 640]'
        """
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def __str__(self) -> str:
        return f"{self.name}{self.shape_text()} {self.dtype}"
