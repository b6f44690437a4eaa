"""superbias: subtract the SUPERBIAS image from every group (jwst ``bias_sub.do_correction``)."""

from __future__ import annotations

from typing import Any

from ..ramp import Ramp
from ._blocks import ref_rows, run_blocks
from ._refcheck import check_image


def superbias(ramp: Ramp, superbias_ref: Any, *, backend: str | None = None,
              max_memory: int | str | None = None) -> Ramp:
    """Subtract the superbias (NaN bias counts as 0) in float32; OR its DQ into the pixel DQ.

    Zeroframe pixels equal to 0.0 (bad) stay 0.0; the others get the bias subtracted.

    Parameters
    ----------
    ramp : Ramp
        Near-IR exposure (not modified).
    superbias_ref : CalibReference
        From :func:`gpucal.refs.read_superbias`, cut to the exposure.
    backend : {"gpu", "cpu", "auto"}, optional
    max_memory : int or str, optional
        Working-set budget of the row blocks in flight (bytes or e.g. ``"512MB"``); default 256 MiB.
    """
    check_image(superbias_ref, "SUPERBIAS", ramp)

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints):
        bias = ref_rows(xp, superbias_ref.data, rows)
        bias = xp.where(xp.isnan(bias), xp.float32(0.0), bias)
        data = data - bias[None, None]
        pixeldq = pixeldq | ref_rows(xp, superbias_ref.dq, rows)
        if zeroframe is not None:
            zeroframe = xp.where(zeroframe == 0.0, xp.float32(0.0), zeroframe - bias[None])
        return data, groupdq, pixeldq, zeroframe

    return run_blocks(ramp, kernel, backend, max_memory=max_memory)
