"""A CuPy stand-in for testing the GPU launchers on a machine without a GPU.

"Device" arrays are numpy arrays, streams do nothing, pinned memory is a bytearray, and
a kernel call runs the host build of the kernel source (tests/host_build.py). What this
checks is the launcher's own logic: argument order, block streaming through two slots,
pinned buffers, copies back; the device arithmetic itself is covered by ``-m gpu``.
"""

from __future__ import annotations

import types

import numpy as np


class DeviceArray(np.ndarray):
    def set(self, array, stream=None):
        self[...] = array

    def get(self, stream=None, out=None):
        if out is None:
            return np.array(self)
        out[...] = self
        return out


class _Stream:
    def __init__(self, non_blocking=False):
        self.synchronized = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        self.synchronized += 1


def _device(array):
    return np.ascontiguousarray(array).view(DeviceArray)


def make_module():
    cupy = types.ModuleType("cupy")
    cupy.empty = lambda shape, dtype=np.float64: _device(np.empty(shape, dtype))
    cupy.zeros = lambda shape, dtype=np.float64: _device(np.zeros(shape, dtype))
    cupy.asarray = lambda array: _device(np.array(array))
    cupy.asnumpy = lambda array: np.array(array)
    cupy.ndarray = DeviceArray
    cuda = types.SimpleNamespace(Stream=_Stream, alloc_pinned_memory=lambda n: bytearray(n))
    cupy.cuda = cuda
    return cupy


def host_kernel(module: str, function: str, launches: list | None = None):
    """What ``gpucal.gpu.compile.kernel`` returns, backed by the host build.

    Each launch appends the kernel's name to ``launches`` when given.
    """
    from host_build import host_library, launch_host

    library = host_library(module)

    def launch(grid, block, args):
        if launches is not None:
            launches.append(function)
        launch_host(library, function, [np.asarray(a) if isinstance(a, DeviceArray) else a for a in args],
                    grid=grid[0], block=block[0])

    return launch
