"""libjpeg-turbo's own benchmark, ``tjbench`` (Debian package ``libjpeg-turbo-progs``), as the
reference the JPEG micro-benchmark measures edgeloop against.

``tjbench`` calls the same ``libturbojpeg`` edgeloop links, from C, in a tight loop, into
preallocated buffers: the floor a binding can reach. It reports frames per second averaged over
its ``-benchtime`` (a mean, not a distribution), so callers run it several times and take the
median of the runs. Its verbose output is parsed (``Frame rate: ... fps``, ``Output image size:
... bytes``); ``-quiet``'s table reports Mpixels/s rounded to 0.1 and is not used.

``-warmup`` is in seconds from libjpeg-turbo 2.1 on (2.0 read it as a count of iterations).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

EXECUTABLE = "tjbench"
INSTALL_HINT = "tjbench not found: install libjpeg-turbo-progs (Debian/Ubuntu)"
_FPS = {
    "compress": re.compile(r"^\s*Compress\s*-->\s*Frame rate:\s*([0-9.eE+-]+)\s*fps", re.M),
    "decompress": re.compile(r"^\s*Decompress\s*-->\s*Frame rate:\s*([0-9.eE+-]+)\s*fps", re.M),
}
_SIZE = re.compile(r"Output image size:\s*(\d+)\s*bytes")


class TjbenchError(RuntimeError):
    """tjbench is missing, failed, or printed nothing this module can read."""


@dataclass(frozen=True)
class TjbenchRun:
    """One tjbench run: mean milliseconds per frame, and the JPEG's size when it compressed."""

    mean_ms: float
    jpeg_bytes: int | None


def find() -> str | None:
    """Path of the ``tjbench`` executable, or None."""
    return shutil.which(EXECUTABLE)


def write_ppm(image: npt.NDArray[np.uint8], path: Path) -> Path:
    """Write a BGR ``H x W x 3`` image as a binary PPM (which stores RGB: channels are swapped
    here, and tjbench converts back to whatever ``-bgr``/``-rgb`` asks for on loading)."""
    height, width = image.shape[:2]
    with path.open("wb") as f:
        f.write(f"P6\n{width} {height}\n255\n".encode("ascii"))
        f.write(np.ascontiguousarray(image[..., ::-1]).tobytes())
    return path


def parse(output: str, operation: str) -> TjbenchRun:
    """Read one ``compress`` or ``decompress`` result from tjbench's verbose output.

    >>> text = '''
    ... >>>>>  BGR (Top-down) <--> JPEG 4:2:0 Q85  <<<<<
    ... Image size: 1920 x 1080
    ... Compress      --> Frame rate:         247.153763 fps
    ...                   Output image size:  169729 bytes
    ... '''
    >>> parse(text, "compress")
    TjbenchRun(mean_ms=4.046..., jpeg_bytes=169729)
    """
    match = _FPS[operation].search(output)
    if match is None:
        raise TjbenchError(f"no {operation} frame rate in tjbench's output: {output[-400:]!r}")
    fps = float(match.group(1))
    if not fps > 0:
        raise TjbenchError(f"tjbench reported a {operation} frame rate of {fps}")
    size = _SIZE.search(output) if operation == "compress" else None
    return TjbenchRun(1000.0 / fps, int(size.group(1)) if size else None)


def run(
    executable: str,
    source: Path,
    operation: str,
    *,
    quality: int | None = None,
    subsampling: str = "420",
    pixel_format: str = "bgr",
    scale: str | None = None,
    extra: tuple[str, ...] = (),
    bench_s: float = 1.0,
    warmup_s: float = 0.2,
) -> TjbenchRun:
    """Run tjbench once. ``compress``: ``source`` is a PPM, compressed at ``quality``
    (``-componly``); ``decompress``: ``source`` is a JPEG, decoded (at ``scale``, e.g. ``"1/2"``).
    Nothing is written (``-nowrite``); the command runs in ``source``'s folder."""
    args = [executable, source.name]
    if operation == "compress":
        if quality is None:
            raise ValueError("compress needs a quality")
        args += [str(quality), "-subsamp", subsampling, "-componly"]
    elif operation != "decompress":
        raise ValueError(f"operation must be 'compress' or 'decompress', got {operation!r}")
    if scale is not None:
        args += ["-scale", scale]
    args += [f"-{pixel_format}", "-nowrite", "-benchtime", f"{bench_s:g}"]
    args += ["-warmup", f"{warmup_s:g}", *extra]
    proc = subprocess.run(
        args,
        cwd=source.parent,
        capture_output=True,
        text=True,
        timeout=60 + 10 * (bench_s + warmup_s),
        check=False,
    )
    if proc.returncode != 0:
        raise TjbenchError(
            f"{' '.join(args)} exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}"
        )
    return parse(proc.stdout, operation)
