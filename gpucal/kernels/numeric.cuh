// Numeric helpers shared by the kernel sources, for the device and the host build.
#pragma once

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
