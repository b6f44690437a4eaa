"""Synthetic imaging WCSs for the resample tests: gwcs pipelines of astropy models and FITS WCS."""

from __future__ import annotations

import numpy as np

PIXEL_SCALE = 0.1 / 3600  # degrees per pixel


def distortion(order: int = 2, strength: float = 1e-5):
    """A mild polynomial distortion (x, y) -> (x', y') with an approximate polynomial inverse."""
    from astropy.modeling import models as m

    fwd_x = m.Polynomial2D(order, c1_0=1.0, c2_0=strength, c1_1=-0.5 * strength, c0_2=0.3 * strength)
    fwd_y = m.Polynomial2D(order, c0_1=1.0, c0_2=strength, c1_1=0.7 * strength, c2_0=-0.2 * strength)
    inv_x = m.Polynomial2D(order, c1_0=1.0, c2_0=-strength, c1_1=0.5 * strength, c0_2=-0.3 * strength)
    inv_y = m.Polynomial2D(order, c0_1=1.0, c0_2=-strength, c1_1=-0.7 * strength, c2_0=0.2 * strength)
    model = m.Mapping((0, 1, 0, 1)) | fwd_x & fwd_y
    model.inverse = m.Mapping((0, 1, 0, 1)) | inv_x & inv_y
    return model


def imaging_gwcs(shape=(40, 50), ra=10.0, dec=-30.0, roll=20.0, scale=PIXEL_SCALE, crpix=None,
                 distorted: bool = False, flip: bool = False, bounding_box=True):
    """A gwcs detector -> ICRS pipeline: Shift & Shift | [distortion] | Rotation2D | Scale & Scale |
    TAN | RotateNative2Celestial."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models as m
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    ny, nx = shape
    cx, cy = crpix if crpix is not None else ((nx - 1) / 2, (ny - 1) / 2)
    transform = m.Shift(-cx) & m.Shift(-cy)
    if distorted:
        transform = transform | distortion()
    if flip:
        transform = transform | m.AffineTransformation2D(matrix=[[-1.0, 0.0], [0.0, 1.0]])
    transform = (
        transform | m.Rotation2D(roll) | m.Scale(scale) & m.Scale(scale)
        | m.Pix2Sky_TAN() | m.RotateNative2Celestial(ra, dec, 180.0)
    )
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
    wcs = gwcs_wcs.WCS([(detector, transform), (sky, None)])
    if bounding_box is True:
        wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    elif bounding_box:
        wcs.bounding_box = bounding_box
    wcs.array_shape = shape
    return wcs


def fits_wcs(shape=(40, 50), ra=10.0, dec=-30.0, roll=20.0, scale=PIXEL_SCALE, sip: bool = False):
    """An astropy TAN (or TAN-SIP) WCS."""
    from astropy.wcs import WCS

    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if sip else ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    w.wcs.cd = np.array([[-c, s], [s, c]]) * scale
    w.wcs.cunit = ["deg", "deg"]
    if sip:
        from astropy.wcs import Sip

        a = np.zeros((3, 3))
        b = np.zeros((3, 3))
        a[2, 0], a[1, 1], a[0, 2] = 2e-5, -1e-5, 5e-6
        b[0, 2], b[1, 1], b[2, 0] = 1.5e-5, 8e-6, -4e-6
        w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.array_shape = shape
    w.wcs.set()
    return w
