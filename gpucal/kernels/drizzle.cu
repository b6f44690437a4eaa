// Drizzle (drizzle 2.2.0 cdrizzlebox.c), deterministic: emit, sort, replay.
//
// Spec: ../shared/specs/resample.md sections 2.3, 3, 4, 5 and 9 (design 1).
// Twin: cpu_fallback/drizzle.py -- the same functions, names and order of operations,
// vectorised over input pixels and records.
//
//   drizzle_count   one thread per input pixel of a row block: the number of output cells
//                   in its kernel box (0 when its map is NaN);
//   drizzle_emit    one thread per input pixel: one record per box cell, written at the
//                   pixel's offset (an exclusive scan of the counts), so records lie in
//                   reference order (input row, input column, output row, output column).
//                   key = (out_index << rec_bits) | record, out_index = onx*ony for a zero
//                   weight (rec_bits: cpu_fallback.drizzle.record_bits, 32 below 2^31 outputs);
//   drizzle_replay  after an ascending sort of the keys: one thread per run of equal
//                   out_index replays the running weighted mean (and the squared-weight
//                   planes and DQ of the _var variant) in record order, and ORs the context
//                   bit where the weight is > 0.
//
// Pixels are given by their linear input index (j*nx + i) in `pix`, in scanner order.
// Layouts (C order): pixmap (ny, nx, 2) float64; data, weights (ny, nx) float32;
// data2 (ndata2, ny, nx) float32; dq (ny, nx) uint32; out_img, out_wht (ony, onx) float32;
// out_img2 (ndata2, ony, onx) float32; out_ctx (ony, onx) int32; out_dq (ony, onx) uint32.

#include "numeric.cuh"

#define KERNEL_SQUARE 0
#define KERNEL_GAUSSIAN 1
#define KERNEL_POINT 2
#define KERNEL_TURBO 3
#define KERNEL_LANCZOS 4

// C round(): half away from zero.
__host__ __device__ inline double c_round(double x)
{
    return round(x);
}

// max(v, 0) and min(v, n - 1) of a rounded coordinate, clamped so that an out-of-range
// value gives an empty range instead of an undefined int conversion.
__host__ __device__ inline int range_lo(double r, int n)
{
    double v = r > 0.0 ? r : 0.0;
    return v < (double)n ? (int)v : n;
}

__host__ __device__ inline int range_hi(double r, int n)
{
    double v = r < (double)(n - 1) ? r : (double)(n - 1);
    return v > -1.0 ? (int)v : -1;
}

// Bilinear interpolation of the map (map.c::interpolate_point); false when NaN.
__host__ __device__ inline bool interpolate_point(const double* pixmap, int nx, int ny, double xin, double yin,
                                                  double* xout, double* yout)
{
    int i0 = (int)xin;
    int j0 = (int)yin;
    if (i0 < 0) {
        i0 = 0;
    } else if (i0 > nx - 2) {
        i0 = nx - 2;
    }
    if (j0 < 0) {
        j0 = 0;
    } else if (j0 > ny - 2) {
        j0 = ny - 2;
    }
    double x = xin - i0;
    double y = yin - j0;
    double x1 = 1.0 - x;
    double y1 = 1.0 - y;
    const double* p00 = pixmap + 2 * ((i64)j0 * nx + i0);
    const double* p10 = p00 + 2;
    const double* p01 = p00 + 2 * (i64)nx;
    const double* p11 = p01 + 2;
    *xout = p00[0] * x1 * y1 + p10[0] * x * y1 + p01[0] * x1 * y + p11[0] * x * y;
    *yout = p00[1] * x1 * y1 + p10[1] * x * y1 + p01[1] * x1 * y + p11[1] * x * y;
    return !(isnan(*xout) || isnan(*yout));
}

// The four corners of the shrunken pixel (i, j), clockwise (map.c::interpolate_four_points
// inside the map, interpolate_point per corner on its outer ring); false when any is NaN.
__host__ __device__ inline bool square_corners(const double* pixmap, int nx, int ny, int i, int j, double h,
                                               double* xo, double* yo)
{
    if (i > 0 && i < nx - 2 && j > 0 && j < ny - 2) {
        double f[3][3], g[3][3];
        for (int b = 0; b <= 2; ++b) {
            for (int a = 0; a <= 2; ++a) {
                const double* p = pixmap + 2 * ((i64)(j - 1 + b) * nx + (i - 1 + a));
                double fac;
                if (a == 1 && b == 1) {
                    fac = (1 - h) * (1 - h);
                } else if (a == 1 || b == 1) {
                    fac = (1 - h) * h;
                } else {
                    fac = h * h;
                }
                f[a][b] = p[0] * fac;
                g[a][b] = p[1] * fac;
            }
        }
        xo[0] = f[0][1] + f[1][1] + f[0][2] + f[1][2];
        yo[0] = g[0][1] + g[1][1] + g[0][2] + g[1][2];
        xo[1] = f[1][1] + f[2][1] + f[1][2] + f[2][2];
        yo[1] = g[1][1] + g[2][1] + g[1][2] + g[2][2];
        xo[2] = f[1][0] + f[2][0] + f[1][1] + f[2][1];
        yo[2] = g[1][0] + g[2][0] + g[1][1] + g[2][1];
        xo[3] = f[0][0] + f[1][0] + f[0][1] + f[1][1];
        yo[3] = g[0][0] + g[1][0] + g[0][1] + g[1][1];
        for (int k = 0; k < 4; ++k) {
            if (isnan(xo[k]) || isnan(yo[k])) {
                return false;
            }
        }
        return true;
    }
    double yin_hi = (double)j + h;
    double yin_lo = (double)j - h;
    double xin_lo = (double)i - h;
    double xin_hi = (double)i + h;
    double xin[4] = {xin_lo, xin_hi, xin_hi, xin_lo};
    double yin[4] = {yin_hi, yin_hi, yin_lo, yin_lo};
    for (int k = 0; k < 4; ++k) {
        if (!interpolate_point(pixmap, nx, ny, xin[k], yin[k], xo + k, yo + k)) {
            return false;
        }
    }
    return true;
}

// Signed area under the segment inside the unit square (box.c::sgarea).
__host__ __device__ inline double sgarea(double x1, double y1, double x2, double y2)
{
    double dx = x2 - x1;
    double dy = y2 - y1;
    if (dx == 0) {
        return 0.0;
    }
    double s, lo, hi;
    if (dx < 0) {
        s = -1.0;
        lo = x2;
        hi = x1;
    } else {
        s = 1.0;
        lo = x1;
        hi = x2;
    }
    if (lo >= 1.0 || hi <= 0.0) {
        return 0.0;
    }
    lo = lo > 0.0 ? lo : 0.0;
    hi = hi < 1.0 ? hi : 1.0;
    double slope = dy / dx;
    double ylo = y1 + slope * (lo - x1);
    double yhi = y1 + slope * (hi - x1);
    if (ylo <= 0.0 && yhi <= 0.0) {
        return 0.0;
    }
    if (ylo >= 1.0 && yhi >= 1.0) {
        return s * (hi - lo);
    }
    double det = x1 * y2 - y1 * x2;
    if (ylo < 0.0) {
        ylo = 0.0;
        lo = det / dy;
    }
    if (yhi < 0.0) {
        yhi = 0.0;
        hi = det / dy;
    }
    if (ylo <= 1.0) {
        if (yhi <= 1.0) {
            return s * 0.5 * (hi - lo) * (yhi + ylo);
        }
        double xtop = (dx + det) / dy;
        return s * (0.5 * (xtop - lo) * (1.0 + ylo) + hi - xtop);
    }
    double xtop = (dx + det) / dy;
    return s * (0.5 * (hi - xtop) * (1.0 + yhi) + xtop - lo);
}

// Overlap of the quadrilateral with output pixel (ii, jj) (box.c::boxer).
__host__ __device__ inline double boxer(double is, double js, const double* x, const double* y)
{
    is -= 0.5;
    js -= 0.5;
    double px[4], py[4];
    for (int k = 0; k < 4; ++k) {
        px[k] = x[k] - is;
        py[k] = y[k] - js;
    }
    double sum = 0.0;
    for (int k = 0; k < 4; ++k) {
        sum += sgarea(px[k], py[k], px[(k + 1) & 3], py[(k + 1) & 3]);
    }
    return sum;
}

// exp(x) for x <= 0 shared by both backends (gaussian kernel): Cody-Waite reduction by
// ln 2 and a degree-13 Taylor polynomial in Horner form; 0 below -200, where drizzle's
// f32 weight is 0 too.
__host__ __device__ inline double shared_exp(double x)
{
    if (x < -200.0) {
        return 0.0;
    }
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double inv_ln2 = 1.44269504088896338700e+00;
    double k = floor(x * inv_ln2 + 0.5);
    double r = (x - k * ln2_hi) - k * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    return ldexp(p, (int)k);
}

// Kernel constants of one call (host-computed, spec section 4).
struct DrizzleConsts {
    int kernel;
    double dh;     // square: 0.5 * pixfrac
    double pfo;    // turbo, gaussian, lanczos: half-width of the box
    double scale;  // turbo: dover_scale; gaussian: efac
    double es;     // gaussian: efac / pi
    double sdp;    // lanczos: pscale_ratio / 0.003
    int nlut;
};

// Geometry of one input pixel: its output box and what the cell weights need.
struct PixelGeom {
    double x[4], y[4];  // square corners; x[0], y[0] = mapped centre for the other kernels
    double w;           // f64(wi) (square: f64(wi) / jacobian)
    int ii0, ii1, jj0, jj1;
};

// Box and weight factor of input pixel (i, j); false (empty box) when its map is NaN.
__host__ __device__ inline bool pixel_geometry(const DrizzleConsts& c, const double* pixmap, int nx, int ny, int onx,
                                               int ony, int i, int j, float wi, PixelGeom* g)
{
    g->ii0 = 0;
    g->ii1 = -1;
    g->jj0 = 0;
    g->jj1 = -1;
    if (c.kernel == KERNEL_SQUARE) {
        if (!square_corners(pixmap, nx, ny, i, j, c.dh, g->x, g->y)) {
            return false;
        }
        double jaco = 0.5 * ((g->x[1] - g->x[3]) * (g->y[0] - g->y[2]) - (g->x[0] - g->x[2]) * (g->y[1] - g->y[3]));
        g->w = (double)wi / jaco;
        double xmn = 1.7976931348623157e308, ymn = 1.7976931348623157e308;
        double xmx = 2.2250738585072014e-308, ymx = 2.2250738585072014e-308;
        for (int k = 0; k < 4; ++k) {
            if (g->x[k] < xmn) {
                xmn = g->x[k];
            }
            if (g->x[k] > xmx) {
                xmx = g->x[k];
            }
            if (g->y[k] < ymn) {
                ymn = g->y[k];
            }
            if (g->y[k] > ymx) {
                ymx = g->y[k];
            }
        }
        g->jj0 = range_lo(c_round(ymn), ony);
        g->jj1 = range_hi(c_round(ymx), ony);
        g->ii0 = range_lo(c_round(xmn), onx);
        g->ii1 = range_hi(c_round(xmx), onx);
        return true;
    }
    const double* p = pixmap + 2 * ((i64)j * nx + i);
    double ox = p[0];
    double oy = p[1];
    if (isnan(ox) || isnan(oy)) {
        return false;
    }
    g->x[0] = ox;
    g->y[0] = oy;
    g->w = (double)wi;
    if (c.kernel == KERNEL_POINT) {
        double ri = c_round(ox);
        double rj = c_round(oy);
        if (ri >= 0.0 && ri < (double)onx && rj >= 0.0 && rj < (double)ony) {
            g->ii0 = g->ii1 = (int)ri;
            g->jj0 = g->jj1 = (int)rj;
        }
    } else if (c.kernel == KERNEL_LANCZOS) {
        g->ii0 = range_lo(floor(ox - c.pfo) + 1.0, onx);
        g->ii1 = range_hi(floor(ox + c.pfo), onx);
        g->jj0 = range_lo(floor(oy - c.pfo) + 1.0, ony);
        g->jj1 = range_hi(floor(oy + c.pfo), ony);
    } else {
        g->ii0 = range_lo(c_round(ox - c.pfo), onx);
        g->ii1 = range_hi(c_round(ox + c.pfo), onx);
        g->jj0 = range_lo(c_round(oy - c.pfo), ony);
        g->jj1 = range_hi(c_round(oy + c.pfo), ony);
    }
    return true;
}

// Number of box cells of a pixel.
__host__ __device__ inline i64 box_cells(const PixelGeom& g)
{
    if (g.ii1 < g.ii0 || g.jj1 < g.jj0) {
        return 0;
    }
    return (i64)(g.ii1 - g.ii0 + 1) * (i64)(g.jj1 - g.jj0 + 1);
}

// The weight dow one input pixel gives output cell (ii, jj); 0 for no contribution.
__host__ __device__ inline float cell_weight(const DrizzleConsts& c, const PixelGeom& g, float wi, int ii, int jj,
                                             const double* lut)
{
    if (c.kernel == KERNEL_SQUARE) {
        double dover = boxer((double)ii, (double)jj, g.x, g.y);
        return dover != 0.0 ? (float)(dover * g.w) : 0.0f;
    }
    if (c.kernel == KERNEL_POINT) {
        return wi;
    }
    double ox = g.x[0];
    double oy = g.y[0];
    if (c.kernel == KERNEL_TURBO) {
        double xxi = ox - c.pfo;
        double xxa = ox + c.pfo;
        double yyi = oy - c.pfo;
        double yya = oy + c.pfo;
        double ahi = (double)ii + 0.5;
        double alo = (double)ii - 0.5;
        double bhi = (double)jj + 0.5;
        double blo = (double)jj - 0.5;
        double dx = (xxa < ahi ? xxa : ahi) - (xxi > alo ? xxi : alo);
        double dy = (yya < bhi ? yya : bhi) - (yyi > blo ? yyi : blo);
        double dover = (dx > 0.0 && dy > 0.0) ? dx * dy : 0.0;
        if (!(dover > 0.0)) {
            return 0.0f;
        }
        dover *= c.scale;
        return (float)(dover * g.w);
    }
    if (c.kernel == KERNEL_GAUSSIAN) {
        double ddy = oy - (double)jj;
        double ddx = ox - (double)ii;
        double r2 = ddx * ddx + ddy * ddy;
        double dover = c.es * shared_exp(-r2 * c.scale);
        return (float)((double)(float)dover * g.w);
    }
    double ax = fabs((ox - (double)ii) * c.sdp);
    double ay = fabs((oy - (double)jj) * c.sdp);
    double rx = c_round(ax);
    double ry = c_round(ay);
    if (rx >= (double)c.nlut || ry >= (double)c.nlut) {
        return 0.0f;
    }
    double dover = lut[(int)rx] * lut[(int)ry];
    return (float)(dover * g.w);
}

__host__ __device__ inline DrizzleConsts make_consts(int kernel, double dh, double pfo, double scale, double es,
                                                     double sdp, int nlut)
{
    DrizzleConsts c;
    c.kernel = kernel;
    c.dh = dh;
    c.pfo = pfo;
    c.scale = scale;
    c.es = es;
    c.sdp = sdp;
    c.nlut = nlut;
    return c;
}

extern "C" __global__ void drizzle_count(const long long* pix, long long npix, const double* pixmap,
                                         const float* weights, float wtscale, int nx, int ny, int onx, int ony,
                                         int kernel, double dh, double pfo, double scale, double es, double sdp,
                                         int nlut, long long* counts)
{
    DrizzleConsts c = make_consts(kernel, dh, pfo, scale, es, sdp, nlut);
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < npix; k += stride) {
        long long p = pix[k];
        int j = (int)(p / nx);
        int i = (int)(p - (long long)j * nx);
        float wi = weights[p] * wtscale;
        PixelGeom g;
        counts[k] = pixel_geometry(c, pixmap, nx, ny, onx, ony, i, j, wi, &g) ? box_cells(g) : 0;
    }
}

extern "C" __global__ void drizzle_emit(const long long* pix, long long npix, const double* pixmap,
                                        const float* weights, float wtscale, int nx, int ny, int onx, int ony,
                                        int kernel, double dh, double pfo, double scale, double es, double sdp,
                                        int nlut, const double* lut, const long long* offsets, int rec_bits,
                                        long long* keys, float* dows, int* rec_pixel)
{
    DrizzleConsts c = make_consts(kernel, dh, pfo, scale, es, sdp, nlut);
    long long sentinel = (long long)onx * ony;
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < npix; k += stride) {
        long long p = pix[k];
        int j = (int)(p / nx);
        int i = (int)(p - (long long)j * nx);
        float wi = weights[p] * wtscale;
        PixelGeom g;
        if (!pixel_geometry(c, pixmap, nx, ny, onx, ony, i, j, wi, &g)) {
            continue;
        }
        long long r = offsets[k];
        for (int jj = g.jj0; jj <= g.jj1; ++jj) {
            for (int ii = g.ii0; ii <= g.ii1; ++ii) {
                float dow = cell_weight(c, g, wi, ii, jj, lut);
                long long out = dow != 0.0f ? (long long)jj * onx + ii : sentinel;
                keys[r] = (out << rec_bits) | r;
                dows[r] = dow;
                rec_pixel[r] = (int)k;
                ++r;
            }
        }
    }
}

// One contribution to an output pixel (box.c::update_data / update_data_var).
__host__ __device__ inline void update_pixel(float* o, float* v, float d, float dow)
{
    float vc = *v;
    float vn = vc + dow;
    if (vc == 0.0f) {
        *o = d;
    } else {
        float num = *o * vc + dow * d;
        *o = (float)((double)num / (double)vn);
    }
    *v = vn;
}

__host__ __device__ inline void update_plane2(float* o2, float vc, float vn, float d2, float dow)
{
    if (vc == 0.0f) {
        *o2 = d2;
    } else {
        double vc2 = (double)(vc * vc);
        double dow2 = (double)(dow * dow);
        double vn2 = (double)vn * (double)vn;
        *o2 = (float)(((double)*o2 * vc2 + dow2 * (double)d2) / vn2);
    }
}

// One record (input pixel p onto output pixel out with weight dow) applied to the outputs:
// context bit, squared-weight planes, DQ, then the running weighted mean.
__host__ __device__ inline void apply_record(long long p, long long out, float dow, const float* data, float iscale,
                                             const float* data2, const int* data2_present, int ndata2, long long nin,
                                             float iscale2, const unsigned int* dq, int use_dq, float* out_img,
                                             float* out_wht, float* out_img2, long long nout, int* out_ctx,
                                             int use_ctx, int bit, unsigned int* out_dq)
{
    float d = data[p] * iscale;
    if (use_ctx && dow > 0.0f) {
        out_ctx[out] |= bit;
    }
    float vc = out_wht[out];
    for (int q = 0; q < ndata2; ++q) {
        float d2 = data2_present[q] ? data2[q * nin + p] * iscale2 : 0.0f;
        update_plane2(out_img2 + q * nout + out, vc, vc + dow, d2, dow);
    }
    if (use_dq) {
        out_dq[out] = vc == 0.0f ? dq[p] : (out_dq[out] | dq[p]);
    }
    update_pixel(out_img + out, out_wht + out, d, dow);
}

// Replay of the sorted records [0, nrec) (keys ascending; nrec excludes the zero-weight
// records). ndata2 squared-weight planes; use_dq selects the DQ update.
extern "C" __global__ void drizzle_replay(const long long* keys, long long nrec, int rec_bits, const float* dows,
                                          const int* rec_pixel, const long long* pix, const float* data, float iscale,
                                          const float* data2, const int* data2_present, int ndata2, long long nin,
                                          float iscale2, const unsigned int* dq, int use_dq, float* out_img,
                                          float* out_wht, float* out_img2, long long nout, int* out_ctx, int use_ctx,
                                          int bit, unsigned int* out_dq)
{
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long s = (long long)blockIdx.x * blockDim.x + threadIdx.x; s < nrec; s += stride) {
        long long out = keys[s] >> rec_bits;
        if (s > 0 && (keys[s - 1] >> rec_bits) == out) {
            continue;  // not the head of its run
        }
        for (long long t = s; t < nrec && (keys[t] >> rec_bits) == out; ++t) {
            long long r = keys[t] & ((1LL << rec_bits) - 1);
            apply_record(pix[rec_pixel[r]], out, dows[r], data, iscale, data2, data2_present, ndata2, nin, iscale2,
                         dq, use_dq, out_img, out_wht, out_img2, nout, out_ctx, use_ctx, bit, out_dq);
        }
    }
}

#ifdef GPUCAL_HOST_BUILD
// The CPU backend's compiled path (gpucal/native.py, gpucal/resample/native.py), in drizzle's
// own sequential order: pixel by pixel in scanner order, cell by cell in box order, which is
// the order the sorted replay reproduces, so it gives the same bits as emit/sort/replay
// without the sort. Two phases per chunk of pixels, each split over threads:
//   drizzle_geometry  the PixelGeom and weight of pixels [k0, k1) (threads: pixel ranges);
//   drizzle_apply     their records falling in output rows [row0, row1) (threads: disjoint
//                     row bands, so no output pixel is shared and each sees its records in
//                     order). nshared further images (shared_data[s] onto shared_img[s],
//                     shared_wht[s]) take the same records, without context, squared-weight
//                     planes or DQ (Drizzle.add_image(also=...)).
extern "C" long long drizzle_geom_size()
{
    return (long long)sizeof(PixelGeom);
}

extern "C" void drizzle_geometry(const long long* pix, long long k0, long long k1, const double* pixmap,
                                 const float* weights, float wtscale, int nx, int ny, int onx, int ony, int kernel,
                                 double dh, double pfo, double scale, double es, double sdp, int nlut, PixelGeom* geom,
                                 float* wis)
{
    DrizzleConsts c = make_consts(kernel, dh, pfo, scale, es, sdp, nlut);
    for (long long k = k0; k < k1; ++k) {
        long long p = pix[k];
        int j = (int)(p / nx);
        int i = (int)(p - (long long)j * nx);
        wis[k] = weights[p] * wtscale;
        (void)pixel_geometry(c, pixmap, nx, ny, onx, ony, i, j, wis[k], &geom[k]);  // empty box when false
    }
}

extern "C" void drizzle_apply(const long long* pix, long long npix, const PixelGeom* geom, const float* wis, int nx,
                              int ny, int onx, int ony, int kernel, double dh, double pfo, double scale, double es,
                              double sdp, int nlut, const double* lut, int row0, int row1, const float* data,
                              float iscale, const float* data2, const int* data2_present, int ndata2, float iscale2,
                              const unsigned int* dq, int use_dq, float* out_img, float* out_wht, float* out_img2,
                              int* out_ctx, int use_ctx, int bit, unsigned int* out_dq, int nshared,
                              const float* const* shared_data, float* const* shared_img, float* const* shared_wht)
{
    DrizzleConsts c = make_consts(kernel, dh, pfo, scale, es, sdp, nlut);
    long long nin = (long long)nx * ny;
    long long nout = (long long)onx * ony;
    for (long long k = 0; k < npix; ++k) {
        const PixelGeom& g = geom[k];
        int jj0 = g.jj0 > row0 ? g.jj0 : row0;
        int jj1 = g.jj1 < row1 - 1 ? g.jj1 : row1 - 1;
        long long p = pix[k];
        for (int jj = jj0; jj <= jj1; ++jj) {
            for (int ii = g.ii0; ii <= g.ii1; ++ii) {
                float dow = cell_weight(c, g, wis[k], ii, jj, lut);
                if (dow == 0.0f) {
                    continue;  // the sentinel records of emit
                }
                long long out = (long long)jj * onx + ii;
                apply_record(p, out, dow, data, iscale, data2, data2_present, ndata2, nin, iscale2, dq, use_dq,
                             out_img, out_wht, out_img2, nout, out_ctx, use_ctx, bit, out_dq);
                for (int s = 0; s < nshared; ++s) {
                    update_pixel(shared_img[s] + out, shared_wht[s] + out, shared_data[s][p] * iscale, dow);
                }
            }
        }
    }
}

GPUCAL_EXPORT_HOST_LAUNCHER(drizzle_count)
GPUCAL_EXPORT_HOST_LAUNCHER(drizzle_emit)
GPUCAL_EXPORT_HOST_LAUNCHER(drizzle_replay)
#endif
