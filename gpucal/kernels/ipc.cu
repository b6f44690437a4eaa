// IPC correction, as jwst 3.0.0 ipc/ipc_corr.py::ipc_convolve.
//
// Spec: ../shared/specs/detector1_steps.md section 4.4.
// Twin: cpu_fallback/ipc.py -- the same functions, names and order of operations,
// vectorised over pixels. Two kernels, one thread per output pixel:
//
//   ipc_2d_kernel   one (kh, kw) kernel for every pixel;
//   ipc_4d_kernel   a per-pixel kernel (kh, kw, rows, nx) aligned with the output rows.
//
// The science region S (the array minus the reference-pixel margins) is convolved with the
// kernel; pixels outside S contribute zero and margin pixels are copied unchanged. For
// output pixel (y, x) of S, in float32 with each product rounded before it is added:
//
//   acc = 0;  for j, for i, (j, i) != centre:  acc += K[j, i] * S[y + tb - j, x + rb - i]
//   acc += K[cy, cx] * S[y, x]
//
// with cy = kh/2, cx = kw/2, tb = kh - cy - 1, rb = kw - cx - 1 (tb = cy, rb = cx for odd
// sizes; jwst's even-size quirk, where the centre term is unshifted, is kept). Products with
// pixels outside S are still formed (K * 0), as jwst multiplies its zero-padded copy.
//
// Blocks: rows [row0, row0 + rows_in) of every plane (integration x group) come in, with the
// halo the kernel needs; rows [row0 + halo_top, row0 + halo_top + rows) go out. S covers
// detector rows [sy0, sy1) and columns [sx0, sx1) of the whole array.
//
// Array layouts (C order):
//   data_in  (nplanes, rows_in, nx) float32;  data_out (nplanes, rows, nx) float32
//   ipc_2d_kernel: kernel (kh, kw) float32
//   ipc_4d_kernel: kernel (kh, kw, rows, nx) float32

#include "dq_flags.cuh"
#include "numeric.cuh"

// Geometry of one row block (gpucal.ipc_io.IpcGeometry).
struct IpcBlock {
    const float* data_in;
    i64 nplanes;
    int nx, rows_in, rows, halo_top, row0;
    int sy0, sy1, sx0, sx1;
    int kh, kw;
};

// S[yi, x] for block row yi (may lie outside the block): zero outside S or the block.
__host__ __device__ inline float science_value(const IpcBlock& b, i64 plane, int yi, int x)
{
    int y = b.row0 + yi;
    if (yi < 0 || yi >= b.rows_in || y < b.sy0 || y >= b.sy1 || x < b.sx0 || x >= b.sx1) {
        return 0.0f;
    }
    return b.data_in[(plane * b.rows_in + yi) * b.nx + x];
}

__host__ __device__ inline bool in_science(const IpcBlock& b, int yi, int x)
{
    int y = b.row0 + yi;
    return y >= b.sy0 && y < b.sy1 && x >= b.sx0 && x < b.sx1;
}

// The corrected value of block row yi, column x of one plane. Weight (j, i) of this pixel is
// weights[(j * kw + i) * wstride].
__host__ __device__ inline float ipc_pixel(const IpcBlock& b, const float* weights, i64 wstride, i64 plane, int yi,
                                           int x)
{
    if (!in_science(b, yi, x)) {
        return b.data_in[(plane * b.rows_in + yi) * b.nx + x];
    }
    int cy = b.kh / 2;
    int cx = b.kw / 2;
    int tb = b.kh - cy - 1;
    int rb = b.kw - cx - 1;
    float acc = 0.0f;
    for (int j = 0; j < b.kh; ++j) {
        for (int i = 0; i < b.kw; ++i) {
            if (j == cy && i == cx) {
                continue;  // the centre term is added last
            }
            float w = weights[(i64)(j * b.kw + i) * wstride];
            float term = w * science_value(b, plane, yi + tb - j, x + rb - i);
            acc = acc + term;
        }
    }
    float w = weights[(i64)(cy * b.kw + cx) * wstride];
    float term = w * science_value(b, plane, yi, x);
    acc = acc + term;
    return acc;
}

__host__ __device__ inline IpcBlock make_block(const float* data_in, i64 nplanes, int nx, int rows_in, int rows,
                                               int halo_top, int row0, int sy0, int sy1, int sx0, int sx1, int kh,
                                               int kw)
{
    IpcBlock b;
    b.data_in = data_in;
    b.nplanes = nplanes;
    b.nx = nx;
    b.rows_in = rows_in;
    b.rows = rows;
    b.halo_top = halo_top;
    b.row0 = row0;
    b.sy0 = sy0;
    b.sy1 = sy1;
    b.sx0 = sx0;
    b.sx1 = sx1;
    b.kh = kh;
    b.kw = kw;
    return b;
}

extern "C" __global__ void ipc_2d_kernel(const float* data_in, const float* kernel, float* data_out, i64 nplanes,
                                         int nx, int rows_in, int rows, int halo_top, int row0, int sy0, int sy1,
                                         int sx0, int sx1, int kh, int kw)
{
    IpcBlock b = make_block(data_in, nplanes, nx, rows_in, rows, halo_top, row0, sy0, sy1, sx0, sx1, kh, kw);
    i64 npix_out = (i64)rows * nx;
    i64 total = nplanes * npix_out;
    i64 stride = (i64)blockDim.x * gridDim.x;
    for (i64 k = (i64)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
        i64 plane = k / npix_out;
        i64 p = k % npix_out;
        int yi = (int)(p / nx) + halo_top;
        int x = (int)(p % nx);
        data_out[k] = ipc_pixel(b, kernel, 1, plane, yi, x);
    }
}

extern "C" __global__ void ipc_4d_kernel(const float* data_in, const float* kernel, float* data_out, i64 nplanes,
                                         int nx, int rows_in, int rows, int halo_top, int row0, int sy0, int sy1,
                                         int sx0, int sx1, int kh, int kw)
{
    IpcBlock b = make_block(data_in, nplanes, nx, rows_in, rows, halo_top, row0, sy0, sy1, sx0, sx1, kh, kw);
    i64 npix_out = (i64)rows * nx;
    i64 total = nplanes * npix_out;
    i64 stride = (i64)blockDim.x * gridDim.x;
    for (i64 k = (i64)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += stride) {
        i64 plane = k / npix_out;
        i64 p = k % npix_out;
        int yi = (int)(p / nx) + halo_top;
        int x = (int)(p % nx);
        data_out[k] = ipc_pixel(b, kernel + p, npix_out, plane, yi, x);
    }
}

#ifdef GPUCAL_HOST_BUILD
GPUCAL_EXPORT_HOST_LAUNCHER(ipc_2d_kernel)
GPUCAL_EXPORT_HOST_LAUNCHER(ipc_4d_kernel)
#endif
