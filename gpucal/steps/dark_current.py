"""dark_current: subtract the DARK reference averaged to the exposure's readout (stcal ``dark_sub``).

The dark is prepared once on the host in numpy (extrapolated when it has fewer frames than the
exposure, NaN -> 0, frames averaged to NFRAMES/GROUPGAP: frames summed in order then divided by
NFRAMES, as numpy's ``mean(axis=0)`` does), then subtracted block by block on the backend.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import numpy as np

from ..errors import InputError
from ..ramp import Ramp
from ._blocks import ref_rows, run_blocks
from ._derive import copy_ramp

logger = logging.getLogger(__name__)


class DarkCurrentResult(NamedTuple):
    """What :func:`dark_current` returns.

    Attributes
    ----------
    ramp : Ramp
        Dark-subtracted exposure.
    average_dark_current : numpy.ndarray
        float32 ``(ny, nx)`` average dark current (electrons/s) to pass to
        ``gpucal.ramp_fit(..., average_dark_current=...)``.
    averaged_dark : numpy.ndarray or None
        The dark actually subtracted (None when the step skipped).
    skipped : bool
        True when the dark's NFRAMES or GROUPGAP exceed the exposure's (data unchanged).
    """

    ramp: Ramp
    average_dark_current: np.ndarray
    averaged_dark: np.ndarray | None
    skipped: bool


def _extrapolate(arr: np.ndarray, extra: int) -> np.ndarray:
    """Append ``extra`` groups along axis 0 continuing the last difference (float64 result, as stcal)."""
    rate = arr[-1] - arr[-2]
    steps = np.arange(1, extra + 1).reshape(-1, 1, 1)
    return np.concatenate((arr, steps * rate + arr[-1]))


def _average(frames: np.ndarray, ngroups: int, nframes: int, groupgap: int) -> np.ndarray:
    """Average dark frames (axis 0) to ``ngroups`` groups of ``nframes`` separated by ``groupgap``."""
    out = np.zeros((ngroups,) + frames.shape[1:], np.float32)
    for g in range(ngroups):
        start = g * (nframes + groupgap)
        if nframes == 1:
            out[g] = frames[start]
            continue
        total = frames[start].copy()
        for f in range(start + 1, start + nframes):
            total += frames[f]
        out[g] = total / nframes
    return out


def prepare_dark(ramp: Ramp, dark_ref: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """(dark to subtract per integration-layout or None when skipped, pixel DQ to OR in)."""
    data = np.asarray(dark_ref.data)
    miri = data.ndim == 4
    dgroups = data.shape[1] if miri else data.shape[0]
    nd, gapd = int(dark_ref.header["NFRAMES"]), int(dark_ref.header["GROUPGAP"])
    n, gap, g = ramp.nframes, ramp.groupgap, ramp.ngroups
    fs, fd = g * n + (g - 1) * gap, dgroups * nd + (dgroups - 1) * gapd
    if fs > fd:
        extra = math.ceil((fs - fd + gapd) / (nd + gapd))
        logger.warning("dark has %d frames, the exposure needs %d: extrapolating %d groups", fd, fs, extra)
        data = np.stack([_extrapolate(d, extra) for d in data]) if miri else _extrapolate(data, extra)
    dq = np.asarray(dark_ref.dq, np.uint32)
    if dq.ndim == 4:
        pdq = dq[0, 0].copy()
        for k in range(1, dq.shape[0]):
            pdq |= dq[k, 0]
    else:
        pdq = dq
    if nd > n or gapd > gap:
        logger.warning("dark NFRAMES=%d GROUPGAP=%d exceed the exposure's %d, %d: dark_current skipped",
                       nd, gapd, n, gap)
        return None, pdq
    data = np.where(np.isnan(data), data.dtype.type(0), data)
    if n == nd and gap == gapd:
        return data, pdq
    if miri:
        out = np.zeros((data.shape[0], g) + data.shape[2:], np.float32)
        for k in range(min(data.shape[0], ramp.nints)):
            out[k] = _average(data[k], g, n, gap)
        return out, pdq
    return _average(data, g, n, gap), pdq


def _average_dark_current(ramp: Ramp, dark_ref: Any, value: float | None) -> np.ndarray:
    """As jwst ``set_average_dark_current``: the parameter, else a non-zero AVDRKCUR image, else the keyword."""
    image = getattr(dark_ref, "average_dark_current", None)
    if value is None and image is not None and float(np.sum(image)) != 0.0:
        if tuple(image.shape) == (ramp.ny, ramp.nx):
            return np.array(image, np.float32)
        logger.warning("DARK AVDRKCUR image shape %s does not match the exposure's %s: not used (zeros)",
                       tuple(image.shape), (ramp.ny, ramp.nx))
        return np.zeros((ramp.ny, ramp.nx), np.float32)
    if value is None:
        value = dark_ref.header.get("AVDRKCUR")
    return np.full((ramp.ny, ramp.nx), float(value or 0.0), np.float32)


def dark_current(ramp: Ramp, dark_ref: Any, *, average_dark_current: float | None = None,
                 backend: str | None = None,
                 max_memory: int | str | None = None) -> DarkCurrentResult:
    """Subtract the dark and OR its DQ into the pixel DQ.

    Parameters
    ----------
    ramp : Ramp
        Exposure (not modified). meta INTSTART (default 1) selects MIRI dark integrations.
    dark_ref : CalibReference
        From :func:`gpucal.refs.read_dark`: SCI ``(groups, ny, nx)`` or MIRI
        ``(ints, groups, ny, nx)``, header NFRAMES and GROUPGAP.
    average_dark_current : float, optional
        Average dark current (electrons/s) for ramp fitting; default the reference's AVDRKCUR
        image when it has a non-zero sum, else its AVDRKCUR keyword, else 0.
    backend : {"gpu", "cpu", "auto"}, optional
    max_memory : int or str, optional
        Working-set budget of the row blocks in flight (bytes or e.g. ``"512MB"``); default 256 MiB.

    Returns
    -------
    DarkCurrentResult
    """
    if getattr(dark_ref, "reftype", None) != "DARK":
        raise InputError(f"expected a DARK reference, got {getattr(dark_ref, 'reftype', type(dark_ref).__name__)}")
    if tuple(np.shape(dark_ref.data)[-2:]) != (ramp.ny, ramp.nx):
        raise InputError(f"DARK frame shape {np.shape(dark_ref.data)[-2:]} does not match the exposure's "
                         f"(ny, nx) = {(ramp.ny, ramp.nx)}")
    avg = _average_dark_current(ramp, dark_ref, average_dark_current)
    dark, pdq = prepare_dark(ramp, dark_ref)
    if dark is None:
        return DarkCurrentResult(copy_ramp(ramp), avg, None, True)
    miri = dark.ndim == 4
    dints = dark.shape[0] if miri else 1
    intstart = ramp.meta.get("INTSTART")
    intstart = 1 if intstart is None else int(intstart)
    ngroups = ramp.ngroups

    def kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints):
        d = ref_rows(xp, dark, rows)
        if not miri:  # one dark for every integration
            return data - d[None, :ngroups], groupdq, pixeldq | ref_rows(xp, pdq, rows), zeroframe
        out = xp.empty_like(data)
        for k in range(data.shape[0]):
            i = ints.start + k  # the exposure's integration index
            di = d[i] if i < dints and intstart == 1 else d[-1]
            out[k] = data[k] - di[:ngroups]
        return out, groupdq, pixeldq | ref_rows(xp, pdq, rows), zeroframe

    return DarkCurrentResult(run_blocks(ramp, kernel, backend, max_memory=max_memory), avg, dark, False)
