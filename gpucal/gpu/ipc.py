"""CuPy launcher of the IPC kernels (``gpucal/kernels/ipc.cu``).

Row blocks (with the halo rows the kernel reaches) stream through two CUDA streams with
pinned host buffers, so the read and upload of block k+1 overlap the kernel of block k. A
2-D kernel is uploaded once; a per-pixel (4-D) kernel travels with each block's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from gpucal.ipc_io import IpcGeometry, ipc_arguments, kernel_name

from .budget import BlockCost, allocation_bytes
from .transfer import download, pinned_copy, two_stream_pipeline, upload, upload_shared

THREADS_PER_BLOCK = 128


def _grid(n: int) -> int:
    return max(1, (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)


def run_ipc(g: IpcGeometry, d_data, d_kernel, stream=None):
    """Launch the IPC kernel for ``d_kernel``'s rank on device inputs; returns the device output rows."""
    import cupy

    from .compile import kernel

    out = cupy.empty((g.nplanes, g.rows, g.nx), dtype=np.float32)
    args = ipc_arguments(g, d_data, d_kernel, out)
    kern = kernel("ipc", kernel_name(d_kernel.ndim))
    n = g.nplanes * g.rows * g.nx
    if stream is None:
        kern((_grid(n),), (THREADS_PER_BLOCK,), tuple(v for _, v in args))
    else:
        with stream:
            kern((_grid(n),), (THREADS_PER_BLOCK,), tuple(v for _, v in args))
    return out


def ipc_blocks_gpu(blocks: Iterable[tuple[int, int, IpcGeometry, Callable[[], tuple]]], kernel2d: np.ndarray | None,
                   out: np.ndarray, done: Callable[[int], None] | None = None) -> None:
    """Correct ``(r0, r1, geometry, load)`` row blocks into ``out`` (nplanes, ny, nx).

    ``load()`` returns ``(data_in, kernel_block)``: data (nplanes, rows_in, nx) float32 and,
    for a per-pixel kernel, its (kh, kw, rows, nx) rows (None with ``kernel2d``).
    """
    d_kernel2d = None
    if kernel2d is not None:
        (d_kernel2d,) = upload_shared(np.ascontiguousarray(kernel2d, dtype=np.float32))

    def process(inputs, stream):
        g, data_in, kblock = inputs
        h_data = pinned_copy(data_in)
        keep: list = [h_data]
        d_data = upload(h_data, stream)
        if kblock is None:
            d_k = d_kernel2d
        else:
            h_k = pinned_copy(kblock)
            keep.append(h_k)
            d_k = upload(h_k, stream)
        d_out = run_ipc(g, d_data, d_k, stream)
        keep += [d_data, d_k, d_out]
        return download(d_out, stream), keep

    def finish(key, h_out) -> None:
        r0, r1 = key
        out[:, r0:r1] = h_out
        if done is not None:
            done(r1 - r0)

    def items():
        for r0, r1, g, load in blocks:
            yield (r0, r1), (lambda g=g, load=load: (g, *load()))

    two_stream_pipeline(items(), process, finish)


def block_cost(nplanes: int, kernel: np.ndarray) -> BlockCost:
    """What one pixel of a block costs (halo rows are planned as extra rows): on the device the
    data in and out and a per-pixel kernel's rows; on the host the data as read, its pinned copy,
    the pinned output and a per-pixel kernel's rows with their pinned copy."""
    kernel_bytes = kernel.shape[0] * kernel.shape[1] * 4 if kernel.ndim == 4 else 0
    return BlockCost(device=nplanes * 4 * 2 + kernel_bytes, host=nplanes * 4 * 3 + kernel_bytes * 2, arrays=3)


def resident_bytes(kernel: np.ndarray) -> int:
    """Device bytes :func:`ipc_blocks_gpu` keeps for the whole run (a 2-D kernel)."""
    return allocation_bytes(kernel.size * 4) if kernel.ndim == 2 else 0
