"""Final DQ planes and normalisation against jwst 3.0.0's IFUCubeData methods on random sums."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gpucal.cube.finalize import VoxelSums, final_dq, finalize


def _random_sums(rng, shape, hole_fraction):
    nz, ny, nx = shape
    n = nz * ny * nx
    weight = rng.random(n) * (rng.random(n) > 0.3)
    count = np.where(weight > 0, rng.integers(1, 9, n), 0).astype(np.float64)
    # Holes: voxels inside the FOV (overlap flags) without data.
    dq = np.where(rng.random(n) < 0.7, rng.choice([2, 4, 6], n), 0).astype(np.uint32)
    holes = rng.random(n) < hole_fraction
    weight[holes] = 0.0
    count[holes] = 0.0
    dq[holes] |= 4
    flux = weight * rng.normal(10, 3, n)
    var = weight * weight * rng.random(n)
    return VoxelSums(flux, weight, var, count, dq)


def _jwst_final(sums, shape, instrument):
    pytest.importorskip("jwst")
    from jwst.cube_build.ifu_cube import IFUCubeData
    from stdatamodels.jwst.datamodels import dqflags

    nz, ny, nx = shape
    cube = SimpleNamespace(spaxel_dq=sums.dq.copy(), spaxel_weight=sums.weight.copy(),
                           spaxel_flux=sums.flux.copy(), spaxel_var=sums.var.copy(),
                           spaxel_iflux=sums.count.copy(), naxis1=nx, naxis2=ny, naxis3=nz,
                           overlap_partial=4, overlap_full=2, overlap_hole=dqflags.pixel["DO_NOT_USE"],
                           overlap_no_coverage=dqflags.pixel["NON_SCIENCE"], interpolation="drizzle",
                           instrument=instrument)
    IFUCubeData.find_spaxel_flux(cube)
    IFUCubeData.set_final_dq_flags(cube)
    return cube


@pytest.mark.parametrize("seed,hole_fraction,shape", [
    (0, 0.05, (6, 9, 11)), (1, 0.3, (6, 9, 11)), (2, 0.6, (6, 9, 11)), (3, 0.85, (3, 40, 37)),
    (4, 0.5, (2, 3, 3)),
])
def test_final_dq_matches_jwst(seed, hole_fraction, shape):
    rng = np.random.default_rng(seed)
    sums = _random_sums(rng, shape, hole_fraction)
    ref = _jwst_final(sums, shape, "NIRSPEC")
    got = final_dq(sums.weight, sums.dq, shape)
    np.testing.assert_array_equal(got, ref.spaxel_dq)
    assert set(np.unique(got)) <= {0, 1, 513}
    if min(shape[1:]) > 3:
        assert np.count_nonzero(got == 1) > 0  # interior holes stay holes


def test_hole_cascade():
    """A hole converted to NON_SCIENCE converts the next hole to its right, in index order.

    Neighbours in column 0 or row 0 are never looked at (jwst tests ``0 < x``), so the
    uncovered voxel sits in column 1.
    """
    weight = np.ones(5 * 6)
    dq = np.full(5 * 6, 4, dtype=np.uint32)
    row = 2 * 6
    weight[row + 1: row + 5] = 0.0
    dq[row + 1] = 0  # no coverage at x = 1, holes at x = 2..4 of row 2
    out = final_dq(weight, dq, (1, 5, 6)).reshape(5, 6)
    assert list(out[2]) == [0, 513, 513, 513, 513, 0]
    dq[row + 1] = 4  # now x = 1 is a hole too, with a covered left neighbour: nothing converts
    out = final_dq(weight, dq, (1, 5, 6)).reshape(5, 6)
    assert list(out[2]) == [0, 1, 1, 1, 1, 0]


def test_finalize_matches_jwst_normalisation():
    rng = np.random.default_rng(5)
    shape = (4, 7, 8)
    sums = _random_sums(rng, shape, 0.1)
    ref = _jwst_final(sums, shape, "NIRSPEC")
    flux, err, dq, wmap = finalize(sums, shape, "NIRSPEC")
    dnu = (ref.spaxel_dq & 1) != 0
    ref_flux = np.where(dnu, np.nan, ref.spaxel_flux).reshape(shape)
    ref_err = np.sqrt(np.where(dnu, np.nan, ref.spaxel_var)).reshape(shape)
    np.testing.assert_array_equal(flux, ref_flux)
    np.testing.assert_array_equal(err, ref_err)
    np.testing.assert_array_equal(wmap, sums.count.reshape(shape))
