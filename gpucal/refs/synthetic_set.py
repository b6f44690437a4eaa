"""A deterministic synthetic calibration reference set (MASK, SATURATION, SUPERBIAS, LINEARITY, DARK).

Matches :func:`gpucal.synthetic.make_exposure` detectors: thresholds near the exposure's
``saturation_dn``, a 100-200 DN bias, a weak quadratic/cubic non-linearity, a dark of a few
hundredths of a DN per frame, and a sprinkling of special pixels (NaN values, NO_SAT_CHECK,
NO_LIN_CORR, DO_NOT_USE masks). :func:`builtin_calib_refs` writes them into the cache.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import dq as dqflags
from .calib import CalibReference, write_calib_reference

logger = logging.getLogger(__name__)

#: Bump when the generated values change.
CALIB_GENERATOR_VERSION = 1
CALIB_BUILTIN_PARAMS: dict[str, Any] = dict(ny=512, nx=512, seed=20240502, instrument="NIRCAM",
                                            detector="NRCA1", dark_frames=20)


def make_calib_refs(ny: int, nx: int, *, seed: int = 0, saturation_dn: float = 60000.0,
                    dark_frames: int = 20, dark_ints: int | None = None, ncoeffs: int = 4,
                    special_fraction: float = 0.002) -> dict[str, CalibReference]:
    """In-memory reference set for an ``(ny, nx)`` detector.

    Parameters
    ----------
    ny, nx : int
        Frame shape.
    seed : int
        numpy Generator seed (same seed, same arrays).
    saturation_dn : float
        Mean saturation threshold (DN).
    dark_frames : int
        Frames (NFRAMES=1, GROUPGAP=0) in the dark.
    dark_ints : int, optional
        MIRI-style 4-D dark with this many integrations.
    ncoeffs : int
        Linearity polynomial coefficients.
    special_fraction : float
        Fraction of pixels given each special condition.

    Returns
    -------
    dict
        ``{"mask", "saturation", "superbias", "linearity", "dark"}`` -> :class:`CalibReference`.
    """
    rng = np.random.default_rng(seed)
    shape = (ny, nx)
    nspecial = max(1, int(special_fraction * ny * nx))

    def pick() -> tuple[np.ndarray, np.ndarray]:
        flat = rng.choice(ny * nx, nspecial, replace=False)
        return np.unravel_index(flat, shape)

    mask = np.zeros(shape, np.uint32)
    mask[pick()] = dqflags.DO_NOT_USE | dqflags.PIXEL["DEAD"]
    mask[pick()] |= dqflags.PIXEL["HOT"]

    sat = rng.normal(saturation_dn, 0.01 * saturation_dn, shape).astype(np.float32)
    sat_dq = np.zeros(shape, np.uint32)
    sat[pick()] = np.nan
    sat_dq[pick()] |= dqflags.PIXEL["NO_SAT_CHECK"]

    bias = rng.uniform(100.0, 200.0, shape).astype(np.float32)
    bias[pick()] = np.nan
    bias_dq = np.zeros(shape, np.uint32)
    bias_dq[pick()] |= dqflags.PIXEL["UNRELIABLE_BIAS"]

    coeffs = np.zeros((ncoeffs,) + shape, np.float32)
    coeffs[0] = rng.normal(0.0, 1.0, shape)
    coeffs[1] = rng.normal(1.0, 0.002, shape)
    if ncoeffs > 2:
        coeffs[2] = rng.normal(2.0e-6, 2.0e-7, shape)
    if ncoeffs > 3:
        coeffs[3] = rng.normal(1.0e-11, 1.0e-12, shape)
    lin_dq = np.zeros(shape, np.uint32)
    lin_dq[pick()] |= dqflags.PIXEL["NO_LIN_CORR"]
    coeffs[2][pick()] = np.nan
    coeffs[1][pick()] = 0.0

    lead = (dark_ints, dark_frames) if dark_ints else (dark_frames,)
    per_frame = rng.gamma(2.0, 0.01, shape).astype(np.float32)
    steps = np.arange(1, dark_frames + 1, dtype=np.float32).reshape((dark_frames, 1, 1))
    dark = (steps * per_frame + rng.normal(0.0, 0.5, (dark_frames,) + shape)).astype(np.float32)
    if dark_ints:
        dark = np.stack([dark + np.float32(k) for k in range(dark_ints)])
    dark.reshape((-1,) + shape)[0][pick()] = np.nan
    dark_dq = np.zeros(lead + shape if dark_ints else shape, np.uint32)
    dark_dq.reshape((-1,) + shape)[0][pick()] |= dqflags.PIXEL["HOT"]

    hdr = {"NFRAMES": 1, "GROUPGAP": 0, "NGROUPS": dark_frames}
    return {
        "mask": CalibReference("MASK", None, mask),
        "saturation": CalibReference("SATURATION", sat, sat_dq),
        "superbias": CalibReference("SUPERBIAS", bias, bias_dq),
        "linearity": CalibReference("LINEARITY", coeffs, lin_dq),
        "dark": CalibReference("DARK", dark, dark_dq, dict(hdr)),
    }


def write_calib_refs(refs: dict[str, CalibReference], directory: str | os.PathLike[str], name: str, *,
                     instrument: str, detector: str) -> dict[str, Path]:
    """Write each reference of ``refs`` as ``<name>_<key>.fits`` in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, ref in refs.items():
        out[key] = write_calib_reference(directory / f"{name}_{key}.fits", ref.reftype, data=ref.data, dq=ref.dq,
                                         instrument=instrument, detector=detector, extra=ref.header,
                                         dq_def=dqflags.dq_def_rows() if key == "mask" else None,
                                         images=None if ref.average_dark_current is None
                                         else {"AVDRKCUR": ref.average_dark_current})
    return out


def builtin_calib_refs(cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """The synthetic reference set for the built-in 512x512 NRCA1 exposure, generated on first use.

    Files are reused when the manifest matches the generator version and parameters and the
    sizes agree; otherwise they are regenerated (deterministically).
    """
    from ..io.atomic import atomic_write
    from ..synthetic import BUILTIN_NAME, default_cache_dir

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    manifest_path = cache / f"{BUILTIN_NAME}_calib.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest["version"] == CALIB_GENERATOR_VERSION and manifest["params"] == CALIB_BUILTIN_PARAMS:
            files = {k: cache / e["name"] for k, e in manifest["files"].items()}
            if all(p.is_file() and p.stat().st_size == manifest["files"][k]["size"] for k, p in files.items()):
                return files
    except (OSError, ValueError, KeyError):
        pass
    p = CALIB_BUILTIN_PARAMS
    logger.info("generating the built-in synthetic calibration references into %s", cache)
    refs = make_calib_refs(p["ny"], p["nx"], seed=p["seed"], dark_frames=p["dark_frames"])
    files = write_calib_refs(refs, cache, BUILTIN_NAME, instrument=p["instrument"], detector=p["detector"])
    manifest = {"version": CALIB_GENERATOR_VERSION, "params": CALIB_BUILTIN_PARAMS,
                "files": {k: {"name": f.name, "size": f.stat().st_size} for k, f in files.items()}}
    with atomic_write(manifest_path) as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=True).encode())
    return files
