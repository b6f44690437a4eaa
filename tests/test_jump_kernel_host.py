"""The host build of gpucal/kernels/jump.cu against cpu_fallback/jump.py: identical bits.

Both kernels, compiled by the system C++ compiler without FMA contraction and run over
every block and thread of a small grid, on adversarial blocks (jumps of both signs, exact
ties, NaN/zero gain, zero read noise, DO_NOT_USE and SATURATED groups, pre-set JUMP_DET)
and on realistic synthetic exposures, for every detection mode. Outputs are poisoned
first, so an element the kernel fails to write shows up as a difference.
"""

import numpy as np
import pytest

from host_build import host_compiler
from jump_cases import MODES, exposure, params, random_block
from jump_runs import (assert_two_point_identical, neighbour_host, neighbour_numpy, split_rows, two_point_host,
                       two_point_numpy)
from gpucal.jump_io import TwoPointInputs

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")

SHAPES = [(1, 3), (2, 4), (1, 10), (3, 7), (2, 30)]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_two_point_kernel_identical_to_numpy(shape, mode):
    nints, ngroups = shape
    for seed in range(3):
        fp = params(nints, ngroups, MODES[mode], e1=30.0, e2=500.0, n1=2, n2=3)
        inputs = random_block(nints, ngroups, 70, seed=seed)
        assert_two_point_identical(two_point_host(fp, inputs), two_point_numpy(fp, inputs), f"seed {seed}")


@pytest.mark.parametrize("rows", [1, 2, 7])
@pytest.mark.parametrize("settings", ["default", "no_neighbours", "after_jump"])
def test_neighbour_kernel_identical_to_numpy(rows, settings):
    ny, nx = 7, 10
    kw = {"default": {}, "no_neighbours": dict(flag_4_neighbors=False),
          "after_jump": dict(e1=30.0, e2=500.0, n1=2, n2=4)}[settings]
    for seed, (nints, ngroups) in enumerate(SHAPES):
        fp = params(nints, ngroups, MODES["iterative"], **kw)
        first = two_point_numpy(fp, random_block(nints, ngroups, ny * nx, seed=seed, flag_rate=0.2))
        for r0, r1, gdq, marks, top in split_rows(first.gdq_out, first.marks, ny, nx, rows):
            host = neighbour_host(fp, gdq, marks, nx, top, r1 - r0)
            np.testing.assert_array_equal(host, neighbour_numpy(fp, gdq, marks, nx, top, r1 - r0),
                                          err_msg=f"rows {r0}-{r1}")


@pytest.mark.parametrize("mode", list(MODES))
def test_two_point_kernel_many_pixels(mode):
    """A larger block: rare cases (zero gain giving -0.0 differences, long MIRI-like ramps)."""
    fp = params(2, 45, MODES[mode], e1=30.0, e2=500.0, n1=2, n2=3)
    inputs = random_block(2, 45, 1000, seed=1)
    assert_two_point_identical(two_point_host(fp, inputs), two_point_numpy(fp, inputs))


def test_kernels_on_a_realistic_exposure():
    ex = exposure(nints=2, ngroups=10, ny=24, nx=20, seed=5, cr_rate=5e-3, dnu_groups=0.02)
    r = ex.ramp
    npix = r.ny * r.nx
    gain = np.nan_to_num(ex.gain)
    rn_e = ex.readnoise * gain
    inputs = TwoPointInputs(np.ascontiguousarray(r.data.reshape(2, 10, npix)),
                            np.ascontiguousarray(r.groupdq.reshape(2, 10, npix)), gain.reshape(npix),
                            (rn_e * rn_e).reshape(npix))
    fp = params(2, 10, MODES["iterative"])
    first = two_point_host(fp, inputs)
    assert_two_point_identical(first, two_point_numpy(fp, inputs))
    assert np.count_nonzero(first.gdq_out & 4) > 10
    for r0, r1, gdq, marks, top in split_rows(first.gdq_out, first.marks, r.ny, r.nx, 5):
        np.testing.assert_array_equal(neighbour_host(fp, gdq, marks, r.nx, top, r1 - r0),
                                      neighbour_numpy(fp, gdq, marks, r.nx, top, r1 - r0))


@pytest.mark.parametrize("first_pass", [False, True], ids=["median_rounding", "excess_rounding"])
def test_two_point_kernel_on_float32_boundaries(first_pass):
    """The frame whose pixels flip with any change in the search's float32 roundings."""
    from jump_cases import rounding_frame

    data, rn = rounding_frame(first_pass)
    nints, ngroups, ny, nx = data.shape
    npix = ny * nx
    rn2 = (rn * rn).astype(np.float32).reshape(npix)
    inputs = TwoPointInputs(data.reshape(nints, ngroups, npix).copy(), np.zeros((nints, ngroups, npix), np.uint8),
                            np.ones(npix, np.float32), rn2)
    fp = params(nints, ngroups, MODES["iterative"])
    assert_two_point_identical(two_point_host(fp, inputs), two_point_numpy(fp, inputs))
