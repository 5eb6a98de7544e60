#!/usr/bin/env bash
# One pass on a lent NVIDIA GPU machine: probe it, build the compiled core for its Python, run
# tests/gpu (with the real-NVML tests), capture the bench environment and run a short
# `python -m bench pipeline`. Every step prints a header and its exit code, and a failed or
# timed-out step never stops the next one. The whole pass keeps to a time budget
# (DEVICE_CHECK_BUDGET_S, default 420 s): each step's timeout shrinks to what is left.
#
#   OUT=/some/folder bash tests/gpu/device_check.sh
#
# Writes into $OUT (at most 6 files): device_check.log (everything printed), pip_list.txt,
# device_probe.json (python -m core.device --json), pytest_gpu.xml (JUnit), bench_env.json
# (bench.env.capture()), pipeline_gpu_machine.json (the bench report).
#
# Reads, from .devcarry/ beside the repository root (git-ignored, carried with the tree):
#   *.deb          libturbojpeg0 and libturbojpeg0-dev, unpacked with dpkg -x into /tmp/tj
#                  (never installed): the TurboJPEG API native/_jpeg.pyx links against
#   whl/*.whl      wheels to put on PYTHONPATH (/tmp/site), when there are any
#   fallback/      used only where the image lacks them: cython-*-py3-none-any.whl (no Cython
#                  >= 3.0.10 importable) and py312-include.tar.gz (CPython 3.12 headers, where
#                  the interpreter's include folder has no Python.h)
# Make it where apt works: echo /.devcarry/ >> .git/info/exclude; mkdir -p .devcarry &&
#   (cd .devcarry && apt-get download libturbojpeg0 libturbojpeg0-dev) -- where the image has
#   Python.h, Cython and gcc, nothing else is needed.
# Environment: OUT (required), PYTHON (default python3), DEVICE_CHECK_BUDGET_S, and
# DEVICE_CHECK_SKIP: step names to skip, comma-separated ("bench pipeline" for a dry run on a
# machine whose benchmarks must not be disturbed).
# The step commands are single-quoted on purpose: `bash -c` expands them, with the exports.
# shellcheck disable=SC2016
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
if [ -z "${OUT:-}" ]; then
    echo "device_check: set OUT to the folder the results go to" >&2
    exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OUT
PY=${PYTHON:-python3}
export PY
CARRY=$ROOT/.devcarry
BUDGET_S=${DEVICE_CHECK_BUDGET_S:-420}
RESERVE_S=10 # kept for the summary and the listing of $OUT
START=$SECONDS
SUMMARY=()

# step NAME MAX_SECONDS SHELL_COMMAND: run it under `timeout` (the smaller of MAX_SECONDS and
# what is left of the budget), print its exit code and time, and always return 0.
step() {
    local name=$1 max=$2 command=$3
    local left=$((BUDGET_S - (SECONDS - START) - RESERVE_S))
    local limit=$((max < left ? max : left))
    echo
    echo "===== [$(date +%T) +$((SECONDS - START))s] $name (timeout ${limit}s) ====="
    echo "\$ $command"
    if [[ ",${DEVICE_CHECK_SKIP:-}," == *",$name,"* ]]; then
        echo "----- $name: SKIPPED (DEVICE_CHECK_SKIP)"
        SUMMARY+=("$(printf '%-24s skipped (DEVICE_CHECK_SKIP)' "$name")")
        return 0
    fi
    if ((limit < 5)); then
        echo "----- $name: SKIPPED, the ${BUDGET_S}s budget is spent"
        SUMMARY+=("$(printf '%-24s skipped (budget)' "$name")")
        return 0
    fi
    local t0=$SECONDS rc
    timeout -k 10 "$limit" bash -c "$command" </dev/null
    rc=$?
    local note=""
    ((rc == 124 || rc == 137)) && note=" (TIMED OUT after ${limit}s)"
    echo "----- $name: exit $rc in $((SECONDS - t0))s$note"
    SUMMARY+=("$(printf '%-24s exit %-3s %4ss%s' "$name" "$rc" "$((SECONDS - t0))" "$note")")
    return 0
}

main() {
    echo "device_check: $(date -u +%FT%TZ) on $(uname -n), repo $ROOT, OUT $OUT, budget ${BUDGET_S}s"

    # -- probe -------------------------------------------------------------------------------
    step "nvidia-smi" 30 'nvidia-smi; nvidia-smi -L;
        nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap,mig.mode.current,persistence_mode --format=csv'
    step "machine" 30 'uname -a; cat /etc/os-release 2>/dev/null | head -3; nproc; free -g;
        df -h /dev/shm /tmp .; id -u; command -v "$PY" python3 pip dpkg gcc cc nvcc;
        gcc --version | head -1; nvcc --version 2>/dev/null | tail -2;
        ldconfig -p | grep -i -E "turbojpeg|libcuda\.so|libcudnn\.so|libnvidia-ml" ;
        ls -l /usr/include/turbojpeg.h 2>&1;
        shm=$(df -Pk /dev/shm | awk "NR == 2 {print \$2}");
        [ "${shm:-0}" -lt 131072 ] && echo "WARNING: /dev/shm has ${shm} KiB: a 1080p stream ring of 8 slots needs ~50 MB"; true'
    step "python" 60 '"$PY" -V; "$PY" -c "import sys; print(sys.executable, sys.prefix)";
        "$PY" -c "import sysconfig as s; i = s.get_paths()[\"include\"]; import os;
print(\"include\", i, \"Python.h:\", os.path.isfile(os.path.join(i, \"Python.h\")));
print(\"CC\", s.get_config_var(\"CC\"), \"| LDSHARED\", s.get_config_var(\"LDSHARED\"))";
        "$PY" -c "import onnxruntime as o; print(\"onnxruntime\", o.__version__, o.get_available_providers())";
        "$PY" -c "import Cython, setuptools; print(\"Cython\", Cython.__version__, \"setuptools\", setuptools.__version__)";
        "$PY" -c "import pynvml; print(\"pynvml from\", pynvml.__file__)";
        "$PY" -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available())"'
    step "pip list" 60 '"$PY" -m pip list 2>/dev/null > "$OUT/pip_list.txt" || "$PY" -c "
import importlib.metadata as m
for d in sorted(m.distributions(), key=lambda d: d.metadata[\"Name\"].lower()):
    print(d.metadata[\"Name\"], d.version)" > "$OUT/pip_list.txt";
        grep -i -E "onnx|numpy|cython|nvidia-ml|opencv|pytest|torch|cupy|tensorrt|pycuda|setuptools" "$OUT/pip_list.txt"'

    # -- what travelled: TurboJPEG, wheels, fallbacks ---------------------------------------
    echo
    echo "===== [+$((SECONDS - START))s] environment from .devcarry ====="
    ls -la "$CARRY" "$CARRY"/* 2>&1
    shopt -s nullglob
    local tj=/tmp/tj debs=("$CARRY"/*.deb)
    rm -rf "$tj" && mkdir -p "$tj"
    if [ "${#debs[@]}" -gt 0 ]; then
        for deb in "${debs[@]}"; do
            dpkg -x "$deb" "$tj" && echo "unpacked $(basename "$deb") into $tj" || echo "dpkg -x $deb failed"
        done
    else
        echo "no .deb in $CARRY: the build relies on a system libturbojpeg"
    fi
    local tjlib
    tjlib=$(dirname "$(find "$tj" -name 'libturbojpeg.so' 2>/dev/null | head -1)" 2>/dev/null)
    if [ -f "$tj/usr/include/turbojpeg.h" ] && [ -n "$tjlib" ] && [ "$tjlib" != . ]; then
        export EDGELOOP_TURBOJPEG_INCLUDE=$tj/usr/include
        export EDGELOOP_TURBOJPEG_LIB=$tjlib
        export LD_LIBRARY_PATH=$tjlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        export LDFLAGS="${LDFLAGS:-} -Wl,-rpath,$tjlib"
    fi
    echo "EDGELOOP_TURBOJPEG_INCLUDE=${EDGELOOP_TURBOJPEG_INCLUDE:-}"
    echo "EDGELOOP_TURBOJPEG_LIB=${EDGELOOP_TURBOJPEG_LIB:-}"
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

    local site=/tmp/site wheels=()
    rm -rf "$site"
    [ -d "$CARRY/whl" ] && wheels=("$CARRY"/whl/*.whl)
    if ! "$PY" -c 'import sys, Cython
v = tuple(int(p) for p in Cython.__version__.split(".")[:3] if p.isdigit())
sys.exit(v < (3, 0, 10))' 2>/dev/null; then
        echo "no Cython >= 3.0.10 importable: using the carried fallback wheel"
        wheels+=("$CARRY"/fallback/cython-*.whl)
    fi
    if [ "${#wheels[@]}" -gt 0 ]; then
        mkdir -p "$site"
        if "$PY" -m pip --version >/dev/null 2>&1; then
            "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${wheels[@]}"
            echo "pip install --target $site: exit $?"
        else # an environment made without pip (uv): a wheel is a zip
            for wheel in "${wheels[@]}"; do
                "$PY" -m zipfile -e "$wheel" "$site" && echo "unzipped $(basename "$wheel") into $site"
            done
        fi
        export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
    else
        echo "no wheels to install"
    fi
    echo "PYTHONPATH=${PYTHONPATH:-}"

    local include
    include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
    if [ ! -f "$include/Python.h" ]; then
        if "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' &&
            [ -f "$CARRY/fallback/py312-include.tar.gz" ]; then
            rm -rf /tmp/pyinc && mkdir -p /tmp/pyinc &&
                tar -C /tmp/pyinc -xzf "$CARRY/fallback/py312-include.tar.gz" &&
                export CPATH=/tmp/pyinc/python3.12${CPATH:+:$CPATH}
            echo "no Python.h in $include: CPATH=${CPATH:-} (carried CPython 3.12.1 headers)"
        else
            echo "no Python.h in $include and no matching fallback: the build will fail"
        fi
    fi
    local cc ldshared
    cc=$("$PY" -c 'import sysconfig; print((sysconfig.get_config_var("CC") or "cc").split()[0])')
    ldshared=$("$PY" -c 'import sysconfig; print((sysconfig.get_config_var("LDSHARED") or "cc").split()[0])')
    if ! command -v "$cc" >/dev/null || ! command -v "$ldshared" >/dev/null; then
        export CC="gcc -pthread" LDSHARED="gcc -pthread -shared"
        echo "sysconfig names a compiler that is not here ($cc / $ldshared): CC=$CC LDSHARED=$LDSHARED"
    fi
    export EDGELOOP_BUILD_JOBS=3

    # -- build -------------------------------------------------------------------------------
    step "build_ext" 240 'ls native/*.so 2>/dev/null; "$PY" setup.py build_ext --inplace -j 8 2>&1 |
        grep -v -E "^(copying|creating|running|building|  [a-z_/.]*$)" | tail -60; exit "${PIPESTATUS[0]}"'
    step "native import" 30 'ls -l native/*.so; ldd native/_jpeg.*.so 2>/dev/null | grep -i turbojpeg;
        "$PY" -c "import native._ring, native._kernels, native._jpeg; from native import kernels;
print(\"kernels:\", kernels.describe())"'

    # -- what our code reads -----------------------------------------------------------------
    step "core.device" 60 '"$PY" -m core.device; "$PY" -m core.device --json > "$OUT/device_probe.json";
        rc=$?; echo "device_probe.json: $(wc -c < "$OUT/device_probe.json") bytes"; exit $rc'

    step "video decoders" 60 '"$PY" -c "import av, cv2, re
from av.codec.hwaccel import hwdevices_available
print(\"pyav\", av.__version__, \"hwdevices:\", hwdevices_available())
print(\"cuvid decoders:\", sorted(c for c in av.codecs_available if c.endswith(\"_cuvid\")))
info = cv2.getBuildInformation()
print(\"opencv\", cv2.__version__, [l.strip() for l in info.splitlines() if re.search(r\"GStreamer|FFMPEG|CUDA|NVCUVID\", l)])
"; ffmpeg -hide_banner -hwaccels 2>/dev/null; ffmpeg -hide_banner -decoders 2>/dev/null | grep -i -E "cuvid|nvdec" | head'

    # -- tests -------------------------------------------------------------------------------
    # -o addopts=: pyproject's addopts pass --benchmark-disable, which needs pytest-benchmark
    # (not on the image); tests/gpu needs none of them. tests/conftest.py imports only core.*.
    local timeout_opt=""
    "$PY" -c 'import pytest_timeout' 2>/dev/null && timeout_opt="--timeout=120"
    export TIMEOUT_OPT=$timeout_opt
    step "pytest tests/gpu" 240 '"$PY" -m pytest tests/gpu -v -rs -p no:cacheprovider -o addopts= \
        $TIMEOUT_OPT --junitxml="$OUT/pytest_gpu.xml"'

    # -- bench ---------------------------------------------------------------------------------
    step "bench env" 60 '"$PY" -c "import json, sys
from bench import env
json.dump(env.capture(), open(sys.argv[1], \"w\"), indent=2, default=str)
" "$OUT/bench_env.json" && "$PY" -c "import json, sys
e = json.load(open(sys.argv[1]))
for key in (\"python\", \"os\", \"cgroup\", \"kernels\", \"cuda_toolkit\"):
    print(key, \"=\", e.get(key))
print(\"cpu =\", {k: e[\"cpu\"].get(k) for k in (\"model\", \"logical_cores\", \"usable_cores\", \"simd\")})
print(\"gpus =\", e[\"device\"][\"gpus\"])
print(\"auto_backend =\", e[\"device\"][\"auto_backend\"])
print(\"libraries =\", {k: v for k, v in e[\"libraries\"].items() if v})
" "$OUT/bench_env.json"'
    step "bench pipeline" 150 '"$PY" -m bench pipeline --source clip1080p --duration 10 --json "$OUT/pipeline_gpu_machine.json"'

    # -- summary -------------------------------------------------------------------------------
    echo
    echo "===== summary (+$((SECONDS - START))s of ${BUDGET_S}s) ====="
    printf '%s\n' "${SUMMARY[@]}"
    echo
    echo "===== $OUT ====="
    ls -la "$OUT"
}

main 2>&1 | tee "$OUT/device_check.log"
