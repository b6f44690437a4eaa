"""linearity: classic polynomial correction of every unsaturated group (stcal ``linearity_correction``).

Coefficients are prepared as stcal ``prepare_coefficients`` (NO_LIN_CORR in the reference DQ,
any NaN coefficient, or a zero linear term -> identity polynomial; the latter two add
NO_LIN_CORR to the pixel DQ) and evaluated by Horner in float32 in stcal's order.
With ``INV_COEFFS`` in the reference, NFRAMES > 1 and no READ_TIMES, jwst 3.0.0 takes
stcal's read-level path (``_linearity_correction_tile``), mirrored here in float64.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .. import dq as dqflags
from ..ramp import Ramp
from ._blocks import ref_rows, run_blocks
from ._refcheck import check_image

logger = logging.getLogger(__name__)

_NO_LIN_CORR = dqflags.PIXEL["NO_LIN_CORR"]


def prepare_coefficients(coeffs: np.ndarray, ldq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients float32 (ncoeffs, ny, nx), pixel-DQ additions uint32 (ny, nx))."""
    coeffs = np.array(coeffs, dtype=np.float32, copy=True)
    ldq = np.asarray(ldq, dtype=np.uint32)
    identity = np.zeros(coeffs.shape[0], np.float32)
    identity[1] = 1.0
    add = ldq.copy()
    flagged = (ldq & _NO_LIN_CORR) == _NO_LIN_CORR
    coeffs[:, flagged] = identity[:, None]
    bad = np.isnan(coeffs).any(axis=0) | (coeffs[1] == 0)
    coeffs[:, bad] = identity[:, None]
    add[bad] |= _NO_LIN_CORR
    return coeffs, add


def horner(xp: Any, data: Any, coeffs: Any) -> Any:
    """``c0 + c1 x + ... + cn x^n`` as stcal ``apply_polynomial``: ((cn x + c(n-1)) x + ...) x + c0."""
    ncoeffs = coeffs.shape[0]
    result = coeffs[ncoeffs - 1] * data
    for k in range(ncoeffs - 2, 0, -1):
        result = result + coeffs[k]
        result = result * data
    return result + coeffs[0]


def linearity(ramp: Ramp, linearity_ref: Any, *, backend: str | None = None,
              max_memory: int | str | None = None) -> Ramp:
    """Correct non-linearity; groups flagged SATURATED keep their raw value.

    Parameters
    ----------
    ramp : Ramp
        Exposure (not modified).
    linearity_ref : CalibReference
        From :func:`gpucal.refs.read_linearity`, cut to the exposure.
    backend : {"gpu", "cpu", "auto"}, optional
    max_memory : int or str, optional
        Working-set budget of the row blocks in flight (bytes or e.g. ``"512MB"``); default 256 MiB.

    Returns
    -------
    Ramp
        Corrected data; pixeldq | reference DQ | NO_LIN_CORR where the coefficients are unusable.
        Zeroframe pixels equal to 0.0 stay 0.0, the others are corrected.
    """
    check_image(linearity_ref, "LINEARITY", ramp)
    coeffs_all, add_all = prepare_coefficients(linearity_ref.data, linearity_ref.dq)
    inv_all = None
    inv = getattr(linearity_ref, "inv_coeffs", None)
    if inv is not None and ramp.nframes > 1 and not ramp.meta.get("READ_TIMES"):
        if ramp.ngroups < 2:
            logger.warning("linearity: read-level correction needs 2 or more groups; using the classic path")
        else:
            inv_all, add_inv = prepare_coefficients(inv, linearity_ref.dq)
            add_all |= add_inv
            logger.info("linearity: read-level correction with INV_COEFFS (NFRAMES=%d)", ramp.nframes)
    pattern = [[g * ramp.nframes + k + 1 for k in range(ramp.nframes)] for g in range(ramp.ngroups)]

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints):
        coeffs = ref_rows(xp, coeffs_all, rows)
        sat = (groupdq & xp.uint8(dqflags.SATURATED)) != 0
        if inv_all is None:
            corrected = horner(xp, data, coeffs[:, None, None])
        else:
            with np.errstate(invalid="ignore", over="ignore"):  # NaN data / huge extrapolations, as stcal
                corrected = xp.stack([_read_level(xp, data[i], sat[i], coeffs, ref_rows(xp, inv_all, rows), pattern)
                                      for i in range(data.shape[0])])
        data = xp.where(sat, data, corrected)
        if zeroframe is not None:
            zeroframe = xp.where(zeroframe == 0.0, zeroframe, horner(xp, zeroframe, coeffs[:, None]))
        return data, groupdq, pixeldq | ref_rows(xp, add_all, rows), zeroframe

    return run_blocks(ramp, kernel, backend, max_memory=max_memory)


def _mean0(xp: Any, stack: Any) -> Any:
    """Mean over axis 0 as numpy reduces it: sequential sum in order, then one division."""
    total = stack[0]
    for k in range(1, stack.shape[0]):
        total = total + stack[k]
    return total / stack.shape[0]


def _read_level(xp: Any, data: Any, sat: Any, coeffs: Any, inv: Any, pattern: list[list[int]]) -> Any:
    """One integration ``(ngroups, rows, nx)`` through stcal's read-level model; float32 result."""
    ngroups = data.shape[0]
    means = [sum(reads) / len(reads) for reads in pattern]  # exact as np.mean of the int reads
    n_unsat = (~sat).sum(axis=0, dtype=xp.int32) - 1
    n_unsat = xp.maximum(n_unsat, 2)
    last = (n_unsat - 1)[None]
    first_lin = xp.where(sat[0], data[0], horner(xp, data[0], coeffs))
    last_data = xp.take_along_axis(data, last, axis=0)[0]
    last_sat = xp.take_along_axis(sat, last, axis=0)[0]
    last_lin = xp.where(last_sat, last_data, horner(xp, last_data, coeffs))
    d_reads = xp.asarray(np.array(means, np.float64) - means[0])[last[0]]
    rate = (last_lin - first_lin).astype(xp.float64) / d_reads
    out = xp.empty(data.shape, xp.float64)
    for g in range(ngroups):
        since = xp.asarray(np.array(pattern[g]) - means[0])  # float64
        linear = first_lin[None] + rate[None] * since[:, None, None]
        unlin = horner(xp, linear, inv[:, None])
        offset = data[g] - _mean0(xp, unlin)
        unlin = unlin + offset[None]
        out[g] = _mean0(xp, xp.stack([horner(xp, unlin[j], coeffs) for j in range(unlin.shape[0])]))
    return out.astype(xp.float32)
