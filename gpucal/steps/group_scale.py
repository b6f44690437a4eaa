"""group_scale: rescale groups whose frame sum was divided by FRMDIVSR instead of NFRAMES (jwst ``group_scale``)."""

from __future__ import annotations

import logging

from ..ramp import Ramp
from ._blocks import run_blocks
from ._derive import copy_ramp

logger = logging.getLogger(__name__)


def _skip(ramp: Ramp) -> bool:
    divisor = ramp.meta.get("FRMDIVSR")
    nframes = ramp.nframes
    if divisor is None:
        if nframes & (nframes - 1) == 0:
            logger.info("group_scale skipped: FRMDIVSR missing and NFRAMES=%d is a power of 2", nframes)
        else:
            logger.warning("group_scale skipped: FRMDIVSR missing, NFRAMES=%d", nframes)
        return True
    if int(divisor) == nframes:
        logger.info("group_scale skipped: FRMDIVSR == NFRAMES == %d", nframes)
        return True
    return False


def group_scale(ramp: Ramp, *, backend: str | None = None,
                max_memory: int | str | None = None) -> Ramp:
    """Multiply the data by ``FRMDIVSR / NFRAMES`` (meta FRMDIVSR, ramp.nframes) in float32.

    Returns a new Ramp; an unchanged copy when the step skips (FRMDIVSR missing or equal to NFRAMES).
    """
    if _skip(ramp):
        return copy_ramp(ramp)
    scale = float(ramp.meta["FRMDIVSR"]) / ramp.nframes
    logger.info("group_scale: rescaling by %s", scale)

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints):
        return data * scale, groupdq, pixeldq, zeroframe

    return run_blocks(ramp, kernel, backend, max_memory=max_memory)
