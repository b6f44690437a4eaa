"""Jump-detection CuPy path against cpu_fallback on a real GPU: identical bits (``pytest -m gpu``).

Skipped cleanly without CuPy or a device. Needs no reference packages (no stcal).
"""

import numpy as np
import pytest

import gpucal
from jump_cases import MODES, exposure, params, random_block
from jump_runs import (assert_two_point_identical, neighbour_cupy, neighbour_numpy, split_rows, two_point_cupy,
                       two_point_numpy)

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape", [(1, 3), (2, 4), (1, 10), (3, 7), (2, 45), (4, 12)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_two_point_kernel_identical(shape, mode):
    nints, ngroups = shape
    for seed in range(3):
        fp = params(nints, ngroups, MODES[mode], e1=30.0, e2=500.0, n1=2, n2=3)
        inputs = random_block(nints, ngroups, 1000, seed=seed)
        assert_two_point_identical(two_point_cupy(fp, inputs), two_point_numpy(fp, inputs), f"seed {seed}")


@pytest.mark.parametrize("rows", [1, 3, 33])
def test_neighbour_kernel_identical(rows):
    ny, nx = 33, 31
    for seed, kw in enumerate([{}, dict(flag_4_neighbors=False), dict(e1=30.0, e2=500.0, n1=2, n2=4)]):
        fp = params(2, 8, MODES["iterative"], **kw)
        first = two_point_numpy(fp, random_block(2, 8, ny * nx, seed=seed, flag_rate=0.2))
        for r0, r1, gdq, marks, top in split_rows(first.gdq_out, first.marks, ny, nx, rows):
            np.testing.assert_array_equal(neighbour_cupy(fp, gdq, marks, nx, top, r1 - r0),
                                          neighbour_numpy(fp, gdq, marks, nx, top, r1 - r0))


@pytest.mark.parametrize("kw", [{}, dict(flag_4_neighbors=False),
                                dict(after_jump_flag_dn1=10.0, after_jump_flag_time1=25.0)])
def test_public_api_gpu_equals_cpu_with_streaming(kw):
    ex = exposure(nints=3, ngroups=10, ny=96, nx=80, seed=7, cr_rate=5e-3, dnu_groups=0.02)
    gpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="gpu", max_memory="200KB", **kw)
    cpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu", **kw)
    np.testing.assert_array_equal(gpu.groupdq, cpu.groupdq)
    np.testing.assert_array_equal(gpu.pixeldq, cpu.pixeldq)
    assert gpu.meta["JUMPNPRI"] == cpu.meta["JUMPNPRI"]
