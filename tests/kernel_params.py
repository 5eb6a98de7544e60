"""The kernel implementations the equivalence tests run over: every one edgeloop has.

``@each_impl`` parametrises a test with ``impl`` = ``"cython"``, ``"numba"``, ``"numpy"``, so a
test id names the implementation (``test_x[numba]``), as pyzmq's CI runs its suite once per
backend. All three, not only those that load: `make test` builds the Cython extensions and
installs Numba, so one that does not load here fails its tests rather than vanishing from them.
"""

from __future__ import annotations

import pytest

from native.kernels import IMPLEMENTATIONS

each_impl = pytest.mark.parametrize("impl", IMPLEMENTATIONS)
