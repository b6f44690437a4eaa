"""Bad inputs to the cube sums raise InputError naming the problem; scalars broadcast."""

import numpy as np
import pytest

from cube_sum_cases import drizzle_case, pointcloud_case
from gpucal.cube import drizzle_sums, pointcloud_sums
from gpucal.errors import InputError


@pytest.mark.parametrize("change, message", [
    (dict(instrument="NIRCAM"), "instrument"),
    (dict(weighting="drizzle"), "weighting"),
    (dict(xcoord=np.array([0.0, 0.2, 0.1])), "xcoord must increase"),
    (dict(zcoord=np.array([5.0, np.nan])), "zcoord has NaN"),
    (dict(flux=np.ones(7)), "flux must be a scalar or have shape"),
    (dict(cdelt1=0.0), "cdelt1 must be a positive"),
    (dict(cdelt3_normal=np.ones(3)), "cdelt3_normal must have shape"),
])
def test_pointcloud_bad_inputs(change, message):
    case = pointcloud_case(npt=50)
    case.update(change)
    with pytest.raises(InputError, match=message):
        pointcloud_sums(**case, backend="cpu")


def test_drizzle_bad_corner_length():
    case = drizzle_case(npt=50)
    case["xi3"] = case["xi3"][:-1]
    with pytest.raises(InputError, match="xi3"):
        drizzle_sums(**case, backend="cpu")


def test_scalar_roi_parameters_broadcast():
    case = pointcloud_case(npt=300)
    arrays = pointcloud_sums(**case, backend="cpu")
    for key in ("rois", "roiw", "scalerad", "weight_power", "softrad"):
        case[key] = float(case[key][0])
    scalars = pointcloud_sums(**case, backend="cpu")
    for a, b in zip(arrays, scalars):
        np.testing.assert_array_equal(a, b)


def test_empty_point_cloud_gives_zero_sums():
    case = pointcloud_case(npt=50)
    for key in ("coord1", "coord2", "wave", "flux", "err", "slice_no", "rois", "roiw", "scalerad", "weight_power",
                "softrad"):
        case[key] = case[key][:0]
    out = pointcloud_sums(**case, backend="cpu")
    n = case["xcoord"].size * case["ycoord"].size * case["zcoord"].size
    assert all(a.shape == (n,) and not a.any() for a in out)
