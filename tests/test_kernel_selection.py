"""Choosing the kernel implementation: ``EDGELOOP_KERNELS`` forces one, the default follows
``native.kernels.PREFERENCE``, and a wrong or unloadable choice says what to do."""

from __future__ import annotations

import numpy as np
import pytest

import core._native
from core.detections import nms
from core.errors import KernelSelectionError
from native import kernels
from tests.kernel_params import IMPLEMENTATIONS, each_impl


@pytest.fixture(autouse=True)
def _fresh_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test resolves from scratch and leaves no cached choice behind."""
    monkeypatch.setattr(core._native, "_cache", {})
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)


def test_numpy_always_loads() -> None:
    assert "numpy" in IMPLEMENTATIONS


@each_impl
def test_environment_forces_an_implementation(impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernels.ENV_VAR, f" {impl.upper()} ")
    for name in kernels.KERNEL_NAMES:
        assert kernels.implementation_for(name) == impl
        assert core._native.kernel(name) is getattr(kernels.load_implementation(impl), name)


def test_default_follows_preference() -> None:
    for name in kernels.KERNEL_NAMES:
        first_loading = next(i for i in kernels.PREFERENCE[name] if i in IMPLEMENTATIONS)
        assert kernels.implementation_for(name) == first_loading
    assert set(kernels.describe()) == set(kernels.KERNEL_NAMES)


def test_invalid_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernels.ENV_VAR, "fortran")
    with pytest.raises(ValueError, match=r"EDGELOOP_KERNELS='fortran'.*cython, numba, numpy"):
        kernels.implementation_for("nms")
    with pytest.raises(KernelSelectionError, match="EDGELOOP_KERNELS"):
        nms(np.zeros((1, 4)), np.ones(1))


def test_forced_but_unloadable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kernels.MODULES, "numba", "native._no_such_kernels")
    loaded = {k: v for k, v in kernels._loaded.items() if k != "numba"}
    monkeypatch.setattr(kernels, "_loaded", loaded)
    monkeypatch.setattr(kernels, "_failures", {})
    monkeypatch.setenv(kernels.ENV_VAR, "numba")
    with pytest.raises(KernelSelectionError, match="'numba' kernels do not load here"):
        nms(np.zeros((1, 4)), np.ones(1))


def test_unbuilt_compiled_module_says_how_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kernels.MODULES, "cython", "native._kernels_not_built")
    with pytest.raises(ImportError, match="make native"):
        kernels._import("cython")


def test_every_implementation_loads_where_the_set_up_ran() -> None:
    """`make test` builds the Cython extensions and installs Numba: each must load here (the
    equivalence tests run over all of them, :mod:`tests.kernel_params`)."""
    assert kernels.available_implementations() == list(IMPLEMENTATIONS)
