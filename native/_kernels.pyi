"""Type stubs of the compiled :mod:`native._kernels` (contract: :mod:`native.kernels`)."""

import numpy as np
import numpy.typing as npt

BILINEAR: int
AREA: int

def vector_isa() -> str: ...
def preprocess_into(
    src: np.ndarray,
    dst: np.ndarray,
    region: tuple[int, int, int, int],
    scale: np.ndarray,
    bias: np.ndarray,
    pad: np.ndarray,
    swap_rb: bool,
    interpolation: int,
) -> None: ...
def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float,
    score_threshold: float,
    top_k: int,
) -> npt.NDArray[np.int64]: ...
def motion_cells(src: np.ndarray, factor: int, out: np.ndarray) -> None: ...
def motion_diff(
    prev: np.ndarray, cur: np.ndarray, threshold: int
) -> tuple[int, int, int, int, int]: ...
def add_wrapped(base: np.ndarray, level: int, noise: np.ndarray, out: np.ndarray) -> None: ...
def paint_wrapped(
    out: np.ndarray, mask: np.ndarray, colour: np.ndarray, noise: np.ndarray
) -> None: ...
