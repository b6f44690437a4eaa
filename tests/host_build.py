"""Build CUDA kernel sources for the host and call their kernels through ctypes.

design.md section 4: the `.cu` file compiles with the system C++ compiler against
``gpucal/kernels/host_shim.h`` (``-ffp-contract=off``, so no FMA, as ``--fmad=false`` on
the device), and ``<kernel>_host(grid, block, args)`` runs every block and thread.
"""

from __future__ import annotations

import ctypes

import numpy as np

from gpucal.native import host_compiler, host_library

__all__ = ["host_compiler", "host_library", "launch_host"]

_SCALARS = {
    np.dtype(np.bool_): ctypes.c_bool,
    np.dtype(np.int8): ctypes.c_int8,
    np.dtype(np.uint8): ctypes.c_uint8,
    np.dtype(np.int16): ctypes.c_int16,
    np.dtype(np.uint16): ctypes.c_uint16,
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.uint32): ctypes.c_uint32,
    np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float64): ctypes.c_double,
    np.dtype(np.float32): ctypes.c_float,
}


def launch_host(library: ctypes.CDLL, kernel: str, args: list, grid: int = 3, block: int = 7) -> None:
    """Run ``kernel`` over ``grid x block`` host threads with ``args`` (arrays and numpy scalars).

    A small, odd grid exercises the kernel's grid-stride loop.
    """
    holders = []
    for value in args:
        if isinstance(value, np.ndarray):
            if not value.flags.c_contiguous:
                raise ValueError("host kernels need C-contiguous arrays")
            holders.append(ctypes.c_void_p(value.ctypes.data))
        else:
            holders.append(_SCALARS[np.asarray(value).dtype](value))
    pointers = (ctypes.c_void_p * len(holders))(*[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders])
    fn = getattr(library, f"{kernel}_host")
    fn.argtypes = (ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p)
    fn.restype = None
    fn(grid, block, pointers)
