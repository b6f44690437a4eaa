// Up-the-ramp slope fitting: OLS with optimal weighting, as stcal 1.20 OLS_C.
//
// Spec: ../shared/specs/ramp_fit.md (section numbers below refer to it).
// Twin: cpu_fallback/ramp_fit.py -- the same functions, names and order of operations,
// vectorised over pixels. One thread owns one pixel and walks its integrations and
// groups with stride npix, so neighbouring threads read neighbouring addresses.
//
// Everything after the float32 loads is double; outputs are rounded to float32 once.
// No FMA contraction (--fmad=false on the device, -ffp-contract=off on the host): the
// reference is built without it. The optimal weights powf(u, P) come from a table built
// once on the host (gpucal/weight_table.py) because libm and CUDA round powf differently.
//
// Array layouts (C order, one chunk of npix pixels):
//   data, groupdq        (nints, ngroups_raw, npix)   float32 / uint8, raw (uncut) group axis
//   pixeldq, gain, sigma_r, dark                       (npix)
//   zeroframe            (nints, npix), read only when has_zeroframe
//   scratch              (ngroups, npix) doubles       per-pixel sort space for the median
//   rate_out             (4, npix)         slope, var_poisson, var_rnoise, err
//   ints_out             (4, nints, npix)  same for each integration
//   rate_dq (npix), ints_dq (nints, npix)
//   opt_out              (7, nints, max_segs, npix)  slope, sigslope, var_poisson, var_rnoise,
//                                                    yint, sigyint, weights   (save_opt only)
//   pedestal (nints, npix), crmag (nints, max_crs, npix), counts (2, npix) int32:
//   the number of segments and of cosmic rays of the pixel's busiest integration.

#include "dq_flags.cuh"
#include "numeric.cuh"

typedef unsigned char u8;
typedef unsigned int u32;

#define LARGE_VARIANCE_THRESHOLD 1.0e6
#define INVALID_FLAGS (GPUCAL_DO_NOT_USE | GPUCAL_SATURATED)
#define N_POWERS 6
#define SEG_SOURCE_FIT 0         // group flags as fitted (suppression, MIRI first-group fix, ZEROFRAME)
#define SEG_SOURCE_CHARGELOSS 1  // original flags with CHARGELOSS|DO_NOT_USE toggled (section 8)

// Exposure-wide constants of one fit (section 4.1), the same for every pixel.
struct FitParams {
    int nints, ngroups_raw, g_first, ngroups;
    i64 npix;
    double t_g, t_f, t_1, ped_tmp;
    int suppress, clear_first_jump, save_opt, max_segs, max_crs;
};

// One pixel's view of the chunk.
struct PixelRamp {
    const float* data;
    const u8* groupdq;
    const float* zeroframe;
    i64 p;
};

// Per-integration group statistics (section 4.3, 4.4).
struct IntegStats {
    int cnt_good, cnt_sat, cnt_dnu_sat, n_crs;
    bool jump, persistence, chargeloss, suppressed, is_0th, is_zframe;
    double zframe;
};

// Result of one segment fit (sections 6.2-6.4), with the optional-product values.
struct SegmentFit {
    double slope, var_p, var_r, var_e, sigslope, yint, sigyint, weight;
};

__host__ __device__ inline u8 raw_flags(const FitParams& fp, const PixelRamp& pr, int integ, int group_raw)
{
    return pr.groupdq[((i64)integ * fp.ngroups_raw + group_raw) * fp.npix + pr.p];
}

// Group flags as ramp fitting sees them: one-good-group suppression (3.2), the JUMP_DET
// cleared in the first kept MIRI group (3.4), ZEROFRAME replacing group 0 (4.4).
__host__ __device__ inline u8 group_flags(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                          int integ, int group)
{
    if (group == 0 && st.is_zframe) {
        return 0;
    }
    u8 q = raw_flags(fp, pr, integ, fp.g_first + group);
    if (st.suppressed) {
        q |= GPUCAL_DO_NOT_USE;
    }
    if (group == 0 && fp.clear_first_jump) {
        q &= (u8)~GPUCAL_JUMP_DET;
    }
    return q;
}

// Original flags with CHARGELOSS groups toggled by DO_NOT_USE|CHARGELOSS (section 8).
__host__ __device__ inline u8 chargeloss_flags(const FitParams& fp, const PixelRamp& pr, int integ, int group)
{
    u8 q = raw_flags(fp, pr, integ, fp.g_first + group);
    if (q & GPUCAL_CHARGELOSS) {
        q ^= (u8)(GPUCAL_DO_NOT_USE | GPUCAL_CHARGELOSS);
    }
    return q;
}

__host__ __device__ inline u8 segment_flags(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                            int source, int integ, int group)
{
    u8 q = (source == SEG_SOURCE_CHARGELOSS) ? chargeloss_flags(fp, pr, integ, group)
                                             : group_flags(fp, pr, st, integ, group);
    return q & (u8)~GPUCAL_PERSISTENCE;
}

// Group value in DN: NaN for SATURATED groups, ZEROFRAME for a substituted group 0.
__host__ __device__ inline double group_value(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                              int integ, int group)
{
    if (group == 0 && st.is_zframe) {
        return st.zframe;
    }
    if (group_flags(fp, pr, st, integ, group) & GPUCAL_SATURATED) {
        return GPUCAL_NAN;
    }
    return (double)pr.data[((i64)integ * fp.ngroups_raw + fp.g_first + group) * fp.npix + pr.p];
}

__host__ __device__ inline IntegStats integration_stats(const FitParams& fp, const PixelRamp& pr, int integ)
{
    IntegStats st = {};
    if (fp.suppress) {
        int n_good = 0;
        for (int k = 0; k < fp.ngroups_raw; ++k) {
            if ((raw_flags(fp, pr, integ, k) & (u8)~GPUCAL_PERSISTENCE) == 0) {
                n_good++;
            }
        }
        st.suppressed = (n_good == 1);
    }
    for (int k = 0; k < fp.ngroups; ++k) {
        u8 q = group_flags(fp, pr, st, integ, k);
        if (q & GPUCAL_JUMP_DET) {
            st.jump = true;
            if (k > 0) {
                st.n_crs++;
            }
        }
        if (q & GPUCAL_PERSISTENCE) st.persistence = true;
        if (q & GPUCAL_CHARGELOSS) st.chargeloss = true;
        if (q == 0) st.cnt_good++;
        if ((q & GPUCAL_DO_NOT_USE) || (q & GPUCAL_SATURATED)) st.cnt_dnu_sat++;
        if (q & GPUCAL_SATURATED) st.cnt_sat++;
    }
    if (!fp.suppress) {
        if (st.cnt_good == 1 && group_flags(fp, pr, st, integ, 0) == 0) {
            st.is_0th = true;
        } else if (st.cnt_good == 0 && pr.zeroframe != nullptr) {
            double z = (double)pr.zeroframe[(i64)integ * fp.npix + pr.p];
            if (z != 0.0) {
                st.is_zframe = true;
                st.zframe = z;
                st.cnt_good = 1;
                st.cnt_dnu_sat--;
                if (st.cnt_sat == fp.ngroups) {
                    st.cnt_sat--;
                }
            }
        }
    }
    return st;
}

// Rate of group k for the median: NaN when DO_NOT_USE or SATURATED.
__host__ __device__ inline double group_rate(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                             int integ, int group)
{
    if (group_flags(fp, pr, st, integ, group) & GPUCAL_DO_NOT_USE) {
        return GPUCAL_NAN;
    }
    return group_value(fp, pr, st, integ, group) / fp.t_g;
}

// Median of the n values a[0], a[stride], ... (sorted in place, insertion sort).
__host__ __device__ inline double sorted_median(double* a, i64 stride, int n)
{
    for (int i = 1; i < n; ++i) {
        double v = a[i * stride];
        int j = i - 1;
        while (j >= 0 && a[j * stride] > v) {
            a[(j + 1) * stride] = a[j * stride];
            --j;
        }
        a[(j + 1) * stride] = v;
    }
    int m = n >> 1;
    if (n & 1) {
        return a[m * stride];
    }
    return (a[m * stride] + a[(m - 1) * stride]) / 2.0;
}

// Median first-difference rate of one integration (section 5); NaN when nothing is usable.
__host__ __device__ inline double median_rate_integration(const FitParams& fp, const PixelRamp& pr,
                                                          const IntegStats& st, int integ, double* scratch)
{
    if (st.is_0th) {
        return group_value(fp, pr, st, integ, 0) / fp.t_1;
    }
    if (st.is_zframe) {
        return st.zframe / fp.t_f;
    }
    double* diffs = scratch + pr.p;
    double rate0 = group_rate(fp, pr, st, integ, 0);
    double rate_prev = rate0;
    int n = 0;
    for (int k = 0; k < fp.ngroups - 1; ++k) {
        double rate_next = group_rate(fp, pr, st, integ, k + 1);
        if (!(group_flags(fp, pr, st, integ, k + 1) & GPUCAL_JUMP_DET)) {
            double d = rate_next - rate_prev;
            if (!isnan(d)) {
                diffs[n * fp.npix] = d;
                n++;
            }
        }
        rate_prev = rate_next;
    }
    if (n == 0) {
        return isnan(rate0) ? GPUCAL_NAN : rate0;
    }
    return sorted_median(diffs, fp.npix, n);
}

// The pixel's median rate R, shared by all its integrations and segments (section 5).
__host__ __device__ inline double median_rate(const FitParams& fp, const PixelRamp& pr, double* scratch)
{
    double accum = 0.0;
    for (int integ = 0; integ < fp.nints; ++integ) {
        IntegStats st = integration_stats(fp, pr, integ);
        double mrate;
        if (fp.ngroups == 1) {
            mrate = group_value(fp, pr, st, integ, 0) / fp.t_1;
        } else {
            mrate = median_rate_integration(fp, pr, st, integ, scratch);
            if (isnan(mrate)) {
                mrate = 0.0;
            }
        }
        accum += mrate;
    }
    return accum / (double)fp.nints;
}

// Next run of usable groups at or after *pos (section 6.1, before pruning).
// A run that follows a JUMP_DET-only group starts at that group.
__host__ __device__ inline bool next_segment(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                             int source, int integ, int* pos, int* start, int* end)
{
    for (int k = *pos; k < fp.ngroups; ++k) {
        if (segment_flags(fp, pr, st, source, integ, k) != 0) {
            continue;
        }
        *start = (k > 0 && segment_flags(fp, pr, st, source, integ, k - 1) == GPUCAL_JUMP_DET) ? k - 1 : k;
        int e = k + 1;
        while (e < fp.ngroups && segment_flags(fp, pr, st, source, integ, e) == 0) {
            ++e;
        }
        *end = e;
        *pos = e;
        return true;
    }
    return false;
}

// Longest run of an integration: pruning keeps runs longer than one group, or else only
// the first run (section 6.1).
__host__ __device__ inline int longest_segment(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                               int source, int integ)
{
    int pos = 0, start, end, longest = 0;
    while (next_segment(fp, pr, st, source, integ, &pos, &start, &end)) {
        if (end - start > longest) {
            longest = end - start;
        }
    }
    return longest;
}

__host__ __device__ inline bool segment_kept(int length, int longest, int ordinal)
{
    return (longest > 1) ? (length > 1) : (ordinal == 0);
}

__host__ __device__ inline double segment_len1_timing(const FitParams& fp, const IntegStats& st)
{
    if (!fp.suppress) {
        if (st.is_0th) return fp.t_1;
        if (st.is_zframe) return fp.t_f;
    }
    return fp.t_g;
}

__host__ __device__ inline double segment_poisson_variance(double median, double dark, double pden)
{
    return (median > 0.0) ? (median + dark) / pden : dark / pden;
}

// Read-noise variance of a 1- or 2-group segment with timing t (sections 6.2, 6.3).
__host__ __device__ inline double segment_rnoise_short(double rnoise, double gain, double timing)
{
    double rnum = rnoise / timing;
    rnum = 12.0 * rnum * rnum;
    double rden = 6.0;
    rden = rden * gain * gain;
    return rnum / rden;
}

// Read-noise variance of a segment of n >= 3 groups (section 6.4).
__host__ __device__ inline double segment_rnoise_default(double rnoise, double gain, double t_g, double seglen)
{
    if (gain <= 0.0 || isnan(gain)) {
        return 0.0;
    }
    double rnum = rnoise / t_g;
    rnum = 12.0 * rnum * rnum;
    double rden = seglen * seglen * seglen - seglen;
    rden = rden * gain * gain;
    return rnum / rden;
}

// Index of the optimal-weighting exponent P for a segment's SNR (section 6.4).
__host__ __device__ inline int snr_power_index(double snr)
{
    if (snr < 5.0) return 0;    // P = 0
    if (snr < 10.0) return 1;   // 0.4
    if (snr < 20.0) return 2;   // 1
    if (snr < 50.0) return 3;   // 3
    if (snr < 100.0) return 4;  // 6
    return 5;                   // 10, also for NaN
}

__host__ __device__ inline double segment_snr(double y_start, double y_end, double rnoise, double gain)
{
    double delta = y_end - y_start;
    double den = rnoise * rnoise + delta * gain;
    if (den <= 0.0 || gain == 0.0) {
        return 0.0;
    }
    double s = (delta * gain) / sqrt(den);
    return (s < 0.0) ? 0.0 : s;
}

// Offset of segment length n in the triangular weight table (entries j = 0..n-1).
__host__ __device__ inline i64 weight_table_offset(int power_index, int seglen, int ngroups)
{
    i64 per_power = (i64)ngroups * (ngroups + 1) / 2;
    return power_index * per_power + (i64)seglen * (seglen - 1) / 2;
}

__host__ __device__ inline SegmentFit fit_segment(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                                  int integ, int start, int seglen, double gain, double rnoise,
                                                  double dark, double median, const float* weight_table)
{
    SegmentFit f = {};
    if (seglen == 1) {
        double timing = segment_len1_timing(fp, st);
        f.slope = group_value(fp, pr, st, integ, start) / timing;
        f.var_p = segment_poisson_variance(median, dark, timing * gain);
        f.var_r = segment_rnoise_short(rnoise, gain, timing);
        f.var_e = f.var_p + f.var_r;
        f.weight = 1.0 / f.var_r;
        return f;
    }
    if (seglen == 2) {
        double data0 = group_value(fp, pr, st, integ, start);
        double data1 = group_value(fp, pr, st, integ, start + 1);
        f.slope = (data1 - data0) / fp.t_g;
        f.var_p = segment_poisson_variance(median, dark, fp.t_g * gain);
        f.var_r = segment_rnoise_short(rnoise, gain, fp.t_g);
        f.var_e = f.var_p + f.var_r;
        f.sigslope = 1.41421356 * rnoise;
        double second_read = (double)start + 1.0;
        f.yint = data1 * (1.0 - second_read) + data0 * second_read;
        f.sigyint = f.sigslope;
        f.weight = 1.0 / f.var_r;
        return f;
    }
    double snr = segment_snr(group_value(fp, pr, st, integ, start),
                             group_value(fp, pr, st, integ, start + seglen - 1), rnoise, gain);
    const float* weights = weight_table + weight_table_offset(snr_power_index(snr), seglen, fp.ngroups);
    double invrn2 = 1.0 / (rnoise * rnoise);
    double sumw = 0.0, sumx = 0.0, sumxx = 0.0, sumy = 0.0, sumxy = 0.0;
    for (int j = 0; j < seglen; ++j) {
        double weight = (double)weights[j] * invrn2;
        double xval = (double)j + (double)start;
        double data = group_value(fp, pr, st, integ, start + j);
        if (isnan(data)) {
            data = 0.0;
        }
        double xwt = xval * weight;
        sumw += weight;
        sumx += xwt;
        sumxx += xval * xwt;
        sumy += data * weight;
        sumxy += data * xwt;
    }
    double den = sumw * sumxx - sumx * sumx;
    double num = sumw * sumxy - sumx * sumy;
    double invden = 1.0 / den;
    f.slope = (num * invden) / fp.t_g;
    f.sigslope = sqrt(sumw * invden);
    f.yint = (sumxx * sumy - sumx * sumxy) * invden;
    f.sigyint = sqrt(sumxx * invden);
    double seglen_d = (double)seglen;
    f.var_p = segment_poisson_variance(median, dark, fp.t_g * gain * (seglen_d - 1.0));
    f.var_r = segment_rnoise_default(rnoise, gain, fp.t_g, seglen_d);
    f.var_e = f.var_p + f.var_r;
    f.weight = 1.0 / f.var_r;
    return f;
}

// Running sums of one pixel over its integrations (section 7).
struct PixelAccum {
    double invvar_p, invvar_r, slope_num, chargeloss_sum;
    int n_dnu, n_sat;
    bool any_sat, any_chargeloss;
    u32 dq;
};

__host__ __device__ inline void store_opt_segment(const FitParams& fp, float* opt_out, int integ, int segnum,
                                                  i64 p, const SegmentFit& f)
{
    i64 plane = (i64)fp.nints * fp.max_segs * fp.npix;
    i64 idx = ((i64)integ * fp.max_segs + segnum) * fp.npix + p;
    opt_out[0 * plane + idx] = (float)f.slope;
    opt_out[1 * plane + idx] = (float)f.sigslope;
    opt_out[2 * plane + idx] = (float)f.var_p;
    opt_out[3 * plane + idx] = (float)f.var_r;
    opt_out[4 * plane + idx] = (float)f.yint;
    opt_out[5 * plane + idx] = (float)f.sigyint;
    opt_out[6 * plane + idx] = (float)f.weight;
}

// Cosmic-ray magnitudes of an integration: the group-to-group jump at each JUMP_DET group
// after the first, from the data before any ZEROFRAME substitution.
__host__ __device__ inline void store_crmag(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                            int integ, float* crmag)
{
    IntegStats raw = st;
    raw.is_zframe = false;
    int n = 0;
    for (int k = 1; k < fp.ngroups; ++k) {
        if (group_flags(fp, pr, raw, integ, k) & GPUCAL_JUMP_DET) {
            double mag = group_value(fp, pr, raw, integ, k) - group_value(fp, pr, raw, integ, k - 1);
            crmag[((i64)integ * fp.max_crs + n) * fp.npix + pr.p] = (float)mag;
            n++;
        }
    }
}

// Read-noise variance of a CHARGELOSS integration re-segmented from the original flags
// (section 8); returns the integration's inverse read-noise variance.
__host__ __device__ inline double chargeloss_invvar_r(const FitParams& fp, const PixelRamp& pr, const IntegStats& st,
                                                      int integ, double gain, double rnoise, float* var_rnoise_out)
{
    int longest = longest_segment(fp, pr, st, SEG_SOURCE_CHARGELOSS, integ);
    int pos = 0, start, end, ordinal = 0;
    double invvar_r = 0.0;
    while (next_segment(fp, pr, st, SEG_SOURCE_CHARGELOSS, integ, &pos, &start, &end)) {
        int seglen = end - start;
        bool kept = segment_kept(seglen, longest, ordinal);
        ordinal++;
        if (!kept) {
            continue;
        }
        double svar_r;
        if (seglen == 1) {
            svar_r = segment_rnoise_short(rnoise, gain, segment_len1_timing(fp, st));
        } else if (seglen == 2) {
            svar_r = segment_rnoise_short(rnoise, gain, fp.t_g);
        } else {
            svar_r = segment_rnoise_default(rnoise, gain, fp.t_g, (double)seglen);
        }
        if (svar_r > 0.0) {
            invvar_r += 1.0 / svar_r;
        }
    }
    double var_r = 1.0 / invvar_r;
    if (var_r >= LARGE_VARIANCE_THRESHOLD) {
        var_r = 0.0;
    }
    *var_rnoise_out = (float)var_r;
    return invvar_r;
}

// Fit one integration of one pixel (sections 6 and 7.1, 7.2) and write its rateints values.
__host__ __device__ inline void fit_integration(const FitParams& fp, const PixelRamp& pr, int integ, double gain,
                                                double rnoise, double dark, double median, u32 pdq,
                                                const float* weight_table, float* ints_out, u32* ints_dq,
                                                float* opt_out, float* pedestal, float* crmag, int* counts,
                                                PixelAccum* acc)
{
    const i64 p = pr.p;
    const i64 iplane = (i64)fp.nints * fp.npix;
    const i64 iidx = (i64)integ * fp.npix + p;
    IntegStats st = integration_stats(fp, pr, integ);

    u32 dq = pdq;
    if (st.jump) dq |= GPUCAL_JUMP_DET;
    if (st.persistence) dq |= GPUCAL_PERSISTENCE;
    acc->dq |= dq & (GPUCAL_JUMP_DET | GPUCAL_PERSISTENCE);

    double slope = 0.0, var_p = 0.0, var_r = 0.0, err = 0.0;
    int nsegs = 0, listed = 0;
    bool first_saturated = (group_flags(fp, pr, st, integ, 0) & GPUCAL_SATURATED) != 0;
    if (first_saturated) {
        dq |= GPUCAL_DO_NOT_USE | GPUCAL_SATURATED;
        slope = GPUCAL_NAN;
    }
    if (st.cnt_dnu_sat == fp.ngroups) {
        dq |= GPUCAL_DO_NOT_USE;
        if (st.cnt_sat == fp.ngroups) {
            dq |= GPUCAL_SATURATED;
        }
    } else if (!first_saturated) {
        int longest = longest_segment(fp, pr, st, SEG_SOURCE_FIT, integ);
        int pos = 0, start, end, ordinal = 0;
        double invvar_r = 0.0, invvar_p = 0.0, invvar_e = 0.0, slope_num = 0.0;
        while (next_segment(fp, pr, st, SEG_SOURCE_FIT, integ, &pos, &start, &end)) {
            int seglen = end - start;
            bool kept = segment_kept(seglen, longest, ordinal);
            ordinal++;
            if (!kept) {
                continue;
            }
            SegmentFit f = fit_segment(fp, pr, st, integ, start, seglen, gain, rnoise, dark, median, weight_table);
            invvar_r += 1.0 / f.var_r;
            if (f.var_p > 0.0) {
                invvar_p += 1.0 / f.var_p;
            }
            invvar_e += 1.0 / f.var_e;
            slope_num += f.slope / f.var_r;
            if (fp.save_opt) {
                store_opt_segment(fp, opt_out, integ, nsegs, p, f);
            }
            nsegs++;
        }
        // stcal sizes the optional product by its segment-list length, which keeps
        // counting the one-group runs it prunes when no run is longer than one group.
        listed = (longest > 1) ? nsegs : ordinal;
        if (nsegs > 0) {
            if (invvar_p > 0.0) {
                var_p = 1.0 / invvar_p;
            }
            if (var_p >= LARGE_VARIANCE_THRESHOLD) {
                var_p = 0.0;
            }
            var_r = 1.0 / invvar_r;
            if (var_r >= LARGE_VARIANCE_THRESHOLD) {
                var_r = 0.0;
            }
            if (dq & INVALID_FLAGS) {
                slope = GPUCAL_NAN;
                var_p = 0.0;
                var_r = 0.0;
                err = 0.0;
            } else {
                double var_err = 1.0 / invvar_e;
                slope = slope_num * var_r;
                err = (var_err > LARGE_VARIANCE_THRESHOLD) ? 0.0 : sqrt(var_err);
            }
            if (invvar_p > 0.0) {
                acc->invvar_p += invvar_p;
            }
            acc->invvar_r += invvar_r;
            acc->slope_num += slope_num;
        }
    }

    if (dq & GPUCAL_DO_NOT_USE) {
        acc->n_dnu++;
        slope = GPUCAL_NAN;
    }
    if (fp.save_opt) {
        double ped = 0.0;
        if (!(dq & GPUCAL_SATURATED)) {
            ped = group_value(fp, pr, st, integ, 0) - slope * fp.ped_tmp;
            if (isnan(ped)) {
                ped = 0.0;
            }
        }
        pedestal[iidx] = (float)ped;
        store_crmag(fp, pr, st, integ, crmag);
        if (listed > counts[p]) counts[p] = listed;
        if (st.n_crs > counts[fp.npix + p]) counts[fp.npix + p] = st.n_crs;
    }
    if (dq & GPUCAL_SATURATED) {
        acc->n_sat++;
        slope = GPUCAL_NAN;
    }
    if (st.cnt_sat > 0) {
        dq |= GPUCAL_SATURATED;
        acc->any_sat = true;
    }

    ints_out[0 * iplane + iidx] = (float)slope;
    ints_out[1 * iplane + iidx] = (float)var_p;
    ints_out[2 * iplane + iidx] = (float)var_r;
    ints_out[3 * iplane + iidx] = (float)err;
    ints_dq[iidx] = dq;

    // Section 8 runs only when some group of the pixel carries CHARGELOSS; without it the
    // sum below is never read.
    if (st.chargeloss) {
        acc->any_chargeloss = true;
        acc->chargeloss_sum += chargeloss_invvar_r(fp, pr, st, integ, gain, rnoise, &ints_out[2 * iplane + iidx]);
    } else if (var_r > 0.0) {
        acc->chargeloss_sum += 1.0 / var_r;
    }
}

// Combine the integrations into the exposure rate (section 7.3, 8) and write it.
__host__ __device__ inline void finish_rate(const FitParams& fp, i64 p, const PixelAccum& acc,
                                            float* rate_out, u32* rate_dq)
{
    u32 dq = acc.dq;
    if (acc.n_dnu == fp.nints) dq |= GPUCAL_DO_NOT_USE;
    if (acc.n_sat == fp.nints) dq |= GPUCAL_SATURATED;
    double var_p = acc.invvar_p;
    if (var_p > 0.0) var_p = 1.0 / var_p;
    if (var_p >= LARGE_VARIANCE_THRESHOLD || var_p < 0.0) var_p = 0.0;
    double var_r = acc.invvar_r;
    if (var_r > 0.0) var_r = 1.0 / var_r;
    if (var_r >= LARGE_VARIANCE_THRESHOLD) var_r = 0.0;
    double err = sqrt(var_p + var_r);
    double slope = acc.slope_num;
    if (dq & INVALID_FLAGS) {
        slope = GPUCAL_NAN;
        var_p = 0.0;
        var_r = 0.0;
        err = 0.0;
    }
    if (acc.any_sat) dq |= GPUCAL_SATURATED;
    if (!isnan(slope)) slope = slope * var_r;
    if (acc.any_chargeloss) {
        if (acc.chargeloss_sum > 0.0) var_r = 1.0 / acc.chargeloss_sum;
        if (var_r >= LARGE_VARIANCE_THRESHOLD) var_r = 0.0;
    }
    rate_out[0 * fp.npix + p] = (float)slope;
    rate_out[1 * fp.npix + p] = (float)var_p;
    rate_out[2 * fp.npix + p] = (float)var_r;
    rate_out[3 * fp.npix + p] = (float)err;
    rate_dq[p] = dq;
}

__host__ __device__ inline void fit_pixel(const FitParams& fp, const PixelRamp& pr, const u32* pixeldq,
                                          const float* gain, const float* sigma_r, const float* dark,
                                          const float* weight_table, double* scratch, float* rate_out,
                                          u32* rate_dq, float* ints_out, u32* ints_dq, float* opt_out,
                                          float* pedestal, float* crmag, int* counts)
{
    const i64 p = pr.p;
    double g = (double)gain[p];
    double rnoise = (double)sigma_r[p];
    double dark_p = (double)dark[p];
    u32 pdq = pixeldq[p];
    if (g <= 0.0 || isnan(g)) {
        pdq |= GPUCAL_DO_NOT_USE | GPUCAL_NO_GAIN_VALUE;
    }
    double median = median_rate(fp, pr, scratch);
    PixelAccum acc = {};
    acc.dq = pdq;
    for (int integ = 0; integ < fp.nints; ++integ) {
        fit_integration(fp, pr, integ, g, rnoise, dark_p, median, pdq, weight_table, ints_out, ints_dq, opt_out,
                        pedestal, crmag, counts, &acc);
    }
    finish_rate(fp, p, acc, rate_out, rate_dq);
}

extern "C" __global__ void ramp_fit_kernel(
    const float* __restrict__ data, const u8* __restrict__ groupdq, const u32* __restrict__ pixeldq,
    const float* __restrict__ gain, const float* __restrict__ sigma_r, const float* __restrict__ dark,
    const float* __restrict__ zeroframe, const float* __restrict__ weight_table, double* __restrict__ scratch,
    float* __restrict__ rate_out, u32* __restrict__ rate_dq, float* __restrict__ ints_out,
    u32* __restrict__ ints_dq, float* __restrict__ opt_out, float* __restrict__ pedestal,
    float* __restrict__ crmag, int* __restrict__ counts,
    int nints, int ngroups_raw, int g_first, int ngroups, long long npix,
    double t_g, double t_f, double t_1, double ped_tmp,
    int suppress, int clear_first_jump, int has_zeroframe, int save_opt, int max_segs, int max_crs)
{
    FitParams fp;
    fp.nints = nints;
    fp.ngroups_raw = ngroups_raw;
    fp.g_first = g_first;
    fp.ngroups = ngroups;
    fp.npix = (i64)npix;
    fp.t_g = t_g;
    fp.t_f = t_f;
    fp.t_1 = t_1;
    fp.ped_tmp = ped_tmp;
    fp.suppress = suppress;
    fp.clear_first_jump = clear_first_jump;
    fp.save_opt = save_opt;
    fp.max_segs = max_segs;
    fp.max_crs = max_crs;
    i64 stride = (i64)blockDim.x * gridDim.x;
    for (i64 p = (i64)blockIdx.x * blockDim.x + threadIdx.x; p < fp.npix; p += stride) {
        PixelRamp pr;
        pr.data = data;
        pr.groupdq = groupdq;
        pr.zeroframe = has_zeroframe ? zeroframe : nullptr;
        pr.p = p;
        fit_pixel(fp, pr, pixeldq, gain, sigma_r, dark, weight_table, scratch, rate_out, rate_dq, ints_out,
                  ints_dq, opt_out, pedestal, crmag, counts);
    }
}

#ifdef GPUCAL_HOST_BUILD
GPUCAL_EXPORT_HOST_LAUNCHER(ramp_fit_kernel)
#endif
