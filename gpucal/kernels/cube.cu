// IFU cube sums (msm / emsm point cloud, 3-D drizzle), as jwst 3.0.0
// cube_match_sky_pointcloud.c and cube_match_sky_driz.c.
//
// Spec: ../shared/specs/cube_build.md sections 4.1-4.4 and 7.
// Twin: cpu_fallback/cube.py -- the same per-element functions and order of operations.
//
// Deterministic gather in three passes over a chunk of points (gpucal/gpu/cube.py):
//   *_count_kernel   one thread per point: its candidate voxels (exact axis ranges for the
//                    point cloud, the reference's bracket for drizzle);
//   *_emit_kernel    one thread per point: a record (voxel, weight, point) per candidate,
//                    voxel -1 when the candidate fails the exact test;
//   (host: drop rejected records, sort by (voxel, record index) -- records are emitted in
//    point order, so each voxel's records stay in increasing point index)
//   segment_sum_kernel  one thread per voxel segment: adds its records in order onto the
//                    running sums, F += flux*w, W += w, V += (err*w)^2, N += 1.
// Each voxel therefore sees the same sequence of roundings as the C's point loop. The CPU
// backend runs the host-only functions at the end of this file instead (no records, no sort).
//
// exp and pow are portable_exp / portable_pow below (plain + - * /, trunc, exact bit moves), so
// the device, the host build and numpy give the same bits; libm's and CUDA's differ.

#include "numeric.cuh"

#define CUBE_MAX_VERTICES 12

__host__ __device__ inline double positive_inf()
{
#ifdef __CUDA_ARCH__
    return __longlong_as_double(0x7ff0000000000000LL);
#else
    return HUGE_VAL;
#endif
}

// ------------------------------------------------------------------ shared exp / log / pow
// Exact bit moves instead of libm's ldexp / frexp (the same values; on the host, an x86-64 build
// without -march calls libm for those, which made exp 4x slower).
__host__ __device__ inline double double_from_bits(long long bits)
{
#ifdef __CUDA_ARCH__
    return __longlong_as_double(bits);
#else
    double out;
    __builtin_memcpy(&out, &bits, sizeof out);
    return out;
#endif
}

__host__ __device__ inline long long bits_of_double(double x)
{
#ifdef __CUDA_ARCH__
    return __double_as_longlong(x);
#else
    long long out;
    __builtin_memcpy(&out, &x, sizeof out);
    return out;
#endif
}

// 2^k for a normal exponent, -1022 <= k <= 1023 (ldexp(1.0, k)).
__host__ __device__ inline double pow2i(int k)
{
    return double_from_bits((long long)(k + 1023) << 52);
}

__host__ __device__ inline double scale_pow2(double y, int k)
{
    // y * 2^k rounded once: the first factor keeps the product normal (exact).
    int k1 = k, k2 = 0;
    if (k < -1020) {
        k1 = k + 1000;
        k2 = -1000;
    } else if (k > 1020) {
        k1 = k - 8;
        k2 = 8;
    }
    return (y * pow2i(k1)) * pow2i(k2);
}

// exp(x + x_lo) for a double-double argument (|x_lo| <= ulp(x)): Cody-Waite reduction by ln 2
// (k * ln2_hi exact), the low part folded into the reduced argument, and the classic rational
// remainder. portable_exp(x) is the same with x_lo = 0.
__host__ __device__ inline double portable_exp_dd(double x, double x_lo)
{
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double inv_ln2 = 1.44269504088896338700e+00;
    const double p1 = 1.66666666666666019037e-01, p2 = -2.77777777770155933842e-03,
                 p3 = 6.61375632143793436117e-05, p4 = -1.65339022054652515390e-06,
                 p5 = 4.13813679705723846039e-08;
    if (isnan(x)) {
        return x;
    }
    if (x > 7.09782712893383973096e+02) {
        return positive_inf();
    }
    if (x < -7.45133219101941108420e+02) {
        return 0.0;
    }
    double half = 0.5 - (double)(x < 0);  // -0.5 or 0.5 without a branch (the sign is data)
    double kf = trunc(x * inv_ln2 + half);
    double hi = x - kf * ln2_hi;
    double lo = kf * ln2_lo - x_lo;
    double r = hi - lo;
    double t = r * r;
    double c = r - t * (p1 + t * (p2 + t * (p3 + t * (p4 + t * p5))));
    double y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    return scale_pow2(y, (int)kf);
}

__host__ __device__ inline double portable_exp(double x)
{
    return portable_exp_dd(x, 0.0);
}

// a * b = *hi + *lo exactly (Dekker's product with Veltkamp's split: no FMA needed; |a|, |b| < 2^995).
__host__ __device__ inline void two_product(double a, double b, double* hi, double* lo)
{
    const double split = 134217729.0;  // 2^27 + 1
    double ca = split * a;
    double cb = split * b;
    double ah = ca - (ca - a);
    double bh = cb - (cb - b);
    double al = a - ah;
    double bl = b - bh;
    *hi = a * b;
    *lo = (((ah * bh - *hi) + ah * bl) + al * bh) + al * bl;
}

// log(x) = *hi + *lo for finite x > 0, to about 2^-66 relative: x = m * 2^e with m in
// [sqrt(1/2), sqrt(2)), f = m - 1 (exact), log(m) = 2u + u*R(u^2) with u = f / (2 + f) carried
// as u + ul (the division's remainder from an exact product), R the classic minimax series.
static __host__ __device__ inline void portable_log_dd(double x, double* hi, double* lo)
{
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double lg1 = 6.666666666666735130e-01, lg2 = 3.999999999940941908e-01,
                 lg3 = 2.857142874366239149e-01, lg4 = 2.222219843214978396e-01,
                 lg5 = 1.818357216161805012e-01, lg6 = 1.531383769920937332e-01,
                 lg7 = 1.479819860511658591e-01;
    // x = m * 2^e with m in [sqrt(1/2), sqrt(2)), from the bits (subnormals scaled by 2^54 first);
    // the choice of binade is an integer compare, not a data-dependent branch
    int shift = 0;
    if (x < 2.2250738585072014e-308) {
        x = x * 18014398509481984.0;
        shift = 54;
    }
    long long bits = bits_of_double(x);
    long long mbits = (bits & 0x000fffffffffffffLL) | 0x3fe0000000000000LL;  // in [0.5, 1)
    int below = mbits < 0x3fe6a09e667f3bcdLL;                                 // m < sqrt(1/2)
    double m = double_from_bits(mbits + ((long long)below << 52));            // then m * 2
    double ef = (double)((int)(bits >> 52) - 1022 - shift - below);
    double f = m - 1.0;
    double d = 2.0 + f;
    double d_lo = f - (d - 2.0);  // d + d_lo = 2 + f exactly
    double u = f / d;
    double qh, ql;
    two_product(u, d, &qh, &ql);
    double ul = (((f - qh) - ql) - u * d_lo) / d;
    double z = u * u;
    double w = z * z;
    double t1 = w * (lg2 + w * (lg4 + w * lg6));
    double t2 = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)));
    double tail = u * (t2 + t1);
    // ef*ln2_hi + 2u (both exact) summed exactly, then the small terms (2ul * (1 + u^2): the
    // low part of u through the series' first two terms)
    double a = ef * ln2_hi;
    double b = 2.0 * u;
    double s = a + b;
    double bb = s - a;
    double err = (a - (s - bb)) + (b - bb);
    double small = err + (ef * ln2_lo + (tail + (2.0 * ul) * (1.0 + z)));
    *hi = s + small;
    *lo = small - (*hi - s);
}

// s^p for s >= 0: a left-to-right product for integer p in [0, 16], else exp(p * log(s)) with
// log(s) and the product p * log(s) carried in double-double (within 1 ulp, see the docs).
__host__ __device__ inline double portable_pow(double s, double p)
{
    if (p == floor(p) && p >= 0 && p <= 16) {
        double prod = p >= 1 ? s : 1.0;
        for (int i = 2; i <= (int)p; ++i) {
            prod = prod * s;
        }
        return prod;
    }
    if (s == 0.0) {
        return p > 0 ? 0.0 : (p == 0 ? 1.0 : positive_inf());
    }
    if (isnan(s) || isnan(p) || s < 0) {
        return GPUCAL_NAN;
    }
    if (s > 1.7976931348623157e308) {
        return p > 0 ? positive_inf() : 0.0;
    }
    double lh, ll;
    portable_log_dd(s, &lh, &ll);
    double yh = p * lh;
    if (!(fabs(yh) < 746.0)) {  // over- or underflows (or s == 1 with an infinite p: NaN)
        return portable_exp(yh);
    }
    if (yh == 0.0) {  // s == 1, or p * log(s) below the smallest double: 1 (no split of a huge p)
        return 1.0;
    }
    double ph, pl;
    two_product(p, lh, &ph, &pl);
    return portable_exp_dd(ph, pl + p * ll);
}

// ------------------------------------------------------------------ point cloud
__host__ __device__ inline double pointcloud_distance2(double xdist, double ydist, double wave_k, double zc_w,
                                                       double zcdelt3_w, double cdelt1, double cdelt2)
{
    double d1 = xdist / cdelt1;
    double d2 = ydist / cdelt2;
    double dxy = (d1 * d1) + (d2 * d2);
    double d3 = (wave_k - zc_w) / zcdelt3_w;
    return d3 * d3 + dxy;
}

__host__ __device__ inline double emsm_weight(double r2, double scalerad_k, double cdelt1)
{
    return portable_exp(-r2 / (scalerad_k / cdelt1));
}

__host__ __device__ inline double msm_weight(double r2, double power_k, double softrad_k)
{
    double wn = portable_pow(sqrt(r2), power_k);
    if (wn < softrad_k) {
        wn = softrad_k;
    }
    return 1.0 / wn;
}

// First index with centres[i] >= value (centres increase); n when none.
__host__ __device__ inline int lower_bound(const double* centres, int n, double value)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (centres[mid] < value) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// [first, end) of the centres with |c - value| <= roi (a contiguous run: centres increase).
__host__ __device__ inline void axis_range(const double* centres, int n, double value, double roi, int* first,
                                           int* end)
{
    int i = lower_bound(centres, n, value - roi) - 2;
    if (i < 0 || isnan(value - roi)) {
        i = 0;
    }
    while (i < n && !(fabs(centres[i] - value) <= roi)) {
        if (centres[i] - value > roi || isnan(value)) {  // no member further on
            i = n;
            break;
        }
        ++i;
    }
    int j = i;
    while (j < n && fabs(centres[j] - value) <= roi) {
        ++j;
    }
    *first = i;
    *end = j;
}

// ------------------------------------------------------------------ drizzle
// driz.c's spatial bracket [i1, i2): trunc(|(min - half - c0)/cdelt| - 1) .. trunc(|(max + half - c0)/cdelt| + 1).
__host__ __device__ inline void driz_spatial_bracket(double vmin, double vmax, double half, double c0, double cdelt,
                                                     int n, int* i1, int* i2)
{
    double a = fabs((vmin - half - c0) / cdelt) - 1.0;
    double b = fabs((vmax + half - c0) / cdelt) + 1.0;
    if (!(fabs(a) < 2147483648.0) || !(fabs(b) < 2147483648.0)) {
        *i1 = 0;
        *i2 = 0;
        return;
    }
    int lo = (int)a;
    int hi = (int)b;
    *i1 = lo < 0 ? 0 : lo;
    *i2 = hi > n ? n : hi;
}

__host__ __device__ inline double wave_overlap(double wave_k, double dwave_k, double zc_w, double c_w)
{
    double ptmin = wave_k - dwave_k / 2;
    double ptmax = wave_k + dwave_k / 2;
    double spxmin = zc_w - c_w / 2;
    double spxmax = zc_w + c_w / 2;
    double z1 = spxmax - ptmin;
    double z2 = spxmax - ptmax;
    double z3 = spxmin - ptmin;
    if (z1 < 0) {
        z1 = 0;
    }
    if (z2 < 0) {
        z2 = 0;
    }
    if (z3 < 0) {
        z3 = 0;
    }
    double zo = z1 - z2 - z3;
    return zo < 0 ? 0.0 : zo;
}

__host__ __device__ inline bool clip_inside(int edge, double x, double y, double left, double right, double bottom,
                                            double top)
{
    switch (edge) {
        case 0: return x > left;
        case 1: return x < right;
        case 2: return y > bottom;
        default: return y < top;
    }
}

// Crossing of (x1,y1)-(x2,y2) with a clip line, with the reference's binary32 slope.
__host__ __device__ inline void clip_intersection(int edge, double x1, double y1, double x2, double y2, double left,
                                                  double right, double bottom, double top, double* x, double* y)
{
    float m = 0.0f;
    if (x2 != x1) {
        m = (float)((y2 - y1) / (x2 - x1));
    }
    if (edge == 0 || edge == 1) {
        *x = edge == 0 ? left : right;
        *y = y1 + (double)m * (*x - x1);
    } else {
        *y = edge == 2 ? bottom : top;
        *x = x2 != x1 ? x1 + (double)(1.0f / m) * (*y - y1) : x1;
    }
}

__host__ __device__ inline void clip_add(double* xn, double* yn, int* n2, double x, double y)
{
    int slot = *n2 < CUBE_MAX_VERTICES ? *n2 : CUBE_MAX_VERTICES;
    xn[slot] = x;
    yn[slot] = y;
    *n2 = *n2 + 1;
}

// Overlap area of a quadrilateral with the box [xcen -+ xlen/2] x [ycen -+ ylen/2]
// (utils.c::sh_find_overlap: strict clip tests, the stale closing vertex of an empty polygon).
__host__ __device__ inline double overlap_area(double xcen, double ycen, double xlen, double ylen, const double* xc4,
                                               const double* yc4)
{
    double top = ycen + 0.5 * ylen;
    double bottom = ycen - 0.5 * ylen;
    double left = xcen - 0.5 * xlen;
    double right = xcen + 0.5 * xlen;
    double xp[CUBE_MAX_VERTICES + 1] = {0.0}, yp[CUBE_MAX_VERTICES + 1] = {0.0};
    double xn[CUBE_MAX_VERTICES + 1] = {0.0}, yn[CUBE_MAX_VERTICES + 1] = {0.0};
    for (int i = 0; i < 4; ++i) {
        xp[i] = xc4[i];
        yp[i] = yc4[i];
    }
    xp[4] = xc4[0];
    yp[4] = yc4[0];
    int nv = 4;
    for (int edge = 0; edge < 4; ++edge) {
        int n2 = 0;
        for (int j = 0; j < nv; ++j) {
            double x1 = xp[j], y1 = yp[j], x2 = xp[j + 1], y2 = yp[j + 1];
            bool s1 = clip_inside(edge, x1, y1, left, right, bottom, top);
            bool s2 = clip_inside(edge, x2, y2, left, right, bottom, top);
            if (s1 != s2) {
                double xi, yi;
                clip_intersection(edge, x1, y1, x2, y2, left, right, bottom, top, &xi, &yi);
                clip_add(xn, yn, &n2, xi, yi);
            }
            if (s2) {
                clip_add(xn, yn, &n2, x2, y2);
            }
        }
        clip_add(xn, yn, &n2, xn[0], yn[0]);  // close the polygon
        if (n2 > CUBE_MAX_VERTICES + 1) {
            n2 = CUBE_MAX_VERTICES + 1;
        }
        nv = n2 - 1;
        for (int i = 0; i <= CUBE_MAX_VERTICES; ++i) {
            xp[i] = xn[i];
            yp[i] = yn[i];
        }
    }
    int nvert = nv + 1;
    double xmin = xp[0], ymin = yp[0];
    for (int i = 1; i < nvert; ++i) {
        xmin = xp[i] < xmin ? xp[i] : xmin;
        ymin = yp[i] < ymin ? yp[i] : ymin;
    }
    double area = 0.0;
    for (int i = 0; i < nvert - 1; ++i) {
        area = area + ((xp[i] - xmin) * (yp[i + 1] - ymin) - (xp[i + 1] - xmin) * (yp[i] - ymin));
    }
    return fabs(0.5 * area);
}

// ------------------------------------------------------------------ kernels
#define GRID_STRIDE(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                               i += (long long)blockDim.x * gridDim.x)

// ranges (npt, 6): x first/end, y first/end, w first/end; counts (npt,): candidates.
extern "C" __global__ void pointcloud_count_kernel(long long npt, const double* xc, int nx, const double* yc, int ny,
                                                   const double* zc, int nz, const double* coord1,
                                                   const double* coord2, const double* wave, const double* rois,
                                                   const double* roiw, int* ranges, long long* counts)
{
    GRID_STRIDE(k, npt) {
        int* r = ranges + 6 * k;
        axis_range(xc, nx, coord1[k], rois[k], r + 0, r + 1);
        axis_range(yc, ny, coord2[k], rois[k], r + 2, r + 3);
        axis_range(zc, nz, wave[k], roiw[k], r + 4, r + 5);
        counts[k] = (long long)(r[1] - r[0]) * (r[3] - r[2]) * (r[5] - r[4]);
    }
}

extern "C" __global__ void pointcloud_emit_kernel(long long npt, int msm, const double* xc, int nx, const double* yc,
                                                  int ny, const double* zc, const double* coord1,
                                                  const double* coord2, const double* wave, const double* rois,
                                                  const double* scalerad, const double* power,
                                                  const double* softrad, const double* zcdelt3, double cdelt1,
                                                  double cdelt2, const int* ranges, const long long* offsets,
                                                  long long k0, long long* rec_voxel, double* rec_w, int* rec_k)
{
    GRID_STRIDE(k, npt) {
        const int* r = ranges + 6 * k;
        long long out = offsets[k];
        for (int ix = r[0]; ix < r[1]; ++ix) {
            for (int iy = r[2]; iy < r[3]; ++iy) {
                double xdist = fabs(xc[ix] - coord1[k]);
                double ydist = fabs(yc[iy] - coord2[k]);
                bool inside = sqrt(xdist * xdist + ydist * ydist) <= rois[k];
                for (int iw = r[4]; iw < r[5]; ++iw, ++out) {
                    rec_k[out] = (int)(k0 + k);
                    if (!inside) {
                        rec_voxel[out] = -1;
                        rec_w[out] = 0.0;
                        continue;
                    }
                    double r2 = pointcloud_distance2(xdist, ydist, wave[k], zc[iw], zcdelt3[iw], cdelt1, cdelt2);
                    rec_w[out] = msm ? msm_weight(r2, power[k], softrad[k]) : emsm_weight(r2, scalerad[k], cdelt1);
                    rec_voxel[out] = ((long long)iw * ny + iy) * nx + ix;
                }
            }
        }
    }
}

// ranges (npt, 6): x1/x2, y1/y2 (driz.c bracket), w first/end (planes within the guard).
extern "C" __global__ void drizzle_count_kernel(long long npt, const double* xc, int nx, const double* yc, int ny,
                                                const double* zc, int nz, const double* wave, const double* xi,
                                                const double* eta, const double* dwave, double max_abs_cdelt3,
                                                double cdelt1, double cdelt2, int* ranges, long long* counts)
{
    GRID_STRIDE(k, npt) {
        int* r = ranges + 6 * k;
        const double* x4 = xi + 4 * k;
        const double* y4 = eta + 4 * k;
        double xmin = x4[0], xmax = x4[0], ymin = y4[0], ymax = y4[0];
        bool finite = isfinite(wave[k]) && isfinite(dwave[k]);
        for (int j = 0; j < 4; ++j) {
            finite = finite && isfinite(x4[j]) && isfinite(y4[j]);
            xmin = x4[j] < xmin ? x4[j] : xmin;
            xmax = x4[j] > xmax ? x4[j] : xmax;
            ymin = y4[j] < ymin ? y4[j] : ymin;
            ymax = y4[j] > ymax ? y4[j] : ymax;
        }
        driz_spatial_bracket(xmin, xmax, cdelt1 / 2.0, xc[0], cdelt1, nx, r + 0, r + 1);
        driz_spatial_bracket(ymin, ymax, cdelt2 / 2.0, yc[0], cdelt2, ny, r + 2, r + 3);
        double guard = (fabs(dwave[k]) + max_abs_cdelt3) * (1 + 1e-9) + 1e-300;
        int w0 = lower_bound(zc, nz, wave[k] - guard) - 1;
        int w1 = lower_bound(zc, nz, wave[k] + guard) + 1;
        r[4] = w0 < 0 ? 0 : (w0 > nz ? nz : w0);
        r[5] = w1 > nz ? nz : w1;
        long long nxr = r[1] > r[0] ? r[1] - r[0] : 0;
        long long nyr = r[3] > r[2] ? r[3] - r[2] : 0;
        long long nwr = r[5] > r[4] ? r[5] - r[4] : 0;
        counts[k] = finite ? nxr * nyr * nwr : 0;
    }
}

extern "C" __global__ void drizzle_emit_kernel(long long npt, const double* xc, int nx, const double* yc, int ny,
                                               const double* zc, const double* wave, const double* xi,
                                               const double* eta, const double* dwave, const double* cdelt3,
                                               double cdelt1, double cdelt2, const int* ranges,
                                               const long long* counts, const long long* offsets, long long k0,
                                               long long* rec_voxel, double* rec_w, int* rec_k)
{
    GRID_STRIDE(k, npt) {
        if (counts[k] == 0) {
            continue;
        }
        const int* r = ranges + 6 * k;
        const double* x4 = xi + 4 * k;
        const double* y4 = eta + 4 * k;
        double xmin = x4[0], xmax = x4[0], ymin = y4[0], ymax = y4[0];
        for (int j = 1; j < 4; ++j) {
            xmin = x4[j] < xmin ? x4[j] : xmin;
            xmax = x4[j] > xmax ? x4[j] : xmax;
            ymin = y4[j] < ymin ? y4[j] : ymin;
            ymax = y4[j] > ymax ? y4[j] : ymax;
        }
        long long out = offsets[k];
        for (int ix = r[0]; ix < r[1]; ++ix) {
            for (int iy = r[2]; iy < r[3]; ++iy) {
                double xleft = xc[ix] - cdelt1 * 0.5;
                double xright = xc[ix] + cdelt1 * 0.5;
                double ybot = yc[iy] - cdelt2 * 0.5;
                double ytop = yc[iy] + cdelt2 * 0.5;
                bool hit = xleft < xmax && xright > xmin && ybot < ymax && ytop > ymin;
                double area = hit ? overlap_area(xc[ix], yc[iy], cdelt1, cdelt2, x4, y4) : 0.0;
                for (int iw = r[4]; iw < r[5]; ++iw, ++out) {
                    rec_k[out] = (int)(k0 + k);
                    rec_voxel[out] = -1;
                    rec_w[out] = 0.0;
                    if (!hit || !(fabs(zc[iw] - wave[k]) < fabs(dwave[k] + cdelt3[iw]))) {
                        continue;
                    }
                    double weight = area * wave_overlap(wave[k], dwave[k], zc[iw], cdelt3[iw]);
                    if (weight > 0) {
                        rec_w[out] = weight;
                        rec_voxel[out] = ((long long)iw * ny + iy) * nx + ix;
                    }
                }
            }
        }
    }
}

// Records order[seg_start[s] .. seg_start[s+1]) all belong to one voxel, in increasing
// record (hence point) index; they are added onto the running sums in that order.
extern "C" __global__ void segment_sum_kernel(long long nseg, const long long* seg_start, const long long* order,
                                              const long long* rec_voxel, const double* rec_w, const int* rec_k,
                                              const double* flux, const double* err, double* fluxv, double* weightv,
                                              double* varv, double* ifluxv)
{
    GRID_STRIDE(s, nseg) {
        long long v = rec_voxel[order[seg_start[s]]];
        double f = fluxv[v], w = weightv[v], var = varv[v], n = ifluxv[v];
        for (long long j = seg_start[s]; j < seg_start[s + 1]; ++j) {
            long long i = order[j];
            double ww = rec_w[i];
            int k = rec_k[i];
            f = f + flux[k] * ww;
            w = w + ww;
            var = var + (err[k] * ww) * (err[k] * ww);
            n = n + 1.0;
        }
        fluxv[v] = f;
        weightv[v] = w;
        varv[v] = var;
        ifluxv[v] = n;
    }
}

#ifdef GPUCAL_HOST_BUILD
// The CPU backend's compiled path (gpucal/native.py, gpucal/cube/native.py): no records and
// no sort. Per chunk of points, two phases, each split over threads:
//   cube_*_ranges  each point's candidate ranges, as the count kernels (threads: point ranges);
//   cube_*_apply   the chunk's points in order, each adding its weights directly onto the
//                  voxels of planes [w_lo, w_hi) (threads: disjoint plane bands, so every voxel
//                  is written by one thread and sees its points in increasing index, the order
//                  of segment_sum_kernel and of numpy's add.at: the same bits).
inline void add_to_voxel(long long v, double ww, double flux_k, double err_k, double* fluxv,
                         double* weightv, double* varv, double* ifluxv)
{
    fluxv[v] = fluxv[v] + flux_k * ww;
    weightv[v] = weightv[v] + ww;
    varv[v] = varv[v] + (err_k * ww) * (err_k * ww);
    ifluxv[v] = ifluxv[v] + 1.0;
}

extern "C" void cube_pointcloud_ranges(long long k0, long long k1, const double* xc, int nx, const double* yc, int ny,
                                       const double* zc, int nz, const double* coord1, const double* coord2,
                                       const double* wave, const double* rois, const double* roiw, int* ranges)
{
    for (long long k = k0; k < k1; ++k) {
        int* r = ranges + 6 * k;
        axis_range(xc, nx, coord1[k], rois[k], r + 0, r + 1);
        axis_range(yc, ny, coord2[k], rois[k], r + 2, r + 3);
        axis_range(zc, nz, wave[k], roiw[k], r + 4, r + 5);
    }
}

extern "C" void cube_pointcloud_apply(long long npt, int msm, const double* xc, int nx, const double* yc, int ny,
                                      const double* zc, const double* coord1, const double* coord2,
                                      const double* wave, const double* flux, const double* err, const double* rois,
                                      const double* scalerad, const double* power, const double* softrad,
                                      const double* zcdelt3, double cdelt1, double cdelt2, const int* ranges,
                                      int w_lo, int w_hi, double* fluxv, double* weightv, double* varv,
                                      double* ifluxv)
{
    for (long long k = 0; k < npt; ++k) {
        const int* r = ranges + 6 * k;
        int w0 = r[4] > w_lo ? r[4] : w_lo;
        int w1 = r[5] < w_hi ? r[5] : w_hi;
        if (w0 >= w1) {
            continue;
        }
        for (int ix = r[0]; ix < r[1]; ++ix) {
            for (int iy = r[2]; iy < r[3]; ++iy) {
                double xdist = fabs(xc[ix] - coord1[k]);
                double ydist = fabs(yc[iy] - coord2[k]);
                if (!(sqrt(xdist * xdist + ydist * ydist) <= rois[k])) {
                    continue;
                }
                for (int iw = w0; iw < w1; ++iw) {
                    double r2 = pointcloud_distance2(xdist, ydist, wave[k], zc[iw], zcdelt3[iw], cdelt1, cdelt2);
                    double ww = msm ? msm_weight(r2, power[k], softrad[k]) : emsm_weight(r2, scalerad[k], cdelt1);
                    add_to_voxel(((long long)iw * ny + iy) * nx + ix, ww, flux[k], err[k], fluxv, weightv, varv,
                                 ifluxv);
                }
            }
        }
    }
}

// ranges as drizzle_count_kernel; a point with a non-finite corner, wavelength or width gets
// an empty plane range.
extern "C" void cube_drizzle_ranges(long long k0, long long k1, const double* xc, int nx, const double* yc, int ny,
                                    const double* zc, int nz, const double* wave, const double* xi,
                                    const double* eta, const double* dwave, double max_abs_cdelt3, double cdelt1,
                                    double cdelt2, int* ranges)
{
    for (long long k = k0; k < k1; ++k) {
        int* r = ranges + 6 * k;
        const double* x4 = xi + 4 * k;
        const double* y4 = eta + 4 * k;
        double xmin = x4[0], xmax = x4[0], ymin = y4[0], ymax = y4[0];
        bool finite = isfinite(wave[k]) && isfinite(dwave[k]);
        for (int j = 0; j < 4; ++j) {
            finite = finite && isfinite(x4[j]) && isfinite(y4[j]);
            xmin = x4[j] < xmin ? x4[j] : xmin;
            xmax = x4[j] > xmax ? x4[j] : xmax;
            ymin = y4[j] < ymin ? y4[j] : ymin;
            ymax = y4[j] > ymax ? y4[j] : ymax;
        }
        driz_spatial_bracket(xmin, xmax, cdelt1 / 2.0, xc[0], cdelt1, nx, r + 0, r + 1);
        driz_spatial_bracket(ymin, ymax, cdelt2 / 2.0, yc[0], cdelt2, ny, r + 2, r + 3);
        double guard = (fabs(dwave[k]) + max_abs_cdelt3) * (1 + 1e-9) + 1e-300;
        int w0 = lower_bound(zc, nz, wave[k] - guard) - 1;
        int w1 = lower_bound(zc, nz, wave[k] + guard) + 1;
        r[4] = w0 < 0 ? 0 : (w0 > nz ? nz : w0);
        r[5] = w1 > nz ? nz : w1;
        if (!finite) {
            r[5] = r[4];
        }
    }
}

extern "C" void cube_drizzle_apply(long long npt, const double* xc, int nx, const double* yc, int ny,
                                   const double* zc, const double* wave, const double* flux, const double* err,
                                   const double* xi, const double* eta, const double* dwave, const double* cdelt3,
                                   double cdelt1, double cdelt2, const int* ranges, int w_lo, int w_hi,
                                   double* fluxv, double* weightv, double* varv, double* ifluxv)
{
    for (long long k = 0; k < npt; ++k) {
        const int* r = ranges + 6 * k;
        int w0 = r[4] > w_lo ? r[4] : w_lo;
        int w1 = r[5] < w_hi ? r[5] : w_hi;
        // a point whose planes in this band all have zero spectral overlap adds nothing: skip
        // its polygon clipping (weight = area * zo > 0 needs zo > 0)
        bool any_plane = false;
        for (int iw = w0; iw < w1 && !any_plane; ++iw) {
            any_plane = fabs(zc[iw] - wave[k]) < fabs(dwave[k] + cdelt3[iw]) &&
                        wave_overlap(wave[k], dwave[k], zc[iw], cdelt3[iw]) > 0;
        }
        if (!any_plane) {
            continue;
        }
        const double* x4 = xi + 4 * k;
        const double* y4 = eta + 4 * k;
        double xmin = x4[0], xmax = x4[0], ymin = y4[0], ymax = y4[0];
        for (int j = 1; j < 4; ++j) {
            xmin = x4[j] < xmin ? x4[j] : xmin;
            xmax = x4[j] > xmax ? x4[j] : xmax;
            ymin = y4[j] < ymin ? y4[j] : ymin;
            ymax = y4[j] > ymax ? y4[j] : ymax;
        }
        for (int ix = r[0]; ix < r[1]; ++ix) {
            for (int iy = r[2]; iy < r[3]; ++iy) {
                double xleft = xc[ix] - cdelt1 * 0.5;
                double xright = xc[ix] + cdelt1 * 0.5;
                double ybot = yc[iy] - cdelt2 * 0.5;
                double ytop = yc[iy] + cdelt2 * 0.5;
                if (!(xleft < xmax && xright > xmin && ybot < ymax && ytop > ymin)) {
                    continue;
                }
                double area = overlap_area(xc[ix], yc[iy], cdelt1, cdelt2, x4, y4);
                for (int iw = w0; iw < w1; ++iw) {
                    if (!(fabs(zc[iw] - wave[k]) < fabs(dwave[k] + cdelt3[iw]))) {
                        continue;
                    }
                    double weight = area * wave_overlap(wave[k], dwave[k], zc[iw], cdelt3[iw]);
                    if (weight > 0) {
                        add_to_voxel(((long long)iw * ny + iy) * nx + ix, weight, flux[k], err[k], fluxv, weightv,
                                     varv, ifluxv);
                    }
                }
            }
        }
    }
}

GPUCAL_EXPORT_HOST_LAUNCHER(pointcloud_count_kernel)
GPUCAL_EXPORT_HOST_LAUNCHER(pointcloud_emit_kernel)
GPUCAL_EXPORT_HOST_LAUNCHER(drizzle_count_kernel)
GPUCAL_EXPORT_HOST_LAUNCHER(drizzle_emit_kernel)
GPUCAL_EXPORT_HOST_LAUNCHER(segment_sum_kernel)

// Per-element entry points for the host-build tests (tests/test_cube_kernel_host.py).
extern "C" void portable_exp_host(const double* x, double* out, long long n)
{
    for (long long i = 0; i < n; ++i) out[i] = portable_exp(x[i]);
}
extern "C" void portable_pow_host(const double* s, const double* p, double* out, long long n)
{
    for (long long i = 0; i < n; ++i) out[i] = portable_pow(s[i], p[i]);
}
extern "C" void overlap_area_host(const double* xcen, const double* ycen, double xlen, double ylen, const double* xi,
                                  const double* eta, double* out, long long n)
{
    for (long long i = 0; i < n; ++i) out[i] = overlap_area(xcen[i], ycen[i], xlen, ylen, xi + 4 * i, eta + 4 * i);
}
#endif
