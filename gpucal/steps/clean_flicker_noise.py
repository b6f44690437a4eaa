"""clean_flicker_noise: subtract the median of the background pixels of each detector column.

The group-level 1/f cleaning of the NIRSpec TSO notebook: for every integration and group, the
median of each column over its unilluminated pixels is subtracted from the whole column. With
``differences=True`` the same cleaning is applied to successive group differences and the ramp
is rebuilt cumulatively, as jwst ``clean_flicker_noise`` does with ``fit_method="median"``,
``background_method=None``. See ``docs/algorithms/clean_flicker_noise.md``.

Medians are selections (a sort, then the middle value or ``(a + b) / 2`` of the two middle
values in float32), so numpy and CuPy give bit-identical results.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..backend import to_host
from ..chunking import parse_memory
from ..dq import PIXEL
from ..errors import InputError
from ..progress import ProgressCallback
from ..ramp import Ramp
from ._blocks import DEFAULT_BLOCK_BYTES, backend_and_module
from ._derive import with_data

logger = logging.getLogger(__name__)

#: Group flags that keep a pixel out of the medians (jwst ``_mask_unusable``).
UNUSABLE = PIXEL["DO_NOT_USE"] | PIXEL["JUMP_DET"]

#: Scale from the median absolute deviation to a Gaussian sigma.
MAD_TO_SIGMA = 1.4826

#: Device bytes per sample of one integration block: data, output, differences, sort copy,
#: usable mask, group DQ.
_BYTES_PER_SAMPLE = 4 + 4 + 4 + 4 + 1 + 1


def masked_median(xp: Any, values: Any, usable: Any) -> Any:
    """Median of ``values`` along the last axis over ``usable`` entries; 0 where none is usable.

    Unusable entries become +inf and sort last; the median of the ``n`` usable ones is then
    ``(s[(n-1)//2] + s[n//2]) / 2`` in the values' dtype, which is numpy.ma.median's formula
    (for odd ``n`` both indices are equal). Returns an array with the last axis of length 1.
    """
    filled = xp.where(usable, values, xp.asarray(np.inf, dtype=values.dtype))
    ordered = xp.sort(filled, axis=-1)
    n = xp.sum(usable, axis=-1, keepdims=True, dtype=xp.int64)
    lo = xp.take_along_axis(ordered, xp.maximum(n - 1, 0) // 2, axis=-1)
    hi = xp.take_along_axis(ordered, xp.minimum(n // 2, ordered.shape[-1] - 1), axis=-1)
    two = xp.asarray(2.0, dtype=values.dtype)
    return xp.where(n > 0, (lo + hi) / two, xp.zeros_like(lo))


def _line_median(xp: Any, planes: Any, usable: Any, axis: int) -> Any:
    """Per-line medians of ``(..., ny, nx)`` planes along image axis ``axis``, broadcastable back."""
    if axis == 0:
        return masked_median(xp, planes.swapaxes(-1, -2), usable.swapaxes(-1, -2)).swapaxes(-1, -2)
    return masked_median(xp, planes, usable)


def source_mask(ramp: Ramp, threshold: float, *, backend: str | None = None) -> np.ndarray:
    """Illuminated pixels of ``ramp`` found from its median last-minus-first image (True = source).

    The quick image is the per-pixel median over integrations of ``last group - first group``
    (the notebook's draft image). A pixel is masked when its quick value is not finite, when
    its pixel DQ has DO_NOT_USE, or when it exceeds ``median + threshold * 1.4826 * MAD`` of
    the finite quick values (comparison in float64).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not math.isfinite(threshold) or threshold <= 0:
        raise InputError(f"mask_threshold must be a finite number > 0 (robust sigmas), got {threshold!r}")
    if ramp.ngroups < 2:
        raise InputError("clean_flicker_noise needs ngroups >= 2 to find illuminated pixels; pass a mask")
    _, xp = backend_and_module(backend)
    last = xp.asarray(np.asarray(ramp.data[:, -1], dtype=np.float32))
    first = xp.asarray(np.asarray(ramp.data[:, 0], dtype=np.float32))
    lmf = last - first
    quick = masked_median(xp, xp.moveaxis(lmf, 0, -1), ~xp.isnan(xp.moveaxis(lmf, 0, -1)))[..., 0]
    quick = xp.where(xp.isnan(lmf).all(axis=0), xp.asarray(np.nan, dtype=np.float32), quick)
    finite = xp.isfinite(quick)
    if not bool(finite.any()):
        raise InputError("clean_flicker_noise: the last-minus-first image has no finite pixel; pass a mask")
    flat, ok = quick.reshape(-1), finite.reshape(-1)
    centre = masked_median(xp, flat, ok)
    mad = masked_median(xp, xp.abs(flat - centre), ok)
    limit = float(to_host(centre)[0]) + float(threshold) * MAD_TO_SIGMA * float(to_host(mad)[0])
    bright = quick.astype(xp.float64) > xp.asarray(limit, dtype=xp.float64)
    pixel_bad = (xp.asarray(np.asarray(ramp.pixeldq, dtype=np.uint32)) & PIXEL["DO_NOT_USE"]) != 0
    mask = to_host(~finite | bright | pixel_bad)
    logger.info("clean_flicker_noise: %d of %d pixels masked as illuminated or unusable (limit %.6g DN)",
                int(mask.sum()), mask.size, limit)
    return mask


def _clean_groups(xp: Any, data: Any, gdq: Any, background: Any, axis: int) -> Any:
    """The notebook's cleaning: every group minus its per-line background median."""
    usable = background & ~xp.isnan(data) & ((gdq & UNUSABLE) == 0)
    return data - _line_median(xp, data, usable, axis)


def _clean_differences(xp: Any, data: Any, gdq: Any, background: Any, axis: int) -> Any:
    """jwst's ramp cleaning: clean ``data[g+1] - data[g]`` and rebuild the ramp from group 0.

    A difference plane with no usable pixel is left alone: that group keeps its input values
    and later groups build on them, as in jwst.
    """
    diff = data[:, 1:] - data[:, :-1]
    usable = background & ~xp.isnan(diff) & ((gdq[:, 1:] & UNUSABLE) == 0)
    cleaned = diff - _line_median(xp, diff, usable, axis)
    any_usable = usable.any(axis=(-2, -1))[..., None, None]
    out = data.copy()
    for g in range(diff.shape[1]):
        out[:, g + 1] = xp.where(any_usable[:, g], out[:, g] + cleaned[:, g], data[:, g + 1])
    return out


def _check(ramp: Ramp, mask: Any, axis: int) -> np.ndarray | None:
    if not isinstance(ramp, Ramp):
        raise InputError(f"clean_flicker_noise needs a gpucal.Ramp, got {type(ramp).__name__}")
    if axis not in (0, 1):
        raise InputError(f"axis must be 0 (median over rows, one value per column) or 1, got {axis!r}")
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != np.bool_ or m.shape != (ramp.ny, ramp.nx):
            raise InputError(f"mask must be a bool array of shape {(ramp.ny, ramp.nx)} (True = source), "
                             f"got {m.dtype} {m.shape}")
        return m
    return None


def clean_flicker_noise(
    ramp: Ramp,
    *,
    backend: str | None = None,
    mask: Any = None,
    mask_threshold: float = 3.0,
    differences: bool = False,
    axis: int = 0,
    max_memory: int | str | None = None,
    progress: ProgressCallback | None = None,
) -> Ramp:
    """Remove 1/f column stripes: subtract each column's median over background pixels.

    Parameters
    ----------
    ramp : Ramp
        Exposure after dark_current (not modified).
    backend : {"gpu", "cpu", "auto"}, optional
    mask : bool array (ny, nx), optional
        True marks illuminated (source) pixels, kept out of the medians. Default: built by
        :func:`source_mask` with ``mask_threshold``.
    mask_threshold : float
        Robust sigmas above the median of the last-minus-first image beyond which a pixel
        counts as illuminated (only when ``mask`` is None).
    differences : bool
        False (default, the notebook): clean every group. True (jwst): clean group
        differences and rebuild the ramp cumulatively; group 0 is unchanged.
    axis : {0, 1}
        Image axis the median runs over: 0 gives one value per column (NIRSpec, the notebook),
        1 one per row. jwst uses ``|SLOWAXIS| - 1`` for near-IR, 0 for MIRI.
    max_memory : int or str, optional
        Device working-set budget per block of integrations; default 256 MiB. One integration
        is always processed whole (the medians need full columns).
    progress : callable, optional
        Called as ``progress(done_integrations, nints)`` after each block.

    Returns
    -------
    Ramp
        Cleaned float32 data; DQ arrays and zeroframe copied unchanged.

    Notes
    -----
    In each plane a pixel enters the medians when it is background, not NaN, and its group DQ
    (of the later group for a difference) has neither DO_NOT_USE nor JUMP_DET. A line without
    such a pixel gets 0 subtracted. NaN values stay NaN.
    """
    user_mask = _check(ramp, mask, axis)
    name, xp = backend_and_module(backend)
    illuminated = user_mask if user_mask is not None else source_mask(ramp, mask_threshold, backend=name)
    background = xp.asarray(~illuminated)
    nints, ngroups, ny, nx = ramp.shape
    budget = parse_memory(max_memory) or DEFAULT_BLOCK_BYTES
    per_int = max(1, ngroups * ny * nx * _BYTES_PER_SAMPLE)
    step = max(1, budget // per_int)
    clean = _clean_differences if differences else _clean_groups
    data = np.empty(ramp.shape, np.float32)
    for i0 in range(0, nints, step):
        i1 = min(nints, i0 + step)
        block = xp.asarray(np.ascontiguousarray(ramp.data[i0:i1], dtype=np.float32))
        gdq = xp.asarray(np.ascontiguousarray(ramp.groupdq[i0:i1], dtype=np.uint8))
        data[i0:i1] = to_host(clean(xp, block, gdq, background, axis))
        if progress is not None:
            progress(i1, nints)
    logger.info("clean_flicker_noise: %s medians along axis %d on %d integration(s) (%s)",
                "difference" if differences else "group", axis, nints, name)
    return with_data(ramp, data)
