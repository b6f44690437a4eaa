"""Build CUDA kernel sources for the host and call their kernels through ctypes.

design.md section 4: the `.cu` file compiles with the system C++ compiler against
``gpucal/kernels/host_shim.h`` (``-ffp-contract=off``, so no FMA, as ``--fmad=false`` on
the device), and ``<kernel>_host(grid, block, args)`` runs every block and thread.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gpucal.gpu.compile import KERNEL_DIR

CXX_FLAGS = ["-x", "c++", "-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
             "-DGPUCAL_HOST_BUILD"]


def host_compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


@functools.lru_cache(maxsize=None)
def host_library(name: str) -> ctypes.CDLL:
    """Compile ``gpucal/kernels/<name>.cu`` for the host (cached by source hash) and load it."""
    cxx = host_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found for the host build")
    source = KERNEL_DIR / f"{name}.cu"
    digest = hashlib.sha256()
    for path in sorted(KERNEL_DIR.glob("*")):
        digest.update(path.read_bytes())
    out_dir = Path(tempfile.gettempdir()) / "gpucal-host-build"
    out_dir.mkdir(exist_ok=True)
    lib = out_dir / f"{name}-{digest.hexdigest()[:16]}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        cmd = [cxx, *CXX_FLAGS, "-include", str(KERNEL_DIR / "host_shim.h"), f"-I{KERNEL_DIR}", str(source),
               "-o", str(tmp)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(tmp, lib)
    return ctypes.CDLL(str(lib))


_SCALARS = {
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.int64): ctypes.c_int64,
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
