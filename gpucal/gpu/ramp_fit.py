"""CuPy launcher of ``gpucal/kernels/ramp_fit.cu``.

The exposure is cut into row blocks sized from free device memory. Two CUDA streams and
two sets of pinned host buffers overlap the host read and host-to-device copy of block
k+1 with the kernel of block k; results come back through pinned memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np

from cpu_fallback.ramp_fit import FitParams
from gpucal.ramp_fit_io import BlockInputs, BlockOutputs, kernel_arguments

log = logging.getLogger(__name__)

THREADS_PER_BLOCK = 128


def fit_blocks_gpu(fp: FitParams, blocks: Iterable[tuple[int, int, Callable[[], BlockInputs]]],
                   store: Callable[[int, int, BlockOutputs], None], weight_table: np.ndarray) -> None:
    """Fit each ``(row_start, row_stop, load)`` block on the device and ``store`` its outputs.

    ``load()`` reads the block's inputs on the host; ``store`` receives host outputs. Two
    slots alternate so that loading and copying one block overlaps the kernel of the other.
    """
    import cupy

    from .compile import kernel

    fit_kernel = kernel("ramp_fit", "ramp_fit_kernel")
    d_table = cupy.asarray(weight_table)
    dummy = cupy.zeros(1, dtype=np.float32)
    streams = [cupy.cuda.Stream(non_blocking=True) for _ in range(2)]
    # Per slot: (row_start, row_stop, pinned host outputs, stream, buffers kept alive
    # until the stream's copies have finished).
    pending: list[tuple | None] = [None, None]

    def drain(slot: int) -> None:
        item = pending[slot]
        if item is None:
            return
        r0, r1, host_out, stream, _keepalive = item
        stream.synchronize()
        store(r0, r1, host_out)
        pending[slot] = None

    for index, (r0, r1, load) in enumerate(blocks):
        slot = index % 2
        drain(slot)
        stream = streams[slot]
        inputs = load()
        npix = inputs.data.shape[2]
        pinned_in = BlockInputs(*(None if a is None else _pinned_copy(a) for a in inputs))
        with stream:
            d_in = BlockInputs(*(None if a is None else _upload(a, stream) for a in pinned_in))
            d_out = BlockOutputs.allocate(fp, npix, cupy)
            scratch = cupy.empty((max(fp.ngroups - 1, 1), npix), dtype=np.float64)
            args = kernel_arguments(fp, d_in, d_out, d_table, scratch, dummy)
            grid = (npix + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
            fit_kernel((grid,), (THREADS_PER_BLOCK,), tuple(value for _, value in args))
            host_out = BlockOutputs(*(None if a is None else _download(a, stream) for a in d_out))
        pending[slot] = (r0, r1, host_out, stream, (pinned_in, d_in, d_out, scratch))
    drain(0)
    drain(1)


def _pinned_copy(array: np.ndarray) -> np.ndarray:
    pinned = _pinned_empty(array.shape, array.dtype)
    pinned[...] = array
    return pinned


def _upload(pinned: np.ndarray, stream):
    import cupy

    out = cupy.empty(pinned.shape, dtype=pinned.dtype)
    out.set(pinned, stream=stream)
    return out


def _download(array, stream) -> np.ndarray:
    out = _pinned_empty(array.shape, array.dtype)
    array.get(stream=stream, out=out)
    return out


def _pinned_empty(shape, dtype) -> np.ndarray:
    import cupy

    count = int(np.prod(shape))
    mem = cupy.cuda.alloc_pinned_memory(max(count * np.dtype(dtype).itemsize, 1))
    return np.frombuffer(mem, dtype=dtype, count=count).reshape(shape)


def device_bytes_per_pixel(fp: FitParams) -> int:
    """Device memory one pixel of a block needs (inputs, scratch, outputs)."""
    per_pixel = fp.nints * fp.ngroups_raw * (4 + 1) + 4 * 4 + 8 * max(fp.ngroups - 1, 1)
    per_pixel += fp.nints * 4  # zeroframe (upper bound)
    per_pixel += 4 * 4 + 4 + fp.nints * (4 * 4 + 4)
    if fp.save_opt:
        per_pixel += fp.nints * (7 * fp.max_segs + 1 + fp.max_crs) * 4 + 2 * 4
    return per_pixel
