"""dq_init: OR the MASK reference into the pixel DQ and its DO_NOT_USE into every group (jwst ``do_dqinit``)."""

from __future__ import annotations

from typing import Any

from .. import dq as dqflags
from ..ramp import Ramp
from ._blocks import ref_rows, run_blocks
from ._refcheck import check_image


def dq_init(ramp: Ramp, mask: Any, *, backend: str | None = None) -> Ramp:
    """Initialise DQ from a MASK reference.

    Parameters
    ----------
    ramp : Ramp
        Exposure (not modified).
    mask : CalibReference
        MASK reference from :func:`gpucal.refs.read_mask`, cut to the exposure.
    backend : {"gpu", "cpu", "auto"}, optional

    Returns
    -------
    Ramp
        ``pixeldq | M`` and ``groupdq | (M & DO_NOT_USE)``; data unchanged.
    """
    check_image(mask, "MASK", ramp)

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows):
        m = ref_rows(xp, mask.dq, rows)
        pixeldq = pixeldq | m
        groupdq = groupdq | (m & dqflags.DO_NOT_USE).astype(xp.uint8)[None, None]
        return data, groupdq, pixeldq, zeroframe

    return run_blocks(ramp, kernel, backend)
