"""The CuPy stand-in for rehearsing ``make gpu-check`` on a machine without a GPU.

Never on a real device: ``tools/gpu_check/run.py --rehearsal`` (``make gpu-check-rehearsal``)
puts this folder first on PYTHONPATH of every process it starts, so Python runs this file at
start-up. Then ``import cupy`` gives the device stand-in of ``tests/fake_cupy.py`` (arrays that
stay "on the device" through numpy functions), and ``gpucal.gpu.compile.kernel`` its host-build
kernels. What CuPy has and the stand-in lacks for the check's own plumbing (device queries,
events, memory pools, raw pointers for the bandwidth probe) is added here only where the
stand-in has none, so the stand-in's own versions win where it has them. The device reports
itself as a stand-in: its figures can never pass for a GPU's.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import time
import types
from pathlib import Path

_REPO = Path(__file__).resolve().parents[3]
_NAME = "CuPy stand-in (host build of the kernels, no GPU)"
_TOTAL = 16 * 1024**3
sys.path.append(str(_REPO / "tests"))  # fake_cupy and host_build


def _missing(owner, name: str) -> bool:
    try:
        getattr(owner, name)
    except AttributeError:
        return True
    return False


def _add(owner, **attributes) -> None:
    for name, value in attributes.items():
        if _missing(owner, name):
            setattr(owner, name, value)


class _Event:
    def __init__(self, *args, **kwargs) -> None:
        self.time = None

    def record(self, stream=None) -> None:
        self.time = time.perf_counter()

    def synchronize(self) -> None:
        pass


class _CurrentStream:
    ptr = 0

    def synchronize(self) -> None:
        pass


class _Device:
    def __init__(self, device: int = 0) -> None:
        if device != 0:
            raise ValueError(f"the stand-in has one device, not {device}")
        self.id = 0
        self.compute_capability = "90"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def use(self) -> None:
        pass

    def synchronize(self) -> None:
        pass


class _Pool:
    def free_bytes(self) -> int:
        return 0

    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0

    def free_all_blocks(self) -> None:
        pass

    def set_limit(self, **kwargs) -> None:
        pass


def _runtime() -> types.SimpleNamespace:
    def properties(device: int = 0) -> dict:
        return {"name": _NAME.encode(), "totalGlobalMem": _TOTAL, "major": 9, "minor": 0,
                "multiProcessorCount": 1}

    return types.SimpleNamespace(
        getDeviceCount=lambda: 1, getDeviceProperties=properties, memGetInfo=lambda: (_TOTAL // 2, _TOTAL),
        runtimeGetVersion=lambda: 0, driverGetVersion=lambda: 0, memcpyDeviceToDevice=3,
        memcpyAsync=lambda dst, src, n, kind, stream=0: ctypes.memmove(dst, src, n),
    )


def _build_cupy() -> types.ModuleType:
    import fake_cupy

    cupy = fake_cupy.make_chain_module(fake_cupy.Transfers())
    base = fake_cupy.ChainArray.view_class or fake_cupy.ChainArray
    if _missing(base, "data") or not hasattr(base.data, "fget"):
        class RehearsalArray(base):
            @property
            def data(self):  # CuPy's MemoryPointer: the bandwidth probe copies through .ptr
                return types.SimpleNamespace(ptr=self.ctypes.data)

        fake_cupy.ChainArray.view_class = RehearsalArray
    pool = _Pool()
    cupy.__version__ = "0+gpucal-rehearsal"  # (the stand-in's module answers numpy's otherwise)
    _add(cupy, get_default_memory_pool=lambda: pool, get_default_pinned_memory_pool=lambda: pool)
    _add(cupy.cuda, runtime=_runtime(), Device=_Device, Event=_Event,
         get_elapsed_time=lambda start, stop: (stop.time - start.time) * 1e3,
         get_current_stream=_CurrentStream)
    return cupy


class _Hooks(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``cupy`` is the stand-in; ``gpucal.gpu.compile`` gets the host-build ``kernel``."""

    def find_spec(self, name, path, target=None):
        if name == "cupy":
            return importlib.util.spec_from_loader(name, self)
        if name == "gpucal.gpu.compile":
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None:
                real = spec.loader.exec_module

                def exec_module(module):
                    real(module)
                    import fake_cupy

                    module.kernel = fake_cupy.host_kernel

                spec.loader.exec_module = exec_module
            return spec
        return None

    def create_module(self, spec):
        return _build_cupy()

    def exec_module(self, module) -> None:
        pass


sys.meta_path.insert(0, _Hooks())
