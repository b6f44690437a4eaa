"""Synthetic exposures with reference-pixel structure for the refpix tests."""

import numpy as np

from gpucal import dq as dqflags
from gpucal.synthetic import make_exposure


def structured(instrument, nints, ngroups, ny, nx, xstart, ystart, seed=0, **meta):
    det = "MIRIMAGE" if instrument == "MIRI" else meta.pop("detector", "NRCA1")
    r = make_exposure(nints, ngroups, ny, nx, seed=seed, instrument=instrument, detector=det, flag_jumps=False).ramp
    rng = np.random.default_rng(seed)
    x = np.arange(xstart - 1, xstart - 1 + nx)
    amp = (x // (256 if instrument == "MIRI" else 512)) % 4
    for i in range(nints):
        for g in range(ngroups):
            level = rng.normal(0, 40, 4)[amp] + np.where(x % 2, 7.5, -3.25) + rng.normal(0, 3, 1)
            rows = np.cumsum(rng.normal(0, 1.5, ny))[:, None]
            r.data[i, g] += (level[None, :] + rows).astype(np.float32)
    flat = r.pixeldq.reshape(-1)
    flat[rng.choice(flat.size, max(3, flat.size // 500), replace=False)] |= dqflags.DO_NOT_USE
    r.data[0, -1, 1, 2] = np.nan  # a NaN reference pixel (when the strip has one there)
    r.meta.update(SUBSTRT1=xstart, SUBSTRT2=ystart, SUBSIZE1=nx, SUBSIZE2=ny, DETECTOR=det, **meta)
    return r
