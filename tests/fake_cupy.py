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


def make_module(devices=None):
    """A CuPy stand-in; ``devices`` (a tests/fake_devices.py model, default one GPU with 8 GiB
    free) gives it ``cuda.Device``, ``cuda.runtime``, the memory pools and counted allocations."""
    cupy = types.ModuleType("cupy")
    cupy.empty = lambda shape, dtype=np.float64: _device(np.empty(shape, dtype))
    cupy.zeros = lambda shape, dtype=np.float64: _device(np.zeros(shape, dtype))
    cupy.asarray = lambda array: _device(np.array(array))
    cupy.asnumpy = lambda array: np.array(array)
    cupy.ndarray = DeviceArray
    cuda = types.SimpleNamespace(Stream=_Stream, alloc_pinned_memory=lambda n: bytearray(n))
    cupy.cuda = cuda
    return _with_devices(cupy, devices)


def _with_devices(cupy, devices):
    import fake_devices

    return (devices or getattr(cupy, "_fake_devices", None) or fake_devices.default_devices()).attach(cupy)


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
    #: The class device results are made of (StrictChainArray in strict mode).
    view_class: type | None = None

    def __array_function__(self, func, types, args, kwargs):
        return _chain(super().__array_function__(func, types, args, kwargs))

    def get(self, stream=None, out=None):
        if ChainArray.transfers is not None:
            ChainArray.transfers.note(ChainArray.transfers.downloads, self)
        return super().get(stream, out)


def _is_host(x) -> bool:
    return isinstance(x, np.ndarray) and not isinstance(x, DeviceArray) and x.ndim > 0


def _plain(x):
    if isinstance(x, DeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, (tuple, list)):
        return type(x)(_plain(v) for v in x)
    return x


class StrictChainArray(ChainArray):
    """A ChainArray that refuses what CuPy refuses: arithmetic (any ufunc) mixing a host numpy
    array with device arrays raises TypeError; a host array assigned into it (an implicit
    upload in CuPy) is recorded in ``transfers.uploads``."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if any(_is_host(x) for x in inputs):
            raise TypeError(f"{ufunc.__name__}: a host numpy array mixed with device arrays (CuPy raises here)")
        if out is not None:
            kwargs["out"] = _plain(out)
        result = getattr(ufunc, method)(*_plain(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _chain(result)

    def __setitem__(self, key, value):
        if _is_host(value) and ChainArray.transfers is not None:
            ChainArray.transfers.note(ChainArray.transfers.uploads, value)
        self.view(np.ndarray)[_plain(key)] = _plain(value)


def _chain(result):
    cls = ChainArray.view_class or ChainArray
    if isinstance(result, np.ndarray) and not isinstance(result, cls):
        return result.view(cls)
    if isinstance(result, (tuple, list)):
        return type(result)(_chain(r) for r in result)
    return result


def make_chain_module(transfers: Transfers, strict: bool = False, devices=None):
    """A CuPy stand-in whose arrays stay on the "device" through numpy functions and whose
    host<->device copies of ramp-sized arrays are recorded in ``transfers``; ``strict`` makes
    them StrictChainArrays (install with monkeypatch on ``ChainArray.view_class``, see
    :func:`install_chain_module`)."""
    cupy = make_module(devices)
    ChainArray.transfers = transfers
    ChainArray.view_class = StrictChainArray if strict else ChainArray

    def upload(array, dtype=None, order="C", copy=None):
        if not isinstance(array, DeviceArray):
            transfers.note(transfers.uploads, array)
        return _chain(np.array(_plain(array), dtype=dtype, order=order))

    def asnumpy(array):
        if isinstance(array, DeviceArray):
            transfers.note(transfers.downloads, array)
        return np.array(array)

    def on_device(make):
        return lambda *a, **k: _chain(make(*_plain(a), **k))

    cupy.__getattr__ = lambda name: getattr(np, name)  # everything else: numpy (results stay ChainArrays)
    cupy.asarray = cupy.array = upload
    cupy.asnumpy = asnumpy
    cupy.ascontiguousarray = lambda a, dtype=None: upload(np.ascontiguousarray(a, dtype=dtype)) \
        if not isinstance(a, DeviceArray) else _chain(np.ascontiguousarray(_plain(a), dtype=dtype))
    for name in ("empty", "zeros", "ones", "full", "empty_like", "zeros_like", "full_like", "arange"):
        setattr(cupy, name, on_device(getattr(np, name)))
    cupy.ndarray = DeviceArray
    return _with_devices(cupy, devices)


class _StrictNumpy(types.ModuleType):
    """numpy for gpucal's modules in strict mode: ``np.asarray``/``np.array``/... of a device
    array raise TypeError, as CuPy's ``__array__`` does (an implicit device-to-host copy)."""

    def __getattr__(self, name):
        return getattr(np, name)


def _refusing(name):
    convert = getattr(np, name)

    def call(a, *args, **kwargs):
        if isinstance(a, DeviceArray):
            raise TypeError(f"numpy.{name} of a device array: an implicit device-to-host copy (CuPy raises here)")
        return convert(a, *args, **kwargs)

    return call


def install_chain_module(monkeypatch, transfers: Transfers, strict: bool = False) -> None:
    """Install :func:`make_chain_module` as ``cupy`` (one GPU with 8 GiB free, see
    tests/fake_devices.py), with the host build behind ``kernel()`` and the GPU reported
    usable. ``strict``: StrictChainArrays, and the ``np`` of every loaded gpucal module refuses
    to convert device arrays (``np.asarray(device)`` cannot be caught otherwise: numpy does
    not ask a subclass)."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "cupy", make_chain_module(transfers, strict))
    monkeypatch.setattr(ChainArray, "transfers", transfers)
    monkeypatch.setattr(ChainArray, "view_class", StrictChainArray if strict else ChainArray)
    monkeypatch.setattr("gpucal.gpu.compile.kernel", host_kernel)
    monkeypatch.setattr("gpucal.backend.gpu_unavailable_reason", lambda: None)
    if not strict:
        return
    for name in ("gpucal.pipeline.detector1", "gpucal.steps", "gpucal.gpu.ipc", "gpucal.gpu.jump",
                 "gpucal.gpu.ramp_fit", "gpucal.jump_detection", "gpucal.ramp_fitting", "gpucal.refpix_stats"):
        importlib.import_module(name)
    strict_np = _StrictNumpy("numpy")
    for name in ("array", "asarray", "asanyarray", "ascontiguousarray"):
        setattr(strict_np, name, _refusing(name))
    for name, module in list(sys.modules.items()):
        if name.startswith("gpucal") and getattr(module, "np", None) is np:
            monkeypatch.setattr(module, "np", strict_np)
