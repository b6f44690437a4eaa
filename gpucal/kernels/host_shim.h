// Host build of the CUDA kernel sources (design.md section 4).
//
// Included with `g++ -x c++ -include host_shim.h -DGPUCAL_HOST_BUILD -ffp-contract=off`, it
// maps the CUDA qualifiers and built-in indices to plain C++ so that the same __host__
// __device__ code runs on the CPU, and GPUCAL_EXPORT_HOST_LAUNCHER(kernel) exports
// `kernel_host(grid, block, args)`: it runs every block and thread in turn, taking the
// kernel's arguments as an array of pointers to their values (what ctypes passes).
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <utility>

using std::isnan;
using std::isfinite;
using std::sqrt;
using std::fabs;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct gpucal_dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
static thread_local gpucal_dim3 threadIdx, blockIdx, blockDim, gridDim;

template <typename... A, std::size_t... I>
static void gpucal_call_kernel(void (*kernel)(A...), void** args, std::index_sequence<I...>)
{
    kernel(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

template <typename... A>
static void gpucal_host_launch(void (*kernel)(A...), unsigned int grid, unsigned int block, void** args)
{
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned int b = 0; b < grid; ++b) {
        blockIdx.x = b;
        for (unsigned int t = 0; t < block; ++t) {
            threadIdx.x = t;
            gpucal_call_kernel(kernel, args, std::index_sequence_for<A...>{});
        }
    }
}

#define GPUCAL_EXPORT_HOST_LAUNCHER(kernel)                                             \
    extern "C" void kernel##_host(unsigned int grid, unsigned int block, void** args) \
    {                                                                                 \
        gpucal_host_launch(kernel, grid, block, args);                                \
    }
