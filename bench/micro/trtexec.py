"""TensorRT's own benchmark, ``trtexec``, as the floor the TensorRT backend is measured against.

``trtexec --loadEngine`` runs the very engine file the backend built and cached, with the same
input shape, from C++, with its own buffers: what is left between the two is the backend's
Python and copy overhead. Its summary reports ``Latency`` (host to host, H2D + compute + D2H,
comparable with ``infer``) and ``GPU Compute Time`` as min/max/mean/median/percentiles, and a
``Throughput`` in queries per second; this module parses that summary.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_NUMBER = r"([\d.eE+-]+) ms"
_FIELD = (
    r"{}: min = [\d.eE+-]+ ms, max = [\d.eE+-]+ ms, "
    rf"mean = {_NUMBER}, median = {_NUMBER}.*?percentile\(99%\) = {_NUMBER}"
)
_LATENCY = re.compile(_FIELD.format(r"\bLatency"))
_COMPUTE = re.compile(_FIELD.format(r"GPU Compute Time"))
_THROUGHPUT = re.compile(r"Throughput: ([\d.eE+-]+) qps")


class TrtexecError(RuntimeError):
    """trtexec failed or printed no summary this module can read."""


@dataclass(frozen=True)
class TrtexecRun:
    latency_median_ms: float
    latency_p99_ms: float
    compute_median_ms: float | None
    throughput_qps: float


def parse(output: str) -> TrtexecRun:
    """Read trtexec's performance summary (TensorRT 8.6 and 10 print the same lines).

    >>> text = '''
    ... [I] === Performance summary ===
    ... [I] Throughput: 1523.45 qps
    ... [I] Latency: min = 0.625 ms, max = 1.25 ms, mean = 0.650879 ms, median = 0.648438 ms, percentile(90%) = 0.660156 ms, percentile(95%) = 0.665039 ms, percentile(99%) = 0.688477 ms
    ... [I] GPU Compute Time: min = 0.5 ms, max = 0.9 ms, mean = 0.52 ms, median = 0.519 ms, percentile(90%) = 0.53 ms, percentile(95%) = 0.54 ms, percentile(99%) = 0.56 ms
    ... '''
    >>> parse(text)
    TrtexecRun(latency_median_ms=0.648438, latency_p99_ms=0.688477, compute_median_ms=0.519, throughput_qps=1523.45)
    """  # noqa: E501 - trtexec's own lines
    latency = _LATENCY.search(output)
    throughput = _THROUGHPUT.search(output)
    if latency is None or throughput is None:
        raise TrtexecError(f"no performance summary in trtexec's output: {output[-400:]!r}")
    compute = _COMPUTE.search(output)
    return TrtexecRun(
        latency_median_ms=float(latency.group(2)),
        latency_p99_ms=float(latency.group(3)),
        compute_median_ms=float(compute.group(2)) if compute else None,
        throughput_qps=float(throughput.group(1)),
    )


def run(
    executable: str, engine: Path, input_name: str, shape: tuple[int, ...], *, seconds: float
) -> TrtexecRun:
    """Run ``trtexec`` on the cached ``engine`` with ``input_name`` of ``shape``."""
    args = [
        executable,
        f"--loadEngine={engine}",
        f"--shapes={input_name}:{'x'.join(str(d) for d in shape)}",
        f"--duration={max(1, round(seconds))}",
        "--warmUp=200",
    ]
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=120 + 2 * seconds, check=False
    )
    if proc.returncode != 0:
        raise TrtexecError(
            f"{' '.join(args)} exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}"
        )
    return parse(proc.stdout)
