"""Realistic, deterministic synthetic JWST ramps for the demo, tests and benchmarks.

Readout model (one integration; frames are read every ``frame_time`` s after reset)
-------------------------------------------------------------------------------------
Frame ``j`` (0-based) is read at ``(j + 1) * frame_time``. Group ``k`` averages frames
``k*(nframes+groupgap) ... k*(nframes+groupgap) + nframes - 1`` and ``groupgap`` frames are
then skipped, so ``group_time = (nframes + groupgap) * frame_time`` and group ``k`` has the
effective (mean) read time::

    t_k = frame_time * (k * (nframes + groupgap) + (nframes + 1) / 2)

The accumulated charge is a Poisson process in electrons (``rate * gain`` e/s, ``gain``
the true e/DN of the pixel) sampled at ``frame_time`` (the zero frame) and then at each
``t_k``; a group value is the charge at ``t_k`` (the small variance reduction from
averaging nframes reads is neglected), converted to DN, plus the bias and one draw of
read noise ``readnoise / sqrt(2) / sqrt(nframes)`` (``readnoise`` is the CDS noise of the
READNOISE reference, per read it is ``readnoise/sqrt(2)``, averaged over ``nframes``).

Scene: a log-uniform faint sky of 0.1-5 DN/s per pixel, a few Gaussian stars (one
saturating near mid-ramp, the others log-uniform 30-30000 DN/s at the peak), 0.3 % pixels
with negative rates (-0.1 to -2 DN/s, no shot noise: think over-subtracted background),
``bad_pixel_fraction`` bad pixels (half DEAD with rate 0, half HOT with 50-500 DN/s, both
DO_NOT_USE in PIXELDQ). ``true_rate`` is the rate the data actually have (hot/dead included).

Per integration: bias ~U(100, 200) DN per pixel (fixed pattern) plus a small per-integration
offset; cosmic rays arrive as a Poisson process of ``cr_rate`` hits/pixel/s between the
first and last group reads, each a step of log-uniform 50-5000 DN from the group it lands
in onwards; values reaching ``saturation_dn`` are clipped there and SATURATED in GROUPDQ
from that group on; JUMP_DET marks the CR group (``flag_jumps``) unless saturated; a few
pixels get one mid-ramp group flagged DO_NOT_USE with a corrupted value (+2000 DN). The
zero frame (first frame read) is 0.0 where it is saturated (jwst convention).

The same seed always gives identical arrays. Generation loops over integrations and groups
only; each step is vectorised over the (ny, nx) plane.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import dq
from .errors import InputError
from .ramp import Ramp

logger = logging.getLogger(__name__)

#: Default cosmic-ray rate (hits per pixel per second): ~2 % of pixels in a 10 x 10.737 s ramp.
DEFAULT_CR_RATE = 2.0e-4
#: Version of the generator; bump it when the output of make_exposure changes.
GENERATOR_VERSION = 1

_EXP_TYPE = {"NIRCAM": "NRC_IMAGE", "NIRISS": "NIS_IMAGE", "NIRSPEC": "NRS_FIXEDSLIT",
             "MIRI": "MIR_IMAGE", "FGS": "FGS_IMAGE"}
# NIRCam/NIRISS-style (nframes, groupgap) -> READPATT
_READPATT = {(1, 0): "RAPID", (1, 1): "BRIGHT1", (2, 0): "BRIGHT2", (2, 3): "SHALLOW2",
             (4, 1): "SHALLOW4", (2, 8): "MEDIUM2", (8, 2): "MEDIUM8", (2, 18): "DEEP2",
             (8, 12): "DEEP8"}


@dataclass
class SyntheticExposure:
    """A synthetic exposure and the truth it was made from.

    Attributes
    ----------
    ramp : Ramp
        The ``_ramp``-level exposure (data, groupdq, pixeldq, optional zeroframe, meta).
    gain : numpy.ndarray
        float32 ``(ny, nx)`` GAIN reference (e/DN, ~1.8-2.2) with a few NaN and 0 values.
    readnoise : numpy.ndarray
        float32 ``(ny, nx)`` READNOISE reference: CDS read noise in DN (8-16).
    true_rate : numpy.ndarray
        float32 ``(ny, nx)`` rate in DN/s the ramps were generated with.
    cr_mask : numpy.ndarray
        bool ``(nints, ngroups, ny, nx)``: True at the group where a cosmic ray landed.
    params : dict
        The arguments of :func:`make_exposure` that produced it.
    """

    ramp: Ramp
    gain: np.ndarray
    readnoise: np.ndarray
    true_rate: np.ndarray
    cr_mask: np.ndarray
    params: dict[str, Any]


def group_read_times(ngroups: int, frame_time: float, nframes: int, groupgap: int) -> np.ndarray:
    """Effective read time (s) of each group after reset: the mean of its frames' times."""
    k = np.arange(ngroups, dtype=np.float64)
    return frame_time * (k * (nframes + groupgap) + (nframes + 1) / 2.0)


def _check_args(nints: int, ngroups: int, ny: int, nx: int, nframes: int, groupgap: int,
                frame_time: float, group_time: float | None) -> float:
    for name, value, minimum in (("nints", nints, 1), ("ngroups", ngroups, 1), ("ny", ny, 1),
                                 ("nx", nx, 1), ("nframes", nframes, 1), ("groupgap", groupgap, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(frame_time, bool) or not isinstance(frame_time, numbers.Real) or not (
        math.isfinite(frame_time) and frame_time > 0
    ):
        raise InputError(f"frame_time must be a finite number > 0, got {frame_time!r}")
    expected = (nframes + groupgap) * float(frame_time)
    if group_time is None:
        return expected
    if not math.isclose(float(group_time), expected, rel_tol=1e-3):
        raise InputError(
            f"group_time={group_time} is inconsistent with (nframes + groupgap) * frame_time = "
            f"({nframes} + {groupgap}) * {frame_time} = {expected}; leave group_time=None to derive it"
        )
    return float(group_time)


def _add_stars(rate: np.ndarray, rng: np.random.Generator, first_peak: float) -> None:
    """Add Gaussian PSFs in place: one of ``first_peak`` DN/s, the others log-uniform."""
    ny, nx = rate.shape
    nstars = max(3, round(ny * nx / 16384))
    peaks = np.exp(rng.uniform(math.log(30.0), math.log(3.0e4), nstars))
    peaks[0] = first_peak
    xs = rng.uniform(0, nx, nstars)
    ys = rng.uniform(0, ny, nstars)
    if ny > 8 and nx > 8:  # keep the saturating star on the detector
        xs[0], ys[0] = rng.uniform(4, nx - 4), rng.uniform(4, ny - 4)
    sigmas = rng.uniform(0.8, 2.0, nstars)
    for peak, x, y, sigma in zip(peaks, xs, ys, sigmas, strict=True):
        half = math.ceil(5 * sigma)
        y0, y1 = max(0, int(y) - half), min(ny, int(y) + half + 1)
        x0, x1 = max(0, int(x) - half), min(nx, int(x) + half + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        r2 = (yy + 0.5 - y) ** 2 + (xx + 0.5 - x) ** 2
        rate[y0:y1, x0:x1] += peak * np.exp(-r2 / (2 * sigma * sigma))


def _special_pixels(rng: np.random.Generator, npix: int, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Disjoint random flat pixel indices for each named class (scaled down for tiny images)."""
    total = sum(counts.values())
    if total > npix // 2:
        scale = (npix // 2) / total
        counts = {k: int(v * scale) for k, v in counts.items()}
        total = sum(counts.values())
    chosen = rng.choice(npix, size=total, replace=False)
    out, start = {}, 0
    for name, n in counts.items():
        out[name] = np.sort(chosen[start : start + n])
        start += n
    return out


def _cosmic_rays(rng: np.random.Generator, ny: int, nx: int, times: np.ndarray, cr_rate: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosmic-ray hits of one integration: (group, flat pixel, amplitude DN), sorted by group."""
    ngroups = len(times)
    if ngroups < 2 or cr_rate <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    nhits = rng.poisson(cr_rate * (times[-1] - times[0]), size=ny * nx)
    pix = np.repeat(np.arange(ny * nx), nhits)
    when = rng.uniform(times[0], times[-1], pix.size)
    group = np.clip(np.searchsorted(times, when, side="left"), 1, ngroups - 1)
    amp = np.exp(rng.uniform(math.log(50.0), math.log(5000.0), pix.size))
    order = np.argsort(group, kind="stable")
    return group[order], pix[order], amp[order]


def make_exposure(
    nints: int = 1,
    ngroups: int = 10,
    ny: int = 256,
    nx: int = 256,
    *,
    seed: int = 0,
    instrument: str = "NIRCAM",
    detector: str = "NRCA1",
    group_time: float | None = None,
    frame_time: float = 10.737,
    nframes: int = 1,
    groupgap: int = 0,
    cr_rate: float = DEFAULT_CR_RATE,
    saturation_dn: float = 60000.0,
    bad_pixel_fraction: float = 0.002,
    zeroframe: bool = False,
    flag_jumps: bool = True,
    dtype: Any = np.float32,
) -> SyntheticExposure:
    """Generate a synthetic ``_ramp``-level exposure (see the module docstring for the model).

    Parameters
    ----------
    nints, ngroups, ny, nx : int
        Shape of the ramp cube ``(nints, ngroups, ny, nx)``.
    seed : int
        Seed of the numpy Generator; the same seed gives identical arrays.
    instrument, detector : str
        INSTRUME / DETECTOR keywords.
    group_time : float, optional
        TGROUP in s; default (and required value) ``(nframes + groupgap) * frame_time``.
    frame_time : float
        TFRAME in s (10.737 s: NIRCam full frame).
    nframes, groupgap : int
        Frames averaged per group and frames skipped between groups.
    cr_rate : float
        Cosmic-ray hits per pixel per second.
    saturation_dn : float
        Raw level (DN, bias included) at which a pixel saturates.
    bad_pixel_fraction : float
        Fraction of DEAD/HOT DO_NOT_USE pixels.
    zeroframe : bool
        Also make the zero-frame image.
    flag_jumps : bool
        Set JUMP_DET at cosmic-ray groups (as the jump step would).
    dtype : numpy dtype
        dtype of the data cube (float32; integer types are rounded and clipped).

    Returns
    -------
    SyntheticExposure

    Raises
    ------
    InputError
        Invalid shape, timing or rates.
    """
    group_time = _check_args(nints, ngroups, ny, nx, nframes, groupgap, frame_time, group_time)
    if not (0 <= bad_pixel_fraction < 0.5) or not (cr_rate >= 0) or not (saturation_dn > 0):
        raise InputError("bad_pixel_fraction must be in [0, 0.5), cr_rate >= 0, saturation_dn > 0")
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf":
        raise InputError(f"dtype must be a real numeric type, got {dtype}")
    params = dict(nints=nints, ngroups=ngroups, ny=ny, nx=nx, seed=seed, instrument=instrument,
                  detector=detector, group_time=group_time, frame_time=frame_time, nframes=nframes,
                  groupgap=groupgap, cr_rate=cr_rate, saturation_dn=saturation_dn,
                  bad_pixel_fraction=bad_pixel_fraction, zeroframe=zeroframe,
                  flag_jumps=flag_jumps, dtype=dtype.str)
    rng = np.random.default_rng(seed)
    npix = ny * nx
    times = group_read_times(ngroups, frame_time, nframes, groupgap)

    # --- detector properties -------------------------------------------------------
    gain_true = np.clip(rng.normal(2.0, 0.06, (ny, nx)), 1.8, 2.2)
    readnoise = np.clip(rng.normal(12.0, 1.5, (ny, nx)), 8.0, 16.0)
    bias = rng.uniform(100.0, 200.0, (ny, nx))

    # --- scene ---------------------------------------------------------------------
    rate = np.exp(rng.uniform(math.log(0.1), math.log(5.0), (ny, nx)))
    mid = times[ngroups // 2]
    _add_stars(rate, rng, first_peak=(saturation_dn - 150.0) / mid)
    n_bad = round(bad_pixel_fraction * npix)
    special = _special_pixels(rng, npix, {
        "dead": n_bad // 2, "hot": n_bad - n_bad // 2, "negative": round(0.003 * npix),
        "nan_gain": max(1, round(1e-4 * npix)), "zero_gain": max(1, round(1e-4 * npix)),
        "dnu_group": max(3, round(2e-4 * npix)) if ngroups >= 3 else 0,
    })
    flat_rate = rate.reshape(-1)
    flat_rate[special["dead"]] = 0.0
    flat_rate[special["hot"]] = rng.uniform(50.0, 500.0, special["hot"].size)
    flat_rate[special["negative"]] = -rng.uniform(0.1, 2.0, special["negative"].size)
    pixeldq = np.zeros((ny, nx), dtype=np.uint32)
    pixeldq.reshape(-1)[special["dead"]] = dq.DO_NOT_USE | dq.PIXEL["DEAD"]
    pixeldq.reshape(-1)[special["hot"]] = dq.DO_NOT_USE | dq.PIXEL["HOT"]
    gain_ref = gain_true.astype(np.float32)
    gain_ref.reshape(-1)[special["nan_gain"]] = np.nan
    gain_ref.reshape(-1)[special["zero_gain"]] = 0.0

    # --- ramps -----------------------------------------------------------------------
    electrons_per_s = np.maximum(rate, 0.0) * gain_true
    negative = np.minimum(rate, 0.0)
    noise_read = readnoise / math.sqrt(2.0)
    noise_group = noise_read / math.sqrt(nframes)
    data = np.empty((nints, ngroups, ny, nx), dtype=dtype)
    groupdq = np.zeros((nints, ngroups, ny, nx), dtype=np.uint8)
    cr_mask = np.zeros((nints, ngroups, ny, nx), dtype=bool)
    zf_out = np.empty((nints, ny, nx), dtype=np.float32) if zeroframe else None
    limits = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "iu" else None

    for n in range(nints):
        bias_n = bias + rng.normal(0.0, 3.0)
        cr_group, cr_pix, cr_amp = _cosmic_rays(rng, ny, nx, times, cr_rate)
        # zero frame: the first frame read, at t = frame_time
        charge = rng.poisson(electrons_per_s * frame_time).astype(np.float64)
        zf_raw = bias_n + charge / gain_true + negative * frame_time
        zf_value = zf_raw + noise_read * rng.standard_normal((ny, nx))
        if zf_out is not None:
            zf_out[n] = np.where(zf_raw >= saturation_dn, 0.0, zf_value)
        saturated = np.zeros((ny, nx), dtype=bool)
        cr_step = np.zeros(npix)
        previous = frame_time
        for g in range(ngroups):
            dt = times[g] - previous
            previous = times[g]
            if dt > 0:
                charge += rng.poisson(electrons_per_s * dt)
            lo, hi = np.searchsorted(cr_group, [g, g + 1])
            if hi > lo:
                np.add.at(cr_step, cr_pix[lo:hi], cr_amp[lo:hi])
                cr_mask[n, g].reshape(-1)[cr_pix[lo:hi]] = True
            raw = bias_n + charge / gain_true + negative * times[g] + cr_step.reshape(ny, nx)
            saturated |= raw >= saturation_dn
            value = np.where(saturated, saturation_dn, raw) + noise_group * rng.standard_normal((ny, nx))
            if limits is not None:
                value = np.clip(np.rint(value), *limits)
            data[n, g] = value
            flags = groupdq[n, g]
            flags[saturated] = dq.SATURATED
            if flag_jumps and hi > lo:
                hit = cr_mask[n, g] & ~saturated
                flags[hit] |= dq.JUMP_DET

    # a few mid-ramp groups flagged DO_NOT_USE, with corrupted values
    bad_groups = special["dnu_group"]
    if bad_groups.size:
        n_idx = rng.integers(0, nints, bad_groups.size)
        g_idx = rng.integers(1, ngroups - 1, bad_groups.size)
        y_idx, x_idx = np.divmod(bad_groups, nx)
        groupdq[n_idx, g_idx, y_idx, x_idx] |= dq.DO_NOT_USE
        corrupted = data[n_idx, g_idx, y_idx, x_idx].astype(np.float64) + 2000.0
        if limits is not None:
            corrupted = np.clip(corrupted, *limits)
        data[n_idx, g_idx, y_idx, x_idx] = corrupted

    meta = _exposure_meta(params, ny, nx)
    ramp = Ramp(data, groupdq, pixeldq, group_time=group_time, frame_time=frame_time,
                nframes=nframes, groupgap=groupgap, zeroframe=zf_out, meta=meta)
    logger.debug("synthetic exposure %s: %d CR groups, %d saturated groups", ramp.shape,
                 int(cr_mask.sum()), int(np.count_nonzero(groupdq & dq.SATURATED)))
    return SyntheticExposure(
        ramp=ramp,
        gain=gain_ref,
        readnoise=readnoise.astype(np.float32),
        true_rate=rate.astype(np.float32),
        cr_mask=cr_mask,
        params=params,
    )


def _exposure_meta(params: dict[str, Any], ny: int, nx: int) -> dict[str, Any]:
    instrument = str(params["instrument"]).upper()
    full = (1024, 1032) if instrument == "MIRI" else (2048, 2048)
    return {
        "TELESCOP": "JWST",
        "INSTRUME": instrument,
        "DETECTOR": str(params["detector"]).upper(),
        "EXP_TYPE": _EXP_TYPE.get(instrument, "ANY"),
        "READPATT": "FASTR1" if instrument == "MIRI" else _READPATT.get(
            (params["nframes"], params["groupgap"]), "ANY"),
        "SUBARRAY": "FULL" if (ny, nx) == full else "GENERIC",
        "SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": nx, "SUBSIZE2": ny,
        "NINTS": params["nints"], "NGROUPS": params["ngroups"], "NFRAMES": params["nframes"],
        "GROUPGAP": params["groupgap"], "TGROUP": params["group_time"],
        "TFRAME": params["frame_time"], "DRPFRMS1": 0, "ZEROFRAM": bool(params["zeroframe"]),
        "ORIGIN": "gpucal synthetic",
    }


def write_exposure(
    exposure: SyntheticExposure,
    directory: str | os.PathLike[str],
    *,
    name: str = "gpucal_synthetic",
    kind: Literal["ramp", "uncal"] = "ramp",
) -> dict[str, Path]:
    """Write the exposure and its GAIN and READNOISE references into ``directory``.

    Parameters
    ----------
    exposure : SyntheticExposure
        From :func:`make_exposure`.
    directory : str or os.PathLike
        Created if missing.
    name : str
        Base name: files are ``{name}_{kind}.fits``, ``{name}_gain.fits``,
        ``{name}_readnoise.fits``.
    kind : {"ramp", "uncal"}
        ``"ramp"``: RampModel with float32 SCI, PIXELDQ, GROUPDQ. ``"uncal"``: level-1b
        with uint16 SCI (rounded, clipped), no DQ extensions.

    Returns
    -------
    dict
        ``{kind: path, "gain": path, "readnoise": path}``. The exposure's primary header
        names the references (R_GAIN, R_READNO) by basename.
    """
    from .io.write_ramp import write_ramp
    from .refs.write import write_reference

    if kind not in ("ramp", "uncal"):
        raise InputError(f"kind must be 'ramp' or 'uncal', got {kind!r}")
    directory = Path(directory)
    ramp = exposure.ramp
    sub = {k: ramp.meta[k] for k in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2") if k in ramp.meta}
    ref_args = dict(instrument=ramp.instrument or "NIRCAM",
                    detector=str(ramp.meta.get("DETECTOR", "ANY")),
                    subarray=str(ramp.meta.get("SUBARRAY", "FULL")), extra=sub)
    gain_path = write_reference(directory / f"{name}_gain.fits", "GAIN", exposure.gain, **ref_args)
    rn_path = write_reference(directory / f"{name}_readnoise.fits", "READNOISE", exposure.readnoise, **ref_args)
    meta = dict(ramp.meta, R_GAIN=gain_path.name, R_READNO=rn_path.name)
    labelled = Ramp(ramp.data, ramp.groupdq, ramp.pixeldq, group_time=ramp.group_time,
                    frame_time=ramp.frame_time, nframes=ramp.nframes, groupgap=ramp.groupgap,
                    drop_frames1=ramp.drop_frames1, zeroframe=ramp.zeroframe, meta=meta)
    data_path = write_ramp(labelled, directory / f"{name}_{kind}.fits", overwrite=True, level=kind)
    return {kind: data_path, "gain": gain_path, "readnoise": rn_path}


# ------------------------------------------------------------------ built-in exposure
BUILTIN_NAME = "gpucal_builtin_nrca1"
BUILTIN_PARAMS: dict[str, Any] = dict(
    nints=1, ngroups=10, ny=512, nx=512, seed=20240501, instrument="NIRCAM", detector="NRCA1",
    frame_time=10.737, nframes=1, groupgap=0, zeroframe=True, flag_jumps=True,
)


def default_cache_dir() -> Path:
    """``$GPUCAL_CACHE`` if set, else ``~/.cache/gpucal/synthetic``."""
    env = os.environ.get("GPUCAL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gpucal" / "synthetic"


def _manifest_path(cache: Path) -> Path:
    return cache / f"{BUILTIN_NAME}.json"


def _cached(cache: Path) -> dict[str, Path] | None:
    """The cached files if the manifest matches this generator and every file is intact."""
    try:
        manifest = json.loads(_manifest_path(cache).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != GENERATOR_VERSION or manifest.get("params") != BUILTIN_PARAMS:
        return None
    files: dict[str, Path] = {}
    for key, entry in manifest.get("files", {}).items():
        path = cache / entry["name"]
        if not path.is_file() or path.stat().st_size != entry["size"]:
            return None
        files[key] = path
    return files if set(files) == {"ramp", "gain", "readnoise"} else None


def builtin_exposure(cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """The built-in demo exposure (1 x 10 x 512 x 512 NIRCam NRCA1), generated on first use.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        Where the files live; default :func:`default_cache_dir`.

    Returns
    -------
    dict
        ``{"ramp": path, "gain": path, "readnoise": path}``. Files are reused when a
        manifest (``gpucal_builtin_nrca1.json``) written after them matches the generator
        version and parameters and the files have the recorded sizes; otherwise they are
        regenerated (deterministically, same bytes).
    """
    from .io.atomic import atomic_write

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    found = _cached(cache)
    if found is not None:
        logger.info("using cached built-in exposure in %s", cache)
        return found
    logger.info("generating the built-in synthetic exposure into %s", cache)
    exposure = make_exposure(**BUILTIN_PARAMS)
    files = write_exposure(exposure, cache, name=BUILTIN_NAME, kind="ramp")
    manifest = {
        "version": GENERATOR_VERSION,
        "params": BUILTIN_PARAMS,
        "files": {key: {"name": p.name, "size": p.stat().st_size} for key, p in files.items()},
    }
    with atomic_write(_manifest_path(cache)) as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=True).encode())
    return files
