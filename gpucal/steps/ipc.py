"""IPC (inter-pixel capacitance) correction step, as jwst 3.0.0 ``ipc`` (spec section 4.4).

Each group of each integration is convolved with the reference kernel (2-D, or 4-D per
pixel); reference pixels are left unchanged and contribute zero. The exposure streams in row
blocks with the halo rows the kernel reaches, through ``gpucal/kernels/ipc.cu`` on the GPU
or its numpy twin ``cpu_fallback/ipc.py`` on the CPU (identical bits, equal to jwst).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from ..backend import on_device, resolve_backend
from ..chunking import parse_memory, rows_per_block
from ..errors import InputError
from ..ipc_io import IpcGeometry, halo_rows
from ..ramp import Ramp
from ..refs.ipc import IpcReference, read_ipc
from ..refs.subarray import subarray_window
from ._derive import with_data

log = logging.getLogger(__name__)

#: Host memory a CPU run plans for when ``max_memory`` is not given.
DEFAULT_CPU_MEMORY = 512 * 1024**2

NIR_FULL = (2048, 2048)
MIRI_FULL = (1024, 1032)


def exposure_window(ramp: Ramp) -> tuple[int, int, int, int]:
    """``(x0, y0, nx_s, ny_s)`` (0-based starts) of the exposure from SUBSTRT1/2, SUBSIZE1/2.

    Missing keywords are allowed for a full-frame array only (the whole detector).
    """
    window = subarray_window(ramp.meta)
    full = MIRI_FULL if ramp.instrument == "MIRI" else NIR_FULL
    if window is None:
        if (ramp.ny, ramp.nx) != full:
            raise InputError(
                f"exposure of shape (ny, nx) = {(ramp.ny, ramp.nx)} has no valid SUBSTRT1/2, SUBSIZE1/2 in its "
                "meta: IPC needs them to find the reference pixels"
            )
        return 0, 0, ramp.nx, ramp.ny
    xstart, ystart, xsize, ysize = window
    if (ysize, xsize) != (ramp.ny, ramp.nx):
        raise InputError(
            f"SUBSIZE1={xsize} SUBSIZE2={ysize} disagree with the data's (ny, nx) = {(ramp.ny, ramp.nx)}"
        )
    return xstart - 1, ystart - 1, xsize, ysize


def reference_margins(ramp: Ramp) -> tuple[int, int, int, int]:
    """``(bottom, top, left, right)`` reference-pixel rows/columns, as jwst ``get_num_ref_pixels``."""
    x0, y0, nx_s, ny_s = exposure_window(ramp)
    if ramp.instrument == "MIRI":
        return 0, 0, max(0, 4 - x0), max(0, x0 + nx_s - 1028)
    return max(0, 4 - y0), max(0, y0 + ny_s - 2044), max(0, 4 - x0), max(0, x0 + nx_s - 2044)


def exposure_kernel(ramp: Ramp, ref: IpcReference) -> np.ndarray:
    """The 2-D kernel, or the 4-D kernel's (kh, kw, ny, nx) part for this exposure (``get_ipc_slice``)."""
    k = ref.data
    if k.ndim == 2:
        return k
    x0, y0, nx_s, ny_s = exposure_window(ramp)
    full = MIRI_FULL if ramp.instrument == "MIRI" else NIR_FULL
    if nx_s < full[1] or ny_s < full[0]:
        cut = k[:, :, y0:y0 + ny_s, x0:x0 + nx_s]
        if cut.shape[2:] != (ramp.ny, ramp.nx):
            raise InputError(
                f"per-pixel IPC kernel of shape {k.shape} does not cover the subarray at SUBSTRT1={x0 + 1} "
                f"SUBSTRT2={y0 + 1} of size {nx_s}x{ny_s}"
            )
        return cut
    if k.shape[2:] != (ramp.ny, ramp.nx):
        raise InputError(f"per-pixel IPC kernel of shape {k.shape} does not match the exposure's "
                         f"(ny, nx) = {(ramp.ny, ramp.nx)}")
    return k


def _as_reference(ipc_ref: Any) -> IpcReference:
    if isinstance(ipc_ref, IpcReference):
        return ipc_ref
    if isinstance(ipc_ref, (str, os.PathLike)):
        return read_ipc(ipc_ref)
    if isinstance(ipc_ref, np.ndarray):
        return IpcReference.from_array(ipc_ref)
    raise InputError(f"ipc_ref must be an IpcReference, a file path or a numpy array, got {type(ipc_ref).__name__}")


def _bytes_per_pixel(nplanes: int, kernel: np.ndarray) -> int:
    per = nplanes * 24  # data in, padded copy, accumulator, product, output (float32)
    if kernel.ndim == 4:
        per += kernel.shape[0] * kernel.shape[1] * 4 * 2
    return per


def ipc(ramp: Ramp, ipc_ref: IpcReference | str | os.PathLike | np.ndarray, *, backend: str | None = None,
        max_memory: int | str | None = None, max_device_memory: int | str | None = None) -> Ramp:
    """Correct a ramp for inter-pixel capacitance, as jwst 3.0.0's ``ipc`` step.

    Parameters
    ----------
    ramp : Ramp
        The exposure. Meta SUBSTRT1/2, SUBSIZE1/2 (and INSTRUME) locate the reference pixels;
        they may be missing only for a full-frame array.
    ipc_ref : IpcReference, path or array
        The deconvolution kernel, 2-D ``(kh, kw)`` or per pixel 4-D ``(kh, kw, NY, NX)``
        (full frame, cut to a subarray exposure as jwst does).
    backend : {"gpu", "cpu", "auto"}, optional
    max_memory : int or str, optional
        Host working-set budget (e.g. ``"1GB"``; default 2 GiB); sets the row-block size. On
        the GPU it bounds the blocks' host copies and pinned staging buffers.
    max_device_memory : int or str, optional
        GPU only: device memory for every block in flight at once (default 70 % of the free
        memory of the current device, never more than is free); see :mod:`gpucal.gpu.budget`.
        Unused when the ramp is on the device already (the detector1 chain).

    Returns
    -------
    Ramp
        A new ramp with corrected float32 data; DQ, zeroframe copied unchanged, ``S_IPC``
        = COMPLETE. The input is not modified.
    """
    if not isinstance(ramp, Ramp):
        raise InputError(f"ramp must be a gpucal.Ramp, got {type(ramp).__name__}")
    ref = _as_reference(ipc_ref)
    kernel = exposure_kernel(ramp, ref)
    bottom, top, left, right = reference_margins(ramp)
    name = resolve_backend(backend)
    budget = parse_memory(max_memory)
    max_device_memory = parse_memory(max_device_memory)
    nints, ngroups, ny, nx = ramp.shape
    nplanes = nints * ngroups
    kh, kw = kernel.shape[:2]
    sy0, sy1, sx0, sx1 = bottom, ny - top, left, nx - right
    start = time.perf_counter()

    if name == "gpu" and on_device(ramp.data):
        # the detector1 chain on the GPU: the whole block is on the device already
        import cupy

        from ..gpu.ipc import run_ipc

        g = IpcGeometry(nplanes, nx, ny, ny, 0, 0, sy0, sy1, sx0, sx1, kh, kw)
        d_kernel = cupy.asarray(np.ascontiguousarray(kernel, dtype=np.float32))
        out = run_ipc(g, cupy.ascontiguousarray(ramp.data).reshape(nplanes, ny, nx), d_kernel)
        log.info("ipc: %s kernel %s on %s (gpu, on the device), %.2f s", "per-pixel" if kernel.ndim == 4 else "2-D",
                 kernel.shape[:2], ramp.shape, time.perf_counter() - start)
        return with_data(ramp, out.reshape(ramp.shape), S_IPC="COMPLETE")
    if name == "gpu":
        from ..gpu.budget import device_budget, host_budget, plan_rows
        from ..gpu.ipc import block_cost, resident_bytes

        rows = plan_rows(ny, nx, block_cost(nplanes, kernel), device=device_budget(max_device_memory),
                         host=host_budget(budget), resident=resident_bytes(kernel), halo=kh // 2)
    else:
        rows = rows_per_block(ny, nx, _bytes_per_pixel(nplanes, kernel), budget or DEFAULT_CPU_MEMORY)
        rows = max(rows - (kh - 1), 1) if rows < ny else rows

    def blocks():
        for r0 in range(0, ny, rows):
            r1 = min(ny, r0 + rows)
            h0, h1, top_in = halo_rows(r0, r1, ny, kh)
            g = IpcGeometry(nplanes, nx, h1 - h0, r1 - r0, top_in, h0, sy0, sy1, sx0, sx1, kh, kw)

            def load(h0=h0, h1=h1, r0=r0, r1=r1):
                data = np.array(ramp.data[:, :, h0:h1], dtype=np.float32, order="C").reshape(nplanes, h1 - h0, nx)
                kblock = None if kernel.ndim == 2 else np.ascontiguousarray(kernel[:, :, r0:r1])
                return data, kblock

            yield r0, r1, g, load

    out = np.empty((nplanes, ny, nx), dtype=np.float32)
    if name == "gpu":
        from ..gpu.budget import release_pinned_pool
        from ..gpu.ipc import ipc_blocks_gpu

        try:
            ipc_blocks_gpu(blocks(), kernel if kernel.ndim == 2 else None, out)
        finally:
            release_pinned_pool()
    else:
        from cpu_fallback.ipc import ipc_2d_block, ipc_4d_block

        for r0, r1, g, load in blocks():
            data, kblock = load()
            if kblock is None:
                out[:, r0:r1] = ipc_2d_block(g, data, kernel)
            else:
                out[:, r0:r1] = ipc_4d_block(g, data, kblock)
    log.info("ipc: %s kernel %s on %s (%s), reference margins b/t/l/r = %d/%d/%d/%d, %.2f s",
             "per-pixel" if kernel.ndim == 4 else "2-D", kernel.shape[:2], ramp.shape, name, bottom, top, left,
             right, time.perf_counter() - start)
    return with_data(ramp, out.reshape(ramp.shape), S_IPC="COMPLETE")


__all__ = ["ipc", "reference_margins", "exposure_kernel", "exposure_window"]


