"""Host builds of the CUDA kernel sources: the CPU backend's compiled path.

A ``gpucal/kernels/*.cu`` source also compiles with the system C++ compiler against
``host_shim.h`` (design.md section 4), with ``-ffp-contract=off -fno-fast-math`` so that no
multiply-add is fused and no operation reordered: the host build rounds exactly like the
device build (``--fmad=false``) and like ``cpu_fallback``. The tests use it to check each
kernel against numpy; the CPU backend uses it where numpy cannot reach compiled speed
(drizzle's and the IFU cube's per-record work). It is built on first use, like CuPy's runtime
compilation, into ``$GPUCAL_NATIVE_CACHE`` (default ``~/.cache/gpucal/native``), one
library per source digest (when that is not writable: a per-user directory in the temporary
directory, used only if this user owns it and others cannot write it). Without a compiler,
or with ``GPUCAL_NATIVE=0``, the CPU backend runs the numpy kernels of ``cpu_fallback``
instead: the same bits, slower.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .gpu.compile import KERNEL_DIR

log = logging.getLogger(__name__)

#: ``-O2`` without ``-march``: a cached library must run on every node that shares the cache.
CXX_FLAGS = ("-x", "c++", "-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
             "-DGPUCAL_HOST_BUILD")


#: Kernel sources the CPU backend runs compiled.
NATIVE_SOURCES = ("cube", "drizzle")


def host_compiler() -> str | None:
    """The C++ compiler of host builds: ``$CXX``, else ``g++`` or ``c++`` on the PATH."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def cache_dir() -> Path:
    """Where host builds are kept: ``$GPUCAL_NATIVE_CACHE`` or ``~/.cache/gpucal/native``."""
    env = os.environ.get("GPUCAL_NATIVE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gpucal" / "native"


def _fallback_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"gpucal-native-{os.getuid()}"


def _trusted(folder: Path) -> bool:
    """Libraries are loaded only from a directory this user owns and others cannot write
    (the fallback lives in the shared temporary directory)."""
    try:
        st = folder.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def library_name(name: str) -> str:
    """File name of the host library of ``name``: the digest of the flags and every kernel source
    (not of the compiler: a library built elsewhere, e.g. into a container image, is reused)."""
    digest = hashlib.sha256(" ".join(CXX_FLAGS).encode())
    for path in sorted(KERNEL_DIR.glob("*")):
        digest.update(path.read_bytes())
    return f"{name}-{digest.hexdigest()[:16]}.so"


def _writable_cache() -> Path:
    for path in (cache_dir(), _fallback_dir()):
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK) and (path == cache_dir() or _trusted(path)):
            return path
    raise OSError(f"no writable directory for host builds (tried {cache_dir()} and {_fallback_dir()})")


@functools.lru_cache(maxsize=None)
def host_library(name: str) -> ctypes.CDLL:
    """Load the host build of ``gpucal/kernels/<name>.cu``, compiling it first if no cached
    library matches the current sources (the cache may be read-only once built).

    Raises
    ------
    RuntimeError
        No cached library and no C++ compiler, or the compiler failed (its message is included).
    """
    fname = library_name(name)
    for folder in (cache_dir(), _fallback_dir()):
        if (folder / fname).exists() and (folder == cache_dir() or _trusted(folder)):
            return ctypes.CDLL(str(folder / fname))
    cxx = host_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found for the host build (set CXX or install g++)")
    lib = _writable_cache() / fname
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cxx, *CXX_FLAGS, "-include", str(KERNEL_DIR / "host_shim.h"), f"-I{KERNEL_DIR}",
           str(KERNEL_DIR / f"{name}.cu"), "-o", str(tmp)]
    log.info("building the host library of %s.cu with %s", name, cxx)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"host build of {name}.cu failed:\n{done.stderr.strip()}")
    os.replace(tmp, lib)  # atomic: concurrent processes see a whole library or none
    return ctypes.CDLL(str(lib))


def native_library(name: str) -> ctypes.CDLL | None:
    """The host library of ``name`` for the CPU backend, or None (numpy kernels) when it is
    switched off (``GPUCAL_NATIVE=0``, read at each call) or cannot be built (logged once)."""
    if os.environ.get("GPUCAL_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    return _built(name)


@functools.lru_cache(maxsize=None)
def _built(name: str) -> ctypes.CDLL | None:
    try:
        return host_library(name)
    except (RuntimeError, OSError) as exc:
        log.warning("CPU backend: no compiled %s kernels (%s); using the numpy kernels (same results, slower)",
                    name, exc)
        return None


if __name__ == "__main__":  # python -m gpucal.native: build them now (e.g. into a container image)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for source in NATIVE_SOURCES:
        log.info("%s: %s", source, host_library(source)._name)
