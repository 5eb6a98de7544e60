"""The kernel implementations the equivalence tests run over: every one that loads here.

``@each_impl`` parametrises a test with ``impl`` = ``"cython"``, ``"numba"``, ``"numpy"`` (those
that import), so a test id names the implementation (``test_x[numba]``), as pyzmq's CI runs its
suite once per backend.
"""

from __future__ import annotations

import pytest

from native.kernels import available_implementations

IMPLEMENTATIONS = available_implementations()
each_impl = pytest.mark.parametrize("impl", IMPLEMENTATIONS)
