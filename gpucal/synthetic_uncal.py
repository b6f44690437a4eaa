"""The built-in raw ``_uncal`` exposure: the built-in ramp made raw, consistent with the built-in references.

Starting from the built-in 1x10x512x512 NRCA1 ramp (:func:`gpucal.synthetic.builtin_exposure`,
the subarray at the detector's corner, SUBSTRT1/2 = 1), the raw data are

    signal + SUPERBIAS bias + DARK frames + per-group amplifier offsets (odd/even columns)

with the 4 bottom rows and 4 left columns turned into reference pixels (no signal, only
bias, offsets and read noise), stored as uint16 (rounded, clipped). The header carries what
refpix needs (FASTAXIS = -1, SLOWAXIS = 2 for NRCA1, NOUTPUTS = 4) and names the references
next to the file (R_MASK ... R_GAIN, R_READNO), so ``gpucal detector1`` runs every default
step on it. The frames are not made non-linear: linearity over-corrects bright pixels a
little, which does not matter for a demo.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Bump when the generated values change.
UNCAL_GENERATOR_VERSION = 1
UNCAL_SEED = 20240503
#: Reference-pixel border (rows at the bottom, columns on the left) inside the corner subarray.
BORDER = 4


def _raw_data(ramp, bias: np.ndarray, dark: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    nints, ngroups, ny, nx = ramp.shape
    data = np.array(ramp.data[:], dtype=np.float64)
    noise = rng.normal(0.0, 6.0, (nints, ngroups, BORDER, nx))
    data[:, :, :BORDER, :] = noise
    data[:, :, :, :BORDER] = rng.normal(0.0, 6.0, (nints, ngroups, ny, BORDER))
    drift = rng.normal(0.0, 15.0, (nints, ngroups, 2))  # per group, even / odd columns
    offsets = drift[..., np.arange(nx) % 2]
    data += np.where(np.isfinite(bias), bias, np.nanmedian(bias))[None, None]
    data += np.where(np.isfinite(dark[:ngroups]), dark[:ngroups], 0.0)[None]
    data += offsets[:, :, None, :]
    return data


def builtin_uncal(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The built-in ``gpucal_builtin_nrca1_uncal.fits`` (generated on first use, reproducibly).

    The references it names (built-in MASK, SATURATION, SUPERBIAS, LINEARITY, DARK, GAIN,
    READNOISE) are written into the same cache directory.
    """
    from .io.atomic import atomic_write
    from .io.write_ramp import write_ramp
    from .ramp import Ramp
    from .refs import builtin_calib_refs, read_dark, read_superbias
    from .synthetic import BUILTIN_NAME, builtin_exposure, default_cache_dir

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    files = builtin_exposure(cache)
    calib = builtin_calib_refs(cache)
    target = cache / f"{BUILTIN_NAME}_uncal.fits"
    manifest_path = cache / f"{BUILTIN_NAME}_uncal.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest["version"] == UNCAL_GENERATOR_VERSION and target.stat().st_size == manifest["size"]:
            return target
    except (OSError, ValueError, KeyError):
        pass
    logger.info("generating the built-in raw exposure %s", target)
    ramp = Ramp.from_fits(files["ramp"])
    bias = read_superbias(calib["superbias"], ramp).data
    dark = np.asarray(read_dark(calib["dark"], ramp).data, dtype=np.float64)
    rng = np.random.default_rng(UNCAL_SEED)
    data = _raw_data(ramp, bias, dark, rng)
    zeroframe = None
    if ramp.zeroframe is not None:
        zeroframe = np.array(ramp.zeroframe[:], np.float64) + np.where(np.isfinite(bias), bias, np.nanmedian(bias))
        zeroframe[:, :BORDER, :] = data[:, 0, :BORDER, :]
        zeroframe[:, :, :BORDER] = data[:, 0, :, :BORDER]
    meta = dict(ramp.meta, FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=4, FILENAME=target.name,
                R_GAIN=Path(files["gain"]).name, R_READNO=Path(files["readnoise"]).name,
                R_MASK=calib["mask"].name, R_SATURA=calib["saturation"].name, R_SUPERB=calib["superbias"].name,
                R_LINEAR=calib["linearity"].name, R_DARK=calib["dark"].name)
    raw = Ramp(data.astype(np.float32), np.zeros(ramp.shape, np.uint8), np.zeros((ramp.ny, ramp.nx), np.uint32),
               group_time=ramp.group_time, frame_time=ramp.frame_time, nframes=ramp.nframes,
               groupgap=ramp.groupgap, zeroframe=None if zeroframe is None else zeroframe.astype(np.float32),
               meta=meta)
    write_ramp(raw, target, overwrite=True, level="uncal")
    with atomic_write(manifest_path) as fh:
        fh.write(json.dumps({"version": UNCAL_GENERATOR_VERSION, "size": target.stat().st_size}).encode())
    return target
