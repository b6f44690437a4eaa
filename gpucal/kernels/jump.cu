// Two-point-difference jump detection, as stcal 1.20 detect_jumps_data (single process).
//
// Spec: ../shared/specs/jump.md (section numbers below refer to it).
// Twin: cpu_fallback/jump.py -- the same functions, names and order of operations,
// vectorised over pixels. Two kernels:
//
//   two_point_kernel   one thread per pixel: electrons, first differences, pooled median
//                      and sigma (3), the iterative clipped-median search (5.1) or the
//                      single pass (5.2), and per-group marks for the second kernel.
//   neighbour_kernel   one thread per output pixel: a gather over the pixel's and its four
//                      neighbours' marks and JUMP_DET flags (6), after-jump flagging (7)
//                      and the final clean-up (8). Rows come with a one-row halo.
//
// Float32 where the reference is float32 (data*gain, the group difference, the clipped
// excess, the median after the first pass), double elsewhere. No FMA contraction.
//
// Array layouts (C order):
//   two_point_kernel: data, groupdq, gdq_out, marks  (nints, ngroups, npix)
//                     gain, rn2 (npix) float32; median_out, sigma_out (npix) double
//                     scratch (nints*(ngroups-1), npix) double: per-pixel sort space
//   neighbour_kernel: gdq_in, marks (nints, ngroups, rows_in*nx), gdq_out (nints, ngroups, rows*nx)

#include "dq_flags.cuh"
#include "numeric.cuh"

typedef unsigned char u8;

#define INVALID_FLAGS (GPUCAL_DO_NOT_USE | GPUCAL_SATURATED)
#define MODE_ITERATIVE 0
#define MODE_SINGLE_PASS 1
#define MODE_NONE 2
#define MARK_NEIGHBOUR 1u
#define MARK_AFTER1 2u
#define MARK_AFTER2 4u
#define MARK_REMOVED 128u

// Exposure-wide constants (cpu_fallback.jump.JumpParams).
struct JumpParams {
    int nints, ngroups, nframes, mode;
    i64 npix;
    double rejection_threshold, three_group_rejection_threshold, four_group_rejection_threshold;
    double min_jump_to_flag_neighbors, max_jump_to_flag_neighbors, after_jump_e1, after_jump_e2;
};

// One pixel's view of the block.
struct PixelRamp {
    const float* data;
    const u8* groupdq;
    u8* gdq_out;
    u8* marks;
    double* scratch;
    float gain, rn2;
    i64 p;
};

__host__ __device__ inline i64 sample_index(const JumpParams& fp, const PixelRamp& px, int integ, int group)
{
    return ((i64)integ * fp.ngroups + group) * fp.npix + px.p;
}

// Group value in electrons (float32), NaN in DO_NOT_USE or SATURATED groups (3.2, 3.3).
__host__ __device__ inline float electrons(const JumpParams& fp, const PixelRamp& px, int integ, int group)
{
    i64 k = sample_index(fp, px, integ, group);
    float e = px.data[k] * px.gain;
    if (px.groupdq[k] & INVALID_FLAGS) {
        return (float)GPUCAL_NAN;
    }
    return e;
}

// D[i, j] = double(float32(E[i, j+1] - E[i, j])) (3.4).
__host__ __device__ inline double first_difference(const JumpParams& fp, const PixelRamp& px, int integ, int j)
{
    float d = electrons(fp, px, integ, j + 1) - electrons(fp, px, integ, j);
    return (double)d;
}

// Restore the max-heap property below `root` in the heap a[0 .. end-1] (stride apart).
__host__ __device__ inline void sift_down(double* a, i64 stride, int root, int end)
{
    for (;;) {
        int child = 2 * root + 1;
        if (child >= end) {
            return;
        }
        if (child + 1 < end && a[(i64)(child + 1) * stride] > a[(i64)child * stride]) {
            child++;
        }
        if (a[(i64)root * stride] >= a[(i64)child * stride]) {
            return;
        }
        double t = a[(i64)root * stride];
        a[(i64)root * stride] = a[(i64)child * stride];
        a[(i64)child * stride] = t;
        root = child;
    }
}

// Heap sort of a[0], a[stride], ..., a[(n-1)*stride] (no NaN), ascending, in place:
// O(n log n), no recursion, no extra memory (MIRI ramps pool thousands of differences).
__host__ __device__ inline void sort_values(double* a, i64 stride, int n)
{
    for (int root = n / 2 - 1; root >= 0; --root) {
        sift_down(a, stride, root, n);
    }
    for (int end = n - 1; end > 0; --end) {
        double top = a[0];
        a[0] = a[(i64)end * stride];
        a[(i64)end * stride] = top;
        sift_down(a, stride, 0, end);
    }
}

// Median of the first m sorted values (numpy nanmedian semantics); NaN when m == 0.
__host__ __device__ inline double median_of_sorted(const double* s, i64 stride, int m)
{
    if (m == 0) {
        return GPUCAL_NAN;
    }
    double upper = s[(i64)(m / 2) * stride];
    if (m & 1) {
        return upper;
    }
    double lower = s[(i64)(m / 2 - 1) * stride];
    return (lower + upper) / 2.0;
}

// sqrt(|median| + rn2/nframes); 0 becomes NaN (3.4, 5.1).
__host__ __device__ inline double noise_sigma(double median, float rn2, int nframes)
{
    double sigma = sqrt(fabs(median) + (double)rn2 / (double)nframes);
    return sigma == 0.0 ? GPUCAL_NAN : sigma;
}

// Pooled median of every usable first difference of the pixel (3.4).
__host__ __device__ inline double sorted_median(const JumpParams& fp, const PixelRamp& px)
{
    int ndiffs = fp.ngroups - 1;
    int n = 0;
    for (int i = 0; i < fp.nints; ++i) {
        for (int j = 0; j < ndiffs; ++j) {
            double d = first_difference(fp, px, i, j);
            if (!isnan(d)) {
                px.scratch[(i64)n * fp.npix + px.p] = d;
                n++;
            }
        }
    }
    double* s = px.scratch + px.p;
    sort_values(s, fp.npix, n);
    // -0.0 and +0.0 tie in any sort; + 0.0 makes the middle value +0.0 whichever sits there.
    return median_of_sorted(s, fp.npix, n) + 0.0;
}

// |D|, or NaN once the iterative search has removed the difference (5.1).
__host__ __device__ inline double abs_difference(const JumpParams& fp, const PixelRamp& px, int integ, int j)
{
    if (px.marks[sample_index(fp, px, integ, j + 1)] & MARK_REMOVED) {
        return GPUCAL_NAN;
    }
    return fabs(first_difference(fp, px, integ, j));
}

// Median of the absolute differences with the maximum clipped, by usable count U (5.1).
__host__ __device__ inline double clipped_median(const JumpParams& fp, const PixelRamp& px, int* usable)
{
    int ndiffs = fp.ngroups - 1;
    int u = 0;
    for (int i = 0; i < fp.nints; ++i) {
        for (int j = 0; j < ndiffs; ++j) {
            double a = abs_difference(fp, px, i, j);
            if (!isnan(a)) {
                px.scratch[(i64)u * fp.npix + px.p] = a;
                u++;
            }
        }
    }
    *usable = u;
    if (u < 2) {
        return GPUCAL_NAN;
    }
    double* s = px.scratch + px.p;
    sort_values(s, fp.npix, u);
    if (u == 2) {
        return s[0];
    }
    int m = u;
    if (u >= 4) {
        double top = s[(i64)(u - 1) * fp.npix];
        while (m > 0 && s[(i64)(m - 1) * fp.npix] == top) {
            m--;
        }
    }
    return median_of_sorted(s, fp.npix, m);
}

// Threshold by the number of usable differences; NaN (never exceeded) below 2 (5.1).
__host__ __device__ inline double rejection_threshold_for(const JumpParams& fp, int u)
{
    if (u >= 4) return fp.rejection_threshold;
    if (u == 3) return fp.four_group_rejection_threshold;
    if (u == 2) return fp.three_group_rejection_threshold;
    return GPUCAL_NAN;
}

// |float32(A - M)| / sigma, or -1 where that is NaN (5.1).
__host__ __device__ inline double jump_ratio(double a, double median, double sigma)
{
    float e = (float)(a - median);
    double rho = fabs((double)e) / sigma;
    return isnan(rho) ? -1.0 : rho;
}

// Iterative clipped-median search (5.1): flag the largest outlier, clip it, repeat.
__host__ __device__ inline void iterative_search(const JumpParams& fp, const PixelRamp& px)
{
    int ndiffs = fp.ngroups - 1;
    int max_passes = fp.nints * ndiffs;
    for (int npass = 0; npass < max_passes; ++npass) {
        int u = 0;
        double median = clipped_median(fp, px, &u);
        if (npass > 0) {
            median = (double)(float)median;
        }
        double sigma = noise_sigma(median, px.rn2, fp.nframes);
        double threshold = rejection_threshold_for(fp, u);
        double pix_max = -1.0;
        for (int i = 0; i < fp.nints; ++i) {
            for (int j = 0; j < ndiffs; ++j) {
                double rho = jump_ratio(abs_difference(fp, px, i, j), median, sigma);
                pix_max = rho > pix_max ? rho : pix_max;
            }
        }
        bool any_flag = false;
        for (int i = 0; i < fp.nints; ++i) {
            double int_max = -1.0;
            for (int j = 0; j < ndiffs; ++j) {
                double rho = jump_ratio(abs_difference(fp, px, i, j), median, sigma);
                int_max = rho > int_max ? rho : int_max;
            }
            if (!(int_max > threshold)) {
                continue;
            }
            for (int j = 0; j < ndiffs; ++j) {
                double rho = jump_ratio(abs_difference(fp, px, i, j), median, sigma);
                if (rho == pix_max && rho >= 0.0) {
                    i64 k = sample_index(fp, px, i, j + 1);
                    px.gdq_out[k] |= (u8)GPUCAL_JUMP_DET;
                    px.marks[k] |= (u8)MARK_REMOVED;
                    any_flag = true;
                }
            }
        }
        if (!any_flag) {
            break;
        }
    }
}

// One pass against the pooled signed median, 4-sigma threshold (5.2).
__host__ __device__ inline void single_pass(const JumpParams& fp, const PixelRamp& px, double median, double sigma)
{
    for (int i = 0; i < fp.nints; ++i) {
        for (int g = 1; g < fp.ngroups; ++g) {
            double diff = first_difference(fp, px, i, g - 1);
            double rho = fabs(diff - median) / sigma;
            if (rho > fp.rejection_threshold && isfinite(diff)) {
                px.gdq_out[sample_index(fp, px, i, g)] |= (u8)GPUCAL_JUMP_DET;
            }
        }
    }
}

// Per-group facts about this pixel that the neighbour kernel needs (6, 7).
__host__ __device__ inline void jump_marks(const JumpParams& fp, const PixelRamp& px, double median, double sigma)
{
    for (int i = 0; i < fp.nints; ++i) {
        px.marks[sample_index(fp, px, i, 0)] = 0;
        for (int g = 1; g < fp.ngroups; ++g) {
            double diff = first_difference(fp, px, i, g - 1);
            double rho = fabs(diff - median) / sigma;
            double excess = diff - median;
            u8 m = 0;
            if (rho > fp.min_jump_to_flag_neighbors && rho < fp.max_jump_to_flag_neighbors) m |= (u8)MARK_NEIGHBOUR;
            if (excess >= fp.after_jump_e1) m |= (u8)MARK_AFTER1;
            if (excess >= fp.after_jump_e2) m |= (u8)MARK_AFTER2;
            px.marks[sample_index(fp, px, i, g)] = m;
        }
    }
}

// Sections 3-5 for one pixel (cpu_fallback.jump.two_point_block).
__host__ __device__ inline void two_point_pixel(const JumpParams& fp, const PixelRamp& px, double* median_out,
                                                double* sigma_out)
{
    for (int i = 0; i < fp.nints; ++i) {
        for (int g = 0; g < fp.ngroups; ++g) {
            i64 k = sample_index(fp, px, i, g);
            px.gdq_out[k] = px.groupdq[k];
            px.marks[k] = 0;
        }
    }
    double median = sorted_median(fp, px);
    double sigma = noise_sigma(median, px.rn2, fp.nframes);
    median_out[px.p] = median;
    sigma_out[px.p] = sigma;
    if (fp.mode == MODE_ITERATIVE) {
        iterative_search(fp, px);
    } else if (fp.mode == MODE_SINGLE_PASS) {
        single_pass(fp, px, median, sigma);
    }
    jump_marks(fp, px, median, sigma);
}

extern "C" __global__ void two_point_kernel(const float* data, const u8* groupdq, const float* gain, const float* rn2,
                                            u8* gdq_out, u8* marks, double* median_out, double* sigma_out,
                                            double* scratch, int nints, int ngroups, i64 npix, int nframes, int mode,
                                            double rejection_threshold, double three_group_rejection_threshold,
                                            double four_group_rejection_threshold, double min_jump_to_flag_neighbors,
                                            double max_jump_to_flag_neighbors, double after_jump_e1,
                                            double after_jump_e2)
{
    JumpParams fp;
    fp.nints = nints;
    fp.ngroups = ngroups;
    fp.nframes = nframes;
    fp.mode = mode;
    fp.npix = npix;
    fp.rejection_threshold = rejection_threshold;
    fp.three_group_rejection_threshold = three_group_rejection_threshold;
    fp.four_group_rejection_threshold = four_group_rejection_threshold;
    fp.min_jump_to_flag_neighbors = min_jump_to_flag_neighbors;
    fp.max_jump_to_flag_neighbors = max_jump_to_flag_neighbors;
    fp.after_jump_e1 = after_jump_e1;
    fp.after_jump_e2 = after_jump_e2;
    i64 stride = (i64)blockDim.x * gridDim.x;
    for (i64 p = (i64)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
        PixelRamp px = {data, groupdq, gdq_out, marks, scratch, gain[p], rn2[p], p};
        two_point_pixel(fp, px, median_out, sigma_out);
    }
}

// ---------------------------------------------------------------------------------------
// Second kernel: neighbours, after-jump flags, clean-up (6-8).

struct HaloBlock {
    const u8* gdq_in;
    const u8* marks;
    int nints, ngroups, nx, rows_in;
    i64 npix_in;
};

// A jump in plane (integ, group) at (y, x) that spreads to the four neighbours (6).
__host__ __device__ inline bool neighbour_seed(const HaloBlock& hb, int integ, int group, int y, int x)
{
    i64 k = ((i64)integ * hb.ngroups + group) * hb.npix_in + (i64)y * hb.nx + x;
    return (hb.marks[k] & MARK_NEIGHBOUR) && (hb.gdq_in[k] & GPUCAL_JUMP_DET);
}

// Plus-shaped dilation of the seeds at (y, x), clipped at the halo block's edges.
__host__ __device__ inline bool dilated_seed(const HaloBlock& hb, int integ, int group, int y, int x)
{
    return neighbour_seed(hb, integ, group, y, x) || (y > 0 && neighbour_seed(hb, integ, group, y - 1, x)) ||
           (y + 1 < hb.rows_in && neighbour_seed(hb, integ, group, y + 1, x)) ||
           (x > 0 && neighbour_seed(hb, integ, group, y, x - 1)) ||
           (x + 1 < hb.nx && neighbour_seed(hb, integ, group, y, x + 1));
}

// Clear JUMP_DET where it coexists with DO_NOT_USE, then with SATURATED (8).
__host__ __device__ inline u8 clear_jump_conflicts(u8 q)
{
    const u8 jump_dnu = (u8)(GPUCAL_JUMP_DET | GPUCAL_DO_NOT_USE);
    const u8 jump_sat = (u8)(GPUCAL_JUMP_DET | GPUCAL_SATURATED);
    if ((q & jump_dnu) == jump_dnu) q ^= (u8)GPUCAL_JUMP_DET;
    if ((q & jump_sat) == jump_sat) q ^= (u8)GPUCAL_JUMP_DET;
    return q;
}

// Sections 6-8 for the output pixel at halo row y, column x.
__host__ __device__ inline void neighbour_pixel(const HaloBlock& hb, u8* gdq_out, i64 npix_out, i64 p_out, int y,
                                                int x, int flag_4_neighbors, int n1, int n2)
{
    i64 p_in = (i64)y * hb.nx + x;
    for (int i = 0; i < hb.nints; ++i) {
        int reach1 = -1;
        int reach2 = -1;
        for (int g = 0; g < hb.ngroups; ++g) {
            i64 k = ((i64)i * hb.ngroups + g) * hb.npix_in + p_in;
            u8 q = hb.gdq_in[k];
            u8 m = hb.marks[k];
            bool valid = (q & INVALID_FLAGS) == 0;
            if (flag_4_neighbors && g >= 1) {
                if (dilated_seed(hb, i, g, y, x) && valid) {
                    q |= (u8)GPUCAL_JUMP_DET;
                }
            }
            if (n1 > 0 || n2 > 0) {
                if (g >= 1) {
                    bool jumped = (q & GPUCAL_JUMP_DET) != 0;
                    if (jumped && (m & MARK_AFTER1) && g + n1 > reach1) reach1 = g + n1;
                    if (jumped && (m & MARK_AFTER2) && g + n2 > reach2) reach2 = g + n2;
                }
                if ((g <= reach1 || g <= reach2) && valid) {
                    q |= (u8)GPUCAL_JUMP_DET;
                }
            }
            gdq_out[((i64)i * hb.ngroups + g) * npix_out + p_out] = clear_jump_conflicts(q);
        }
    }
}

extern "C" __global__ void neighbour_kernel(const u8* gdq_in, const u8* marks, u8* gdq_out, int nints, int ngroups,
                                            int nx, int halo_top, int rows, int rows_in, int flag_4_neighbors, int n1,
                                            int n2)
{
    HaloBlock hb;
    hb.gdq_in = gdq_in;
    hb.marks = marks;
    hb.nints = nints;
    hb.ngroups = ngroups;
    hb.nx = nx;
    hb.rows_in = rows_in;
    hb.npix_in = (i64)rows_in * nx;
    i64 npix_out = (i64)rows * nx;
    i64 stride = (i64)blockDim.x * gridDim.x;
    for (i64 p = (i64)blockIdx.x * blockDim.x + threadIdx.x; p < npix_out; p += stride) {
        int y = (int)(p / nx) + halo_top;
        int x = (int)(p % nx);
        neighbour_pixel(hb, gdq_out, npix_out, p, y, x, flag_4_neighbors, n1, n2);
    }
}

#ifdef GPUCAL_HOST_BUILD
GPUCAL_EXPORT_HOST_LAUNCHER(two_point_kernel)
GPUCAL_EXPORT_HOST_LAUNCHER(neighbour_kernel)
#endif
