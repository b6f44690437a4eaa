"""Compile the CUDA sources in ``gpucal/kernels`` with NVRTC through CuPy, once per process and device.

Two things CuPy's ``RawModule(code=...)`` would get wrong, so it is not used:

* it appends ``-ftz=true`` after the caller's options (``cupy/cuda/compiler.py``,
  ``_compile_with_cache_cuda``; NVRTC takes the last ``-ftz`` it is given), so float32
  denormals would flush to zero on the device while the numpy fallback keeps them;
* its kernel cache is keyed on the source string and options only, so an edit to an
  ``#include``d header alone would load a stale cubin.

So the headers are inlined into the source (:func:`module_source`) and the source goes to
``cupy.cuda.compiler.compile_using_nvrtc``, which adds only ``-arch`` and
``--device-as-default-execution-space`` (:func:`nvrtc_options` lists what NVRTC finally
gets). The result is loaded with ``cupy.cuda.function.Module`` and kept in memory for the
life of the process; there is no disk cache to go stale.
"""

from __future__ import annotations

import re
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent.parent / "kernels"

#: NVRTC options: no FMA contraction, so device arithmetic rounds like the numpy fallback;
#: denormals kept (IEEE float32, as numpy), never flushed to zero.
NVRTC_OPTIONS = ("--std=c++17", "--fmad=false", "-ftz=false")

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.MULTILINE)
_PRAGMA_ONCE = re.compile(r"^[ \t]*#[ \t]*pragma[ \t]+once[ \t]*$", re.MULTILINE)

#: Loaded modules by (kernel module name, CUDA device id).
_LOADED: dict = {}


def kernel_source(name: str) -> str:
    """Text of ``gpucal/kernels/<name>.cu`` as it is on disk (``#include`` lines kept)."""
    return (KERNEL_DIR / f"{name}.cu").read_text()


def module_source(name: str) -> str:
    """Text of ``gpucal/kernels/<name>.cu`` with every ``#include "..."`` header inlined, once.

    This string is all NVRTC sees, so any edit to a header changes it (and no include path
    is needed at run time).
    """
    seen: set[str] = set()

    def expand(text: str) -> str:
        def inline(match: re.Match) -> str:
            header = match.group(1)
            if header in seen:
                return f"// {header}: already included"
            seen.add(header)
            text = _PRAGMA_ONCE.sub("", (KERNEL_DIR / header).read_text())
            return f"// begin {header}\n{expand(text)}\n// end {header}"

        return _INCLUDE.sub(inline, text)

    return expand(kernel_source(name))


def nvrtc_options(arch: str) -> tuple[str, ...]:
    """Every option NVRTC receives for compute capability ``arch`` (e.g. ``"90"``): ours, then
    what ``compile_using_nvrtc`` appends (CuPy 13.6 and 14.2; ``-arch=compute_XX`` instead
    when the NVRTC is older than the device, ``--pch`` with ``CUPY_NVRTC_USE_PCH=1``)."""
    return NVRTC_OPTIONS + (f"-arch=sm_{arch}", "--device-as-default-execution-space")


def raw_module(name: str):
    """The compiled ``cupy.cuda.function.Module`` of ``gpucal/kernels/<name>.cu`` on the current device."""
    import cupy

    key = (name, cupy.cuda.runtime.getDevice())
    module = _LOADED.get(key)
    if module is None:
        binary, _ = cupy.cuda.compiler.compile_using_nvrtc(module_source(name), NVRTC_OPTIONS, cache_in_memory=True)
        module = cupy.cuda.function.Module()
        module.load(binary)
        _LOADED[key] = module
    return module


def kernel(module: str, function: str):
    """A ``__global__`` function of a compiled kernel module, called as ``f(grid, block, args)``."""
    return raw_module(module).get_function(function)
