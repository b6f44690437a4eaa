"""dq_init: OR the MASK reference into the pixel DQ and its DO_NOT_USE into every group (jwst ``do_dqinit``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dq as dqflags
from ..errors import InputError
from ..ramp import Ramp
from ._blocks import ref_rows, run_blocks
from ._refcheck import check_image


def dq_init(ramp: Ramp, mask: Any, *, user_dq: np.ndarray | None = None, backend: str | None = None,
            max_memory: int | str | None = None) -> Ramp:
    """Initialise DQ from a MASK reference.

    Parameters
    ----------
    ramp : Ramp
        Exposure (not modified).
    mask : CalibReference
        MASK reference from :func:`gpucal.refs.read_mask`, cut to the exposure.
    user_dq : numpy.ndarray, optional
        Extra ``(ny, nx)`` flags (jwst ``user_supplied_dq``), cast to uint32 and OR-ed into the mask.
    backend : {"gpu", "cpu", "auto"}, optional
    max_memory : int or str, optional
        Working-set budget of the row blocks in flight (bytes or e.g. ``"512MB"``); default 256 MiB.

    Returns
    -------
    Ramp
        ``pixeldq | M`` and ``groupdq | (M & DO_NOT_USE)``; data unchanged.
    """
    check_image(mask, "MASK", ramp)
    m_all = np.asarray(mask.dq, np.uint32)
    if user_dq is not None:
        user = np.asarray(user_dq)
        if user.shape != m_all.shape:
            raise InputError(f"user_dq has shape {user.shape}, expected the mask's {m_all.shape}")
        m_all = m_all | user.astype(np.uint32)

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints):
        m = ref_rows(xp, m_all, rows)
        pixeldq = pixeldq | m
        groupdq = groupdq | (m & dqflags.DO_NOT_USE).astype(xp.uint8)[None, None]
        return data, groupdq, pixeldq, zeroframe

    return run_blocks(ramp, kernel, backend, max_memory=max_memory)
