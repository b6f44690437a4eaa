"""Two-point-difference jump detection in numpy.

Twin of ``gpucal/kernels/jump.cu``: the same functions, names and order of operations,
so the two give identical bits. Where a kernel thread walks one pixel, these functions
work on every pixel of a block at once and loop only over integrations, groups and
clipping passes.

Two kernels, two functions here:

* :func:`two_point_block` (``two_point_kernel``): the per-pixel part of the spec, sections
  3-5 -- electrons, first differences, pooled median and sigma, then the iterative
  clipped-median search (5.1) or the single pass (5.2). It also writes, per group, the
  *marks* that the second kernel needs about this pixel: whether its difference is in the
  neighbour window (6) and whether its excess reaches the after-jump thresholds (7).
* :func:`neighbour_block` (``neighbour_kernel``): sections 6-8 -- a gather over the pixel
  and its four neighbours' marks and JUMP_DET flags (rows of a block plus a one-row halo),
  then after-jump flagging and the final JUMP_DET clean-up.

The sigma-clipping mode (5.3) is not per-pixel arithmetic that can be reproduced bit for
bit (it is astropy's ``sigma_clip``); :func:`sigma_clip_block` runs it on the CPU for both
backends.

Spec: ``../shared/specs/jump.md``; section numbers in comments refer to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpucal.dq import DO_NOT_USE, JUMP_DET, SATURATED

INVALID_FLAGS = DO_NOT_USE | SATURATED

#: Primary-detection modes (section 4), the kernel's ``mode`` argument.
MODE_ITERATIVE = 0
MODE_SINGLE_PASS = 1
MODE_NONE = 2  # sigma clipping (done outside the kernel) or detection skipped

#: Bits of the per-group marks array written by the first kernel.
MARK_NEIGHBOUR = 1  # min_jump_to_flag_neighbors < rho < max_jump_to_flag_neighbors (6)
MARK_AFTER1 = 2  # excess >= after_jump_flag_e1 (7)
MARK_AFTER2 = 4  # excess >= after_jump_flag_e2 (7)
MARK_REMOVED = 128  # difference removed by the iterative search (internal to the kernel)

_JUMP = np.uint8(JUMP_DET)
_INVALID = np.uint8(INVALID_FLAGS)


@dataclass(frozen=True)
class JumpParams:
    """Exposure-wide constants of one detection; the kernel's scalar arguments."""

    nints: int
    ngroups: int
    nframes: int
    mode: int
    rejection_threshold: float
    three_group_rejection_threshold: float
    four_group_rejection_threshold: float
    min_jump_to_flag_neighbors: float
    max_jump_to_flag_neighbors: float
    after_jump_e1: float
    after_jump_e2: float
    flag_4_neighbors: bool
    after_jump_n1: int
    after_jump_n2: int


def electrons(data: np.ndarray, groupdq: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Group values in electrons, float32, NaN in DO_NOT_USE or SATURATED groups (3.2, 3.3)."""
    e = data * gain[None, None, :]
    return np.where((groupdq & _INVALID) != 0, np.float32(np.nan), e)


def first_differences(e: np.ndarray) -> np.ndarray:
    """D[i, j] = double(float32(E[i, j+1] - E[i, j])), shape (nints, ngroups-1, npix) (3.4)."""
    return (e[:, 1:, :] - e[:, :-1, :]).astype(np.float64)


def _sorted_by_pixel(values: np.ndarray) -> np.ndarray:
    """``values`` (n, npix) sorted per pixel into a contiguous (npix, n) array, NaN last."""
    s = np.array(values.T, order="C", copy=True)  # always a copy: the input must survive the sort
    s.sort(axis=1)
    return s


def sorted_median(values: np.ndarray) -> np.ndarray:
    """NaN-ignoring median along axis 0 (numpy ``nanmedian`` semantics), by sorting."""
    s = _sorted_by_pixel(values)
    n = np.count_nonzero(~np.isnan(s), axis=1)
    # -0.0 and +0.0 tie in any sort, so which one lands in the middle depends on the sort
    # algorithm; adding +0.0 makes it +0.0 in both twins (every other value is unchanged).
    return _median_of_sorted(s, n) + 0.0


def _median_of_sorted(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median of the first ``n[p]`` entries of each row ``s[p]``; NaN where ``n`` is 0."""
    half = n // 2
    rows = np.arange(s.shape[0])
    upper = s[rows, np.minimum(half, s.shape[1] - 1)]
    lower = s[rows, np.maximum(half - 1, 0)]
    median = np.where(n & 1, upper, (lower + upper) / 2.0)
    return np.where(n == 0, np.nan, median)


def noise_sigma(median: np.ndarray, rn2: np.ndarray, nframes: int) -> np.ndarray:
    """sqrt(|median| + rn2/nframes) in float64; 0 becomes NaN (3.4, 5.1)."""
    sigma = np.sqrt(np.abs(median) + rn2.astype(np.float64) / float(nframes))
    return np.where(sigma == 0.0, np.nan, sigma)


def clipped_median(a: np.ndarray) -> np.ndarray:
    """The median of absolute differences that the iterative search uses (5.1).

    ``a`` is (ndiffs, npix) with NaN for unusable entries. U < 2: NaN; U == 2: the
    minimum; U == 3: the median; U >= 4: the median after removing every entry equal to
    the maximum.
    """
    s = _sorted_by_pixel(a)
    u = np.count_nonzero(~np.isnan(s), axis=1)
    top = s[np.arange(s.shape[0]), np.maximum(u - 1, 0)]
    n_top = np.count_nonzero(s == top[:, None], axis=1)
    m = np.where(u >= 4, u - n_top, u)
    median = _median_of_sorted(s, m)
    median = np.where(u == 2, s[:, 0], median)
    return np.where(u < 2, np.nan, median)


def rejection_threshold_for(fp: JumpParams, u: np.ndarray) -> np.ndarray:
    """Threshold by the number of usable differences; NaN (never exceeded) below 2 (5.1)."""
    t = np.where(u >= 4, fp.rejection_threshold, np.nan)
    t = np.where(u == 3, fp.four_group_rejection_threshold, t)
    return np.where(u == 2, fp.three_group_rejection_threshold, t)


def iterative_search(fp: JumpParams, d: np.ndarray, rn2: np.ndarray, gdq_out: np.ndarray) -> None:
    """Iterative clipped-median search (5.1); ORs JUMP_DET into ``gdq_out`` in place.

    ``d`` is (nints, ndiffs, npix). Each pass evaluates the pixels that flagged something
    in the previous pass (all pixels in the first); the first pass keeps the median in
    float64, later passes round it to float32.
    """
    nints, ndiffs, npix = d.shape
    a = np.abs(d).reshape(nints * ndiffs, npix)
    active = np.arange(npix)
    for npass in range(nints * ndiffs):
        if active.size == 0:
            break
        a_act = a[:, active]
        u = np.count_nonzero(~np.isnan(a_act), axis=0)
        median = clipped_median(a_act)
        if npass > 0:
            median = median.astype(np.float32).astype(np.float64)
        sigma = noise_sigma(median, rn2[active], fp.nframes)
        e = (a_act - median[None]).astype(np.float32)
        rho = np.abs(e).astype(np.float64) / sigma[None]
        rho_or_low = np.where(np.isnan(rho), -1.0, rho).reshape(nints, ndiffs, -1)
        int_max = rho_or_low.max(axis=1)  # (nints, nact)
        pix_max = int_max.max(axis=0)  # (nact,)
        threshold = rejection_threshold_for(fp, u)
        candidate = int_max > threshold[None]
        flag = (rho_or_low == pix_max[None, None]) & candidate[:, None, :]
        flag &= rho_or_low >= 0.0
        any_flag = flag.any(axis=(0, 1))
        if not any_flag.any():
            break
        ii, jj, kk = np.nonzero(flag)
        pix = active[kk]
        gdq_out[ii, jj + 1, pix] |= _JUMP
        a[ii * ndiffs + jj, pix] = np.nan
        active = active[any_flag]


def single_pass(fp: JumpParams, d: np.ndarray, median: np.ndarray, sigma: np.ndarray, gdq_out: np.ndarray) -> None:
    """One pass against the pooled signed median, 4-sigma threshold (5.2)."""
    rho = np.abs(d - median) / sigma  # every (integration, group) at once: elementwise, same bits
    hit = (rho > fp.rejection_threshold) & np.isfinite(d)
    gdq_out[:, 1:] |= np.where(hit, _JUMP, np.uint8(0))


def jump_marks(fp: JumpParams, d: np.ndarray, median: np.ndarray, sigma: np.ndarray, marks: np.ndarray) -> None:
    """Per-group facts about this pixel that the neighbour kernel needs (6, 7)."""
    excess = d - median
    rho = np.abs(excess) / sigma
    window = (rho > fp.min_jump_to_flag_neighbors) & (rho < fp.max_jump_to_flag_neighbors)
    m = np.where(window, np.uint8(MARK_NEIGHBOUR), np.uint8(0))
    m |= np.where(excess >= fp.after_jump_e1, np.uint8(MARK_AFTER1), np.uint8(0))
    m |= np.where(excess >= fp.after_jump_e2, np.uint8(MARK_AFTER2), np.uint8(0))
    marks[:, 0] = 0
    marks[:, 1:] = m


def two_point_block(fp: JumpParams, data, groupdq, gain, rn2, gdq_out, marks, median_out, sigma_out) -> None:
    """Sections 3-5 for a block of pixels (the kernel ``two_point_kernel``).

    Inputs: ``data`` float32 and ``groupdq`` uint8 (nints, ngroups, npix), ``gain`` and
    ``rn2`` (read noise in electrons, squared) float32 (npix). Outputs, written in full:
    ``gdq_out`` (groupdq with primary JUMP_DET), ``marks`` uint8 like ``groupdq``,
    ``median_out`` and ``sigma_out`` float64 (npix).
    """
    gdq_out[...] = groupdq
    marks[...] = 0
    e = electrons(data, groupdq, gain)
    d = first_differences(e)
    nints, ndiffs, npix = d.shape
    median = sorted_median(d.reshape(nints * ndiffs, npix))
    sigma = noise_sigma(median, rn2, fp.nframes)
    median_out[...] = median
    sigma_out[...] = sigma
    if fp.mode == MODE_ITERATIVE:
        iterative_search(fp, d, rn2, gdq_out)
    elif fp.mode == MODE_SINGLE_PASS:
        single_pass(fp, d, median, sigma, gdq_out)
    jump_marks(fp, d, median, sigma, marks)


def _dilate(seed: np.ndarray) -> np.ndarray:
    """Plus-shaped dilation over the last two axes (rows, columns), clipped at the edges."""
    out = seed.copy()
    out[..., 1:, :] |= seed[..., :-1, :]
    out[..., :-1, :] |= seed[..., 1:, :]
    out[..., :, 1:] |= seed[..., :, :-1]
    out[..., :, :-1] |= seed[..., :, 1:]
    return out


def neighbour_block(fp: JumpParams, gdq_in, marks, gdq_out, nx: int, halo_top: int, rows: int) -> None:
    """Sections 6-8 for ``rows`` rows (the kernel ``neighbour_kernel``).

    ``gdq_in`` and ``marks`` are (nints, ngroups, rows_in * nx) and hold the block's rows
    starting at row ``halo_top``, with the row above (``halo_top == 1``) and the row below
    when they exist in the frame; ``gdq_out`` is (nints, ngroups, rows * nx). Every
    (integration, group) plane is independent in section 6, so the planes are processed
    together; the after-jump reach (7) walks the groups in order.
    """
    nints, ngroups, npix_in = gdq_in.shape
    rows_in = npix_in // nx
    own = slice(halo_top, halo_top + rows)
    q_all = gdq_in.reshape(nints, ngroups, rows_in, nx)
    m_all = marks.reshape(nints, ngroups, rows_in, nx)
    q = q_all[:, :, own].copy()
    m = m_all[:, :, own]
    valid = (q & _INVALID) == 0
    if fp.flag_4_neighbors and ngroups > 1:
        seed = ((m_all[:, 1:] & MARK_NEIGHBOUR) != 0) & ((q_all[:, 1:] & _JUMP) != 0)
        spread = _dilate(seed)[:, :, own]
        q[:, 1:] |= np.where(spread & valid[:, 1:], _JUMP, np.uint8(0))
    if fp.after_jump_n1 > 0 or fp.after_jump_n2 > 0:
        reach1 = np.full((nints, rows, nx), -1, dtype=np.int64)
        reach2 = np.full((nints, rows, nx), -1, dtype=np.int64)
        for g in range(ngroups):
            if g >= 1:
                jumped = (q[:, g] & _JUMP) != 0
                reach1 = np.where(jumped & ((m[:, g] & MARK_AFTER1) != 0), np.maximum(reach1, g + fp.after_jump_n1),
                                  reach1)
                reach2 = np.where(jumped & ((m[:, g] & MARK_AFTER2) != 0), np.maximum(reach2, g + fp.after_jump_n2),
                                  reach2)
            marked = (g <= reach1) | (g <= reach2)
            q[:, g] |= np.where(marked & valid[:, g], _JUMP, np.uint8(0))
    gdq_out[...] = clear_jump_conflicts(q).reshape(nints, ngroups, rows * nx)


def clear_jump_conflicts(q: np.ndarray) -> np.ndarray:
    """Clear JUMP_DET where it coexists with DO_NOT_USE, then with SATURATED (8)."""
    both = np.uint8(JUMP_DET | DO_NOT_USE)
    q = np.where((q & both) == both, q ^ _JUMP, q)
    both = np.uint8(JUMP_DET | SATURATED)
    return np.where((q & both) == both, q ^ _JUMP, q).astype(np.uint8)


def sigma_clip_block(fp: JumpParams, data, groupdq, gain, gdq_out, only_use_ints: bool) -> None:
    """Sigma-clipping primary detection for a block (5.3), shared by both backends.

    astropy's ``sigma_clip`` (median centre, standard-deviation scale, 5 iterations,
    NaN masked) over the integration axis (or integrations and groups) of the first
    differences. Per pixel, but it is astropy's algorithm, so it runs here on the CPU
    whatever the backend; ``gdq_out`` must already hold the block's groupdq.
    """
    import warnings

    from astropy import stats

    e = electrons(data, groupdq, gain)
    d = first_differences(e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clipped = stats.sigma_clip(d, sigma=fp.rejection_threshold, axis=0 if only_use_ints else (0, 1),
                                   masked=True)
    valid = (groupdq[:, 1:] & _INVALID) == 0
    hit = np.ma.getmaskarray(clipped) & np.isfinite(d) & valid
    gdq_out[:, 1:] |= np.where(hit, _JUMP, np.uint8(0))
