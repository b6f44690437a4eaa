"""The CuPy launcher's plumbing (row blocks, halo, pinned buffers, two streams) without a GPU.

The numpy stand-in for CuPy of ``tests/fake_cupy.py`` is put in ``sys.modules["cupy"]``
for the duration of each test, and each kernel launch runs the host build of ``jump.cu``. The public ``detect_jumps(backend="gpu")`` must then equal the CPU
backend on exposures streamed in several row blocks. This checks the launcher's logic; the
device itself is covered by ``test_jump_gpu.py`` (``-m gpu``).
"""

import numpy as np
import pytest

import gpucal
from host_build import host_compiler
from jump_cases import exposure

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


@pytest.fixture
def host_gpu(cupy_stand_in, monkeypatch):
    from gpucal import backend, jump_detection

    monkeypatch.setattr(jump_detection, "resolve_backend", lambda b=None: "cpu" if b == "cpu" else "gpu")
    monkeypatch.setattr(backend, "free_device_memory", lambda *a: 1 << 30)
    return cupy_stand_in


@pytest.mark.parametrize("kw", [{}, dict(flag_4_neighbors=False),
                                dict(after_jump_flag_dn1=10.0, after_jump_flag_time1=25.0),
                                dict(expand_large_events=True)],
                         ids=["default", "no_neighbours", "after_jump", "snowballs"])
def test_gpu_path_equals_cpu_in_row_blocks(host_gpu, kw):
    ex = exposure(nints=3, ngroups=10, ny=40, nx=30, seed=7, cr_rate=5e-3, dnu_groups=0.02)
    gpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="gpu", max_memory="60KB", **kw)
    cpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu", **kw)
    assert len(host_gpu.ops("kernel", "two_point_kernel")) > 2 and len(host_gpu.ops("kernel", "neighbour_kernel")) >= 2
    np.testing.assert_array_equal(gpu.groupdq, cpu.groupdq)
    np.testing.assert_array_equal(gpu.pixeldq, cpu.pixeldq)
    assert gpu.meta["JUMPNPRI"] == cpu.meta["JUMPNPRI"]


def test_gpu_path_sigma_clip(host_gpu):
    ex = exposure(nints=100, ngroups=4, ny=12, nx=12, seed=8, cr_rate=5e-3)
    gpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="gpu", max_memory="200KB")
    cpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu")
    np.testing.assert_array_equal(gpu.groupdq, cpu.groupdq)
    assert np.count_nonzero(cpu.groupdq & 4) > 10
