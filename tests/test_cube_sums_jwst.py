"""gpucal.cube.pointcloud_sums / drizzle_sums against jwst 3.0.0's C extensions.

Drizzle: flux, weight, variance and count sums and the DQ plane bit for bit. msm/emsm: counts
and DQ bit for bit; flux and weight sums within 4 ulp and variance sums within 8 ulp of jwst
(gpucal's shared exp/pow is within 1 ulp of glibc's per weight; the variance squares it).
NIRSpec cases keep points inside the grid: jwst's slice line walk writes out of bounds otherwise.
Every test runs twice: on the CPU backend's compiled host build of ``cube.cu`` (the default) and
on the numpy kernels of ``cpu_fallback`` (``GPUCAL_NATIVE=0``).
"""

import numpy as np
import pytest

from cube_sum_cases import drizzle_case, jwst_drizzle_args, jwst_pointcloud_args, pointcloud_case
from gpucal.cube import drizzle_sums, pointcloud_sums

pc_ext = pytest.importorskip("jwst.cube_build.cube_match_sky_pointcloud")
driz_ext = pytest.importorskip("jwst.cube_build.cube_match_sky_driz")

ULP_BOUND = {"flux": 4, "weight": 4, "var": 8}


@pytest.fixture(autouse=True, params=["native", "numpy"])
def cpu_kernels(request, monkeypatch):
    if request.param == "native":
        from gpucal.cube.native import native_functions

        if native_functions() is None:
            pytest.skip("no C++ compiler for the host build")
    monkeypatch.setenv("GPUCAL_NATIVE", "1" if request.param == "native" else "0")
    return request.param


def ulps(ref, got):
    return np.abs(ref - got) / np.spacing(np.maximum(np.abs(ref), np.finfo(float).tiny))


PC_CASES = {
    "miri-emsm": dict(),
    "miri-msm": dict(weighting="msm"),
    "miri-msm-p3": dict(weighting="msm", power=3.0),
    "nirspec-emsm": dict(instrument="NIRSPEC", seed=1),
    "nirspec-msm-table": dict(instrument="NIRSPEC", weighting="msm", table=True, seed=2),
    "miri-emsm-table": dict(table=True, seed=3),
    "miri-structured": dict(structured=True, npt=4000),
    "nirspec-boundary": dict(instrument="NIRSPEC", boundary=True, seed=4),
    "miri-msm-boundary": dict(weighting="msm", boundary=True, seed=5),
    "nirspec-empty-planes": dict(instrument="NIRSPEC", empty_planes=True, seed=6),
}


@pytest.mark.parametrize("name", PC_CASES)
def test_pointcloud_sums_match_jwst(name):
    case = pointcloud_case(**PC_CASES[name])
    ref = pc_ext.cube_wrapper(*jwst_pointcloud_args(case))
    got = pointcloud_sums(**case, backend="cpu", max_records=20000)  # several point chunks
    assert got[3].sum() > 1000
    np.testing.assert_array_equal(got[3], ref[3])  # counts
    np.testing.assert_array_equal(got[4], ref[4])  # DQ
    assert got[4].dtype == np.int32 and got[0].dtype == np.float64
    for i, key in enumerate(("flux", "weight", "var")):
        assert ulps(ref[i], got[i]).max() <= ULP_BOUND[key], key
        assert np.array_equal(ref[i] == 0, got[i] == 0)
    if case["instrument"] == "NIRSPEC":
        assert (ref[4] == 4).sum() > 0
    if PC_CASES[name].get("empty_planes"):
        planes = got[3].reshape(case["zcoord"].size, -1)
        assert (planes[12:17] == 0).all() and planes[:5].sum() > 0


DRIZ_CASES = {
    "miri": dict(),
    "nirspec": dict(instrument="NIRSPEC", seed=1),
    "miri-table": dict(table=True, seed=2),
    "nirspec-table": dict(instrument="NIRSPEC", table=True, seed=3),
    "miri-structured": dict(structured=True, npt=4000, seed=4),
    "miri-below-start": dict(below_start=True, seed=5),
    "miri-aligned-edges": dict(aligned=True, seed=6),
    "nirspec-empty-planes": dict(instrument="NIRSPEC", empty_planes=True, seed=7),
}


@pytest.mark.parametrize("name", DRIZ_CASES)
def test_drizzle_sums_match_jwst_bitwise(name):
    case = drizzle_case(**DRIZ_CASES[name])
    ref = driz_ext.cube_wrapper_driz(*jwst_drizzle_args(case))
    got = drizzle_sums(**case, backend="cpu", max_records=20000)
    assert got[3].sum() > 1000
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(b, a)


def test_points_on_roi_boundary_are_counted():
    """A point exactly rois away from a voxel centre (binary-exact) contributes, as in jwst."""
    case = pointcloud_case(npt=10)
    xc, yc, zc = case["xcoord"], case["ycoord"], case["zcoord"]
    for key, value in dict(coord1=[xc[5] + 0.25], coord2=[yc[6]], wave=[zc[20]], flux=[1.0], err=[0.1],
                           slice_no=[101.0], rois=[0.25], roiw=[0.002], scalerad=[0.1], weight_power=[2.0],
                           softrad=[0.01]).items():
        case[key] = np.array(value)
    got = pointcloud_sums(**case, backend="cpu")
    ref = pc_ext.cube_wrapper(*jwst_pointcloud_args(case))
    counts = got[3].reshape(zc.size, yc.size, xc.size)
    assert counts[20, 6, 5] == 1 and counts[20, 6, 9] == 1 and counts[20, 6, 4] == 0  # |dx| = rois in, beyond out
    np.testing.assert_array_equal(got[3], ref[3])


def test_below_start_footprints_follow_the_bracket_quirk():
    """Footprints left of the grid start: jwst's |.| bracket can skip spaxels they overlap."""
    case = drizzle_case(npt=400, below_start=True, seed=8)
    ref = driz_ext.cube_wrapper_driz(*jwst_drizzle_args(case))
    got = drizzle_sums(**case, backend="cpu")
    np.testing.assert_array_equal(got[1], ref[1])
