// Numeric helpers shared by the kernel sources, for the device and the host build.
#pragma once

// 64-bit signed index: `long` is 32 bits under NVRTC on Windows (LLP64), `long long` is 64
// everywhere, and NVRTC has no <cstdint> without host headers.
typedef long long i64;

// A quiet NaN: the device has no NAN macro under NVRTC, the host build has no
// __longlong_as_double.
__host__ __device__ inline double quiet_nan()
{
#ifdef __CUDA_ARCH__
    return __longlong_as_double(0x7ff8000000000000ULL);
#else
    return NAN;
#endif
}
#define GPUCAL_NAN quiet_nan()
