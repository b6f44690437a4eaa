"""MIRI shower flagging (``find_showers``), spec ``jump.md`` section 10, as stcal 1.20 does it.

Like snowballs (:mod:`gpucal.snowballs`), this runs on the CPU for both backends after the
kernels: it smooths whole difference images with a ring kernel, labels regions and draws
ellipses, then compares per-pixel mean slopes before and after. The steps, in order:

1. Give up (no change) unless the exposure has at least 10 usable differences in all
   (``nints * (ngroups - 1)`` minus the groups that are DO_NOT_USE in every pixel).
2. Differences of the electron cube, after NaN-ing groups whose flag byte is exactly one
   of JUMP_DET, SATURATED, DO_NOT_USE or their pairs with DO_NOT_USE (exact values, not
   bits, as stcal does); reference pixels are treated as DO_NOT_USE.
3. Per pixel, a significance image per group: ``|D - median| / sigma`` with the pooled
   nanmedian and ``sqrt(|median| + rn^2 / nframes)`` (float32), or, with many
   integrations, astropy's sigma-clipped statistics per group.
4. Pixels flagged JUMP_DET, SATURATED or DO_NOT_USE (group or pixel DQ) are masked; the
   image is smoothed by a normalised ring convolution (scipy ``oaconvolve``); regions above
   ``extend_snr_threshold`` with at least ``extend_min_area`` pixels give ellipses.
5. All ellipses are grown (``extend_ellipse_expand_ratio``) and flagged JUMP_DET in their
   group and ``grps_masked_after_shower`` later groups, skipping SATURATED pixels.
6. Pixels whose mean difference (ignoring flagged groups) changes by more than
   ``max_shower_amplitude`` get their original flags back.

Region moments and drawing use scikit-image, ring kernels astropy, as stcal does, so
the flagged pixels are the same.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from gpucal.dq import DO_NOT_USE, JUMP_DET, REFERENCE_PIXEL, SATURATED
from gpucal.snowballs import filled_ellipse, region_ellipses

#: Usable differences an exposure needs before showers are looked for.
MIN_DIFFS_FOR_SHOWER = 10


@dataclass(frozen=True)
class ShowerParams:
    """Step-level shower settings (jwst JumpStep names), converted as jwst converts them."""

    snr_threshold: float = 1.2
    min_area: float = 90.0
    inner_radius: float = 1.0
    outer_radius: float = 2.6
    expand_ratio: float = 1.1
    groups_after: int = 1  # int(time_masked_after_shower // group_time)
    max_amplitude: float = 4.0  # max_shower_amplitude * group_time
    max_extended_width: float = 400.0  # 2 * max_extended_radius
    nframes: int = 1
    minimum_sigclip_groups: int = 100


def _nan_flagged_groups(data: np.ndarray, gdq: np.ndarray) -> None:
    """NaN where the group's flag byte is exactly one of the plain invalid values."""
    for value in (JUMP_DET + DO_NOT_USE, SATURATED + DO_NOT_USE, SATURATED, JUMP_DET, DO_NOT_USE):
        data[gdq == value] = np.nan


def ring_smoothed(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolution of ``image`` (NaN = missing) normalised by the kernel weight on valid pixels.

    Outside the frame counts as valid with value 0; pixels that are NaN, or whose
    normalisation is below 1e-3 of the mean kernel weight, come out NaN. ``image`` is
    modified (NaN set to 0).
    """
    from scipy import signal

    valid = np.isfinite(image)
    image[~valid] = 0
    smoothed = signal.oaconvolve(image, kernel, mode="same")
    pad = kernel.shape[0] // 2
    weight_plane = np.ones((valid.shape[0] + kernel.shape[0] - 1, valid.shape[1] + kernel.shape[1] - 1))
    weight_plane[pad:-pad, pad:-pad] = valid
    norm = signal.oaconvolve(weight_plane, kernel, mode="valid")
    valid &= norm > 1e-3 * np.mean(kernel)
    smoothed /= norm
    smoothed[~valid] = np.nan
    return smoothed


def _first_usable_group(int_gdq: np.ndarray) -> int:
    """First group not DO_NOT_USE in every pixel (0 when there is none)."""
    for g in range(int_gdq.shape[0]):
        if not np.all(int_gdq[g] & np.uint8(DO_NOT_USE)):
            return g
    return 0


def _mean_differences(e_int: np.ndarray, gdq_int: np.ndarray) -> np.ndarray:
    """Per-pixel nanmean of the first differences, ignoring JUMP/SAT/DNU groups."""
    values = e_int.copy()
    values[(gdq_int & np.uint8(DO_NOT_USE | SATURATED | JUMP_DET)) != 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.diff(values, axis=0), axis=0)


def flag_showers(electrons: np.ndarray, gdq: np.ndarray, pixeldq: np.ndarray, readnoise_e: np.ndarray,
                 sp: ShowerParams) -> tuple[np.ndarray, int]:
    """The group DQ with showers flagged (a new array, or ``gdq`` itself when nothing is
    looked for) and the number of showers.

    ``electrons`` is the float32 cube in electrons with NaN where primary detection masked
    groups; ``readnoise_e`` the read noise in electrons; neither is modified.
    """
    from astropy import stats
    from astropy.convolution import Ring2DKernel

    nints, ngroups, ny, nx = gdq.shape
    all_dnu_planes = sum(int(np.all(gdq[i, g] & np.uint8(DO_NOT_USE))) for i in range(nints) for g in range(ngroups))
    if nints * (ngroups - 1) - all_dnu_planes < MIN_DIFFS_FOR_SHOWER:
        return gdq, 0

    work = gdq.copy()
    data = electrons.copy()
    _nan_flagged_groups(data, work)
    ref_y, ref_x = np.nonzero(pixeldq == REFERENCE_PIXEL)
    work[:, :, ref_y, ref_x] = np.uint8(DO_NOT_USE)
    diffs = np.diff(data, axis=1)
    del data

    clip = nints >= sp.minimum_sigclip_groups
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rn2 = readnoise_e**2
        if clip:
            _, grp_median, grp_std = stats.sigma_clipped_stats(diffs, sigma=5, axis=0)
        else:
            median = np.nanmedian(diffs, axis=(0, 1))
            sigma = np.sqrt(np.abs(median) + rn2 / sp.nframes)
        kernel = Ring2DKernel(sp.inner_radius, sp.outer_radius).array
        masking = np.uint32(JUMP_DET | SATURATED | DO_NOT_USE)
        for i in range(nints):
            for g in range(_first_usable_group(work[i]) + 1, ngroups):
                if clip:
                    plane = np.abs(diffs[i, g - 1] - grp_median[g - 1]) / grp_std[g - 1]
                else:
                    plane = np.abs(diffs[i, g - 1] - median) / sigma
                flagged = (np.bitwise_or(work[i, g], pixeldq) & masking) != 0
                plane = np.array(plane, copy=True)
                plane[flagged] = np.nan
                bright = (ring_smoothed(plane, kernel) > sp.snr_threshold).astype(np.uint8)
                ellipses = region_ellipses(bright, sp.min_area)
                if ellipses:
                    found.append((i, g, ellipses))

    count = 0
    for i, g, ellipses in found:
        count += len(ellipses)
        for ellipse in ellipses:
            (cx, cy), (w, h), angle = ellipse
            if h < w:
                a1, a2 = w + (sp.expand_ratio - 1.0) * h, h * sp.expand_ratio
            else:
                a1, a2 = w * sp.expand_ratio, h + (sp.expand_ratio - 1.0) * w
            half1 = round(min(a1, sp.max_extended_width) / 2)
            half2 = round(min(a2, sp.max_extended_width) / 2)
            (r0, r1, c0, c1), cut = filled_ellipse(cx, cy, half1 * 2, half2 * 2, angle, (ny, nx))
            for fg in range(g, min(g + sp.groups_after + 1, ngroups)):
                window = work[i, fg, r0:r1, c0:c1]
                cut &= (window & np.uint8(SATURATED)) == 0  # stays cleared for later groups
                window[cut] |= np.uint8(JUMP_DET)

    # restore pixels whose mean slope the new flags change too much
    for i in range(nints):
        before = _mean_differences(electrons[i], gdq[i])
        after = _mean_differences(electrons[i], work[i])
        change = np.abs(before - after)
        restore = ~np.isfinite(change) | (change > sp.max_amplitude)
        work[i][:, restore] = gdq[i][:, restore]
    return work, count
