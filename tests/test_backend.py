"""Backend selection: set_backend / GPUCAL_BACKEND / explicit argument, and the GPU check."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import gpucal
from gpucal import backend as be
from gpucal.errors import BackendUnavailableError, GpucalError, InputError

NO_GPU = "CuPy is not installed (simulated); install gpucal[gpu] or gpucal[gpu-cuda13]"


@pytest.fixture(autouse=True)
def clean_default(monkeypatch):
    """Each test starts with no process-wide default and no GPUCAL_BACKEND."""
    monkeypatch.setattr(be, "_default", None)
    monkeypatch.delenv("GPUCAL_BACKEND", raising=False)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(be, "gpu_unavailable_reason", lambda: NO_GPU)


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(be, "gpu_unavailable_reason", lambda: None)


def test_default_is_auto():
    assert be.get_backend() == "auto"


def test_set_backend_sets_default():
    gpucal.set_backend("cpu")
    assert gpucal.get_backend() == "cpu"
    gpucal.set_backend(" GPU ")  # case and blanks do not matter
    assert gpucal.get_backend() == "gpu"


def test_env_var_used_when_nothing_set(monkeypatch):
    monkeypatch.setenv("GPUCAL_BACKEND", "cpu")
    assert be.get_backend() == "cpu"
    assert be.resolve_backend() == "cpu"


def test_set_backend_wins_over_env(monkeypatch):
    monkeypatch.setenv("GPUCAL_BACKEND", "gpu")
    gpucal.set_backend("cpu")
    assert be.get_backend() == "cpu"


def test_explicit_argument_wins_over_default_and_env(monkeypatch, no_gpu):
    monkeypatch.setenv("GPUCAL_BACKEND", "gpu")
    gpucal.set_backend("gpu")
    assert be.resolve_backend("cpu") == "cpu"


@pytest.mark.parametrize("name", ["cuda", "", "numpy", "gpu0"])
def test_invalid_names_raise_input_error(name):
    with pytest.raises(InputError, match="backend must be one of"):
        gpucal.set_backend(name)
    with pytest.raises(InputError):
        be.resolve_backend(name)
    assert be.get_backend() == "auto"  # a failed set leaves the default alone


def test_invalid_env_var_names_the_variable(monkeypatch):
    monkeypatch.setenv("GPUCAL_BACKEND", "tpu")
    with pytest.raises(InputError, match="GPUCAL_BACKEND"):
        be.get_backend()


def test_input_error_is_a_value_error_and_gpucal_error():
    with pytest.raises(ValueError):
        be.resolve_backend("nope")
    with pytest.raises(GpucalError):
        be.resolve_backend("nope")


def test_cpu_always_resolves(no_gpu):
    assert be.resolve_backend("cpu") == "cpu"
    assert be.array_module("cpu") is np


def test_gpu_without_cupy_raises_with_the_cause(no_gpu):
    with pytest.raises(BackendUnavailableError) as info:
        be.resolve_backend("gpu")
    message = str(info.value)
    assert "backend='gpu'" in message
    assert "CuPy is not installed" in message
    assert isinstance(info.value, RuntimeError)


def test_gpu_as_default_raises_too(monkeypatch, no_gpu):
    monkeypatch.setenv("GPUCAL_BACKEND", "gpu")
    with pytest.raises(BackendUnavailableError, match="CuPy is not installed"):
        be.resolve_backend(None)


def test_auto_falls_back_to_cpu(no_gpu):
    assert be.resolve_backend("auto") == "cpu"
    assert be.resolve_backend(None) == "cpu"
    assert not be.gpu_available()


def test_auto_and_gpu_pick_gpu_when_available(fake_gpu):
    assert be.resolve_backend("auto") == "gpu"
    assert be.resolve_backend("gpu") == "gpu"
    assert be.gpu_available()


def test_real_check_is_cached_and_consistent():
    first = be.gpu_unavailable_reason()
    assert be.gpu_unavailable_reason() == first
    assert be.gpu_available() == (first is None)
    if first is None:
        assert be.resolve_backend("auto") == "gpu"
    else:
        assert isinstance(first, str) and first
        assert be.resolve_backend("auto") == "cpu"
        with pytest.raises(BackendUnavailableError) as info:
            be.resolve_backend("gpu")
        assert first in str(info.value)


def test_real_check_without_cupy_names_cupy():
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed here")
    be.gpu_unavailable_reason.cache_clear()
    try:
        reason = be.gpu_unavailable_reason()
    finally:
        be.gpu_unavailable_reason.cache_clear()
    assert reason is not None and "CuPy" in reason and "gpucal[gpu]" in reason


def test_to_host_passes_numpy_through():
    a = np.arange(4.0)
    assert be.to_host(a) is a
    assert np.array_equal(be.to_host([1, 2]), np.array([1, 2]))


def test_import_gpucal_loads_no_optional_dependency():
    code = (
        "import sys, gpucal, gpucal.backend, gpucal.cli, gpucal.progress, gpucal.demo; "
        "heavy = [m for m in ('cupy', 'matplotlib', 'tqdm', 'stcal') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_configures_no_logging():
    code = "import logging, gpucal, gpucal.cli; print(len(logging.getLogger().handlers))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
