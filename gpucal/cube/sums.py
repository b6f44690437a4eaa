"""Per-file voxel sums of IFU cube building.

# placeholder: replaced by the cube-sums branch
Until the gpucal kernels land, both functions call jwst 3.0.0's C extensions
(``cube_wrapper`` / ``cube_wrapper_driz``) with the argument order of those wrappers;
``backend`` is accepted and ignored.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

_INSTRUMENTS = {"MIRI": 0, "NIRSPEC": 1}


def _instrument_code(instrument: str) -> int:
    try:
        return _INSTRUMENTS[str(instrument).upper()]
    except KeyError:
        raise InputError(f"instrument must be 'MIRI' or 'NIRSPEC', got {instrument!r}") from None


def pointcloud_sums(instrument, weighting, start_region, end_region, xcoord, ycoord, zcoord,
                    coord1, coord2, wave, flux, err, slice_no, rois, roiw, scalerad, weight_power,
                    softrad, cdelt3_normal, roiw_ave, cdelt1, cdelt2, *, flag_dq_plane=True,
                    overlap_partial=4, overlap_full=2, backend="auto"):
    """msm/emsm sums of one file: (flux, weight, var, count, dq) per voxel (placeholder)."""
    from jwst.cube_build.cube_match_sky_pointcloud import cube_wrapper

    if weighting not in ("msm", "emsm"):
        raise InputError(f"weighting must be 'msm' or 'emsm', got {weighting!r}")
    result = cube_wrapper(
        _instrument_code(instrument), int(bool(flag_dq_plane)), 1 if weighting == "msm" else 0,
        start_region, end_region, overlap_partial, overlap_full, xcoord, ycoord, zcoord,
        coord1, coord2, wave, flux, err, slice_no, rois, roiw, scalerad, weight_power, softrad,
        cdelt3_normal, roiw_ave, cdelt1, cdelt2,
    )
    return tuple(np.asarray(a) for a in result)


def drizzle_sums(instrument, start_region, end_region, xcoord, ycoord, zcoord, coord1, coord2,
                 wave, flux, err, slice_no, xi1, eta1, xi2, eta2, xi3, eta3, xi4, eta4, dwave,
                 cdelt3_normal, cdelt1, cdelt2, cdelt3_mean, linear, x_det, y_det, *,
                 flag_dq_plane=True, overlap_partial=4, overlap_full=2, backend="auto"):
    """3-D drizzle sums of one file: (flux, weight, var, count, dq) per voxel (placeholder)."""
    from jwst.cube_build.cube_match_sky_driz import cube_wrapper_driz

    result = cube_wrapper_driz(
        _instrument_code(instrument), int(bool(flag_dq_plane)), start_region, end_region,
        overlap_partial, overlap_full, xcoord, ycoord, zcoord, coord1, coord2, wave, flux, err,
        slice_no, xi1, eta1, xi2, eta2, xi3, eta3, xi4, eta4, dwave, cdelt3_normal, cdelt1,
        cdelt2, cdelt3_mean, int(bool(linear)), x_det, y_det, -1,
    )
    return tuple(np.asarray(a) for a in result)
