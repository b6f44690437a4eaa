"""Compile the CUDA sources in ``gpucal/kernels`` with CuPy, once per process."""

from __future__ import annotations

import functools
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent.parent / "kernels"

#: NVRTC options: no FMA contraction, so device arithmetic rounds like the numpy fallback.
NVRTC_OPTIONS = ("--std=c++17", "--fmad=false")


def kernel_source(name: str) -> str:
    """Text of ``gpucal/kernels/<name>.cu``."""
    return (KERNEL_DIR / f"{name}.cu").read_text()


@functools.lru_cache(maxsize=None)
def raw_module(name: str):
    """The compiled ``cupy.RawModule`` for ``gpucal/kernels/<name>.cu`` (cached)."""
    import cupy

    options = NVRTC_OPTIONS + (f"-I{KERNEL_DIR}",)
    return cupy.RawModule(code=kernel_source(name), options=options)


def kernel(module: str, function: str):
    """A ``__global__`` function of a compiled kernel module."""
    return raw_module(module).get_function(function)
