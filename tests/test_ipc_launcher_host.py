"""The IPC CuPy launcher's plumbing (row blocks, halo, pinned buffers, two streams) without a GPU.

``tests/fake_cupy.py`` stands in for CuPy and each launch runs the host build of ``ipc.cu``;
``gpucal.steps.ipc(backend="gpu")`` must equal the CPU backend bit for bit on exposures
streamed in several row blocks.
"""

import importlib

import numpy as np
import pytest

from gpucal.refs.ipc import synthetic_ipc_kernel
from gpucal.steps import ipc
from gpucal.synthetic import make_exposure
from host_build import host_compiler

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


@pytest.fixture
def host_gpu(cupy_stand_in, monkeypatch):
    from gpucal import backend
    ipc_step = importlib.import_module("gpucal.steps.ipc")  # the module (the package exports the function)

    monkeypatch.setattr(ipc_step, "resolve_backend", lambda b=None: "cpu" if b == "cpu" else "gpu")
    monkeypatch.setattr(backend, "free_device_memory", lambda *a: 1 << 30)
    return cupy_stand_in


@pytest.mark.parametrize("per_pixel", [False, True], ids=["2d", "4d"])
def test_gpu_path_equals_cpu_in_row_blocks(host_gpu, per_pixel):
    ex = make_exposure(2, 3, 40, 30, seed=2, flag_jumps=False)
    r = ex.ramp
    r.meta.update(SUBSTRT1=1, SUBSTRT2=2020, SUBSIZE1=30, SUBSIZE2=40)  # bottom: none, top: 12 rows, left: 4
    r.data[1, 1, 20, 10] = np.nan
    kernel = synthetic_ipc_kernel((2060, 30) if per_pixel else None)
    gpu = ipc(r, kernel, backend="gpu", max_memory="40KB")
    cpu = ipc(r, kernel, backend="cpu")
    expected = "ipc_4d_kernel" if per_pixel else "ipc_2d_kernel"
    launches = [op.name for op in host_gpu.ops("kernel")]
    assert len(launches) > 3 and set(launches) == {expected}
    np.testing.assert_array_equal(gpu.data, cpu.data)
    finite = ~np.isnan(cpu.data)
    np.testing.assert_array_equal(gpu.data.view(np.uint32)[finite], cpu.data.view(np.uint32)[finite])
    np.testing.assert_array_equal(gpu.groupdq, r.groupdq)
