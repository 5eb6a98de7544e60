"""Build the compiled core in ``native/``.

Every build option is an environment variable, documented here and only here:

``EDGELOOP_MARCH_NATIVE=1``
    Compile for the build machine's CPU (``-march=native``). Off by default so that wheels run on
    any CPU of their architecture; x86-64 kernels still use AVX2/AVX-512 through run-time dispatch.
``EDGELOOP_DEBUG=1``
    ``-O0 -g`` and Cython bounds checks, for gdb and sanitizers.
``EDGELOOP_BUILD_ONLY=_ring,_kernels``
    Build only the named extensions (for working on one of them).
``EDGELOOP_TURBOJPEG_INCLUDE`` / ``EDGELOOP_TURBOJPEG_LIB``
    Where ``turbojpeg.h`` and ``libturbojpeg.so`` live when not in the system paths.
"""

from __future__ import annotations

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("EDGELOOP_DEBUG") == "1"
MARCH_NATIVE = os.environ.get("EDGELOOP_MARCH_NATIVE") == "1"

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

CFLAGS = ["-std=gnu11", "-fno-strict-aliasing", "-Wno-unused-function"]
CFLAGS += ["-O0", "-g"] if DEBUG else ["-O3"]
if MARCH_NATIVE:
    CFLAGS.append("-march=native")

INCLUDE_DIRS = ["native/src", "native/include"]


def _env_list(name: str) -> list[str]:
    value = os.environ.get(name, "")
    return [part for part in value.split(os.pathsep) if part]


EXTENSIONS = [
    Extension(
        "native._ring",
        ["native/_ring.pyx"],
        include_dirs=INCLUDE_DIRS,
        extra_compile_args=CFLAGS,
        depends=["native/src/ring.h", "native/src/wakeprobe.h", "native/include/ring.pxd"],
    ),
    Extension(
        "native._kernels",
        [
            "native/_kernels.pyx",
            "native/src/preprocess.c",
            "native/src/nms.c",
            "native/src/motion.c",
            "native/src/compose.c",
        ],
        include_dirs=INCLUDE_DIRS,
        extra_compile_args=CFLAGS,
        libraries=["m"],
        depends=[
            "native/src/kernels.h",
            "native/src/dispatch.h",
            "native/src/preprocess.c",
            "native/src/nms.c",
            "native/src/motion.c",
            "native/src/compose.c",
            "native/include/kernels.pxd",
        ],
    ),
    Extension(
        "native._jpeg",
        ["native/_jpeg.pyx"],
        include_dirs=INCLUDE_DIRS + _env_list("EDGELOOP_TURBOJPEG_INCLUDE"),
        library_dirs=_env_list("EDGELOOP_TURBOJPEG_LIB"),
        libraries=["turbojpeg"],
        extra_compile_args=CFLAGS,
        depends=["native/include/turbojpeg.pxd"],
    ),
]

ONLY = {name for name in os.environ.get("EDGELOOP_BUILD_ONLY", "").split(",") if name}
if ONLY:
    EXTENSIONS = [ext for ext in EXTENSIONS if ext.name.split(".")[-1] in ONLY]

if sys.platform != "linux":
    raise SystemExit("edgeloop's compiled core targets Linux (futex, /dev/shm); build it on Linux")

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives=COMPILER_DIRECTIVES,
        include_path=["native/include"],
        nthreads=int(os.environ.get("EDGELOOP_BUILD_JOBS", "0")),
    ),
)
