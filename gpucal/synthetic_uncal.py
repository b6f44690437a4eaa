"""Raw ``_uncal`` exposures with matching reference files: the built-in one, and any shape (``gpucal synth``).

The built-in raw ``_uncal`` exposure is the built-in ramp made raw, consistent with the built-in references.

Starting from the built-in 1x10x512x512 NRCA1 ramp (:func:`gpucal.synthetic.builtin_exposure`,
the subarray at the detector's corner, SUBSTRT1/2 = 1), the raw data are

    signal + SUPERBIAS bias + DARK frames + per-group amplifier offsets (odd/even columns)

with the 4 bottom rows and 4 left columns turned into reference pixels (no signal, only
bias, offsets and read noise), stored as uint16 (rounded, clipped). The header carries what
refpix needs (FASTAXIS = -1, SLOWAXIS = 2 for NRCA1, NOUTPUTS = 4) and names the references
next to the file (R_MASK ... R_GAIN, R_READNO), so ``gpucal detector1`` runs every default
step on it. The frames are not made non-linear: linearity over-corrects bright pixels a
little, which does not matter for a demo.

:func:`write_synthetic_uncal` (``gpucal synth``) makes the same kind of exposure in any shape,
for any near-IR or MIRI detector, with its own reference set (MASK, SATURATION, SUPERBIAS,
LINEARITY, DARK, GAIN, READNOISE) written next to it and named by its ``R_*`` keywords.
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


def _raw_data(ramp, bias: np.ndarray, dark: np.ndarray, rng: np.random.Generator, *, border: bool = True,
              full_frame: bool = False) -> np.ndarray:
    nints, ngroups, ny, nx = ramp.shape
    data = np.array(ramp.data[:], dtype=np.float64)
    if border:  # reference pixels: no signal; a full frame has them on all four sides
        noise = rng.normal(0.0, 6.0, (nints, ngroups, BORDER, nx))
        data[:, :, :BORDER, :] = noise
        data[:, :, :, :BORDER] = rng.normal(0.0, 6.0, (nints, ngroups, ny, BORDER))
        if full_frame:
            data[:, :, -BORDER:, :] = rng.normal(0.0, 6.0, (nints, ngroups, BORDER, nx))
            data[:, :, :, -BORDER:] = rng.normal(0.0, 6.0, (nints, ngroups, ny, BORDER))
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


#: Instruments ``gpucal synth`` knows: detector name prefix, default detector, frame time (s) and
#: (FASTAXIS, SLOWAXIS), the readout directions refpix needs (plausible values, not per-detector truth).
SYNTH_INSTRUMENTS = {
    "NIRCAM": ("NRC", "NRCA1", 10.737, (-1, 2)),
    "NIRISS": ("NIS", "NIS", 10.737, (-2, -1)),
    "NIRSPEC": ("NRS", "NRS1", 10.737, (2, 1)),
    "MIRI": ("MIR", "MIRIMAGE", 2.775, (1, 2)),
}
#: Reference files written next to a synthetic exposure, in the order of its R_* keywords.
SYNTH_REFERENCES = ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise")


def synthetic_uncal_names(directory: str | os.PathLike[str], name: str) -> dict[str, Path]:
    """The files :func:`write_synthetic_uncal` writes: ``{"uncal": .../{name}_uncal.fits, "gain": ...}``."""
    directory = Path(directory)
    return {"uncal": directory / f"{name}_uncal.fits",
            **{key: directory / f"{name}_{key}.fits" for key in SYNTH_REFERENCES}}


def write_synthetic_uncal(
    directory: str | os.PathLike[str],
    nints: int = 2,
    ngroups: int = 10,
    ny: int = 256,
    nx: int = 256,
    *,
    instrument: str = "NIRCAM",
    detector: str | None = None,
    name: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write a raw ``{name}_uncal.fits`` of any shape and its reference files into ``directory``.

    The exposure is :func:`gpucal.synthetic.make_exposure`'s (stars, cosmic rays, saturation),
    made raw as the built-in one (bias, dark, amplifier offsets, a reference-pixel border on
    near-IR detectors, uint16); the references come from
    :func:`gpucal.refs.make_calib_refs` (a few deliberately bad pixels, NaN values included).
    Every file is written atomically; nothing is written when a check fails.

    Parameters
    ----------
    directory
        Where the files go (created if missing).
    nints, ngroups, ny, nx
        The exposure's shape. The whole exposure is held in memory while it is made (about 16
        bytes a sample).
    instrument
        ``NIRCAM``, ``NIRISS``, ``NIRSPEC`` or ``MIRI``.
    detector
        A detector of that instrument (default NRCA1, NIS, NRS1, MIRIMAGE).
    name
        Base name of the files (default ``synth_<detector>``).
    seed
        Random seed: the same arguments give the same bytes.
    overwrite
        Replace files that exist (never a read-only one).

    Returns
    -------
    dict
        ``{"uncal": path, "mask": path, ..., "gain": path, "readnoise": path}``.

    Raises
    ------
    InputError
        Unknown instrument, a detector of another instrument, a shape that is not positive, a
        name with a directory in it.
    OutputError
        A file exists (without ``overwrite``), is read-only, or the directory cannot be written.
    """
    from .errors import InputError
    from .io.output_safety import check_outputs
    from .io.write_ramp import write_ramp
    from .ramp import Ramp
    from .refs import make_calib_refs, write_calib_refs, write_reference
    from .synthetic import make_exposure

    instrument = str(instrument).strip().upper()
    if instrument not in SYNTH_INSTRUMENTS:
        raise InputError(f"unknown instrument {instrument!r}; choose one of {', '.join(SYNTH_INSTRUMENTS)}")
    prefix, default_detector, frame_time, (fast, slow) = SYNTH_INSTRUMENTS[instrument]
    detector = str(detector or default_detector).strip().upper()
    if not detector.startswith(prefix):
        raise InputError(f"{detector} is not a {instrument} detector (their names start with {prefix})")
    shape = (nints, ngroups, ny, nx)
    if not all(isinstance(n, (int, np.integer)) and n >= 1 for n in shape) or ny < 2 * BORDER + 1 or nx < 2 * BORDER + 1:
        raise InputError(f"shape {shape} is not usable: give positive NINTS NGROUPS, and NY, NX of at least "
                         f"{2 * BORDER + 1}")
    name = name or f"synth_{detector.lower()}"
    if Path(name).name != name or name in (".", ".."):
        raise InputError(f"name {name!r} must be a file name, not a path (the directory is {directory})")
    files = synthetic_uncal_names(directory, name)
    check_outputs(files.values(), [], overwrite=overwrite)

    miri = instrument == "MIRI"
    exposure = make_exposure(nints, ngroups, ny, nx, seed=seed, instrument=instrument, detector=detector,
                             frame_time=frame_time, zeroframe=not miri)
    ramp = exposure.ramp
    refs = make_calib_refs(ny, nx, seed=seed + 1, dark_frames=ngroups * ramp.nframes)
    bias = refs["superbias"].data
    bias_fill = np.where(np.isfinite(bias), bias, np.nanmedian(bias))
    rng = np.random.default_rng(seed + 2)
    data = _raw_data(ramp, bias_fill if not miri else np.zeros_like(bias), np.asarray(refs["dark"].data, np.float64),
                     rng, border=not miri, full_frame=(ny, nx) == (2048, 2048))
    zeroframe = None
    if ramp.zeroframe is not None:  # the first frame: signal + bias, the reference pixels as group 1
        zf = np.array(ramp.zeroframe[:], np.float64) + bias_fill
        if not miri:
            border = np.ones((ny, nx), bool)
            border[BORDER:ny - BORDER if (ny, nx) == (2048, 2048) else ny,
                   BORDER:nx - BORDER if (ny, nx) == (2048, 2048) else nx] = False
            zf[:, border] = data[:, 0][:, border]
        zeroframe = zf.astype(np.float32)
    written: list[Path] = []
    try:
        sub = {k: ramp.meta[k] for k in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")}
        calib = {k: refs[k] for k in ("mask", "saturation", "superbias", "linearity", "dark")}
        written += write_calib_refs(calib, directory, name, instrument=instrument, detector=detector).values()
        for key, reftype, values in (("gain", "GAIN", exposure.gain), ("readnoise", "READNOISE", exposure.readnoise)):
            written.append(write_reference(files[key], reftype, values, instrument=instrument, detector=detector,
                                           subarray=str(ramp.meta.get("SUBARRAY", "FULL")), extra=sub))
        meta = dict(ramp.meta, FASTAXIS=fast, SLOWAXIS=slow, NOUTPUTS=4, FILENAME=files["uncal"].name,
                    R_MASK=files["mask"].name, R_SATURA=files["saturation"].name, R_SUPERB=files["superbias"].name,
                    R_LINEAR=files["linearity"].name, R_DARK=files["dark"].name, R_GAIN=files["gain"].name,
                    R_READNO=files["readnoise"].name)
        raw = Ramp(data.astype(np.float32), np.zeros(ramp.shape, np.uint8), np.zeros((ny, nx), np.uint32),
                   group_time=ramp.group_time, frame_time=ramp.frame_time, nframes=ramp.nframes,
                   groupgap=ramp.groupgap, zeroframe=zeroframe, meta=meta)
        written.append(write_ramp(raw, files["uncal"], overwrite=overwrite, level="uncal"))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    logger.info("synth: wrote %s (%s %s, %s) and its references %s", files["uncal"], instrument, detector,
                "x".join(map(str, shape)), ", ".join(files[k].name for k in SYNTH_REFERENCES))
    return files
