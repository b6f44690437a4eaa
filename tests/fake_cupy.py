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


class Transfers:
    """Host<->device copies of arrays with at least ``min_ndim`` dimensions (ramp blocks).

    ``uploads`` / ``downloads`` are lists of ``(dtype, shape)``: ``cupy.asarray`` /
    ``cupy.array`` of a host array, and ``.get()`` / ``cupy.asnumpy`` of a device array.
    """

    def __init__(self, min_ndim: int = 4):
        self.min_ndim = min_ndim
        self.uploads: list[tuple[str, tuple]] = []
        self.downloads: list[tuple[str, tuple]] = []

    def note(self, kind: list, array) -> None:
        if np.ndim(array) >= self.min_ndim:
            kind.append((str(np.asarray(array).dtype), tuple(np.shape(array))))


class ChainArray(DeviceArray):
    """A device array that stays one through numpy functions (as CuPy arrays stay CuPy arrays
    through cupy functions): the results of ``np.where``, ``np.stack``... are ChainArrays too,
    so code that keeps its data on the device can be told from code that falls back to host."""

    transfers: Transfers | None = None

    def __array_function__(self, func, types, args, kwargs):
        return _chain(super().__array_function__(func, types, args, kwargs))

    def get(self, stream=None, out=None):
        if ChainArray.transfers is not None:
            ChainArray.transfers.note(ChainArray.transfers.downloads, self)
        return super().get(stream, out)


def _chain(result):
    if isinstance(result, np.ndarray) and not isinstance(result, ChainArray):
        return result.view(ChainArray)
    if isinstance(result, (tuple, list)):
        return type(result)(_chain(r) for r in result)
    return result


def make_chain_module(transfers: Transfers):
    """A CuPy stand-in whose arrays stay on the "device" through numpy functions and whose
    host<->device copies of ramp-sized arrays are recorded in ``transfers``."""
    cupy = make_module()
    ChainArray.transfers = transfers

    def upload(array, dtype=None, order="C", copy=None):
        if not isinstance(array, DeviceArray):
            transfers.note(transfers.uploads, array)
        return np.array(array, dtype=dtype, order=order).view(ChainArray)

    def asnumpy(array):
        if isinstance(array, DeviceArray):
            transfers.note(transfers.downloads, array)
        return np.array(array)

    def on_device(make):
        return lambda *a, **k: make(*a, **k).view(ChainArray)

    cupy.__getattr__ = lambda name: getattr(np, name)  # everything else: numpy (results stay ChainArrays)
    cupy.asarray = cupy.array = upload
    cupy.asnumpy = asnumpy
    cupy.ascontiguousarray = lambda a, dtype=None: upload(np.ascontiguousarray(a, dtype=dtype)) \
        if not isinstance(a, DeviceArray) else np.ascontiguousarray(a, dtype=dtype).view(ChainArray)
    for name in ("empty", "zeros", "ones", "full", "empty_like", "zeros_like", "full_like", "arange"):
        setattr(cupy, name, on_device(getattr(np, name)))
    cupy.ndarray = DeviceArray
    return cupy
