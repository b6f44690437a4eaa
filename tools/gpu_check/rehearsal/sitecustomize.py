"""The CuPy stand-in for rehearsing ``make gpu-check`` on a machine without a GPU.

Never on a real device: ``tools/gpu_check/run.py --rehearsal`` (``make gpu-check-rehearsal``)
puts this folder first on PYTHONPATH of every process it starts, so Python runs this file at
start-up. Then ``import cupy`` gives a fresh ``tests/fake_cupy.py`` stand-in (as strict as
CuPy; kernels compiled through it run on the host build). What CuPy has and the stand-in
lacks for the check's own plumbing (the bandwidth probe's raw pointers and copy, version
queries) is added here only where the stand-in has none, so its own versions win where it
has them. The device reports itself as a stand-in: its figures can never pass for a GPU's.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.util
import sys
import types
from pathlib import Path

_REPO = Path(__file__).resolve().parents[3]
_NAME = "CuPy stand-in (host build of the kernels, no GPU)"
sys.path.append(str(_REPO / "tests"))  # fake_cupy, fake_devices and host_build


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


def _build_cupy() -> types.ModuleType:
    import fake_cupy

    cupy, _runtime = fake_cupy.make_module()
    cupy.__version__ = "0+gpucal-rehearsal"  # (the stand-in's module would answer numpy's)
    properties = cupy.cuda.runtime.getDeviceProperties

    def named_properties(device: int = 0) -> dict:
        return dict(properties(device), name=_NAME.encode())

    cupy.cuda.runtime.getDeviceProperties = named_properties
    _add(cupy.cuda.runtime, runtimeGetVersion=lambda: 0, driverGetVersion=lambda: 0, memcpyDeviceToDevice=3,
         memcpyAsync=lambda dst, src, n, kind, stream=0: ctypes.memmove(dst, src, n))
    if not hasattr(getattr(fake_cupy.DeviceArray, "data", None), "fget"):
        # CuPy's MemoryPointer: the bandwidth probe copies through .data.ptr.
        fake_cupy.DeviceArray.data = property(lambda self: types.SimpleNamespace(ptr=self.ctypes.data))
    return cupy


class _Cupy(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import cupy`` gives the stand-in."""

    def find_spec(self, name, path, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "cupy" else None

    def create_module(self, spec):
        return _build_cupy()

    def exec_module(self, module) -> None:
        pass


sys.meta_path.insert(0, _Cupy())
