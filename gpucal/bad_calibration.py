"""Pixels that gain and read-noise references cannot calibrate, and the DQ flags that say so.

stcal flags a pixel whose gain is NaN or not positive ``DO_NOT_USE | NO_GAIN_VALUE`` (its
rate is then NaN with zero variances), but lets an infinite gain, and a zero, negative,
infinite or NaN read noise, through to a NaN rate whose DQ is 0. gpucal treats them all
alike: such a pixel is flagged before fitting, ``DO_NOT_USE | NO_GAIN_VALUE`` for the gain,
``DO_NOT_USE | OTHER_BAD_PIXEL`` for the read noise (jwst has no read-noise flag), so its
products are those of any DO_NOT_USE pixel and the DQ says why. A reference with no usable
value at all is refused. See docs/algorithms/ramp_fit.md, "Unusable calibration".
"""

from __future__ import annotations

import logging

import numpy as np

from .dq import DO_NOT_USE, NO_GAIN_VALUE, PIXEL
from .errors import InputError

log = logging.getLogger(__name__)

GAIN_FLAGS = DO_NOT_USE | NO_GAIN_VALUE
READNOISE_FLAGS = DO_NOT_USE | PIXEL["OTHER_BAD_PIXEL"]


def unusable(values: np.ndarray) -> np.ndarray:
    """True where a gain or read-noise value is NaN, infinite, zero or negative."""
    values = np.asarray(values)
    with np.errstate(invalid="ignore"):
        return ~(values > 0) | np.isinf(values)


def describe_unusable(values: np.ndarray, bad: np.ndarray) -> str:
    """``"3 NaN, 1 infinite, 2 zero or negative"`` for the ``bad`` entries of ``values``."""
    bad_values = np.asarray(values)[bad]
    n_nan = int(np.count_nonzero(np.isnan(bad_values)))
    n_inf = int(np.count_nonzero(np.isinf(bad_values)))
    n_low = bad_values.size - n_nan - n_inf
    parts = [f"{n} {what}" for n, what in ((n_nan, "NaN"), (n_inf, "infinite"), (n_low, "zero or negative")) if n]
    return ", ".join(parts)


def require_usable(values: np.ndarray, what: str) -> np.ndarray:
    """The unusable mask of ``values``; InputError naming ``what`` when no value is usable."""
    bad = unusable(values)
    if bad.all():
        raise InputError(f"{what} has no usable value: all {bad.size} pixels are unusable "
                         f"({describe_unusable(values, bad)}); a gain or read noise must be finite and positive")
    return bad


def calibration_flags(gain: np.ndarray, readnoise: np.ndarray, *, step: str,
                      pixeldq: np.ndarray | None = None) -> np.ndarray:
    """Pixel DQ flags (uint32, the image's shape) for unusable gain and read-noise values.

    Raises InputError when every gain or every read-noise value is unusable. Logs a warning
    with the counts of pixels this call flags that ``pixeldq`` (the exposure's pixel DQ) does
    not already carry, so a pipeline warns once, at the first step that flags them.
    """
    bad_gain = require_usable(gain, "the gain")
    bad_rn = require_usable(readnoise, "the read noise")
    flags = np.where(bad_gain, np.uint32(GAIN_FLAGS), np.uint32(0))
    flags |= np.where(bad_rn, np.uint32(READNOISE_FLAGS), np.uint32(0))
    already = np.zeros(flags.shape, bool) if pixeldq is None else (np.asarray(pixeldq) & flags) == flags
    for bad, what, names in ((bad_gain, "gain", "DO_NOT_USE | NO_GAIN_VALUE"),
                             (bad_rn, "read noise", "DO_NOT_USE | OTHER_BAD_PIXEL")):
        new = bad & ~already
        if new.any():
            values = gain if what == "gain" else readnoise
            log.warning("%s: %d of %d pixels have an unusable %s (%s): flagged %s, their rate will be NaN",
                        step, int(np.count_nonzero(new)), new.size, what, describe_unusable(values, new), names)
    return flags
