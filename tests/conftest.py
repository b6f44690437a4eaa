import sys
from pathlib import Path

import pytest

# Test helpers (stcal_reference, host_build, ramp_cases, kernel_runs) live beside the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _gpu_reason() -> str | None:
    from gpucal.backend import gpu_unavailable_reason

    return gpu_unavailable_reason()


def pytest_collection_modifyitems(config, items):
    reason = None
    checked = False
    for item in items:
        if "gpu" in item.keywords:
            if not checked:
                reason, checked = _gpu_reason(), True
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=f"no usable GPU: {reason}"))


@pytest.fixture
def cupy_stand_in(monkeypatch):
    """tests/fake_cupy.py installed as ``cupy`` (as strict as CuPy; kernels run on the host
    build); yields its ``Runtime`` (event log, transfers, compiles). At the end the host waits
    for the device and any race or misuse of pinned memory left is raised."""
    import fake_cupy
    from host_build import host_compiler

    if host_compiler() is None:
        pytest.skip("no C++ compiler for the host build")
    runtime = fake_cupy.install(monkeypatch)
    yield runtime
    runtime.finish()
