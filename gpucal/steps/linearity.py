"""linearity: classic polynomial correction of every unsaturated group (stcal ``linearity_correction``).

Coefficients are prepared as stcal ``prepare_coefficients`` (NO_LIN_CORR in the reference DQ,
any NaN coefficient, or a zero linear term -> identity polynomial; the latter two add
NO_LIN_CORR to the pixel DQ) and evaluated by Horner in float32 in stcal's order.
The read-level path (``INV_COEFFS`` in the reference with NFRAMES > 1) is not implemented:
it raises NotImplementedError rather than giving a result different from jwst.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dq as dqflags
from ..ramp import Ramp
from ._blocks import ref_rows, run_blocks
from ._refcheck import check_image

_NO_LIN_CORR = dqflags.PIXEL["NO_LIN_CORR"]


def prepare_coefficients(linearity_ref: Any) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients float32 (ncoeffs, ny, nx), pixel-DQ additions uint32 (ny, nx))."""
    coeffs = np.array(linearity_ref.data, dtype=np.float32, copy=True)
    ldq = np.asarray(linearity_ref.dq, dtype=np.uint32)
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


def linearity(ramp: Ramp, linearity_ref: Any, *, backend: str | None = None) -> Ramp:
    """Correct non-linearity; groups flagged SATURATED keep their raw value.

    Parameters
    ----------
    ramp : Ramp
        Exposure (not modified).
    linearity_ref : CalibReference
        From :func:`gpucal.refs.read_linearity`, cut to the exposure.
    backend : {"gpu", "cpu", "auto"}, optional

    Returns
    -------
    Ramp
        Corrected data; pixeldq | reference DQ | NO_LIN_CORR where the coefficients are unusable.
        Zeroframe pixels equal to 0.0 stay 0.0, the others are corrected.

    Raises
    ------
    NotImplementedError
        The reference has INV_COEFFS and NFRAMES > 1 (jwst's read-level path).
    """
    check_image(linearity_ref, "LINEARITY", ramp)
    if linearity_ref.header.get("HAS_INV_COEFFS") and ramp.nframes > 1 and not ramp.meta.get("READ_TIMES"):
        # jwst 3.0.0 would take the read-level path here; refuse rather than differ silently
        raise NotImplementedError(
            "LINEARITY reference has INV_COEFFS and the exposure averages NFRAMES > 1: jwst applies the "
            "read-level correction, which gpucal does not implement yet")
    coeffs_all, add_all = prepare_coefficients(linearity_ref)

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows):
        coeffs = ref_rows(xp, coeffs_all, rows)
        corrected = horner(xp, data, coeffs[:, None, None])
        data = xp.where((groupdq & xp.uint8(dqflags.SATURATED)) != 0, data, corrected)
        if zeroframe is not None:
            zeroframe = xp.where(zeroframe == 0.0, zeroframe, horner(xp, zeroframe, coeffs[:, None]))
        return data, groupdq, pixeldq | ref_rows(xp, add_all, rows), zeroframe

    return run_blocks(ramp, kernel, backend)
