"""firstframe / lastframe (MIRI): mark the first / last group DO_NOT_USE.

As jwst ``firstframe_sub.do_correction`` and ``lastframe_sub.do_correction``.
"""

from __future__ import annotations

import logging

from .. import dq as dqflags
from ..ramp import Ramp
from ._blocks import run_blocks
from ._derive import copy_ramp

logger = logging.getLogger(__name__)

_FLUX_ESTIMATED = dqflags.PIXEL["FLUX_ESTIMATED"]


def _is_miri(ramp: Ramp, step: str) -> bool:
    if str(ramp.meta.get("DETECTOR", "")).strip().upper().startswith("MIR"):
        return True
    logger.info("%s skipped: not a MIRI detector", step)
    return False


def firstframe(ramp: Ramp, *, bright_use_group1: bool = True, backend: str | None = None,
               max_memory: int | str | None = None) -> Ramp:
    """DO_NOT_USE on group 0 when NGROUPS > 3 (MIRI only; otherwise an unchanged copy).

    With ``bright_use_group1`` (jwst default) group 0 stays usable where group 2 is SATURATED,
    and those pixels get FLUX_ESTIMATED in the pixel DQ.
    """
    if not _is_miri(ramp, "firstframe"):
        return copy_ramp(ramp)
    if ramp.ngroups <= 3:
        logger.warning("firstframe skipped: %d groups, needs more than 3", ramp.ngroups)
        return copy_ramp(ramp)

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints):
        groupdq = groupdq.copy()
        dnu = xp.uint8(dqflags.DO_NOT_USE)
        if bright_use_group1:
            kept = (groupdq[:, 2] & xp.uint8(dqflags.SATURATED)) > 0
            groupdq[:, 0] |= xp.where(kept, xp.uint8(0), dnu)
            pixeldq = pixeldq | xp.where(kept.any(axis=0), xp.uint32(_FLUX_ESTIMATED), xp.uint32(0))
        else:
            groupdq[:, 0] |= dnu
        return data, groupdq, pixeldq, zeroframe

    return run_blocks(ramp, kernel, backend, max_memory=max_memory)


def lastframe(ramp: Ramp, *, backend: str | None = None,
              max_memory: int | str | None = None) -> Ramp:
    """DO_NOT_USE on the last group when NGROUPS > 2 (MIRI only; otherwise an unchanged copy)."""
    if not _is_miri(ramp, "lastframe"):
        return copy_ramp(ramp)
    if ramp.ngroups <= 2:
        logger.warning("lastframe skipped: %d groups, needs more than 2", ramp.ngroups)
        return copy_ramp(ramp)

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints):
        groupdq = groupdq.copy()
        groupdq[:, -1] |= xp.uint8(dqflags.DO_NOT_USE)
        return data, groupdq, pixeldq, zeroframe

    return run_blocks(ramp, kernel, backend, max_memory=max_memory)
