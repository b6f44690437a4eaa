"""The output grid of an image mosaic, built as the jwst 3.0.0 resample step builds it.

Spec §6.3 (jwst ``resample_utils.resampled_wcs_from_models``, stcal ``alignment.util``): the
fiducial is the centre of the union of the inputs' S_REGION footprints; the pixel scale is the
first input's scale at its reference point times ``pixel_scale_ratio`` (or an absolute
``pixel_scale``); the orientation follows the first input's roll (or a user ``rotation``); the
shape and reference pixel make the grid just hold every footprint vertex. The result is a
gwcs ``FITSImagingWCSTransform`` WCS with its bounding box and array shape set.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .pixmap import pixel_bounding_box


@dataclass(frozen=True)
class ReferenceInfo:
    """What the output grid takes from the first input: its WCS, shape and pointing keywords."""

    wcs: Any
    shape: tuple[int, int]
    ra_ref: float
    dec_ref: float
    roll_ref: float
    v3yangle: float
    vparity: int


@dataclass(frozen=True)
class OutputGrid:
    """The mosaic's WCS and what the drizzle and variance steps need from it."""

    wcs: Any
    shape: tuple[int, int]
    pixel_scale: float  # degrees per output pixel
    pixel_scale_ratio: float  # output / input pixel scale (Python float or numpy float64, as jwst)


def sregion_polygons(s_region: str) -> list[np.ndarray]:
    """The ``(N, 2)`` (RA, Dec) vertex arrays of an S_REGION string (several POLYGONs allowed)."""
    parts = [p for p in re.split(r"(?i)polygon", s_region) if p.strip()]
    polygons = []
    for part in parts:
        numbers = re.sub(r"[a-zA-Z]", " ", part).split()
        try:
            values = np.array(numbers, dtype=np.float64)
        except ValueError:
            raise InputError(f"cannot read S_REGION {s_region!r}") from None
        if values.size < 6 or values.size % 2:
            raise InputError(f"S_REGION polygon needs at least 3 (RA, Dec) pairs: {s_region!r}")
        polygons.append(values.reshape(-1, 2))
    if not polygons:
        raise InputError(f"S_REGION has no polygon: {s_region!r}")
    return polygons


def _pixel_box(wcs: Any, shape: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((x0, x1), (y0, y1))``: the WCS's bounding box (x first), else the whole image's edges."""
    box = pixel_bounding_box(wcs)
    if box is None:
        ny, nx = shape
        return (-0.5, nx - 0.5), (-0.5, ny - 0.5)
    return box


def footprint_sregion(wcs: Any, shape: tuple[int, int]) -> str:
    """S_REGION of an image: its bounding-box corners at pixel centres, as jwst writes it."""
    (x0, x1), (y0, y1) = _pixel_box(wcs, shape)
    x = np.array([x0, x1, x1, x0]) + np.array([0.5, -0.5, -0.5, 0.5])
    y = np.array([y0, y0, y1, y1]) + np.array([0.5, 0.5, -0.5, -0.5])
    ra, dec = (np.asarray(v, np.float64) for v in wcs.pixel_to_world_values(x, y))
    if not (np.isfinite(ra).all() and np.isfinite(dec).all()):
        raise InputError("the WCS gives no sky position for an image corner; cannot make its footprint")
    ra = np.mod(ra, 360.0)
    return "POLYGON ICRS  " + " ".join(f"{a:.9f} {d:.9f}" for a, d in zip(ra, dec))


def fiducial(vertices: np.ndarray) -> tuple[float, float]:
    """Centre of the vertices' unit-vector bounding box, as (RA mod 360, Dec) in degrees."""
    lon, lat = np.deg2rad(vertices[:, 0]), np.deg2rad(vertices[:, 1])
    x = np.cos(lat) * np.cos(lon)
    y = np.cos(lat) * np.sin(lon)
    z = np.sin(lat)
    xm, ym, zm = ((np.max(v) + np.min(v)) / 2.0 for v in (x, y, z))
    ra = np.rad2deg(np.arctan2(ym, xm)) % 360.0
    dec = np.rad2deg(np.arctan2(zm, np.sqrt(xm**2 + ym**2)))
    return ra, dec


def scale_at(wcs: Any, ra: float, dec: float) -> float:
    """Pixel scale (degrees) at a sky position: sqrt of the separations of +1 px steps in x and y."""
    from astropy.coordinates import SkyCoord

    invert = getattr(wcs, "invert", None)
    if invert is not None:
        crpix = np.array(invert(ra, dec, with_bounding_box=False))
    else:
        crpix = np.array(wcs.world_to_pixel_values(ra, dec))
    points = np.vstack((crpix, crpix + [1.0, 0.0], crpix + [0.0, 1.0])).T
    if invert is not None:
        lon, lat = wcs(*points, with_bounding_box=False)
    else:
        lon, lat = wcs.pixel_to_world_values(*points)
    coords = SkyCoord(ra=lon, dec=lat, unit="deg")
    xscale = abs(coords[0].separation(coords[1]).value)
    yscale = abs(coords[0].separation(coords[2]).value)
    return float(np.sqrt(xscale * yscale))


def mean_pixel_area(wcs: Any, shape: tuple[int, int]) -> float:
    """Mean pixel solid angle (sr) inside the image: sky area of its outline / pixel area.

    The outline runs through pixel centres of the bounding box (or the whole image), with
    points at most 15 pixels apart, as stcal's ``compute_mean_pixel_area``.
    """
    ny, nx = shape
    (x0, x1), (y0, y1) = (sorted(b) for b in _pixel_box(wcs, shape))
    xmin, xmax = max(0, int(x0 + 0.5)), min(nx - 1, int(x1 - 0.5))
    ymin, ymax = max(0, int(y0 + 0.5)), min(ny - 1, int(y1 - 0.5))
    if xmin >= xmax or ymin >= ymax:
        raise InputError("image is too small to compute its mean pixel area")
    sx = max(1, math.ceil((xmax - xmin + 1) / max(1, min((xmax - xmin) // 4, 15))))
    sy = max(1, math.ceil((ymax - ymin + 1) / max(1, min((ymax - ymin) // 4, 15))))
    x = np.concatenate([np.linspace(xmin, xmax, sx, False), np.full(sy, float(xmax)),
                        np.linspace(xmax, xmin, sx, False), np.full(sy, float(xmin))])
    y = np.concatenate([np.full(sx, float(ymin)), np.linspace(ymin, ymax, sy, False),
                        np.full(sx, float(ymax)), np.linspace(ymax, ymin, sy, False)])
    ra, dec = (np.asarray(v, np.float64) for v in wcs.pixel_to_world_values(x, y))
    cra, cdec = (float(v) for v in wcs.pixel_to_world_values(0.5 * (xmin + xmax), 0.5 * (ymin + ymax)))
    if not (np.isfinite(ra).all() and np.isfinite(dec).all() and np.isfinite([cra, cdec]).all()):
        raise InputError("the WCS gives no sky position on the image outline; cannot compute its pixel area")
    area = _sky_area(ra, dec, cra, cdec)
    return area / float((xmax - xmin) * (ymax - ymin))


def _sky_area(ra: np.ndarray, dec: np.ndarray, cra: float, cdec: float) -> float:
    """Solid angle (sr) of a small spherical polygon.

    With spherical_geometry installed (a jwst dependency) its area is used, so the result is
    jwst's; it differs from the exact spherical excess computed otherwise by ~1e-5 relative for
    0.1" pixels.
    """
    try:
        from spherical_geometry.polygon import SphericalPolygon
    except ImportError:
        SphericalPolygon = None
    if SphericalPolygon is not None:
        area = float(SphericalPolygon.from_radec(ra, dec, center=(cra, cdec)).area())
        return 4 * np.pi - area if area > 2 * np.pi else area
    vertices = _unit_vectors(ra, dec)
    centre = _unit_vectors(np.array([cra]), np.array([cdec]))[0]
    nxt = np.roll(vertices, -1, axis=0)
    # Signed solid angle of each triangle (centre, v_i, v_i+1) (Van Oosterom & Strackee).
    numerator = np.einsum("ij,j->i", np.cross(vertices, nxt), centre)
    denominator = 1.0 + vertices @ centre + np.einsum("ij,ij->i", vertices, nxt) + nxt @ centre
    return abs(float(np.sum(2.0 * np.arctan2(numerator, denominator))))


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    lon, lat = np.deg2rad(ra), np.deg2rad(dec)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def rotation_matrix(roll_ref_rad: float, v3yangle_rad: float, vparity: int) -> np.ndarray:
    """The PC matrix of the output grid for a roll, V3 y-angle and x parity (radians)."""
    if vparity not in (1, -1):
        raise InputError(f"vparity must be 1 or -1, got {vparity}")
    rel = roll_ref_rad - vparity * v3yangle_rad
    return np.reshape([vparity * np.cos(rel), np.sin(rel), vparity * -np.sin(rel), np.cos(rel)], (2, 2))


def build_output_grid(
    polygons: Sequence[np.ndarray],
    ref: ReferenceInfo,
    *,
    pixel_scale_ratio: float = 1.0,
    pixel_scale: float | None = None,
    rotation: float | None = None,
    output_shape: tuple[int, int] | None = None,
    crpix: tuple[float, float] | None = None,
    crval: tuple[float, float] | None = None,
) -> OutputGrid:
    """The mosaic grid holding every footprint vertex (spec §6.3).

    ``pixel_scale`` is in arcsec; ``output_shape`` is ``(ny, nx)``; ``crpix`` is the 0-based
    ``(x, y)`` of ``crval`` = (RA, Dec) in degrees.
    """
    from astropy.modeling import models as m

    if pixel_scale is None:
        pscale = scale_at(ref.wcs, ref.ra_ref, ref.dec_ref) * pixel_scale_ratio
        ratio = pixel_scale_ratio
    else:
        if not pixel_scale > 0:
            raise InputError(f"pixel_scale must be positive, got {pixel_scale}")
        pscale = pixel_scale / 3600.0
        ratio = pscale / np.rad2deg(math.sqrt(mean_pixel_area(ref.wcs, ref.shape)))
    if not (np.isfinite(pscale) and pscale > 0):
        raise InputError(f"cannot compute the output pixel scale (got {pscale}) from the first input's WCS")

    vertices = np.vstack(polygons)
    centre = tuple(crval) if crval is not None else fiducial(vertices)
    v3yangle = np.deg2rad(ref.v3yangle)
    roll = np.deg2rad(ref.roll_ref) if rotation is None else np.deg2rad(rotation) + ref.vparity * v3yangle
    pc = rotation_matrix(roll, v3yangle, ref.vparity)
    transform = (
        m.AffineTransformation2D(matrix=pc) | m.Scale(pscale) & m.Scale(pscale)
        | m.Pix2Sky_TAN() | m.RotateNative2Celestial(centre[0], centre[1], 180)
    )
    bounds = np.hstack([transform.inverse(*p.T) for p in polygons])
    lo, hi = np.min(bounds, axis=1), np.max(bounds, axis=1)
    native_crpix = transform.inverse(*centre)
    if crpix is None:
        offsets = tuple(n - d for n, d in zip(native_crpix, lo))
    else:
        offsets = tuple(c - n for n, c in zip(native_crpix, crpix))
    lo = lo + offsets
    hi = hi + offsets
    if output_shape is None:
        shape = tuple(int(v + 0.5) for v in hi[::-1])
        bbox = tuple((-0.5, s - 0.5) for s in shape[::-1])
    else:
        shape = tuple(int(v) for v in output_shape)
        bbox = tuple((max(0, int(a + 0.5)) - 0.5, min(int(b + 0.5), n) - 0.5)
                     for a, b, n in zip(lo, hi, shape[::-1]))
        if any(b0 >= b1 for b0, b1 in bbox):
            raise InputError(f"the requested grid (output_shape {shape}, crpix {crpix}) does not overlap "
                             "the inputs' footprints")
    if len(shape) != 2 or any(n < 2 for n in shape):
        raise InputError(f"the output grid would be {shape} pixels: too small (check pixel_scale, crpix, "
                         "output_shape and that the inputs overlap the requested grid)")
    wcs = _gwcs(ref.wcs, offsets, centre, pscale, pc)
    wcs.bounding_box = bbox
    wcs.pixel_shape = shape[::-1]
    return OutputGrid(wcs=wcs, shape=shape, pixel_scale=pscale, pixel_scale_ratio=ratio)


def _gwcs(ref_wcs: Any, offsets: Sequence[float], crval: Sequence[float], pscale: float, pc: np.ndarray) -> Any:
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models as m
    import gwcs
    from gwcs import FITSImagingWCSTransform
    from gwcs import coordinate_frames as cf

    fits_transform = FITSImagingWCSTransform(
        m.Pix2Sky_TAN(), crpix=list(offsets), crval=list(crval), cdelt=[pscale, pscale], pc=pc
    )
    input_frame = getattr(ref_wcs, "input_frame", None)
    output_frame = getattr(ref_wcs, "output_frame", None)
    if input_frame is None or not hasattr(ref_wcs, "pipeline"):
        input_frame = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
        output_frame = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
    return gwcs.WCS([gwcs.Step(input_frame, fits_transform), gwcs.Step(output_frame, None)])
