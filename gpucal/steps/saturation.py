"""saturation: flag groups at or above the SATURATION threshold, grow them, flag the A/D floor.

Follows stcal ``flag_saturated_pixels`` as jwst 3.0.0 calls it (``use_readpatt=True``: the
read pattern ``[[g*N + 1 ... g*N + N] for g]``, ignoring GROUPGAP as jwst does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dq as dqflags
from ..errors import InputError
from ..ramp import Ramp
from ._blocks import ref_rows, run_blocks
from ._refcheck import check_image

#: Hard DN limit of the 16-bit A/D converter (jwst ``saturation.ATOD_LIMIT``).
ATOD_LIMIT = 65535.0

_SAT = dqflags.SATURATED
_DNU = dqflags.DO_NOT_USE
_AD_FLOOR = dqflags.PIXEL["AD_FLOOR"]
_NO_SAT_CHECK = dqflags.PIXEL["NO_SAT_CHECK"]


def dilate(xp: Any, mask: Any, n: int) -> Any:
    """Square ``(2n+1)``-wide dilation of a boolean ``(..., ny, nx)`` mask; outside pixels are unset."""
    if n <= 0:
        return mask
    out = mask.copy()
    for k in range(1, n + 1):
        out[..., k:, :] |= mask[..., :-k, :]
        out[..., :-k, :] |= mask[..., k:, :]
    rows = out.copy()
    for k in range(1, n + 1):
        out[..., :, k:] |= rows[..., :, :-k]
        out[..., :, :-k] |= rows[..., :, k:]
    return out


def prepare_thresholds(saturation_ref: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(threshold, dq, no_sat_check mask): NaN thresholds get NO_SAT_CHECK; NO_SAT_CHECK ones get 65536."""
    thresh = np.array(saturation_ref.data, dtype=np.float32, copy=True)
    qdq = np.array(saturation_ref.dq, dtype=np.uint32, copy=True)
    nsc = (qdq & _NO_SAT_CHECK) == _NO_SAT_CHECK
    nan = np.isnan(thresh)
    qdq[nan] |= _NO_SAT_CHECK
    nsc |= nan
    thresh[nsc] = ATOD_LIMIT + 1
    return thresh, qdq, nsc


def saturation(ramp: Ramp, saturation_ref: Any, *, n_pix_grow_sat: int = 1, superbias_ref: Any = None,
               use_readpatt: bool = True, backend: str | None = None,
               max_memory: int | str | None = None) -> Ramp:
    """Flag saturation (SATURATED, grown) and the A/D floor (AD_FLOOR | DO_NOT_USE).

    Parameters
    ----------
    ramp : Ramp
        Exposure (not modified). Data are never changed, except bad zeroframe pixels -> 0.0.
    saturation_ref : CalibReference
        From :func:`gpucal.refs.read_saturation`, cut to the exposure.
    n_pix_grow_sat : int
        Half-width of the square the SATURATED flags are grown by (default 1).
    superbias_ref : CalibReference, optional
        Bias used by the group-2 check of frame-averaged groups (near-IR); 0 when None.
    use_readpatt : bool
        Use the NFRAMES read pattern (backward dilution pass, group-2 check), as jwst's default.
    backend : {"gpu", "cpu", "auto"}, optional
    max_memory : int or str, optional
        Working-set budget of the row blocks in flight (bytes or e.g. ``"512MB"``); default 256 MiB.

    Returns
    -------
    Ramp
        groupdq with SATURATED / DO_NOT_USE / AD_FLOOR, pixeldq | saturation DQ (plus
        NO_SAT_CHECK where the threshold is NaN).
    """
    check_image(saturation_ref, "SATURATION", ramp)
    if superbias_ref is not None:
        check_image(superbias_ref, "SUPERBIAS", ramp)
    if isinstance(n_pix_grow_sat, bool) or not isinstance(n_pix_grow_sat, (int, np.integer)) or n_pix_grow_sat < 0:
        raise InputError(f"n_pix_grow_sat must be an integer >= 0, got {n_pix_grow_sat!r}")
    n = int(n_pix_grow_sat)
    thresh_all, qdq_all, nsc_all = prepare_thresholds(saturation_ref)
    nfr = ramp.nframes
    # dilution of group g: mean(R_g) / R_g[-1], in float64 as np.mean of the int pattern
    dilution = [(g * nfr + (nfr + 1) / 2.0) / (g * nfr + nfr) for g in range(ramp.ngroups)] if use_readpatt else None

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints):
        # integrations are independent: each operation covers all of them at once (long numpy
        # loops for TSO blocks of many integrations and few rows)
        thresh = ref_rows(xp, thresh_all, rows)
        nsc = ref_rows(xp, nsc_all, rows)
        ngroups = data.shape[1]
        groupdq = groupdq.copy()
        sat8, dnu8, low8 = xp.uint8(_SAT), xp.uint8(_DNU), xp.uint8(_AD_FLOOR | _DNU)
        zero8 = xp.uint8(0)
        ever = xp.zeros((data.shape[0],) + thresh.shape, dtype=bool)
        for g in range(ngroups):
            plane = data[:, g]
            ever |= plane >= thresh
            gdq = groupdq[:, g] | xp.where(ever, sat8, zero8)
            gdq |= xp.where(plane <= 0, low8, zero8)
            if n > 0:
                gdq |= xp.where(dilate(xp, (gdq & sat8) != 0, n), sat8, zero8)
            groupdq[:, g] = gdq
        if dilution is not None:
            thresh64 = thresh.astype(xp.float64)
            for g in range(ngroups - 2, -1, -1):
                if dilution[g] == 1:
                    continue
                # float64 threshold x dilution, as numpy promotes float32 x float64 (explicit for CuPy)
                factor = xp.where(nsc, xp.float64(1.0), xp.float64(dilution[g]))
                this, nxt = groupdq[:, g], groupdq[:, g + 1]
                partial = ((data[:, g].astype(xp.float64) >= thresh64 * factor)
                           & ((this & (sat8 | dnu8)) == 0)
                           & ((nxt & sat8) != 0))
                groupdq[:, g] = this | xp.where(dilate(xp, partial, n), dnu8, zero8)
            if ngroups > 2:
                bias = (xp.float32(0.0) if superbias_ref is None
                        else ref_rows(xp, np.asarray(superbias_ref.data, np.float32), rows))
                d0, d1 = data[:, 0], data[:, 1]
                mean0 = np.float64((nfr + 1) / 2.0)
                # float64 (stcal divides by np.mean, a float64 scalar); explicit so CuPy agrees
                a = (((d0 - bias).astype(xp.float64) / mean0) * (3 * nfr) + bias) < thresh64
                c = (d1 - d0) > (thresh - d0) / xp.float32(nfr)
                d = ((groupdq[:, 2] & sat8) != 0) & ((groupdq[:, 1] & sat8) == 0)
                groupdq[:, 1] = groupdq[:, 1] | xp.where(a & c & d, dnu8, zero8)
        if zeroframe is not None:
            sat = zeroframe >= thresh
            bad = sat | (zeroframe <= 0)
            if n > 0:
                bad |= dilate(xp, sat, n)
            zeroframe = xp.where(bad, xp.float32(0.0), zeroframe)
        pixeldq = pixeldq | ref_rows(xp, qdq_all, rows)
        return data, groupdq, pixeldq, zeroframe

    # the backward pass grows flags that depend on grown flags of the next group: 2n rows
    return run_blocks(ramp, kernel, backend, halo=2 * n, max_memory=max_memory)
