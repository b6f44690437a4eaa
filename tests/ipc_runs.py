"""Run the IPC kernels on one row block: numpy twin, host build and (on a GPU) CuPy."""

from __future__ import annotations

import numpy as np

from cpu_fallback.ipc import ipc_2d_block, ipc_4d_block
from gpucal.ipc_io import IpcGeometry, halo_rows, ipc_arguments, kernel_name


def numpy_block(g: IpcGeometry, data_in, kernel):
    return (ipc_2d_block if kernel.ndim == 2 else ipc_4d_block)(g, data_in, kernel)


def host_block(g: IpcGeometry, data_in, kernel):
    from host_build import host_library, launch_host

    out = np.full((g.nplanes, g.rows, g.nx), np.float32(-7.25e30), dtype=np.float32)  # poison
    launch_host(host_library("ipc"), kernel_name(kernel.ndim),
                [v for _, v in ipc_arguments(g, np.ascontiguousarray(data_in), np.ascontiguousarray(kernel), out)])
    return out


def cupy_block(g: IpcGeometry, data_in, kernel):
    import cupy

    from gpucal.gpu.compile import kernel as get_kernel

    out = cupy.full((g.nplanes, g.rows, g.nx), -7.25e30, dtype=np.float32)
    args = ipc_arguments(g, cupy.asarray(data_in), cupy.asarray(kernel), out)
    get_kernel("ipc", kernel_name(kernel.ndim))((5,), (64,), tuple(v for _, v in args))
    return cupy.asnumpy(out)


def row_blocks(data: np.ndarray, kernel: np.ndarray, margins: tuple[int, int, int, int], rows: int):
    """(geometry, data_in, kernel block) for every row block of a (nplanes, ny, nx) array.

    ``margins`` = (bottom, top, left, right) reference-pixel counts.
    """
    nplanes, ny, nx = data.shape
    bottom, top, left, right = margins
    kh, kw = kernel.shape[:2]
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        h0, h1, ht = halo_rows(r0, r1, ny, kh)
        g = IpcGeometry(nplanes, nx, h1 - h0, r1 - r0, ht, h0, bottom, ny - top, left, nx - right, kh, kw)
        kblock = kernel if kernel.ndim == 2 else np.ascontiguousarray(kernel[:, :, r0:r1])
        yield r0, r1, g, np.ascontiguousarray(data[:, h0:h1]), kblock


def run_blocks(runner, data, kernel, margins, rows):
    out = np.empty_like(data)
    for r0, r1, g, d, k in row_blocks(data, kernel, margins, rows):
        out[:, r0:r1] = runner(g, d, k)
    return out


def random_kernel(rng, kh=3, kw=3, per_pixel=None):
    """A realistic IPC deconvolution kernel (centre ~1.06, neighbours ~ -0.015), optionally per pixel."""
    base = rng.normal(-0.004, 0.006, (kh, kw)).astype(np.float32)
    base[kh // 2, kw // 2] = np.float32(1.0 + rng.uniform(0.02, 0.08))
    if per_pixel is None:
        return base
    ny, nx = per_pixel
    k4 = base[:, :, None, None] * (1 + rng.normal(0, 0.05, (kh, kw, ny, nx))).astype(np.float32)
    return k4.astype(np.float32)


def random_data(rng, nplanes, ny, nx, nan_fraction=0.01):
    data = rng.normal(12000, 3000, (nplanes, ny, nx)).astype(np.float32)
    data[rng.random(data.shape) < nan_fraction] = np.nan
    data[rng.random(data.shape) < 0.01] = 0.0
    data[rng.random(data.shape) < 0.005] = -0.0
    data[rng.random(data.shape) < 0.005] *= np.float32(1e30)
    return data
