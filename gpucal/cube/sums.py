"""Kernel-level IFU cube sums, equal to jwst 3.0.0's C extensions.

:func:`pointcloud_sums` takes and returns what ``cube_match_sky_pointcloud.cube_wrapper``
does (msm / emsm weighting), :func:`drizzle_sums` what ``cube_match_sky_driz.cube_wrapper_driz``
does (3-D drizzle): per-voxel flux, weight, variance and count sums of one file's point cloud,
in the flat voxel order ``iw*nx*ny + iy*nx + ix``, and the intermediate DQ plane.

Both backends sum every voxel's contributions in increasing point index, as the C does, so
drizzle sums equal jwst's bit for bit and GPU equals CPU bit for bit. The CPU backend runs the
host build of ``gpucal/kernels/cube.cu`` on ``GPUCAL_CPU_WORKERS`` threads
(:mod:`gpucal.cube.native`), or the numpy kernels of ``cpu_fallback/cube.py`` when no C++
compiler is available or ``GPUCAL_NATIVE=0`` (the same bits). msm/emsm use gpucal's
portable ``exp``/``pow`` (shared by all paths), within 1 ulp of the exact weight for emsm, msm
with the CUBEPAR power 2 and non-integer powers up to 16.

Spec: ``../shared/specs/cube_build.md`` sections 4 and 6.1.
"""

from __future__ import annotations

import logging

import numpy as np

from cpu_fallback import cube as cpu_cube

from ..backend import resolve_backend
from ..errors import InputError
from ..progress import ProgressCallback
from .native import drizzle_match_native, native_functions, pointcloud_match_native

log = logging.getLogger(__name__)

#: Result of both functions: flux, weight, variance, count sums (float64) and DQ (int32), flat.
CubeSums = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

_INSTRUMENTS = ("MIRI", "NIRSPEC")
_WEIGHTINGS = ("msm", "emsm")


def _instrument(name: str) -> str:
    value = str(name).strip().upper()
    if value not in _INSTRUMENTS:
        raise InputError(f"instrument must be one of {_INSTRUMENTS}, got {name!r}")
    return value


def _grid_axis(name: str, values) -> np.ndarray:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} has NaN or infinite values")
    if arr.size > 1 and not (np.diff(arr) > 0).all():
        raise InputError(f"{name} must increase strictly")
    return arr


def _per_point(name: str, values, npt: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(npt, float(arr))
    if arr.shape != (npt,):
        raise InputError(f"{name} must be a scalar or have shape ({npt},), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _positive(name: str, value) -> float:
    v = float(value)
    if not v > 0 or not np.isfinite(v):
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _points(npt_name: str, arrays: dict) -> tuple[int, dict]:
    first = np.asarray(arrays[npt_name])
    if first.ndim != 1:
        raise InputError(f"{npt_name} must be 1-D, got shape {first.shape}")
    npt = first.size
    return npt, {name: _per_point(name, v, npt) for name, v in arrays.items()}


def _dq_plane(instrument: str, flag_dq_plane: bool, overlap_partial: int, xc, yc, zc, p: dict,
              roiw_ave: float, cdelt1: float, cdelt2: float) -> np.ndarray:
    ncube = xc.size * yc.size * zc.size
    if not flag_dq_plane or instrument == "MIRI":
        # jwst 3.0.0's MIRI FOV overlap can never flag (spec 6.1): its plane is all zeros.
        return np.zeros(ncube, dtype=np.int32)
    return cpu_cube.dq_nirspec(int(overlap_partial), xc, yc, zc, p["coord1"], p["coord2"], p["wave"],
                               p["slice_no"], float(roiw_ave), cdelt1, cdelt2)


def _grid(xcoord, ycoord, zcoord, cdelt3_normal, cdelt1, cdelt2):
    """The checked output grid: three axes, the per-plane spectral width and the spaxel sizes."""
    xc, yc, zc = (_grid_axis(n, v) for n, v in (("xcoord", xcoord), ("ycoord", ycoord), ("zcoord", zcoord)))
    c3 = np.ascontiguousarray(cdelt3_normal, dtype=np.float64)
    if c3.shape != zc.shape:
        raise InputError(f"cdelt3_normal must have shape {zc.shape}, got {c3.shape}")
    return xc, yc, zc, c3, _positive("cdelt1", cdelt1), _positive("cdelt2", cdelt2)


def pointcloud_sums(instrument: str, weighting: str, start_region: int, end_region: int, xcoord, ycoord,
                    zcoord, coord1, coord2, wave, flux, err, slice_no, rois, roiw, scalerad, weight_power,
                    softrad, cdelt3_normal, roiw_ave: float, cdelt1: float, cdelt2: float, *,
                    flag_dq_plane: bool = True, overlap_partial: int = 4, overlap_full: int = 2,
                    backend: str | None = "auto", max_records: int | None = None,
                    progress: ProgressCallback | None = None) -> CubeSums:
    """msm / emsm point-cloud sums of one file, as jwst 3.0.0 ``cube_wrapper``.

    Parameters
    ----------
    instrument : "MIRI" or "NIRSPEC" (selects the intermediate DQ plane).
    weighting : "msm" (inverse power) or "emsm" (exponential).
    start_region, end_region : first and last slice number of the MIRI channel (DQ only).
    xcoord, ycoord, zcoord : increasing voxel centres (xi, eta in arcsec; wavelength in um).
    coord1, coord2, wave, flux, err, slice_no : per point (npt,).
    rois, roiw, scalerad, weight_power, softrad : per point (npt,) or scalars.
    cdelt3_normal : (naxis3,) per-plane spectral scale.
    roiw_ave : spectral half-width used by the NIRSpec DQ plane.
    cdelt1, cdelt2 : spatial scales (arcsec).
    flag_dq_plane : compute the intermediate DQ plane (else zeros).
    overlap_partial, overlap_full : intermediate DQ values.
    backend : "gpu", "cpu", "auto" or None (process default).
    max_records : records per point chunk of the numpy kernels and the GPU (memory bound); None:
        a CPU default, or from free device memory on the GPU. The compiled CPU path keeps no
        records (chunks of ``gpucal.cube.native.CHUNK_POINTS`` points).
    progress : ``progress(done, total)`` over points.

    Returns
    -------
    spaxel_flux, spaxel_weight, spaxel_var, spaxel_iflux : float64 (naxis3*naxis2*naxis1,)
    spaxel_dq : int32 (naxis3*naxis2*naxis1,)
    """
    instrument = _instrument(instrument)
    weighting = str(weighting).strip().lower()
    if weighting not in _WEIGHTINGS:
        raise InputError(f"weighting must be one of {_WEIGHTINGS}, got {weighting!r}")
    del start_region, end_region, overlap_full  # only reach the MIRI FOV flags, which are all zero
    xc, yc, zc, zcdelt3, cdelt1, cdelt2 = _grid(xcoord, ycoord, zcoord, cdelt3_normal, cdelt1, cdelt2)
    npt, p = _points("coord1", dict(coord1=coord1, coord2=coord2, wave=wave, flux=flux, err=err,
                                    slice_no=slice_no, rois=rois, roiw=roiw, scalerad=scalerad,
                                    power=weight_power, softrad=softrad))
    dq = _dq_plane(instrument, flag_dq_plane, overlap_partial, xc, yc, zc, p, roiw_ave, cdelt1, cdelt2)
    msm = weighting == "msm"
    args = (xc, yc, zc, p["coord1"], p["coord2"], p["wave"], p["flux"], p["err"], p["rois"], p["roiw"],
            p["scalerad"], p["power"], p["softrad"], zcdelt3, cdelt1, cdelt2)
    if resolve_backend(backend) == "gpu":
        from ..gpu.cube import pointcloud_match_gpu

        sums = pointcloud_match_gpu(msm, *args, max_records=max_records, progress=progress)
    elif (fns := native_functions()) is not None:
        sums = pointcloud_match_native(fns, msm, *args, progress=progress)
    else:
        sums = cpu_cube.pointcloud_match(msm, *args, max_records=max_records or cpu_cube.DEFAULT_MAX_RECORDS,
                                         progress=progress)
    log.debug("%s sums: %d points, %d voxels", weighting, npt, dq.size)
    return (*sums, dq)


def drizzle_sums(instrument: str, start_region: int, end_region: int, xcoord, ycoord, zcoord, coord1, coord2,
                 wave, flux, err, slice_no, xi1, eta1, xi2, eta2, xi3, eta3, xi4, eta4, dwave, cdelt3_normal,
                 cdelt1: float, cdelt2: float, cdelt3_mean: float, linear: bool, x_det, y_det, *,
                 flag_dq_plane: bool = True, overlap_partial: int = 4, overlap_full: int = 2,
                 backend: str | None = "auto", max_records: int | None = None,
                 progress: ProgressCallback | None = None) -> CubeSums:
    """3-D drizzle sums of one file, as jwst 3.0.0 ``cube_wrapper_driz``.

    Each point is a detector pixel footprint: corners ``(xi1, eta1) .. (xi4, eta4)`` in the
    tangent plane (arcsec), central wavelength ``wave`` and spectral width ``dwave`` (um). The
    weight is spatial overlap area times wavelength overlap. ``cdelt3_mean`` is the spectral
    half-width of the NIRSpec DQ plane; ``linear``, ``x_det``, ``y_det`` are accepted for
    signature parity (jwst only prints them when debugging). Other parameters and the result
    as :func:`pointcloud_sums`.
    """
    instrument = _instrument(instrument)
    del start_region, end_region, overlap_full, linear
    xc, yc, zc, c3, cdelt1, cdelt2 = _grid(xcoord, ycoord, zcoord, cdelt3_normal, cdelt1, cdelt2)
    npt, p = _points("coord1", dict(coord1=coord1, coord2=coord2, wave=wave, flux=flux, err=err,
                                    slice_no=slice_no, xi1=xi1, eta1=eta1, xi2=xi2, eta2=eta2, xi3=xi3,
                                    eta3=eta3, xi4=xi4, eta4=eta4, dwave=dwave, x_det=x_det, y_det=y_det))
    dq = _dq_plane(instrument, flag_dq_plane, overlap_partial, xc, yc, zc, p, cdelt3_mean, cdelt1, cdelt2)
    xi = np.stack([p["xi1"], p["xi2"], p["xi3"], p["xi4"]], axis=1)
    eta = np.stack([p["eta1"], p["eta2"], p["eta3"], p["eta4"]], axis=1)
    args = (xc, yc, zc, p["wave"], p["flux"], p["err"], xi, eta, p["dwave"], c3, cdelt1, cdelt2)
    if resolve_backend(backend) == "gpu":
        from ..gpu.cube import drizzle_match_gpu

        sums = drizzle_match_gpu(*args, max_records=max_records, progress=progress)
    elif (fns := native_functions()) is not None:
        sums = drizzle_match_native(fns, *args, progress=progress)
    else:
        sums = cpu_cube.drizzle_match(*args, max_records=max_records or cpu_cube.DEFAULT_MAX_RECORDS,
                                      progress=progress)
    log.debug("drizzle sums: %d points, %d voxels", npt, dq.size)
    return (*sums, dq)
