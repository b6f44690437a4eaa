"""Detector pixels of one IFU exposure and band -> points (sky position, wavelength, flux, error).

The sky positions come from the gwcs stored in the ``_cal`` file (frames ``detector`` ->
``alpha_beta`` -> world for MIRI, ``detector`` -> ``slicer`` -> world per slice for NIRSpec). Everything here is host work; the sums receive the
float64 arrays of :class:`PointCloud`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from .. import dq as dqflags
from ..errors import FileFormatError, InputError
from .grid import CubeGrid, radec2std

log = logging.getLogger(__name__)

#: MIRI channel -> (first slice, last slice, first detector column, end column (exclusive)).
MIRI_CHANNELS = {
    "1": (101, 121, 0, 512),
    "2": (201, 217, 513, 1031),
    "3": (301, 316, 513, 1031),
    "4": (401, 412, 0, 512),
}

#: Half-width (pixels) of the pixel footprint used for drizzle corners, as in jwst.
_HALF = 0.4999


@dataclass
class PointCloud:
    """Points of one file kept for a cube, in detector row-major order."""

    coord1: np.ndarray
    coord2: np.ndarray
    wave: np.ndarray
    flux: np.ndarray
    err: np.ndarray
    slice_no: np.ndarray
    x_det: np.ndarray
    y_det: np.ndarray
    dwave: np.ndarray | None = None
    corners: tuple[np.ndarray, ...] | None = None  # xi1, eta1, ..., xi4, eta4

    def __len__(self) -> int:
        return self.wave.size


def miri_column_range(wcs, channel: str) -> tuple[int, int]:
    """Image columns of a MIRI channel (through the ``coordinates`` frame of resampled data)."""
    xstart, xend = MIRI_CHANNELS[channel][2:]
    if "coordinates" in wcs.available_frames:
        xc, _ = wcs.get_transform("detector", "coordinates")([xstart, xend], [0, 0])
        return int(np.floor(xc[0])), int(np.ceil(xc[1]))
    return xstart, xend


def miri_pixel_grid(shape: tuple[int, int], wcs, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """Flattened (x, y) of all rows and the channel's columns, row-major."""
    xc_start, xc_end = miri_column_range(wcs, channel)
    y, x = np.mgrid[: shape[0], xc_start:xc_end]
    return x.ravel(), y.ravel()


def miri_slice_map(exposure, channel: str) -> np.ndarray:
    """Slice number of every detector pixel: the REGIONS array, else the WCS label mapper."""
    if exposure.regions is not None:
        return exposure.regions
    det2ab = exposure.wcs.get_transform("detector", "alpha_beta")
    mapper = getattr(getattr(det2ab, "label_mapper", None), "mapper", None)
    if mapper is None:
        raise FileFormatError(f"{exposure.path}: no REGIONS array and no slice label mapper in the WCS")
    first, last = MIRI_CHANNELS[channel][:2]
    out = np.zeros(exposure.data.shape, dtype=int)
    inside = (mapper >= first) & (mapper <= last)
    out[inside] = mapper[inside]
    return out


def _miri_sky(exposure, channel: str, drizzle: bool):
    """All valid-RA pixels of the channel: x, y, ra, dec, wave, slice, dwave, corners (ra/dec)."""
    wcs = exposure.wcs
    x, y = miri_pixel_grid(exposure.data.shape, wcs, channel)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value", RuntimeWarning)
        ra, dec, wave = wcs(x, y)
    keep = ~np.isnan(ra)
    x, y, ra, dec, wave = x[keep], y[keep], ra[keep], dec[keep], wave[keep]
    slice_no = miri_slice_map(exposure, channel)[y, x]
    if not drizzle:
        return x, y, ra, dec, wave, slice_no, None, None
    _, _, w1 = wcs(x, y - _HALF)
    _, _, w2 = wcs(x, y + _HALF)
    dwave = np.abs(w1 - w2)
    frame = wcs.available_frames[0]
    alpha1, beta, _ = wcs.transform(frame, "alpha_beta", x - _HALF, y)
    alpha2, _, _ = wcs.transform(frame, "alpha_beta", x + _HALF, y)
    distinct = np.unique(beta)
    dbeta = np.abs(distinct[1] - distinct[0])  # slice width from the two smallest beta values
    out = wcs.output_frame
    corners = []
    for a, b in ((alpha1, beta - dbeta / 2.0), (alpha1, beta + dbeta / 2.0),
                 (alpha2, beta + dbeta / 2.0), (alpha2, beta - dbeta / 2.0)):
        cra, cdec, _ = wcs.transform("alpha_beta", out, a, b, wave)
        corners += [cra, cdec]
    return x, y, ra, dec, wave, slice_no, dwave, corners


NIRSPEC_SLICES = 30


def nirspec_slice_wcs(exposure, index: int):
    """gwcs of one NIRSpec IFU slice (0-29), with the slice's bounding box.

    The slice selection of a flight NIRSpec WCS is jwst's (``nrs_wcs_set_input``), so
    NIRSpec cubes need jwst installed (flight files need its transform classes anyway).
    """
    try:
        from jwst.assign_wcs.nirspec import nrs_wcs_set_input
    except ImportError:
        raise InputError("NIRSpec IFU cubes need jwst installed (per-slice WCS selection)") from None
    return nrs_wcs_set_input(exposure.model, index)


def _slice_pixels(slice_wcs):
    from gwcs import wcstools

    return wcstools.grid_from_bounding_box(slice_wcs.bounding_box, step=(1, 1), center=True)


def _nirspec_sky(exposure, drizzle: bool):
    """All mapped pixels, row-major over the detector; a later slice overwrites an earlier one."""
    from gwcs.utils import to_index

    shape = exposure.data.shape
    frame = exposure.wcs.available_frames[0]
    names = ("ra", "dec", "lam", "dwave", "ra1", "dec1", "ra2", "dec2", "ra3", "dec3", "ra4", "dec4")
    maps = {n: np.zeros(shape) for n in names}
    flag = np.zeros(shape)
    slice_det = np.zeros(shape, dtype=int)
    if drizzle:
        centres = []
        for i in (0, 2):
            sw = nirspec_slice_wcs(exposure, i)
            across, _, _ = sw.get_transform(frame, "slicer")(np.mean(sw.bounding_box[0]), np.mean(sw.bounding_box[1]))
            centres.append(across)
        width = abs(centres[0] - centres[1])  # two slices apart, as jwst measures it
    for i in range(NIRSPEC_SLICES):
        sw = nirspec_slice_wcs(exposure, i)
        x, y = _slice_pixels(sw)
        ra, dec, lam = sw(x, y)
        valid = ~np.isnan(lam)
        x, y, ra, dec, lam = x[valid], y[valid], ra[valid], dec[valid], lam[valid]
        values = {"ra": ra, "dec": dec, "lam": lam}
        if drizzle:
            _, _, w1 = sw(x - _HALF, y)
            _, _, w2 = sw(x + _HALF, y)
            det2slicer = sw.get_transform(frame, "slicer")
            slicer2world = sw.get_transform("slicer", sw.output_frame)
            a1, l1, lam1 = det2slicer(x, y - 0.49)
            a2, l2, lam2 = det2slicer(x, y + 0.49)
            c = [slicer2world(a1 - width / 2, l1, lam1), slicer2world(a1 + width / 2, l1, lam1),
                 slicer2world(a2 + width / 2, l2, lam2), slicer2world(a2 - width / 2, l2, lam2)]
            ok = np.where(~np.isnan(c[0][0]) & ~np.isnan(c[1][0]) & ~np.isnan(c[2][0]) & ~np.isnan(c[3][0]))
            x, y = x[ok], y[ok]
            values = {"ra": ra[ok], "dec": dec[ok], "lam": lam[ok], "dwave": np.abs(w1 - w2)[ok]}
            for k in range(4):
                values[f"ra{k + 1}"] = c[k][0][ok]
                values[f"dec{k + 1}"] = c[k][1][ok]
        xi, yi = to_index(x).ravel(), to_index(y).ravel()
        for name, v in values.items():
            maps[name][yi, xi] = np.ravel(v)
        flag[yi, xi] = 1
        slice_det[yi, xi] = i + 1
    y, x = np.where(flag == 1)
    at = {n: m[y, x] for n, m in maps.items()}
    corners = [at[n] for n in names[4:]] if drizzle else None
    return x, y, at["ra"], at["dec"], at["lam"], slice_det[y, x], at["dwave"] if drizzle else None, corners


def exposure_points(exposure, band: tuple[str, str], grid: CubeGrid, *, drizzle: bool,
                    roiw_max: float = 0.0) -> PointCloud | None:
    """Points of one exposure and band for ``grid``; None when no pixel is usable.

    Kept wavelengths: within ``roiw_max`` (the largest spectral ROI) of the grid's end
    planes for the point cloud; for drizzle within ``cdelt3 + max(dwave)`` (linear axis) or
    the first / last plane width (table axis).
    """
    if exposure.instrument == "MIRI":
        x, y, ra, dec, wave, slice_no, dwave, corners = _miri_sky(exposure, band[0], drizzle)
    else:
        x, y, ra, dec, wave, slice_no, dwave, corners = _nirspec_sky(exposure, drizzle)
    flux = exposure.data[y, x]
    err = exposure.err[y, x]
    dq = exposure.dq[y, x]
    lo = grid.zcoord[0] - roiw_max
    hi = grid.zcoord[-1] + roiw_max
    if drizzle and grid.linear:
        dmax = np.nanmax(dwave)
        lo, hi = grid.zcoord[0] - (grid.cdelt3 + dmax), grid.zcoord[-1] + (grid.cdelt3 + dmax)
    elif drizzle:
        lo, hi = grid.zcoord[0] - grid.cdelt3_normal[0], grid.zcoord[-1] + grid.cdelt3_normal[-1]
    bad = (dq & (dqflags.DO_NOT_USE | dqflags.PIXEL["NON_SCIENCE"])).astype(bool)
    good = np.where(~bad & np.isfinite(flux) & (wave >= lo) & (wave <= hi))
    if good[0].size == 0:
        log.warning("no valid pixels in %s for band %s", exposure.path, "/".join(band))
        return None
    coord1, coord2 = radec2std(grid.crval1, grid.crval2, ra[good], dec[good], grid.rot_angle)
    cloud = PointCloud(
        coord1=coord1, coord2=coord2, wave=wave[good].astype(np.float64),
        flux=flux[good].astype(np.float64), err=err[good].astype(np.float64),
        slice_no=slice_no[good].astype(np.float64), x_det=x[good], y_det=y[good],
    )
    if drizzle:
        cloud.dwave = dwave[good].astype(np.float64)
        projected = []
        for i in range(0, 8, 2):
            projected += radec2std(grid.crval1, grid.crval2, corners[i][good], corners[i + 1][good], grid.rot_angle)
        cloud.corners = tuple(projected)
    return cloud
