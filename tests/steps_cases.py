"""Shared inputs for the detector1 step tests: raw-like synthetic exposures and reference sets."""

from __future__ import annotations

import numpy as np

from gpucal import Ramp
from gpucal.refs import make_calib_refs
from gpucal.synthetic import make_exposure

DQFLAGS = {"DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4, "AD_FLOOR": 64, "NO_SAT_CHECK": 1 << 21,
           "NO_LIN_CORR": 1 << 20, "GOOD": 0}


def raw_exposure(nints=2, ngroups=6, ny=40, nx=48, *, seed=3, nframes=1, groupgap=0, zeroframe=True,
                 instrument="NIRCAM", detector="NRCA1", clear_dq=True):
    """A synthetic exposure with the group/pixel DQ cleared (as from _uncal) and a few negative values."""
    exp = make_exposure(nints, ngroups, ny, nx, seed=seed, nframes=nframes, groupgap=groupgap,
                        zeroframe=zeroframe, instrument=instrument, detector=detector,
                        saturation_dn=30000.0, bad_pixel_fraction=0.0 if clear_dq else 0.01)
    r = exp.ramp
    data = np.array(r.data, np.float32)
    data[:, :, 3, 5] = -2.0            # A/D floor
    data[0, 2:, 7, 7] = 65000.0        # saturated from group 2 on
    data[-1, 1, 9, 0] = np.nan
    gdq = np.zeros(r.shape, np.uint8) if clear_dq else np.array(r.groupdq)
    pdq = np.zeros((r.ny, r.nx), np.uint32) if clear_dq else np.array(r.pixeldq)
    zf = None if r.zeroframe is None else np.array(r.zeroframe, np.float32)
    if zf is not None:
        zf[0, 7, 7] = 65000.0
        zf[-1, 3, 5] = 0.0
    return Ramp(data, gdq, pdq, group_time=r.group_time, frame_time=r.frame_time, nframes=r.nframes,
                groupgap=r.groupgap, zeroframe=zf, meta=dict(r.meta))


def refs_for(ramp, *, seed=11, **kwargs):
    return make_calib_refs(ramp.ny, ramp.nx, seed=seed, saturation_dn=30000.0, special_fraction=0.01, **kwargs)
