"""Compile gpucal's kernel modules into CuPy's kernel cache without a GPU (image builds).

``cupy.RawModule`` compiles a module through NVRTC on first use and keeps the cubin in
``CUPY_CACHE_DIR`` under a digest of the source, the options, the NVRTC version and the
device's architecture. A container starts with that cache empty, so every container pays
the NVRTC compile of every module (seconds) on its first call. This module runs the same
compilation at image build time for the architectures given, so that a container on such a
GPU finds its cubins already there:

    python -m gpucal.gpu.prebuild --arch 80,90    # into $CUPY_CACHE_DIR

It drives CuPy's own compile path (``cupy._core.core.compile_with_cache``, the function
``RawModule`` calls) with the architecture given instead of read from a device, so the
options, the source and so the cache key are the ones a ``RawModule`` builds at run time.
Only loading the cubin needs a device; without one that last step fails and is ignored.
This leans on CuPy internals (checked against CuPy 14.2): when they change, the command
fails loudly rather than filling the cache with entries nobody will find.

CuPy's own elementwise and reduction kernels (array arithmetic in the device steps) are
generated per call site and still compile on first use.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .compile import KERNEL_DIR, raw_module

log = logging.getLogger(__name__)


def module_names() -> list[str]:
    """Every kernel module of gpucal: the ``gpucal/kernels/*.cu`` sources."""
    return sorted(p.stem for p in KERNEL_DIR.glob("*.cu"))


def raw_module_arguments(name: str) -> dict[str, Any]:
    """The keyword arguments :func:`gpucal.gpu.compile.raw_module` gives ``cupy.RawModule``
    for module ``name`` (code, options, and any others), recorded without compiling."""
    import cupy

    calls: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    real = cupy.RawModule
    cupy.RawModule = Recorder
    try:
        raw_module.__wrapped__(name)
    finally:
        cupy.RawModule = real
    if len(calls) != 1 or "code" not in calls[0]:
        raise RuntimeError(f"raw_module({name!r}) did not build one RawModule from source: {calls}")
    return calls[0]


@contextlib.contextmanager
def architecture_without_device() -> Iterator[None]:
    """Let CuPy pick its ``-arch`` option for an architecture given by the caller, without
    asking a device (CuPy memoises that choice per device, which needs a driver)."""
    from cupy.cuda import compiler

    def arch_option(arch: str | None = None) -> tuple[str, str]:
        if arch is None:
            raise RuntimeError("an architecture must be given when no device is asked")
        # CuPy's rule: a cubin for architectures NVRTC knows, else PTX for the driver to JIT.
        if not compiler._use_ptx and int(arch) <= int(compiler._get_max_compute_capability()):
            return f"-arch=sm_{arch}", "cubin"
        return f"-arch=compute_{arch}", "ptx"

    real = compiler._get_arch_for_options_for_nvrtc
    compiler._get_arch_for_options_for_nvrtc = arch_option
    try:
        yield
    finally:
        compiler._get_arch_for_options_for_nvrtc = real


def compile_module(name: str, arch: str, log_stream: io.StringIO | None = None) -> bool:
    """Compile module ``name`` for ``arch`` (e.g. ``"90"``) exactly as ``RawModule`` does
    on a device of that architecture, writing CuPy's kernel cache. Returns True when the
    cubin was also loaded (a device was there), False when only loading failed.

    Raises ``cupy.cuda.compiler.CompileException`` on an NVRTC error.
    """
    import cupy
    from cupy.cuda.compiler import CompileException

    args = raw_module_arguments(name)
    known = {"code", "options", "backend", "translate_cucomplex", "enable_cooperative_groups",
             "name_expressions", "jitify"}
    if set(args) - known:
        raise RuntimeError(f"raw_module({name!r}) passes RawModule arguments this prebuild does not replay: "
                           f"{sorted(set(args) - known)}")
    with architecture_without_device():
        try:
            cupy._core.core.compile_with_cache(
                args["code"], tuple(args.get("options", ())), arch=str(arch), prepend_cupy_headers=False,
                backend=args.get("backend", "nvrtc"), translate_cucomplex=args.get("translate_cucomplex", False),
                enable_cooperative_groups=args.get("enable_cooperative_groups", False),
                name_expressions=args.get("name_expressions"), log_stream=log_stream,
                jitify=args.get("jitify", False))
        except CompileException:
            raise
        except Exception as exc:  # the cubin is cached before CuPy loads it; loading needs a device
            log.debug("%s sm_%s compiled and cached; not loaded (%s)", name, arch, exc)
            return False
    return True


def prebuild(archs: list[str], names: list[str] | None = None) -> dict[str, int]:
    """Compile every module (or ``names``) for every architecture into ``CUPY_CACHE_DIR``.

    Returns {"modules": ..., "new_files": ...}: the cache entries written by this call.
    """
    from cupy.cuda import compiler

    cache = Path(compiler._kernel_cache_backend._cache_dir)
    before = set(os.listdir(cache)) if cache.is_dir() else set()
    names = names or module_names()
    for arch in archs:
        for name in names:
            compile_module(name, arch)
            log.info("compiled %s for sm_%s", name, arch)
    after = set(os.listdir(cache))
    return {"modules": len(names) * len(archs), "new_files": len(after - before)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compile gpucal's CUDA kernels into CuPy's kernel cache "
                                                 "($CUPY_CACHE_DIR) for the architectures given; no GPU needed.")
    parser.add_argument("--arch", required=True, help="compute capabilities without the dot, e.g. 80,86,89,90")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    if not archs or not all(a.isdigit() for a in archs):
        parser.error(f"--arch takes compute capabilities such as 80,90, got {args.arch!r}")
    counts = prebuild(archs)
    from cupy.cuda import compiler

    print(f"{counts['modules']} module builds ({len(archs)} architectures), {counts['new_files']} new cache "
          f"entries in {compiler._kernel_cache_backend._cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
