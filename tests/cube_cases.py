"""Synthetic MIRI MRS ``_cal`` files with a gwcs built from astropy models (no CRDS).

Detector model (channel 1 only, columns 0-511): 21 slices of 10 columns with 2-column gaps.
alpha (along slice, arcsec) is linear in x inside a slice and extrapolated one column into
each gap, so drizzle corners at x +/- 0.4999 interpolate correctly; beta is the slice
centre (nearest-neighbour table, NaN in the gaps, so gap pixels map to NaN); the wavelength
is a plane in (x, y). alpha_beta -> sky is a rotation, a gnomonic projection and a
rotation to the pointing, so each dither is a different (ra, dec, roll).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NROWS, NCOLS = 48, 512
NSLICE, WIDTH, GAP, X0 = 21, 10, 2, 4
ALPHA_SCALE, BETA_WIDTH = 0.196, 0.177
LAM0, DLAM_DX, DLAM_DY = 4.885, 2.0e-5, 2.5e-3


def _tables():
    alpha = np.full(NCOLS, np.nan)
    beta = np.full(NCOLS, np.nan)
    regions = np.zeros(NCOLS, dtype=np.int32)
    for s in range(NSLICE):
        first = X0 + s * (WIDTH + GAP)
        cols = np.arange(first - 1, first + WIDTH + 1)  # one extrapolated column each side
        alpha[cols] = (cols - (first + (WIDTH - 1) / 2.0)) * ALPHA_SCALE
        beta[first:first + WIDTH] = (s - NSLICE // 2) * BETA_WIDTH
        regions[first:first + WIDTH] = 101 + s
    return alpha, beta, regions


def miri_wcs(ra0: float, dec0: float, roll: float, lam0: float = LAM0):
    """gwcs detector -> alpha_beta -> world of the synthetic channel-1 detector."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs

    alpha, beta, _ = _tables()
    pts = (np.arange(NCOLS, dtype=np.float64),)
    det2ab = models.Mapping((0, 0, 0, 1)) | (
        models.Tabular1D(points=pts, lookup_table=alpha, method="linear", bounds_error=False, fill_value=np.nan)
        & models.Tabular1D(points=pts, lookup_table=beta, method="nearest", bounds_error=False, fill_value=np.nan)
        & models.Polynomial2D(1, c0_0=lam0, c1_0=DLAM_DX, c0_1=DLAM_DY)
    )
    sky = ((models.Rotation2D(roll) | (models.Scale(1 / 3600.0) & models.Scale(1 / 3600.0)))
           | models.Pix2Sky_TAN() | models.RotateNative2Celestial(ra0, dec0, 180.0))
    ab2world = sky & models.Identity(1)

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    spec = cf.SpectralFrame(name="spec", axes_order=(2,), unit=(u.micron,), axes_names=("lambda",))
    ab_space = cf.Frame2D(name="alpha_beta_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                          axes_names=("alpha", "beta"))
    alpha_beta = cf.CompositeFrame([ab_space, spec], name="alpha_beta")
    world = cf.CompositeFrame([cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS()),
                               spec], name="world")
    return wcs.WCS([(detector, det2ab), (alpha_beta, ab2world), (world, None)])


def miri_cal(path: Path, *, ra0=45.0, dec0=-30.0, roll=20.0, seed=0, exp_type="MIR_MRS",
             with_wcs=True, band="SHORT", channel="12", lam0=LAM0) -> Path:
    """Write one synthetic MIRI MRS channel-1/2 ``_cal.fits`` (flux = smooth source + noise)."""
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(seed)
    _, beta, regions = _tables()
    y, x = np.mgrid[:NROWS, :NCOLS]
    model = datamodels.IFUImageModel((NROWS, NCOLS))
    src = np.exp(-((x % (WIDTH + GAP)) - 5.0) ** 2 / 20.0) * (1.0 + 0.3 * np.sin(y / 5.0))
    model.data = (10.0 + 50.0 * src + rng.normal(0, 0.5, (NROWS, NCOLS))).astype(np.float32)
    model.err = (0.5 + 0.05 * rng.random((NROWS, NCOLS))).astype(np.float32)
    dq = np.zeros((NROWS, NCOLS), dtype=np.uint32)
    dq[:, np.isnan(beta)] = 512 | 1  # NON_SCIENCE | DO_NOT_USE between slices
    bad = rng.random((NROWS, NCOLS)) < 0.01
    dq[bad] |= 1
    model.dq = dq
    model.data[rng.random((NROWS, NCOLS)) < 0.005] = np.nan
    model.regions = np.broadcast_to(regions, (NROWS, NCOLS)).astype(np.int32).copy()
    meta = model.meta
    meta.filename = Path(path).name
    meta.instrument.name = "MIRI"
    meta.instrument.detector = "MIRIFUSHORT"
    meta.instrument.channel = channel
    meta.instrument.band = band
    meta.exposure.type = exp_type
    meta.target.type = "FIXED"
    if with_wcs:
        meta.cal_step.assign_wcs = "COMPLETE"
        meta.wcs = miri_wcs(ra0, dec0, roll, lam0)
    model.save(str(path))
    model.close()
    return Path(path)


def miri_dithers(directory: Path, n: int = 2, **kw) -> list[Path]:
    """``n`` dithered exposures (sub-arcsec offsets, same roll)."""
    offsets = [(0.0, 0.0), (0.35, -0.21), (-0.28, 0.4), (0.12, 0.33)]
    paths = []
    for i in range(n):
        dx, dy = offsets[i % len(offsets)]
        paths.append(miri_cal(directory / f"dither{i + 1}_cal.fits", ra0=45.0 + dx / 3600.0 / np.cos(np.radians(30.0)),
                              dec0=-30.0 + dy / 3600.0, seed=i, **kw))
    return paths


# ----------------------------------------------------------------------------- NIRSpec IFU

NRS_SLICES, NRS_H, NRS_Y0, NRS_NX, NRS_NY = 30, 4, 3, 120, 130
NRS_ACROSS, NRS_ALONG, NRS_LAM0, NRS_DLAM = 0.1, 0.1, 1.395, 5.0e-4


def nirspec_wcs(ra0: float, dec0: float, roll: float):
    """IFU gwcs detector -> slicer -> world whose first transform takes the slice as ``name``.

    Slice s covers detector rows NRS_Y0 + 4 s .. + 3 (a compound bounding box keyed by
    ``name``, as jwst's slice selection expects); across = slice position, along = row
    offset inside the slice, wavelength linear in x.
    """
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from astropy.modeling.bounding_box import CompoundBoundingBox
    from gwcs import coordinate_frames as cf
    from gwcs import wcs

    half = (NRS_SLICES - 1) / 2.0
    det2slicer = models.Mapping((0, 1, 0, 2, 1)) | (
        models.Polynomial2D(1, c0_0=-half * NRS_ACROSS, c1_0=NRS_ACROSS, c0_1=0.0)
        & models.Polynomial2D(1, c0_0=-(NRS_Y0 + (NRS_H - 1) / 2.0) * NRS_ALONG, c1_0=-NRS_H * NRS_ALONG,
                              c0_1=NRS_ALONG)
        & models.Linear1D(slope=NRS_DLAM, intercept=NRS_LAM0)
    )
    det2slicer.inputs = ("name", "x", "y")
    det2slicer.outputs = ("across", "along", "lam")
    boxes = {(s,): ((-0.5, NRS_NX - 0.5), (NRS_Y0 + s * NRS_H - 0.5, NRS_Y0 + (s + 1) * NRS_H - 0.5))
             for s in range(NRS_SLICES)}
    det2slicer.bounding_box = CompoundBoundingBox.validate(det2slicer, boxes, selector_args=[("name", True)],
                                                           order="F")
    sky = ((models.Rotation2D(roll) | (models.Scale(1 / 3600.0) & models.Scale(1 / 3600.0)))
           | models.Pix2Sky_TAN() | models.RotateNative2Celestial(ra0, dec0, 180.0))
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    spec = cf.SpectralFrame(name="spec", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    slicer = cf.CompositeFrame([cf.Frame2D(name="slicer_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                                           axes_names=("across", "along")), spec], name="slicer")
    world = cf.CompositeFrame([cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS()),
                               spec], name="world")
    return wcs.WCS([(detector, det2slicer), (slicer, sky & models.Identity(1)), (world, None)])


def nirspec_cal(path: Path, *, ra0=45.0, dec0=-30.0, roll=20.0, seed=0) -> Path:
    """Write one synthetic NIRSpec IFU G140H/F100LP ``_cal.fits``."""
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:NRS_NY, :NRS_NX]
    model = datamodels.IFUImageModel((NRS_NY, NRS_NX))
    model.data = (5.0 + 20.0 * np.exp(-((y % NRS_H) - 1.5) ** 2) * (1 + 0.2 * np.cos(x / 7.0))
                  + rng.normal(0, 0.3, (NRS_NY, NRS_NX))).astype(np.float32)
    model.err = (0.3 + 0.03 * rng.random((NRS_NY, NRS_NX))).astype(np.float32)
    dq = np.zeros((NRS_NY, NRS_NX), dtype=np.uint32)
    dq[rng.random((NRS_NY, NRS_NX)) < 0.01] |= 1
    model.dq = dq
    model.data[rng.random((NRS_NY, NRS_NX)) < 0.005] = np.nan
    meta = model.meta
    meta.filename = Path(path).name
    meta.instrument.name = "NIRSPEC"
    meta.instrument.detector = "NRS1"
    meta.instrument.grating = "G140H"
    meta.instrument.filter = "F100LP"
    meta.exposure.type = "NRS_IFU"
    meta.target.type = "FIXED"
    meta.cal_step.assign_wcs = "COMPLETE"
    meta.wcs = nirspec_wcs(ra0, dec0, roll)
    model.save(str(path))
    model.close()
    return Path(path)


def nirspec_dithers(directory: Path, n: int = 2) -> list[Path]:
    """``n`` dithered NIRSpec exposures."""
    offsets = [(0.0, 0.0), (0.05, -0.07), (-0.06, 0.04), (0.03, 0.08)]
    return [nirspec_cal(directory / f"nrs{i + 1}_g140h_cal.fits",
                        ra0=45.0 + dx / 3600.0 / np.cos(np.radians(30.0)), dec0=-30.0 + dy / 3600.0, seed=i)
            for i, (dx, dy) in enumerate(offsets[:n])]
