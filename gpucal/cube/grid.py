"""Output grid of an IFU cube: tangent-plane projection, footprint, skyalign/ifualign axes.

All arrays are computed on the host with the numpy calls jwst 3.0.0 uses (``np.arange``
rounding is part of the reference), so every backend receives identical float64 inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_DEG2RAD = math.pi / 180.0
_RAD2ARCSEC = (180.0 * 3600.0) / math.pi


def radec2std(crval1: float, crval2: float, ra, dec, rot_angle: float | None = None):
    """Gnomonic projection of (ra, dec) [deg] about (crval1, crval2) to (xi, eta) [arcsec].

    ``xi`` grows toward the east reversed (as in FITS images with east left); a
    ``rot_angle`` [deg] rotates the result by ``-rot_angle``.
    """
    ra0 = crval1 * _DEG2RAD
    dec0 = crval2 * _DEG2RAD
    dra = np.asarray(ra) * _DEG2RAD - ra0
    decr = np.asarray(dec) * _DEG2RAD
    h = np.sin(decr) * math.sin(dec0) + np.cos(decr) * math.cos(dec0) * np.cos(dra)
    xi = np.cos(decr) * np.sin(dra) / h
    eta = (np.sin(decr) * math.cos(dec0) - np.cos(decr) * math.sin(dec0) * np.cos(dra)) / h
    xi = -xi * _RAD2ARCSEC
    eta = eta * _RAD2ARCSEC
    if rot_angle is not None:
        c, s = np.cos(-rot_angle * _DEG2RAD), np.sin(-rot_angle * _DEG2RAD)
        xi, eta = xi * c - eta * s, xi * s + eta * c
    return xi, eta


def wrap_ra(ra) -> np.ndarray:
    """Finite RA values moved to one side of the 0/360 border (relative to their median)."""
    values = np.asarray(ra, dtype=np.float64)
    values = values[np.isfinite(values)].copy()
    median = np.nanmedian(values)
    far = np.fabs(values - median) > 180.0
    if far.any():
        values[far] += -360.0 if median < 180 else 360.0
    return values


def corners_from_points(ra, dec) -> tuple[list[float], list[float]]:
    """Footprint corners of mapped pixels: RA at min/max RA and at min/max Dec (RA mod 360)."""
    good = np.isfinite(ra) & np.isfinite(dec)
    a = wrap_ra(ra[good]).ravel()
    b = np.asarray(dec)[good].ravel()
    a_min, a_max = np.nanmin(a) % 360, np.nanmax(a) % 360
    b1, b2 = b[np.argmin(a)], b[np.argmax(a)]
    a1, a2 = a[np.argmin(b)] % 360, a[np.argmax(b)] % 360
    return [a_min, a_max, a1, a2], [b1, b2, np.nanmin(b), np.nanmax(b)]


def corners_from_slices(slices) -> tuple[list[float], list[float]]:
    """Footprint corners from per-slice (ra, dec) arrays (NIRSpec): extremes of the slice extremes."""
    a_slice, b_slice, a_at_b, b_at_a = [], [], [], []
    for ra, dec in slices:
        good = np.isfinite(ra) & np.isfinite(dec)
        a = wrap_ra(ra[good]).ravel()
        b = np.asarray(dec)[good].ravel()
        a_slice += [np.nanmin(a), np.nanmax(a)]
        b_at_a += [b[np.argmin(a)], b[np.argmax(a)]]
        b_slice += [np.nanmin(b), np.nanmax(b)]
        a_at_b += [a[np.argmin(b)], a[np.argmax(b)]]
    a_slice, b_slice = np.array(a_slice), np.array(b_slice)
    return ([np.nanmin(a_slice), np.nanmax(a_slice), a_at_b[np.argmin(b_slice)], a_at_b[np.argmax(b_slice)]],
            [b_at_a[np.argmin(a_slice)], b_at_a[np.argmax(a_slice)], np.nanmin(b_slice), np.nanmax(b_slice)])


def corners_from_s_region(s_region: str) -> tuple[list[float], list[float]]:
    """Corners from an ``POLYGON ICRS ra1 dec1 ... ra4 dec4`` S_REGION string."""
    s = s_region.split(" ")
    vals = [float(v) for v in s[3:11]]
    return vals[0::2], vals[1::2]


@dataclass(frozen=True)
class CubeGrid:
    """Voxel centres and WCS of a cube in the tangent plane (skyalign/ifualign).

    ``linear`` False: the wavelength axis is ``zcoord`` itself (a CUBEPAR table; ``cdelt3``
    is NaN and ``crval3`` the first wavelength).
    """

    crval1: float
    crval2: float
    rot_angle: float | None
    cdelt1: float
    cdelt2: float
    cdelt3: float
    crpix1: float
    crpix2: float
    crval3: float
    xcoord: np.ndarray
    ycoord: np.ndarray
    zcoord: np.ndarray
    cdelt3_normal: np.ndarray
    linear: bool = True

    @property
    def shape(self) -> tuple[int, int, int]:
        """Cube shape ``(naxis3, naxis2, naxis1)``."""
        return (self.zcoord.size, self.ycoord.size, self.xcoord.size)


def make_grid(corner_a, corner_b, lambda_min: float, lambda_max: float, cdelt: float,
              cdelt3: float, rot_angle: float | None = None, *, ra_center: float | None = None,
              dec_center: float | None = None, wave_table: np.ndarray | None = None) -> CubeGrid:
    """Grid covering the corners (deg), centred on their mid point, with an odd spaxel count.

    The wavelength axis is linear from ``lambda_min`` in steps of ``cdelt3``, or the given
    ``wave_table`` (then ``lambda_min``, ``lambda_max`` and ``cdelt3`` are not used).
    """
    from astropy import units as u
    from astropy.stats import circmean

    corner_a = wrap_ra(corner_a)
    corner_b = np.asarray(corner_b, dtype=np.float64)
    ra_ave = circmean(np.array([np.min(corner_a), np.max(corner_a)]) * u.deg).value % 360
    crval1 = ra_center if ra_center is not None else ra_ave
    crval2 = dec_center if dec_center is not None else (np.min(corner_b) + np.max(corner_b)) / 2.0
    xi, eta = zip(*(radec2std(crval1, crval2, a, b, rot_angle) for a, b in zip(corner_a, corner_b)))
    xilimit = max(abs(min(xi)), abs(max(xi)))
    etalimit = max(abs(min(eta)), abs(max(eta)))
    na = math.ceil(xilimit / cdelt) + 1
    nb = math.ceil(etalimit / cdelt) + 1
    nx, ny = 2 * na + 1, 2 * nb + 1
    xstart = (0.0 - na * cdelt - cdelt / 2.0) + cdelt / 2.0
    ystart = (0.0 - nb * cdelt - cdelt / 2.0) + cdelt / 2.0
    xcoord = np.arange(start=xstart, stop=xstart + nx * cdelt, step=cdelt)[:nx]
    ycoord = np.arange(start=ystart, stop=ystart + ny * cdelt, step=cdelt)[:ny]
    if wave_table is None:
        nz = int(math.ceil((lambda_max - lambda_min) / cdelt3))
        top = lambda_min + nz * cdelt3
        zstart = lambda_min + cdelt3 / 2.0
        zcoord = np.arange(start=zstart, stop=top, step=cdelt3)[:nz]
    else:
        zcoord = np.asarray(wave_table, dtype=np.float64).copy()
        nz, zstart, cdelt3 = zcoord.size, float(zcoord[0]), float("nan")
    cdelt3_normal = np.zeros(nz)
    cdelt3_normal[:-1] = zcoord[1:] - zcoord[:-1]
    cdelt3_normal[-1] = cdelt3_normal[-2] if nz > 1 else cdelt3
    return CubeGrid(float(crval1), float(crval2), rot_angle, cdelt, cdelt, cdelt3,
                    float(na) + 1.0, float(nb) + 1.0, zstart, xcoord, ycoord, zcoord, cdelt3_normal,
                    wave_table is None)


def ifualign_angle(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Rotation [deg] between north and the slice direction given two points along a slice."""
    dra = (ra2 - ra1) * np.cos(dec1 * np.pi / 180.0)
    ddec = dec2 - dec1
    return float(90 + np.arctan2(dra, ddec) * 180.0 / np.pi)
