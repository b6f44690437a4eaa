"""Up-the-ramp slope fitting (OLS_C, optimal weighting) in numpy.

Twin of ``gpucal/kernels/ramp_fit.cu``: the same functions, names and order of
operations, so the two give identical bits. Where the kernel walks one pixel, these
functions work on every ramp of a block at once (a "ramp" is one integration of one
pixel: index ``m = integ * npix + p``), looping only over groups and segments.
Sums are accumulated element by element in group, segment and integration order, never
with ``np.sum`` (its pairwise order would change the rounding).

Spec: ``../shared/specs/ramp_fit.md``; section numbers in comments refer to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpucal.dq import CHARGELOSS, DO_NOT_USE, JUMP_DET, NO_GAIN_VALUE, PERSISTENCE, SATURATED
from gpucal.weight_table import weight_table_offset

LARGE_VARIANCE_THRESHOLD = 1.0e6
INVALID_FLAGS = DO_NOT_USE | SATURATED
N_OPT_PLANES = 7  # slope, sigslope, var_poisson, var_rnoise, yint, sigyint, weights

_NOT_PERSISTENCE = np.uint8(~PERSISTENCE & 0xFF)


@dataclass(frozen=True)
class FitParams:
    """Exposure-wide constants of one fit (section 4.1); the kernel's ``FitParams``."""

    nints: int
    ngroups_raw: int
    g_first: int
    ngroups: int
    t_g: float
    t_f: float
    t_1: float
    ped_tmp: float
    suppress: bool
    clear_first_jump: bool
    save_opt: bool
    max_segs: int
    max_crs: int


@dataclass
class IntegStats:
    """Per-ramp group statistics (sections 4.3, 4.4), arrays of length nints*npix."""

    cnt_good: np.ndarray
    cnt_sat: np.ndarray
    cnt_dnu_sat: np.ndarray
    n_crs: np.ndarray
    jump: np.ndarray
    persistence: np.ndarray
    chargeloss: np.ndarray
    is_0th: np.ndarray
    is_zframe: np.ndarray


def group_flags(fp: FitParams, groupdq: np.ndarray) -> np.ndarray:
    """Flags as ramp fitting sees them, shape (ngroups, nints*npix), before ZEROFRAME.

    One-good-group suppression (3.2) counts over the raw group axis; the fitted window
    starts at ``g_first`` (MIRI group discard, 3.4), whose first group loses JUMP_DET.
    """
    nints, _, npix = groupdq.shape
    window = groupdq[:, fp.g_first : fp.g_first + fp.ngroups, :]
    # a copy, always: the flags are modified below and the input must stay untouched
    flags = np.array(window.transpose(1, 0, 2), order="C", copy=True).reshape(fp.ngroups, nints * npix)
    if fp.suppress:
        n_good = np.zeros((nints, npix), dtype=np.int32)
        for k in range(fp.ngroups_raw):
            n_good += (groupdq[:, k, :] & _NOT_PERSISTENCE) == 0
        suppressed = (n_good == 1).reshape(-1)
        flags |= np.where(suppressed, np.uint8(DO_NOT_USE), np.uint8(0))
    if fp.clear_first_jump:
        flags[0] &= np.uint8(~JUMP_DET & 0xFF)
    return flags


def chargeloss_flags(fp: FitParams, groupdq: np.ndarray) -> np.ndarray:
    """Original flags with CHARGELOSS groups toggled by DO_NOT_USE|CHARGELOSS (section 8)."""
    nints, _, npix = groupdq.shape
    window = groupdq[:, fp.g_first : fp.g_first + fp.ngroups, :]
    flags = np.ascontiguousarray(window.transpose(1, 0, 2)).reshape(fp.ngroups, nints * npix)
    toggle = np.uint8(DO_NOT_USE | CHARGELOSS)
    return np.where(flags & np.uint8(CHARGELOSS), flags ^ toggle, flags)


def integration_stats(fp: FitParams, flags: np.ndarray, zeroframe: np.ndarray | None) -> IntegStats:
    """Counts and booleans of each ramp; decides lone-group-0 and ZEROFRAME ramps (4.4)."""
    nramps = flags.shape[1]
    cnt_good = np.zeros(nramps, dtype=np.int32)
    cnt_sat = np.zeros(nramps, dtype=np.int32)
    cnt_dnu_sat = np.zeros(nramps, dtype=np.int32)
    n_crs = np.zeros(nramps, dtype=np.int32)
    any_flags = np.zeros(nramps, dtype=np.uint8)
    for k in range(fp.ngroups):
        q = flags[k]
        any_flags |= q
        if k > 0:
            n_crs += (q & np.uint8(JUMP_DET)) != 0
        cnt_good += q == 0
        cnt_dnu_sat += (q & np.uint8(DO_NOT_USE | SATURATED)) != 0
        cnt_sat += (q & np.uint8(SATURATED)) != 0
    is_0th = np.zeros(nramps, dtype=bool)
    is_zframe = np.zeros(nramps, dtype=bool)
    if not fp.suppress:
        is_0th = (cnt_good == 1) & (flags[0] == 0)
        if zeroframe is not None:
            is_zframe = ~is_0th & (cnt_good == 0) & (zeroframe.reshape(-1) != 0)
            cnt_good[is_zframe] = 1
            cnt_dnu_sat[is_zframe] -= 1
            cnt_sat[is_zframe & (cnt_sat == fp.ngroups)] -= 1
    return IntegStats(
        cnt_good=cnt_good,
        cnt_sat=cnt_sat,
        cnt_dnu_sat=cnt_dnu_sat,
        n_crs=n_crs,
        jump=(any_flags & np.uint8(JUMP_DET)) != 0,
        persistence=(any_flags & np.uint8(PERSISTENCE)) != 0,
        chargeloss=(any_flags & np.uint8(CHARGELOSS)) != 0,
        is_0th=is_0th,
        is_zframe=is_zframe,
    )


def group_values(fp: FitParams, data: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Group values in DN as float64 (ngroups, nramps): NaN for SATURATED groups."""
    nints, _, npix = data.shape
    window = data[:, fp.g_first : fp.g_first + fp.ngroups, :]
    values = window.transpose(1, 0, 2).astype(np.float64).reshape(fp.ngroups, nints * npix)
    values[(flags & np.uint8(SATURATED)) != 0] = np.nan
    return values


def sorted_median(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of the non-NaN entries of each column of ``values`` (NaN where none), and their count."""
    n = np.count_nonzero(~np.isnan(values), axis=0)
    ordered = np.ascontiguousarray(values.T)  # one row per ramp: sorting contiguous rows is fastest
    ordered.sort(axis=1)  # NaN sorts last, as the kernel's insertion sort leaves them out
    half = n >> 1
    rows = np.arange(ordered.shape[0])
    upper = ordered[rows, np.minimum(half, ordered.shape[1] - 1)]
    lower = ordered[rows, np.maximum(half - 1, 0)]
    median = np.where(n & 1, upper, (upper + lower) / 2.0)
    return np.where(n == 0, np.nan, median), n


def median_rate_integration(fp: FitParams, values: np.ndarray, flags: np.ndarray, st: IntegStats,
                            zframe: np.ndarray) -> np.ndarray:
    """Median first-difference rate of every ramp (section 5); NaN when nothing is usable."""
    rates = np.where((flags & np.uint8(DO_NOT_USE)) != 0, np.nan, values / fp.t_g)
    diffs = np.where((flags[1:] & np.uint8(JUMP_DET)) != 0, np.nan, rates[1:] - rates[:-1])
    median, n = sorted_median(diffs)
    median = np.where(n == 0, rates[0], median)
    median = np.where(st.is_0th, values[0] / fp.t_1, median)
    return np.where(st.is_zframe, zframe / fp.t_f, median)


def median_rate(fp: FitParams, values: np.ndarray, flags: np.ndarray, st: IntegStats,
                zframe: np.ndarray, npix: int) -> np.ndarray:
    """The pixel's median rate R, the mean of its integrations' medians (section 5)."""
    if fp.ngroups == 1:
        mrate = values[0] / fp.t_1
    else:
        mrate = median_rate_integration(fp, values, flags, st, zframe)
        mrate = np.where(np.isnan(mrate), 0.0, mrate)
    mrate = mrate.reshape(fp.nints, npix)
    accum = np.zeros(npix, dtype=np.float64)
    for integ in range(fp.nints):
        accum += mrate[integ]
    return accum / float(fp.nints)


def next_segment(segment_flags: np.ndarray):
    """Yield the runs of usable groups in scan order as ``(ramps, start, end)`` (6.1).

    ``segment_flags`` is (ngroups, nramps) with PERSISTENCE removed. A run that follows a
    JUMP_DET-only group starts at that group. Every ramp appears at most once per yield,
    and its runs come in group order.
    """
    ngroups, nramps = segment_flags.shape
    in_seg = np.zeros(nramps, dtype=bool)
    start = np.zeros(nramps, dtype=np.int64)
    for k in range(ngroups + 1):
        good = segment_flags[k] == 0 if k < ngroups else np.zeros(nramps, dtype=bool)
        ending = in_seg & ~good
        if ending.any():
            ramps = np.flatnonzero(ending)
            yield ramps, start[ramps], k
        beginning = good & ~in_seg
        if k > 0:
            after_jump = beginning & (segment_flags[k - 1] == JUMP_DET)
            start[after_jump] = k - 1
            start[beginning & ~after_jump] = k
        else:
            start[beginning] = k
        in_seg = good


def kept_segments(segment_flags: np.ndarray, fit_mask: np.ndarray):
    """Runs that survive pruning (6.1), in order, for ramps where ``fit_mask`` is set.

    Pruning keeps runs longer than one group, or else only the first run. Returns
    ``(segments, longest, n_runs)``: a list of ``(ramps, start, seglen)`` in scan order,
    and per ramp the longest run and the number of runs before pruning.
    """
    runs = list(next_segment(segment_flags))
    longest = np.zeros(segment_flags.shape[1], dtype=np.int64)
    for ramps, start, end in runs:
        longest[ramps] = np.maximum(longest[ramps], end - start)
    ordinal = np.zeros(segment_flags.shape[1], dtype=np.int64)
    segments = []
    for ramps, start, end in runs:
        seglen = end - start
        kept = segment_kept(seglen, longest[ramps], ordinal[ramps])
        ordinal[ramps] += 1
        kept &= fit_mask[ramps]
        if kept.any():
            segments.append((ramps[kept], start[kept], seglen[kept]))
    return segments, longest, ordinal


def segment_kept(seglen: np.ndarray, longest: np.ndarray, ordinal: np.ndarray) -> np.ndarray:
    return np.where(longest > 1, seglen > 1, ordinal == 0)


def segment_len1_timing(fp: FitParams, st: IntegStats, ramps: np.ndarray) -> np.ndarray:
    timing = np.full(ramps.shape, fp.t_g, dtype=np.float64)
    if not fp.suppress:
        timing = np.where(st.is_zframe[ramps], fp.t_f, timing)
        timing = np.where(st.is_0th[ramps], fp.t_1, timing)
    return timing


def segment_poisson_variance(median: np.ndarray, dark: np.ndarray, pden: np.ndarray) -> np.ndarray:
    return np.where(median > 0.0, (median + dark) / pden, dark / pden)


def segment_rnoise_short(rnoise: np.ndarray, gain: np.ndarray, timing) -> np.ndarray:
    """Read-noise variance of a 1- or 2-group segment (sections 6.2, 6.3)."""
    rnum = rnoise / timing
    rnum = 12.0 * rnum * rnum
    rden = 6.0 * gain * gain
    return rnum / rden


def segment_rnoise_default(rnoise: np.ndarray, gain: np.ndarray, t_g: float, seglen: np.ndarray) -> np.ndarray:
    """Read-noise variance of a segment of n >= 3 groups (section 6.4)."""
    rnum = rnoise / t_g
    rnum = 12.0 * rnum * rnum
    rden = seglen * seglen * seglen - seglen
    rden = rden * gain * gain
    return np.where((gain <= 0.0) | np.isnan(gain), 0.0, rnum / rden)


def snr_power_index(snr: np.ndarray) -> np.ndarray:
    """Index into ``gpucal.weight_table.POWERS`` for each SNR; NaN gives the last (P = 10)."""
    index = np.full(snr.shape, 5, dtype=np.int64)
    for i, limit in reversed(list(enumerate((5.0, 10.0, 20.0, 50.0, 100.0)))):
        index = np.where(snr < limit, i, index)
    return index


def segment_snr(y_start: np.ndarray, y_end: np.ndarray, rnoise: np.ndarray, gain: np.ndarray) -> np.ndarray:
    delta = y_end - y_start
    den = rnoise * rnoise + delta * gain
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (delta * gain) / np.sqrt(den)
    s = np.where(s < 0.0, 0.0, s)
    return np.where((den <= 0.0) | (gain == 0.0), 0.0, s)


@dataclass
class SegmentFit:
    slope: np.ndarray
    var_p: np.ndarray
    var_r: np.ndarray
    var_e: np.ndarray
    sigslope: np.ndarray
    yint: np.ndarray
    sigyint: np.ndarray
    weight: np.ndarray


def fit_segment(fp: FitParams, values: np.ndarray, values_nan0: np.ndarray, st: IntegStats, ramps: np.ndarray,
                start: np.ndarray, seglen: np.ndarray, gain: np.ndarray, rnoise: np.ndarray, dark: np.ndarray,
                median: np.ndarray, weight_table: np.ndarray) -> SegmentFit:
    """Fit the segments ``[start, start+seglen)`` of ``ramps`` (sections 6.2-6.4).

    ``gain``, ``rnoise``, ``dark`` and ``median`` are given for every ramp. The segments
    of one call end at the same group, so segments with the same start also share their
    length and are fitted together. When they cover most ramps, the arithmetic runs on
    every ramp (each ramp's result is independent of the others) and the wanted ones
    are picked afterwards: contiguous rows are cheaper than gathers. ``values_nan0`` is
    ``values`` with NaN replaced by 0, as the weighted sums read them.
    """
    nramps = values.shape[1]
    f = SegmentFit(*(np.zeros(ramps.shape) for _ in range(8)))
    if start.size and start.min() == start.max():
        groups = [(slice(None), int(start[0]))]
    else:
        groups = [(np.flatnonzero(start == s0), int(s0)) for s0 in np.unique(start)]
    for sel, s0 in groups:
        r = ramps[sel]
        n0 = int(seglen[sel][0])
        dense = 2 * r.size > nramps
        on = slice(None) if dense else r
        if dense and r.size == nramps:
            def pick(x):  # r is then 0..nramps-1 in order
                return x
        elif dense:
            def pick(x):
                return x[r]
        else:
            def pick(x):
                return x

        def row(k, table=values):
            return table[k] if dense else table[k, r]

        g, rn, dk, med = gain[on], rnoise[on], dark[on], median[on]
        if n0 == 1:
            timing = segment_len1_timing(fp, st, r)
            f.slope[sel] = pick(row(s0)) / timing
            f.var_p[sel] = segment_poisson_variance(pick(med), pick(dk), timing * pick(g))
            f.var_r[sel] = segment_rnoise_short(pick(rn), pick(g), timing)
        elif n0 == 2:
            data0, data1 = pick(row(s0)), pick(row(s0 + 1))
            g, rn, dk, med = pick(g), pick(rn), pick(dk), pick(med)
            f.slope[sel] = (data1 - data0) / fp.t_g
            f.var_p[sel] = segment_poisson_variance(med, dk, fp.t_g * g)
            f.var_r[sel] = segment_rnoise_short(rn, g, fp.t_g)
            sigslope = 1.41421356 * rn
            second_read = float(s0) + 1.0
            f.sigslope[sel] = sigslope
            f.yint[sel] = data1 * (1.0 - second_read) + data0 * second_read
            f.sigyint[sel] = sigslope
        else:
            _fit_weighted(fp, f, sel, pick, s0, n0, row, g, rn, dk, med, values_nan0, weight_table)
    f.var_e = f.var_p + f.var_r
    f.weight = 1.0 / f.var_r
    return f


def _fit_weighted(fp, f, sel, pick, s0, n0, row, g, rn, dk, med, values_nan0, weight_table) -> None:
    """Optimally weighted OLS of segments ``[s0, s0+n0)``, n0 >= 3 (section 6.4)."""
    snr = segment_snr(row(s0), row(s0 + n0 - 1), rn, g)
    offsets = weight_table_offset(np.arange(6), n0, fp.ngroups)
    weights_by_power = weight_table[offsets[None, :] + np.arange(n0)[:, None]].astype(np.float64)
    power_index = snr_power_index(snr)
    invrn2 = 1.0 / (rn * rn)
    sumw, sumx, sumxx, sumy, sumxy = (np.zeros(snr.shape) for _ in range(5))
    for j in range(n0):
        weight = weights_by_power[j][power_index] * invrn2
        xval = float(j) + float(s0)
        data = row(s0 + j, values_nan0)
        xwt = xval * weight
        sumw += weight
        sumx += xwt
        sumxx += xval * xwt
        sumy += data * weight
        sumxy += data * xwt
    sumw, sumx, sumxx, sumy, sumxy = (pick(a) for a in (sumw, sumx, sumxx, sumy, sumxy))
    g, rn, dk, med = pick(g), pick(rn), pick(dk), pick(med)
    den = sumw * sumxx - sumx * sumx
    num = sumw * sumxy - sumx * sumy
    invden = 1.0 / den
    f.slope[sel] = (num * invden) / fp.t_g
    f.sigslope[sel] = np.sqrt(sumw * invden)
    f.yint[sel] = (sumxx * sumy - sumx * sumxy) * invden
    f.sigyint[sel] = np.sqrt(sumxx * invden)
    seglen_d = float(n0)
    f.var_p[sel] = segment_poisson_variance(med, dk, fp.t_g * g * (seglen_d - 1.0))
    f.var_r[sel] = segment_rnoise_default(rn, g, fp.t_g, seglen_d)


def store_crmag(fp: FitParams, values: np.ndarray, flags: np.ndarray, crmag: np.ndarray, npix: int) -> None:
    """Cosmic-ray magnitudes: the jump at each JUMP_DET group after the first (raw data)."""
    count = np.zeros(values.shape[1], dtype=np.int64)
    for k in range(1, fp.ngroups):
        ramps = np.flatnonzero(flags[k] & np.uint8(JUMP_DET))
        if ramps.size:
            integ, p = np.divmod(ramps, npix)
            crmag[integ, count[ramps], p] = (values[k, ramps] - values[k - 1, ramps]).astype(np.float32)
            count[ramps] += 1


def chargeloss_invvar_r(fp: FitParams, groupdq: np.ndarray, st: IntegStats, gain: np.ndarray,
                        rnoise: np.ndarray) -> np.ndarray:
    """Inverse read-noise variance of every ramp re-segmented from CHARGELOSS flags (8)."""
    segment_flags = chargeloss_flags(fp, groupdq) & _NOT_PERSISTENCE
    invvar_r = np.zeros(segment_flags.shape[1])
    segments, _, _ = kept_segments(segment_flags, st.chargeloss)
    for ramps, start, seglen in segments:
        g, rn = gain[ramps], rnoise[ramps]
        svar_r = np.where(
            seglen == 1,
            segment_rnoise_short(rn, g, segment_len1_timing(fp, st, ramps)),
            np.where(seglen == 2, segment_rnoise_short(rn, g, fp.t_g),
                     segment_rnoise_default(rn, g, fp.t_g, seglen.astype(np.float64))),
        )
        with np.errstate(divide="ignore"):
            invvar_r[ramps] += np.where(svar_r > 0.0, 1.0 / svar_r, 0.0)
    return invvar_r


def ramp_fit_block(fp: FitParams, data: np.ndarray, groupdq: np.ndarray, pixeldq: np.ndarray,
                   gain: np.ndarray, sigma_r: np.ndarray, dark: np.ndarray,
                   zeroframe: np.ndarray | None, weight_table: np.ndarray,
                   rate_out: np.ndarray, rate_dq: np.ndarray, ints_out: np.ndarray, ints_dq: np.ndarray,
                   opt_out: np.ndarray | None, pedestal: np.ndarray | None, crmag: np.ndarray | None,
                   counts: np.ndarray | None) -> None:
    """Fit every pixel of a block, writing into the output arrays (the kernel's arguments).

    Shapes: ``data``/``groupdq`` (nints, ngroups_raw, npix); per-pixel inputs (npix,);
    ``zeroframe`` (nints, npix) or None; ``rate_out`` (4, npix) and ``ints_out``
    (4, nints, npix) hold slope, var_poisson, var_rnoise, err; optional-product arrays
    as in the kernel (zero-filled by the caller).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        _fit_block(fp, data, groupdq, pixeldq, gain, sigma_r, dark, zeroframe, weight_table, rate_out,
                   rate_dq, ints_out, ints_dq, opt_out, pedestal, crmag, counts)


def _fit_block(fp, data, groupdq, pixeldq, gain, sigma_r, dark, zeroframe, weight_table, rate_out, rate_dq,
               ints_out, ints_dq, opt_out, pedestal, crmag, counts):
    nints, npix = fp.nints, data.shape[2]
    nramps = nints * npix
    g = gain.astype(np.float64)
    rnoise = sigma_r.astype(np.float64)
    dark_p = dark.astype(np.float64)
    pdq = pixeldq.astype(np.uint32)
    pdq = np.where((g <= 0.0) | np.isnan(g), pdq | np.uint32(DO_NOT_USE | NO_GAIN_VALUE), pdq)

    flags = group_flags(fp, groupdq)
    st = integration_stats(fp, flags, zeroframe)
    values = group_values(fp, data, flags)
    raw_value0 = values[0].copy()
    zframe = np.zeros(nramps) if zeroframe is None else zeroframe.reshape(-1).astype(np.float64)
    flags[0] = np.where(st.is_zframe, np.uint8(0), flags[0])
    values[0] = np.where(st.is_zframe, zframe, values[0])

    median = median_rate(fp, values, flags, st, zframe, npix)

    # Per-ramp views of the per-pixel inputs (ramp m belongs to pixel m % npix).
    pix_of = np.tile(np.arange(npix), nints)
    g_r, rn_r, dark_r, median_r = g[pix_of], rnoise[pix_of], dark_p[pix_of], median[pix_of]

    dq = pdq[pix_of].copy()
    dq |= np.where(st.jump, np.uint32(JUMP_DET), np.uint32(0))
    dq |= np.where(st.persistence, np.uint32(PERSISTENCE), np.uint32(0))
    first_saturated = (flags[0] & np.uint8(SATURATED)) != 0
    dq |= np.where(first_saturated, np.uint32(DO_NOT_USE | SATURATED), np.uint32(0))
    unusable = st.cnt_dnu_sat == fp.ngroups
    dq |= np.where(unusable, np.uint32(DO_NOT_USE), np.uint32(0))
    dq |= np.where(unusable & (st.cnt_sat == fp.ngroups), np.uint32(SATURATED), np.uint32(0))
    fit_mask = ~unusable & ~first_saturated

    invvar_r = np.zeros(nramps)
    invvar_p = np.zeros(nramps)
    invvar_e = np.zeros(nramps)
    slope_num = np.zeros(nramps)
    nsegs = np.zeros(nramps, dtype=np.int64)
    values_nan0 = np.where(np.isnan(values), 0.0, values)
    segments, longest, n_runs = kept_segments(flags & _NOT_PERSISTENCE, fit_mask)
    for ramps, start, seglen in segments:
        f = fit_segment(fp, values, values_nan0, st, ramps, start, seglen, g_r, rn_r, dark_r, median_r,
                        weight_table)
        invvar_r[ramps] += 1.0 / f.var_r
        invvar_p[ramps] += np.where(f.var_p > 0.0, 1.0 / f.var_p, 0.0)
        invvar_e[ramps] += 1.0 / f.var_e
        slope_num[ramps] += f.slope / f.var_r
        if fp.save_opt:
            integ, p = np.divmod(ramps, npix)
            for plane, value in enumerate((f.slope, f.sigslope, f.var_p, f.var_r, f.yint, f.sigyint, f.weight)):
                opt_out[plane, integ, nsegs[ramps], p] = value.astype(np.float32)
        nsegs[ramps] += 1

    fitted = nsegs > 0
    slope = np.where(first_saturated, np.nan, 0.0)
    var_p = np.where(invvar_p > 0.0, 1.0 / invvar_p, 0.0)
    var_p = np.where(~fitted | (var_p >= LARGE_VARIANCE_THRESHOLD), 0.0, var_p)
    var_r = 1.0 / invvar_r
    var_r = np.where(~fitted | (var_r >= LARGE_VARIANCE_THRESHOLD), 0.0, var_r)
    invalid = (dq & np.uint32(INVALID_FLAGS)) != 0
    var_err = 1.0 / invvar_e
    err = np.where(var_err > LARGE_VARIANCE_THRESHOLD, 0.0, np.sqrt(var_err))
    slope = np.where(fitted, np.where(invalid, np.nan, slope_num * var_r), slope)
    var_p = np.where(invalid, 0.0, var_p)
    var_r = np.where(invalid, 0.0, var_r)
    err = np.where(fitted & ~invalid, err, 0.0)

    dnu = (dq & np.uint32(DO_NOT_USE)) != 0
    slope = np.where(dnu, np.nan, slope)
    if fp.save_opt:
        ped = np.where(np.isnan(values[0] - slope * fp.ped_tmp), 0.0, values[0] - slope * fp.ped_tmp)
        ped = np.where((dq & np.uint32(SATURATED)) != 0, 0.0, ped)
        pedestal[...] = ped.reshape(nints, npix).astype(np.float32)
        raw_values = values.copy()
        raw_values[0] = raw_value0
        store_crmag(fp, raw_values, flags, crmag, npix)
        # stcal sizes the product by its segment-list length, which keeps counting the
        # one-group runs it prunes when no run is longer than one group.
        listed = np.where(fit_mask, np.where(longest > 1, nsegs, n_runs), 0)
        counts[0] = listed.reshape(nints, npix).max(axis=0)
        counts[1] = st.n_crs.reshape(nints, npix).max(axis=0)
    sat = (dq & np.uint32(SATURATED)) != 0
    slope = np.where(sat, np.nan, slope)
    dq |= np.where(st.cnt_sat > 0, np.uint32(SATURATED), np.uint32(0))

    # Section 8 matters only where some group carries CHARGELOSS.
    has_chargeloss = bool(st.chargeloss.any())
    if has_chargeloss:
        cl_invvar = chargeloss_invvar_r(fp, groupdq, st, g_r, rn_r)
        cl_var_r = 1.0 / cl_invvar
        cl_var_r = np.where(cl_var_r >= LARGE_VARIANCE_THRESHOLD, 0.0, cl_var_r)
        var_r_out = np.where(st.chargeloss, cl_var_r, var_r)
        cl_term = np.where(st.chargeloss, cl_invvar, np.where(var_r > 0.0, 1.0 / var_r, 0.0))
    else:
        var_r_out = var_r

    ints_out[0] = slope.reshape(nints, npix)
    ints_out[1] = var_p.reshape(nints, npix)
    ints_out[2] = var_r_out.reshape(nints, npix)
    ints_out[3] = err.reshape(nints, npix)
    ints_dq[...] = dq.reshape(nints, npix)

    _finish_rate(fp, npix, pdq, dq, dnu, sat, st, fitted, invvar_p, invvar_r, slope_num,
                 cl_term if has_chargeloss else None, rate_out, rate_dq)


def _finish_rate(fp, npix, pdq, dq, dnu, sat, st, fitted, invvar_p, invvar_r, slope_num, cl_term,
                 rate_out, rate_dq):
    """Combine the integrations of each pixel in order (sections 7.1, 7.3, 8)."""
    nints = fp.nints
    shape = (nints, npix)
    fitted = fitted.reshape(shape)
    add_p = np.where(fitted & (invvar_p.reshape(shape) > 0.0), invvar_p.reshape(shape), 0.0)
    add_r = np.where(fitted, invvar_r.reshape(shape), 0.0)
    add_n = np.where(fitted, slope_num.reshape(shape), 0.0)
    total_p = np.zeros(npix)
    total_r = np.zeros(npix)
    total_n = np.zeros(npix)
    total_cl = np.zeros(npix)
    rdq = pdq.copy()
    for integ in range(nints):
        total_p += add_p[integ]
        total_r += add_r[integ]
        total_n += add_n[integ]
        if cl_term is not None:
            total_cl += cl_term.reshape(shape)[integ]
    per_int_dq = dq.reshape(shape)
    rdq |= np.bitwise_or.reduce(per_int_dq & np.uint32(JUMP_DET | PERSISTENCE), axis=0)
    n_dnu = dnu.reshape(shape).sum(axis=0)
    n_sat = sat.reshape(shape).sum(axis=0)
    rdq |= np.where(n_dnu == nints, np.uint32(DO_NOT_USE), np.uint32(0))
    rdq |= np.where(n_sat == nints, np.uint32(SATURATED), np.uint32(0))

    var_p = np.where(total_p > 0.0, 1.0 / total_p, total_p)
    var_p = np.where((var_p >= LARGE_VARIANCE_THRESHOLD) | (var_p < 0.0), 0.0, var_p)
    var_r = np.where(total_r > 0.0, 1.0 / total_r, total_r)
    var_r = np.where(var_r >= LARGE_VARIANCE_THRESHOLD, 0.0, var_r)
    err = np.sqrt(var_p + var_r)
    slope = total_n
    invalid = (rdq & np.uint32(INVALID_FLAGS)) != 0
    slope = np.where(invalid, np.nan, slope)
    var_p = np.where(invalid, 0.0, var_p)
    var_r = np.where(invalid, 0.0, var_r)
    err = np.where(invalid, 0.0, err)
    any_sat = (st.cnt_sat.reshape(shape) > 0).any(axis=0)
    rdq |= np.where(any_sat, np.uint32(SATURATED), np.uint32(0))
    slope = np.where(np.isnan(slope), slope, slope * var_r)
    if cl_term is not None:
        any_cl = st.chargeloss.reshape(shape).any(axis=0)
        cl_var_r = np.where(total_cl > 0.0, 1.0 / total_cl, var_r)
        cl_var_r = np.where(cl_var_r >= LARGE_VARIANCE_THRESHOLD, 0.0, cl_var_r)
        var_r = np.where(any_cl, cl_var_r, var_r)
    rate_out[0] = slope
    rate_out[1] = var_p
    rate_out[2] = var_r
    rate_out[3] = err
    rate_dq[...] = rdq
