"""The CuPy launcher's plumbing (row blocks, halo, pinned buffers, two streams) without a GPU.

A numpy stand-in for the handful of CuPy calls the launcher makes is put in
``sys.modules["cupy"]`` for the duration of each test, and each kernel launch runs the host
build of ``jump.cu``. The public ``detect_jumps(backend="gpu")`` must then equal the CPU
backend on exposures streamed in several row blocks. This checks the launcher's logic; the
device itself is covered by ``test_jump_gpu.py`` (``-m gpu``).
"""

import sys
import types

import numpy as np
import pytest

import gpucal
from host_build import host_compiler, host_library, launch_host
from jump_cases import exposure

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


class _DeviceArray(np.ndarray):
    def set(self, array, stream=None):
        self[...] = array

    def get(self, stream=None, out=None):
        if out is None:
            return np.array(self)
        out[...] = self
        return out


class _Stream:
    def __init__(self, non_blocking=False):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


def _fake_cupy() -> types.ModuleType:
    cupy = types.ModuleType("cupy")
    cupy.ndarray = _DeviceArray
    cupy.empty = lambda shape, dtype=np.float32: np.empty(shape, dtype=dtype).view(_DeviceArray)
    cupy.zeros = lambda shape, dtype=np.float32: np.zeros(shape, dtype=dtype).view(_DeviceArray)
    cupy.asarray = lambda a: np.array(a, order="C", copy=True).view(_DeviceArray)
    cupy.asnumpy = lambda a: np.array(a)
    cupy.cuda = types.SimpleNamespace(Stream=_Stream, alloc_pinned_memory=lambda n: bytearray(n))
    return cupy


@pytest.fixture
def host_gpu(monkeypatch):
    from gpucal import backend
    from gpucal import jump_detection
    from gpucal.gpu import compile as gpu_compile

    launches = []

    def kernel(module, function):
        library = host_library(module)

        def launch(grid, block, args):
            launches.append(function)
            launch_host(library, function, [np.asarray(a) if isinstance(a, np.ndarray) else a for a in args],
                        grid=grid[0], block=block[0])

        return launch

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setattr(gpu_compile, "kernel", kernel)
    monkeypatch.setattr(jump_detection, "resolve_backend", lambda b=None: "cpu" if b == "cpu" else "gpu")
    monkeypatch.setattr(backend, "free_device_memory", lambda *a: 1 << 30)
    return launches


@pytest.mark.parametrize("kw", [{}, dict(flag_4_neighbors=False),
                                dict(after_jump_flag_dn1=10.0, after_jump_flag_time1=25.0),
                                dict(expand_large_events=True)],
                         ids=["default", "no_neighbours", "after_jump", "snowballs"])
def test_gpu_path_equals_cpu_in_row_blocks(host_gpu, kw):
    ex = exposure(nints=3, ngroups=10, ny=40, nx=30, seed=7, cr_rate=5e-3, dnu_groups=0.02)
    gpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="gpu", max_memory="60KB", **kw)
    cpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu", **kw)
    assert host_gpu.count("two_point_kernel") > 2 and host_gpu.count("neighbour_kernel") >= 2
    np.testing.assert_array_equal(gpu.groupdq, cpu.groupdq)
    np.testing.assert_array_equal(gpu.pixeldq, cpu.pixeldq)
    assert gpu.meta["JUMPNPRI"] == cpu.meta["JUMPNPRI"]


def test_gpu_path_sigma_clip(host_gpu):
    ex = exposure(nints=100, ngroups=4, ny=12, nx=12, seed=8, cr_rate=5e-3)
    gpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="gpu", max_memory="200KB")
    cpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu")
    np.testing.assert_array_equal(gpu.groupdq, cpu.groupdq)
    assert np.count_nonzero(cpu.groupdq & 4) > 10
