"""What the models built here share: an ONNX graph grown node by node with fixed-seed weights,
names numbered in order, so the same code writes the same bytes on every machine."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


class GraphBuilder:
    """Nodes and fixed-seed initialisers of a graph being built (subclasses add the layers)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.count = 0

    def name(self, kind: str) -> str:
        """The next node or tensor name of ``kind`` (sequential: stable bytes)."""
        self.count += 1
        return f"{kind}_{self.count}"

    def uniform(self, shape: tuple[int, ...], std: float) -> np.ndarray:
        """Uniform in [-a, a) with standard deviation ``std`` (a = std * sqrt(3)), float32."""
        bound = std * np.sqrt(3.0)
        values: np.ndarray = (self.rng.random(shape, dtype=np.float64) * 2.0 - 1.0) * bound
        return values.astype(np.float32)

    def constant(self, name: str, array: np.ndarray) -> str:
        """A weight: ``array`` as the initialiser ``name``."""
        self.initializers.append(numpy_helper.from_array(array, name))
        return name
