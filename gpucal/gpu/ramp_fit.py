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

from .budget import BlockCost, allocation_bytes
from .transfer import download, pinned_copy, two_stream_pipeline, upload, upload_shared

log = logging.getLogger(__name__)

THREADS_PER_BLOCK = 128


def fit_blocks_gpu(fp: FitParams, blocks: Iterable[tuple[int, int, Callable[[], BlockInputs]]],
                   store: Callable[[int, int, BlockOutputs], None], weight_table: np.ndarray) -> None:
    """Fit each ``(row_start, row_stop, load)`` block on the device and ``store`` its outputs.

    ``load()`` reads the block's inputs on the host; ``store`` receives host outputs. Two
    streams alternate so that loading and copying one block overlaps the kernel of the other.
    """
    import cupy

    from .compile import kernel

    fit_kernel = kernel("ramp_fit", "ramp_fit_kernel")
    (d_table,) = upload_shared(weight_table)

    def process(inputs: BlockInputs, stream):
        npix = inputs.data.shape[2]
        dummy = cupy.zeros(1, dtype=np.float32)  # per block: it stands for writable outputs
        pinned_in = BlockInputs(*(None if a is None else pinned_copy(a) for a in inputs))
        d_in = BlockInputs(*(None if a is None else upload(a, stream) for a in pinned_in))
        d_out = BlockOutputs.allocate(fp, npix, cupy)
        scratch = cupy.empty((max(fp.ngroups - 1, 1), npix), dtype=np.float64)
        args = kernel_arguments(fp, d_in, d_out, d_table, scratch, dummy)
        grid = (npix + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        fit_kernel((grid,), (THREADS_PER_BLOCK,), tuple(value for _, value in args))
        host_out = BlockOutputs(*(None if a is None else download(a, stream) for a in d_out))
        return host_out, [pinned_in, d_in, d_out, scratch, dummy]

    two_stream_pipeline((((r0, r1), load) for r0, r1, load in blocks), process,
                        lambda rows, out: store(rows[0], rows[1], out))


def block_cost(fp: FitParams) -> BlockCost:
    """What one pixel of a block costs: on the device its inputs, scratch and outputs; on the
    host its inputs as read, their pinned copies and the pinned outputs."""
    inputs = fp.nints * fp.ngroups_raw * (4 + 1) + 4 * 4 + fp.nints * 4  # data, groupdq, 4 planes, zeroframe
    outputs = 4 * 4 + 4 + fp.nints * (4 * 4 + 4)
    if fp.save_opt:
        outputs += fp.nints * (7 * fp.max_segs + 1 + fp.max_crs) * 4 + 2 * 4
    scratch = 8 * max(fp.ngroups - 1, 1)
    return BlockCost(device=inputs + scratch + outputs, host=2 * inputs + outputs, arrays=7 + 8 + 2)  # + scratch, dummy


def resident_bytes(weight_table: np.ndarray) -> int:
    """Device bytes :func:`fit_blocks_gpu` keeps for the whole run (weight table, dummy argument)."""
    return allocation_bytes(weight_table.nbytes) + allocation_bytes(4)
