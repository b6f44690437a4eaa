"""Backend resolution: one place decides whether work runs on the GPU or the CPU.

``backend`` arguments everywhere accept ``"gpu"``, ``"cpu"`` or ``"auto"`` (or ``None``,
meaning the process-wide default). The default is ``"auto"`` unless changed with
:func:`set_backend` or the ``GPUCAL_BACKEND`` environment variable. ``"auto"`` picks the
GPU when CuPy imports and a CUDA device answers, otherwise the CPU. ``"gpu"`` without a
usable device raises :class:`~gpucal.errors.BackendUnavailableError` saying why.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Literal

import numpy as np

from .errors import BackendUnavailableError, InputError

log = logging.getLogger(__name__)

BackendName = Literal["gpu", "cpu", "auto"]
_VALID = ("gpu", "cpu", "auto")
_default: str | None = None


def _check_name(name: str) -> str:
    value = str(name).strip().lower()
    if value not in _VALID:
        raise InputError(f"backend must be one of {_VALID}, got {name!r}")
    return value


def set_backend(name: BackendName) -> None:
    """Set the process-wide default backend (``"gpu"``, ``"cpu"`` or ``"auto"``)."""
    global _default
    _default = _check_name(name)


def get_backend() -> str:
    """The process-wide default: :func:`set_backend`, else ``GPUCAL_BACKEND``, else ``"auto"``."""
    if _default is not None:
        return _default
    env = os.environ.get("GPUCAL_BACKEND")
    if env:
        try:
            return _check_name(env)
        except InputError as exc:
            raise InputError(f"GPUCAL_BACKEND: {exc}") from None
    return "auto"


@functools.lru_cache(maxsize=1)
def gpu_unavailable_reason() -> str | None:
    """Why the GPU backend cannot run here, or None when it can (checked once per process)."""
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); install gpucal[gpu] or gpucal[gpu-cuda13]"
    except Exception as exc:  # broken CUDA libraries raise at import
        return f"CuPy failed to import: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"the CUDA driver/runtime is not usable: {exc}"
    if count < 1:
        return "no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)"
    try:
        cupy.cuda.Device(0).compute_capability
        cupy.zeros(1).sum()
    except Exception as exc:
        return f"CUDA device 0 does not answer: {exc}"
    return None


def gpu_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return gpu_unavailable_reason() is None


def resolve_backend(backend: str | None = None) -> str:
    """Turn a user's ``backend`` argument into ``"gpu"`` or ``"cpu"``.

    Raises
    ------
    BackendUnavailableError
        ``"gpu"`` was asked for (explicitly or as the default) and cannot run.
    """
    name = get_backend() if backend is None else _check_name(backend)
    if name == "cpu":
        return "cpu"
    reason = gpu_unavailable_reason()
    if name == "gpu":
        if reason is not None:
            raise BackendUnavailableError(f"backend='gpu' requested but {reason}")
        return "gpu"
    if reason is not None:
        log.debug("auto backend: using CPU because %s", reason)
        return "cpu"
    return "gpu"


def array_module(backend: str) -> Any:
    """The array namespace for a resolved backend: ``cupy`` or ``numpy``."""
    if backend == "gpu":
        import cupy

        return cupy
    return np


def to_host(array: Any) -> np.ndarray:
    """Copy a (CuPy or numpy) array to a host numpy array; host arrays pass through."""
    get = getattr(array, "get", None)  # CuPy arrays have .get(); numpy arrays and memmaps do not
    if get is not None:
        return get()
    return np.asarray(array)


def array_module_of(array: Any) -> Any:
    """``cupy`` when ``array`` is a CuPy (device) array, else ``numpy``; never imports CuPy."""
    import sys

    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


def on_device(array: Any) -> bool:
    """True for a CuPy (device) array."""
    return array is not None and array_module_of(array) is not np


def free_device_memory(device: int | None = None) -> int:
    """Bytes gpucal can allocate on a CUDA device: what CUDA reports free there
    (``cudaMemGetInfo``) plus what CuPy's memory pool holds unused there, within the pool's
    limit when one is set.

    ``device`` is a CuPy device id (an index among the devices ``CUDA_VISIBLE_DEVICES`` leaves
    visible); default the current device, the one the launchers allocate on. CUDA's own count
    is used, not NVML's: NVML numbers the physical GPUs whatever ``CUDA_VISIBLE_DEVICES`` says
    (so a dask-cuda worker would read another worker's GPU) and does not see MIG instances.
    """
    import cupy

    with cupy.cuda.Device(device):
        free = int(cupy.cuda.runtime.memGetInfo()[0])
        pool = cupy.get_default_memory_pool()
        available = free + int(pool.free_bytes())
        limit = int(pool.get_limit())  # 0: no limit
        if limit:
            available = min(available, limit - int(pool.used_bytes()))
    return max(available, 0)
