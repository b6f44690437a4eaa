"""Ramp extraction: per-group profiles of a pixel or region, with uncertainty (issue 5).

:func:`extract_ramp` collapses the spatial axes of a ramp cube over an aperture with one
function (mean, median, min, max, sum), like jdaviz rampviz's "Ramp Extraction" plugin, and
returns a :class:`RampProfile` (values, uncertainties, pixel counts and group mid-times per
integration and group) that plots, tabulates and writes itself. The numbers and formulas
are specified in ``docs/algorithms/extract_ramp.md``.

One implementation serves both backends: the reductions are written against an array
namespace ``xp`` (numpy or CuPy) using only operations that round identically on both
(elementwise IEEE arithmetic, sorting, indexing, min/max); sums are taken in a fixed
order by :func:`fixed_order_sum`, so the GPU and CPU results are bitwise equal.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .apertures import ApertureWeights, aperture_weights
from .backend import array_module, resolve_backend, to_host
from .dq import DO_NOT_USE, JUMP_DET, SATURATED
from .errors import FileFormatError, InputError
from .ramp import Ramp

log = logging.getLogger(__name__)

FUNCTIONS = ("mean", "median", "min", "max", "sum")
#: Uncertainty of the median relative to the mean's for Gaussian samples: sqrt(pi/2) = 1.2533.
MEDIAN_ERROR_FACTOR = math.sqrt(math.pi / 2.0)
#: Group DQ / pixel DQ flags that exclude a sample / a pixel when ``use_dq``.
EXCLUDE_FLAGS = DO_NOT_USE | SATURATED
#: Block length of :func:`fixed_order_sum`.
SUM_BLOCK = 64
#: Host bytes one tile (one integration, a range of groups, the aperture's box) may take.
TILE_BYTES = 64 * 1024**2


# --------------------------------------------------------------------------- helpers


def group_mid_times(ramp: Ramp) -> np.ndarray:
    """Mid-time of each group, seconds after reset (the same in every integration).

    ``t_g = TFRAME * (DRPFRMS1 + (NFRAMES + 1) / 2) + g * TGROUP``: frame ``j`` is read at
    ``(j + 1) * TFRAME``, a group averages NFRAMES frames, DRPFRMS1 frames are dropped after
    reset and groups start every TGROUP = (NFRAMES + GROUPGAP) * TFRAME.
    """
    first = ramp.frame_time * (ramp.drop_frames1 + (ramp.nframes + 1) / 2.0)
    return first + np.arange(ramp.ngroups, dtype=np.float64) * ramp.group_time


def fixed_order_sum(xp: Any, a: Any) -> Any:
    """Sum over the last axis in one fixed order, with elementwise adds only.

    The axis is zero-padded to a multiple of :data:`SUM_BLOCK`; each block is summed
    sequentially, left to right; the block sums are summed the same way until one value
    is left. Elementwise float64 addition rounds identically in numpy and CuPy, so both
    backends give the same bits (numpy's pairwise ``sum`` and CuPy's tree reductions do not).
    """
    if a.shape[-1] == 0:
        return xp.zeros(a.shape[:-1], dtype=a.dtype)
    while a.shape[-1] > 1:
        n = a.shape[-1]
        k = min(SUM_BLOCK, n)
        m = -(-n // k)
        if m * k != n:
            a = xp.concatenate([a, xp.zeros(a.shape[:-1] + (m * k - n,), dtype=a.dtype)], axis=-1)
        a = a.reshape(a.shape[:-1] + (m, k))
        acc = a[..., 0].copy()
        for j in range(1, k):
            acc = acc + a[..., j]
        a = acc
    return a[..., 0]


def _sorted_median(xp: Any, values: Any, valid: Any) -> tuple[Any, Any]:
    """Median over the last axis of the valid entries (NaN where none) and their count."""
    n = valid.sum(axis=-1)
    s = xp.sort(xp.where(valid, values, xp.inf), axis=-1)
    lo_i = xp.maximum((n - 1) // 2, 0)[..., None]
    hi_i = xp.maximum(n // 2, 0)[..., None]
    lo = xp.take_along_axis(s, lo_i, axis=-1)[..., 0]
    hi = xp.take_along_axis(s, hi_i, axis=-1)[..., 0]
    med = 0.5 * lo + 0.5 * hi
    return xp.where(n > 0, med, xp.nan), n


def _check_function(function: str) -> str:
    name = str(function).strip().lower() if isinstance(function, str) else None
    if name not in FUNCTIONS:
        raise InputError(f"function must be one of {FUNCTIONS}, got {function!r}")
    return name


def _integrations(integration: Any, nints: int) -> np.ndarray:
    if integration is None:
        return np.arange(nints)
    if isinstance(integration, bool) or not isinstance(integration, numbers.Integral):
        raise InputError(f"integration must be None (all) or an integer index, got {integration!r}")
    n = int(integration)
    if not 0 <= n < nints:
        raise InputError(
            f"integration {n} is out of range: the exposure has {nints} integration"
            f"{'s' if nints != 1 else ''} (0..{nints - 1})"
        )
    return np.array([n])


def _image(value: Any, name: str, ramp: Ramp) -> np.ndarray | None:
    """gain / readnoise as float64 (ny, nx), from an array or a reference file."""
    if value is None:
        return None
    from .refs import read_gain, read_readnoise

    if isinstance(value, (str, os.PathLike)):
        reader = read_gain if name == "gain" else read_readnoise
        return reader(Path(value), ramp).astype(np.float64)
    array = np.asarray(value)
    if array.dtype.kind not in "fiu" or array.shape != (ramp.ny, ramp.nx):
        raise InputError(
            f"{name} must be a real array with the frame shape (ny, nx) = {(ramp.ny, ramp.nx)}, "
            f"got {array.dtype} {array.shape}"
        )
    return array.astype(np.float64)


def _file_err(path: Path, ramp: Ramp) -> Any | None:
    """The ERR extension of a ramp file, lazily (memory-mapped), or None."""
    from .io.fits_open import find_hdu, open_fits
    from .io.lazy import lazy_image

    hdul = open_fits(path, memmap=True, do_not_scale_image_data=True, lazy_load_hdus=True)
    try:
        hdu = find_hdu(hdul, "ERR")
        if hdu is None or not hdu.header.get("NAXIS", 0):
            return None
        err = lazy_image(hdu)
        if np.dtype(err.dtype).kind != "f":
            raise FileFormatError(f"{path}: ERR holds {np.dtype(err.dtype).newbyteorder('=')} values, not float")
    finally:
        hdul.close()
    if tuple(err.shape) != ramp.shape:
        raise FileFormatError(f"{path}: ERR extension has shape {tuple(err.shape)}, SCI has {ramp.shape}")
    return err


# --------------------------------------------------------------------------- profile


@dataclass
class RampProfile:
    """A per-group profile of an aperture: one row per selected integration, one column per group.

    Attributes
    ----------
    value, uncertainty : numpy.ndarray
        float64 ``(n_integrations, ngroups)`` in DN (NaN where no sample was usable;
        uncertainty NaN throughout when no noise information was available).
    npix : numpy.ndarray
        int64, samples used per integration and group.
    area : numpy.ndarray
        float64, sum of the aperture weights of the samples used (= npix for whole pixels).
    times : numpy.ndarray
        float64 ``(ngroups,)``: group mid-times in s after reset (:func:`group_mid_times`).
    integrations : numpy.ndarray
        0-based indices of the integrations in the rows.
    function, aperture, aperture_method : str
        How the profile was made (aperture as a description).
    meta : dict
        Exposure and extraction keywords (8-character upper-case keys, FITS-safe).
    """

    value: np.ndarray
    uncertainty: np.ndarray
    npix: np.ndarray
    area: np.ndarray
    times: np.ndarray
    integrations: np.ndarray
    function: str
    aperture: str
    aperture_method: str
    meta: dict[str, Any] = field(default_factory=dict)
    _context: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def ngroups(self) -> int:
        return int(self.value.shape[1])

    # ------------------------------------------------------------------ table
    def to_table(self):
        """An astropy Table, one row per (integration, group), with units and metadata.

        Columns: ``integration``, ``group``, ``time`` [s], ``value`` [DN], ``uncertainty``
        [DN], ``npix``, ``area`` [pix].
        """
        import astropy.units as u
        from astropy.table import Table

        nsel, ngroups = self.value.shape
        table = Table()
        table["integration"] = np.repeat(self.integrations.astype(np.int64), ngroups)
        table["group"] = np.tile(np.arange(ngroups, dtype=np.int64), nsel)
        table["time"] = np.tile(self.times, nsel) * u.s
        table["value"] = self.value.reshape(-1) * u.DN
        table["uncertainty"] = self.uncertainty.reshape(-1) * u.DN
        table["npix"] = self.npix.reshape(-1).astype(np.int64)
        table["area"] = self.area.reshape(-1) * u.pix
        table.meta.update(self.meta)
        return table

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write :meth:`to_table` as ECSV (``.ecsv``) or a FITS binary table (``.fits``/``.fit``).

        The file is written atomically (temporary file, then rename).
        """
        import io
        import warnings

        from astropy.io import fits
        from astropy.utils.exceptions import AstropyUserWarning

        from .io.atomic import atomic_write

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".ecsv", ".fits", ".fit"):
            raise InputError(f"cannot tell the format of {path}: use a .ecsv or .fits file name")
        table = self.to_table()
        with atomic_write(path, overwrite=overwrite) as fh:
            if suffix == ".ecsv":
                text = io.StringIO()
                table.write(text, format="ascii.ecsv")
                fh.write(text.getvalue().encode("utf-8"))
            else:
                with warnings.catch_warnings():
                    # 'DN' is not a FITS-standard unit; astropy drops it with a warning. Write
                    # it as jwst products do (BUNIT = 'DN'); astropy reads it back as
                    # UnrecognizedUnit('DN').
                    warnings.simplefilter("ignore", AstropyUserWarning)
                    hdu = fits.table_to_hdu(table)
                for i, name in enumerate(table.colnames, start=1):
                    if table[name].unit is not None:
                        hdu.header[f"TUNIT{i}"] = table[name].unit.to_string()
                hdu.name = "PROFILE"
                fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(fh)
        return path

    # ------------------------------------------------------------------- plot
    def plot(self, ax: Any = None, fit: bool = False) -> Any:
        """Plot value against group time, one line with an uncertainty band per integration.

        Works without a display (no pyplot is needed: a new Agg-renderable
        :class:`matplotlib.figure.Figure` is made when ``ax`` is None). ``fit=True``
        overlays the slope :func:`gpucal.ramp_fit` finds for the same aperture, as a
        dashed line through the mean of each integration's usable points (needs the
        ``gain`` and ``readnoise`` the profile was extracted with). Returns the Axes.
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError(f"RampProfile.plot needs matplotlib (pip install 'gpucal[plot]'): {exc}") from exc

        if ax is None:
            ax = Figure(figsize=(7, 4.5)).add_subplot()
        slopes = self.fit_slopes() if fit else None
        for row, n in enumerate(self.integrations):
            v, e = self.value[row], self.uncertainty[row]
            (line,) = ax.plot(self.times, v, marker="o", ms=3, label=f"integration {int(n)}")
            if np.isfinite(e).any():
                ax.fill_between(self.times, v - e, v + e, color=line.get_color(), alpha=0.2, lw=0)
            if slopes is not None and np.isfinite(slopes[row]):
                ok = np.isfinite(v)
                if ok.any():
                    t_mid, v_mid = self.times[ok].mean(), v[ok].mean()
                    ax.plot(self.times, v_mid + slopes[row] * (self.times - t_mid), ls="--",
                            color=line.get_color(), label=f"fit {slopes[row]:.4g} DN/s")
        ax.set_xlabel("time since reset [s]")
        ax.set_ylabel(f"{self.function} [DN]")
        ax.set_title(f"{self.meta.get('FILENAME') or 'ramp'}: {self.aperture}", fontsize="medium")
        if len(self.integrations) <= 12 or fit:
            ax.legend(fontsize="small")
        return ax

    def fit_slopes(self) -> np.ndarray:
        """Per-integration slope (DN/s) of the aperture from :func:`gpucal.ramp_fit`.

        The aperture's bounding box is fitted; the per-pixel ``rateints`` of the usable
        aperture pixels are combined with the profile's function (weighted for mean/sum).
        """
        ctx = self._context
        if ctx is None or ctx.get("gain") is None or ctx.get("readnoise") is None:
            raise InputError("a fitted-slope overlay needs gain and readnoise: pass them to extract_ramp")
        from .ramp_fitting import ramp_fit

        ramp: Ramp = ctx["ramp"]
        ap: ApertureWeights = ctx["aperture"]
        rows, cols = slice(ap.r0, ap.r1), slice(ap.c0, ap.c1)
        ints = self.integrations
        data = np.ascontiguousarray(np.asarray(ramp.data[ints[0]:ints[-1] + 1, :, rows, cols], dtype=np.float32))
        gdq = np.ascontiguousarray(np.asarray(ramp.groupdq[ints[0]:ints[-1] + 1, :, rows, cols], dtype=np.uint8))
        pdq = np.ascontiguousarray(np.asarray(ramp.pixeldq[rows, cols], dtype=np.uint32))
        meta = {k: v for k, v in ramp.meta.items() if not k.startswith(("SUBSTRT", "SUBSIZE"))}
        sub = Ramp(data, gdq, pdq, group_time=ramp.group_time, frame_time=ramp.frame_time,
                   nframes=ramp.nframes, groupgap=ramp.groupgap, drop_frames1=ramp.drop_frames1, meta=meta)
        result = ramp_fit(sub, ctx["gain"][rows, cols].astype(np.float32),
                          ctx["readnoise"][rows, cols].astype(np.float32), backend=ctx["backend"])
        out = np.full(len(ints), np.nan)
        if result.rateints is None:
            return out
        w = ap.weights
        for i in range(len(ints)):
            rate = result.rateints.data[i].astype(np.float64)
            ok = (w > 0) & np.isfinite(rate) & ((result.rateints.dq[i] & DO_NOT_USE) == 0)
            if ctx["use_dq"]:
                ok &= (pdq & EXCLUDE_FLAGS) == 0
            if not ok.any():
                continue
            r, ww = rate[ok], w[ok]
            out[i] = {
                "sum": lambda: float(np.sum(ww * r)),
                "mean": lambda: float(np.sum(ww * r) / np.sum(ww)),
                "median": lambda: float(np.median(r)),
                "min": lambda: float(np.min(r)),
                "max": lambda: float(np.max(r)),
            }[self.function]()
        return out


# --------------------------------------------------------------------------- reductions


def reduce_tile(xp: Any, function: str, x: Any, valid: Any, w: Any, s2: Any | None) -> tuple[Any, Any, Any, Any]:
    """Reduce samples ``(groups, P)`` of P aperture pixels to per-group value, error, npix, area.

    ``x`` float64 samples, ``valid`` bool, ``w`` float64 weights ``(P,)``, ``s2`` float64
    per-sample variances ``(groups, P)`` or None. Formulas in the module documentation.
    """
    zero = xp.zeros((), dtype=xp.float64)
    wv = xp.where(valid, w[None, :], zero)
    npix = valid.sum(axis=-1)
    area = fixed_order_sum(xp, wv)
    nan = xp.full(npix.shape, xp.nan)
    if function in ("sum", "mean"):
        total = fixed_order_sum(xp, xp.where(valid, w[None, :] * x, zero))
        denom = xp.where(area > 0, area, 1.0)
        value = total if function == "sum" else total / denom
        err = nan
        if s2 is not None:
            var = fixed_order_sum(xp, xp.where(valid, (w * w)[None, :] * s2, zero))
            err = xp.sqrt(var) if function == "sum" else xp.sqrt(var) / denom
        value = xp.where(npix > 0, value, xp.nan)
        err = xp.where(npix > 0, err, xp.nan)
        return value, err, npix, area
    if function == "median":
        value, _ = _sorted_median(xp, x, valid)
        err = nan
        if s2 is not None:
            var = fixed_order_sum(xp, xp.where(valid, s2, zero))
            factor = xp.where(npix >= 3, MEDIAN_ERROR_FACTOR, 1.0)
            err = xp.where(npix > 0, factor * (xp.sqrt(var) / xp.maximum(npix, 1).astype(xp.float64)), xp.nan)
        return value, err, npix, area
    sentinel = xp.inf if function == "min" else -xp.inf
    masked = xp.where(valid, x, sentinel)
    best = (masked.min if function == "min" else masked.max)(axis=-1)
    # The first sample (C order over the aperture) equal to the extreme: an integer min, so
    # ties resolve the same on both backends (argmin's tie rule is not documented by CuPy).
    index = xp.arange(x.shape[-1])
    pick = xp.where(masked == best[:, None], index[None, :], x.shape[-1]).min(axis=-1)[:, None]
    value = xp.where(npix > 0, xp.take_along_axis(x, pick, axis=-1)[:, 0], xp.nan)
    err = nan
    if s2 is not None:
        err = xp.where(npix > 0, xp.sqrt(xp.take_along_axis(s2, pick, axis=-1)[:, 0]), xp.nan)
    return value, err, npix, area


def _valid(xp: Any, x: Any, gdq: Any, use_dq: bool) -> Any:
    ok = xp.isfinite(x)
    if use_dq:
        ok &= (gdq & EXCLUDE_FLAGS) == 0
    return ok


def estimate_rates(xp: Any, x: Any, gdq: Any, use_dq: bool, group_time: float) -> Any:
    """Per-pixel rate (DN/s) from the median of first differences of usable pairs.

    ``x`` float64 ``(ngroups, P)``; NaN where a pixel has no usable pair. A pair is usable
    when both samples are (finite, and with ``use_dq`` not DO_NOT_USE/SATURATED) and, with
    ``use_dq``, the later group is not JUMP_DET.
    """
    if x.shape[0] < 2:
        return xp.full(x.shape[1:], xp.nan)
    ok = _valid(xp, x, gdq, use_dq)
    pair = ok[1:] & ok[:-1]
    if use_dq:
        pair &= (gdq[1:] & JUMP_DET) == 0
    diffs = x[1:] - x[:-1]
    med, _ = _sorted_median(xp, diffs.T, pair.T)
    return med / group_time


# --------------------------------------------------------------------------- extraction


def extract_ramp(
    ramp: Ramp | str | os.PathLike[str],
    aperture: Any = None,
    function: str = "mean",
    *,
    integration: int | None = None,
    use_dq: bool = True,
    err: Any = None,
    gain: Any = None,
    readnoise: Any = None,
    aperture_method: str = "center",
    backend: str | None = None,
) -> RampProfile:
    """Per-group profile of a pixel or region of a ramp: rampviz's "Ramp Extraction".

    Parameters
    ----------
    ramp : Ramp or path
        The exposure, or a ``_uncal``/``_ramp`` FITS file (read lazily; only the
        aperture's bounding box is read, one integration and a few groups at a time).
    aperture : optional
        ``None`` the whole frame; ``(x, y)`` / :class:`~gpucal.apertures.PixelAperture`
        the pixel containing that point; ``(x, y, r)`` /
        :class:`~gpucal.apertures.CircleAperture`; ``(x0, y0, x1, y1)`` /
        :class:`~gpucal.apertures.RectangleAperture` (inclusive integer pixel indices); a
        boolean mask ``(ny, nx)``; or an astropy-regions ``PixelRegion``. Pixel
        coordinates are 0-based, pixel centres at integers.
    function : {"mean", "median", "min", "max", "sum"}
        How the aperture's samples of one group are combined.
    integration : int, optional
        0-based integration to extract; default all.
    use_dq : bool
        Exclude pixels whose PIXELDQ and samples whose GROUPDQ have DO_NOT_USE or SATURATED.
        Non-finite samples are always excluded.
    err : array (nints, ngroups, ny, nx), optional
        Per-sample 1-sigma uncertainty (DN). Default: the ERR extension of a ramp file
        when it has a non-zero value in the aperture's box.
    gain, readnoise : array (ny, nx) or reference-file path, optional
        Gain (e/DN) and CDS read noise (DN), used when there is no ERR: the per-sample
        variance is ``readnoise**2 / (2 * nframes) + max(rate, 0) * t_g / gain`` with
        ``rate`` the pixel's median first difference per TGROUP and ``t_g`` the group's
        mid-time. Also needed for ``RampProfile.plot(fit=True)``.
    aperture_method : {"center", "exact"}
        For circles and regions: a pixel is in when its centre is inside the circle, or
        weighted by the exact fraction of its area inside.
    backend : {"gpu", "cpu", "auto"}, optional
        Where the reductions run; both give the same numbers.

    Returns
    -------
    RampProfile

    Notes
    -----
    With per-sample uncertainties ``s_i`` and weights ``w_i`` (1 for whole pixels), the
    uncertainty is: sum ``sqrt(sum w_i^2 s_i^2)``; mean ``sqrt(sum w_i^2 s_i^2) / sum w_i``;
    median ``1.2533 * sqrt(sum s_i^2) / N`` (the median of N >= 3 Gaussian samples is
    sqrt(pi/2) times noisier than their mean; for N <= 2 the median is the mean and the
    factor is 1); min and max the ``s_i`` of the selected sample. Samples of different
    pixels are assumed independent. median/min/max use the aperture pixels unweighted.

    Raises
    ------
    InputError
        Bad aperture (outside the frame, empty mask, wrong mask shape, non-positive
        radius), unknown function or method, integration out of range, bad gain/readnoise/err.
    """
    path = None
    if not isinstance(ramp, Ramp):
        if not isinstance(ramp, (str, os.PathLike)):
            raise InputError(f"ramp must be a gpucal.Ramp or a path to a FITS file, got {type(ramp).__name__}")
        path = Path(ramp)
        ramp = Ramp.from_fits(path)
    function = _check_function(function)
    ints = _integrations(integration, ramp.nints)
    ap = aperture_weights(aperture, (ramp.ny, ramp.nx), aperture_method)
    method = str(aperture_method).strip().lower()
    gain_img = _image(gain, "gain", ramp)
    rn_img = _image(readnoise, "readnoise", ramp)
    name = resolve_backend(backend)
    xp = array_module(name)

    rows, cols = slice(ap.r0, ap.r1), slice(ap.c0, ap.c1)
    box_pix = (ap.r1 - ap.r0) * (ap.c1 - ap.c0)
    pixeldq = np.asarray(ramp.pixeldq[rows, cols], dtype=np.uint32)
    in_ap = ap.weights > 0
    if use_dq:
        in_ap &= (pixeldq & EXCLUDE_FLAGS) == 0
    sel = np.flatnonzero(in_ap)  # C order over the box

    err_src, err_arr = "none", None
    if err is not None:
        if not all(hasattr(err, a) for a in ("shape", "dtype", "__getitem__")) or tuple(err.shape) != ramp.shape:
            raise InputError(f"err must be an array of the ramp's shape {ramp.shape}, got "
                             f"{getattr(err, 'shape', type(err).__name__)}")
        err_src, err_arr = "err argument", err
    elif path is not None:
        file_err = _file_err(path, ramp)
        if file_err is not None and np.any(np.asarray(file_err[ints[0], :, rows, cols]) != 0):
            err_src, err_arr = "ERR extension", file_err
        elif file_err is not None:
            log.info("%s: ERR is zero in the aperture; estimating noise from readnoise/gain", path.name)
    if err_arr is None and (gain_img is not None or rn_img is not None):
        err_src = "model: " + " + ".join(
            t for t, on in (("readnoise", rn_img is not None), ("poisson", gain_img is not None)) if on)
    if err_src == "none":
        log.info("no ERR, gain or readnoise: uncertainties are NaN")

    nsel, ngroups = len(ints), ramp.ngroups
    value = np.full((nsel, ngroups), np.nan)
    uncert = np.full((nsel, ngroups), np.nan)
    npix = np.zeros((nsel, ngroups), dtype=np.int64)
    area = np.zeros((nsel, ngroups))
    times = group_mid_times(ramp)

    if sel.size:
        bytes_per_group = box_pix * (4 + 1 + (4 if err_arr is not None else 0))
        gstep = max(1, min(ngroups, TILE_BYTES // max(bytes_per_group, 1)))
        w_dev = xp.asarray(ap.weights.reshape(-1)[sel])
        sel_dev = xp.asarray(sel)
        rn2 = pois = None
        if err_arr is None and rn_img is not None:
            rn2 = xp.asarray(rn_img[rows, cols].reshape(-1)[sel] ** 2 / (2.0 * ramp.nframes))
        if err_arr is None and gain_img is not None:
            g = gain_img[rows, cols].reshape(-1)[sel]
            good_gain = np.isfinite(g) & (g > 0)
            if not good_gain.all():
                log.info("%d aperture pixels have no valid gain: no Poisson term for them",
                         int((~good_gain).sum()))
            inv_gain = xp.asarray(np.where(good_gain, 1.0 / np.where(good_gain, g, 1.0), 0.0))

        def tile(arr: Any, n: int, g0: int, g1: int, dtype: Any) -> Any:
            host = _read(arr, n, g0, g1, rows, cols, dtype)
            return xp.asarray(host).reshape(g1 - g0, box_pix)[:, sel_dev]

        for i, n in enumerate(ints):
            n = int(n)
            if err_arr is None and gain_img is not None:
                rates = _rates_for_integration(xp, ramp, n, ap, sel, use_dq)
                pois = xp.where(xp.isfinite(rates), xp.maximum(rates, 0.0), 0.0) * inv_gain
            for g0 in range(0, ngroups, gstep):
                g1 = min(ngroups, g0 + gstep)
                x = tile(ramp.data, n, g0, g1, np.float32).astype(xp.float64)
                gdq = tile(ramp.groupdq, n, g0, g1, np.uint8)
                s2 = None
                if err_arr is not None:
                    e = tile(err_arr, n, g0, g1, np.float32).astype(xp.float64)
                    s2 = e * e
                elif rn2 is not None or pois is not None:
                    s2 = xp.zeros(x.shape, dtype=xp.float64)
                    if rn2 is not None:
                        s2 = s2 + rn2[None, :]
                    if pois is not None:
                        s2 = s2 + pois[None, :] * xp.asarray(times[g0:g1])[:, None]
                valid = _valid(xp, x, gdq, use_dq)
                v, e_, c, a = reduce_tile(xp, function, x, valid, w_dev, s2)
                value[i, g0:g1] = to_host(v)
                uncert[i, g0:g1] = to_host(e_)
                npix[i, g0:g1] = to_host(c)
                area[i, g0:g1] = to_host(a)
    else:
        log.warning("every aperture pixel is flagged in PIXELDQ: the profile is empty (NaN)")

    meta = _profile_meta(ramp, function, ap, method, use_dq, err_src, name)
    context = dict(ramp=ramp, aperture=ap, gain=gain_img, readnoise=rn_img, use_dq=use_dq, backend=name)
    return RampProfile(value=value, uncertainty=uncert, npix=npix, area=area, times=times,
                       integrations=ints.astype(np.int64), function=function, aperture=ap.description,
                       aperture_method=method, meta=meta, _context=context)


def _read(arr: Any, n: int, g0: int, g1: int, rows: slice, cols: slice, dtype: Any) -> np.ndarray:
    """``arr[n, g0:g1, rows, cols]`` as a native C-contiguous host array (reads only that)."""
    return np.ascontiguousarray(np.asarray(arr[n, g0:g1, rows, cols]), dtype=dtype)


def _rates_for_integration(xp: Any, ramp: Ramp, n: int, ap: ApertureWeights, sel: np.ndarray,
                           use_dq: bool) -> Any:
    """Median-first-difference rates (DN/s) of the pixels ``sel`` of the box, integration n.

    Reads all groups of a few rows of the box at a time (at most :data:`TILE_BYTES`).
    """
    ngroups, width = ramp.ngroups, ap.c1 - ap.c0
    step = max(1, TILE_BYTES // max(1, ngroups * width * 5))
    cols = slice(ap.c0, ap.c1)
    parts = []
    for a in range(0, ap.r1 - ap.r0, step):
        b = min(ap.r1 - ap.r0, a + step)
        lo, hi = np.searchsorted(sel, [a * width, b * width])
        if hi == lo:
            continue
        local = xp.asarray(sel[lo:hi] - a * width)
        rows = slice(ap.r0 + a, ap.r0 + b)
        x = xp.asarray(_read(ramp.data, n, 0, ngroups, rows, cols, np.float32))
        gdq = xp.asarray(_read(ramp.groupdq, n, 0, ngroups, rows, cols, np.uint8))
        x = x.reshape(ngroups, -1)[:, local].astype(xp.float64)
        gdq = gdq.reshape(ngroups, -1)[:, local]
        parts.append(estimate_rates(xp, x, gdq, use_dq, ramp.group_time))
    return xp.concatenate(parts)


def _profile_meta(ramp: Ramp, function: str, ap: ApertureWeights, method: str, use_dq: bool,
                  err_src: str, backend: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "FUNCTION": function,
        "APERTURE": ap.description,
        "APMETHOD": method,
        "BOX": f"x {ap.c0}..{ap.c1 - 1} y {ap.r0}..{ap.r1 - 1}",
        "USE_DQ": bool(use_dq),
        "ERRSRC": err_src,
        "BACKEND": backend,
        "NINTS": ramp.nints,
        "NGROUPS": ramp.ngroups,
        "NFRAMES": ramp.nframes,
        "GROUPGAP": ramp.groupgap,
        "DRPFRMS1": ramp.drop_frames1,
        "TGROUP": float(ramp.group_time),
        "TFRAME": float(ramp.frame_time),
    }
    for key in ("FILENAME", "INSTRUME", "DETECTOR", "EXP_TYPE", "READPATT", "SUBARRAY"):
        value = ramp.meta.get(key)
        if isinstance(value, (str, int, float, bool)) and not isinstance(value, np.generic):
            meta[key] = value
    return meta
