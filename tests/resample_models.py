"""Small synthetic NIRCam-like ``_cal`` ImageModels with gwcs WCSs (no CRDS) for mosaic tests."""

from __future__ import annotations

import numpy as np
from resample_wcs import PIXEL_SCALE, imaging_gwcs

# (RA offset arcsec, Dec offset arcsec, roll deg): overlapping pointings
POINTINGS = [(0.0, 0.0, 20.0), (1.3, 0.7, 20.0), (-0.6, 1.5, 23.0), (0.9, -1.1, 19.0)]


def make_cal_model(k: int, shape=(34, 40), ra0=10.0, dec0=-30.0, distorted=True, seed=None):
    """The k-th exposure of a dither pattern, with data, dq, err and the three variances."""
    from stdatamodels.jwst import datamodels

    dra, ddec, roll = POINTINGS[k % len(POINTINGS)]
    ra = ra0 + dra / 3600.0 / np.cos(np.radians(dec0))
    dec = dec0 + ddec / 3600.0
    wcs = imaging_gwcs(shape, ra=ra, dec=dec, roll=roll, distorted=distorted)
    rng = np.random.default_rng(100 + k if seed is None else seed)
    ny, nx = shape
    y, x = np.indices(shape)
    data = (5.0 + 50.0 * np.exp(-((x - nx / 2 - 3 * k) ** 2 + (y - ny / 2) ** 2) / 20.0)
            + rng.normal(0, 0.3, shape)).astype(np.float32)
    dq = np.zeros(shape, np.uint32)
    dq[3, 4] = 1  # DO_NOT_USE
    dq[10, 12:15] = 512  # NON_SCIENCE
    dq[7, 20] = 4  # JUMP_DET-like flag: still used
    data[5, 30] = np.nan
    var_rnoise = rng.uniform(0.02, 0.05, shape).astype(np.float32)
    var_poisson = (np.abs(data) * 0.01).astype(np.float32)
    var_flat = rng.uniform(1e-4, 3e-4, shape).astype(np.float32)
    var_rnoise[12, 8] = np.nan
    err = np.sqrt(var_rnoise + var_poisson + var_flat).astype(np.float32)

    model = datamodels.ImageModel(data=data, dq=dq, err=err, var_rnoise=var_rnoise,
                                  var_poisson=var_poisson, var_flat=var_flat)
    model.meta.wcs = wcs
    corners = wcs.footprint(center=True)
    model.meta.wcsinfo = {
        "ra_ref": ra, "dec_ref": dec, "roll_ref": roll, "v3yangle": 0.0, "vparity": -1,
        "s_region": "POLYGON ICRS  " + " ".join(f"{np.mod(a, 360):.9f} {d:.9f}" for a, d in corners),
    }
    model.meta.instrument = {"name": "NIRCAM", "detector": "NRCA1", "filter": "F200W", "pupil": "CLEAR",
                             "channel": "SHORT", "module": "A"}
    model.meta.observation = {"date": "2024-01-01", "time": "10:00:00", "program_number": "01234",
                              "observation_number": "001", "visit_number": "001", "visit_group": "01",
                              "sequence_id": "1", "activity_id": "01", "exposure_number": str(k + 1)}
    model.meta.exposure = {"type": "NRC_IMAGE", "exposure_time": 100.0 + 10 * k, "measurement_time": 90.0 + 10 * k,
                           "start_time": 60000.0 + k, "end_time": 60000.001 + k, "duration": 110.0 + 10 * k}
    model.meta.photometry = {"pixelarea_steradians": (PIXEL_SCALE * np.pi / 180) ** 2,
                             "pixelarea_arcsecsq": (PIXEL_SCALE * 3600) ** 2}
    model.meta.bunit_data = "MJy/sr"
    model.meta.bunit_err = "MJy/sr"
    model.meta.filename = f"synth{k}_cal.fits"
    return model


def write_cal_files(directory, n=3, **kwargs):
    paths = []
    for k in range(n):
        model = make_cal_model(k, **kwargs)
        path = directory / model.meta.filename
        model.save(path)
        model.close()
        paths.append(path)
    return paths
