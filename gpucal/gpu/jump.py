"""CuPy launchers of the jump-detection kernels (``gpucal/kernels/jump.cu``).

Pass 1 (``two_point_kernel``) streams row blocks through two CUDA streams with pinned host
buffers, so the read and upload of block k+1 overlap the kernel of block k; only the group
DQ and the marks planes come back (the median and sigma stay on the device). Pass 2
(``neighbour_kernel``) uploads each row block with its one-row halo of group DQ and marks
and brings back the finished group DQ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np

from cpu_fallback.jump import JumpParams
from gpucal.jump_detection import halo_window
from gpucal.jump_io import (TwoPointInputs, TwoPointOutputs, neighbour_arguments, scratch_shape,
                            two_point_arguments)

from .budget import BlockCost
from .transfer import download, pinned_copy, two_stream_pipeline, upload

log = logging.getLogger(__name__)

THREADS_PER_BLOCK = 128


def _grid(n: int) -> int:
    return max(1, (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)


def run_two_point(fp: JumpParams, d_in: TwoPointInputs, stream=None, keep: list | None = None) -> TwoPointOutputs:
    """Launch ``two_point_kernel`` on device inputs; returns device outputs.

    ``keep`` receives the scratch buffer, to be held until the stream has finished.
    """
    import cupy

    from .compile import kernel

    npix = d_in.data.shape[2]
    d_out = TwoPointOutputs.allocate(fp, npix, cupy)
    scratch = cupy.empty(scratch_shape(fp, npix), dtype=np.float64)
    if keep is not None:
        keep.append(scratch)
    args = two_point_arguments(fp, d_in, d_out, scratch)
    kern = kernel("jump", "two_point_kernel")
    if stream is None:
        kern((_grid(npix),), (THREADS_PER_BLOCK,), tuple(v for _, v in args))
    else:
        with stream:
            kern((_grid(npix),), (THREADS_PER_BLOCK,), tuple(v for _, v in args))
    return d_out


def run_neighbour(fp: JumpParams, d_gdq, d_marks, nx: int, halo_top: int, rows: int, stream=None):
    """Launch ``neighbour_kernel`` on a device halo block; returns the device group DQ of ``rows`` rows."""
    import cupy

    from .compile import kernel

    out = cupy.empty((fp.nints, fp.ngroups, rows * nx), dtype=np.uint8)
    args = neighbour_arguments(fp, d_gdq, d_marks, out, nx, halo_top, rows)
    kern = kernel("jump", "neighbour_kernel")
    if stream is None:
        kern((_grid(rows * nx),), (THREADS_PER_BLOCK,), tuple(v for _, v in args))
    else:
        with stream:
            kern((_grid(rows * nx),), (THREADS_PER_BLOCK,), tuple(v for _, v in args))
    return out


def detect_blocks_gpu(fp: JumpParams, blocks: Iterable[tuple[int, int, Callable[[], tuple]]], gdq: np.ndarray,
                      marks: np.ndarray, done: Callable[[int], None]) -> None:
    """Pass 1 over ``(r0, r1, load)`` row blocks; writes ``gdq`` and ``marks`` (nints, ngroups, ny, nx)."""
    nints, ngroups, _, nx = gdq.shape

    def process(inputs, stream):
        pinned = TwoPointInputs(*(pinned_copy(a) for a in inputs))
        keep: list = [pinned]
        d_in = TwoPointInputs(*(upload(a, stream) for a in pinned))
        d_out = run_two_point(fp, d_in, stream, keep)
        keep += [d_in, d_out]
        return (download(d_out.gdq_out, stream), download(d_out.marks, stream)), keep

    def finish(rows, outputs) -> None:
        r0, r1 = rows
        h_gdq, h_marks = outputs
        gdq[:, :, r0:r1] = h_gdq.reshape(nints, ngroups, r1 - r0, nx)
        marks[:, :, r0:r1] = h_marks.reshape(nints, ngroups, r1 - r0, nx)
        done((r1 - r0) * nx)

    two_stream_pipeline((((r0, r1), load) for r0, r1, load in blocks), process, finish)


def neighbour_blocks_gpu(fp: JumpParams, gdq: np.ndarray, marks: np.ndarray, out: np.ndarray, rows: int,
                         done: Callable[[int], None]) -> None:
    """Pass 2 over row blocks of ``rows`` rows with a one-row halo; writes ``out``."""
    import cupy

    nints, ngroups, ny, nx = gdq.shape
    stream = cupy.cuda.Stream(non_blocking=True)
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        h0, h1, top = halo_window(r0, r1, ny)
        shape = (nints, ngroups, (h1 - h0) * nx)
        h_gdq = pinned_copy(np.ascontiguousarray(gdq[:, :, h0:h1]).reshape(shape))
        h_marks = pinned_copy(np.ascontiguousarray(marks[:, :, h0:h1]).reshape(shape))
        with stream:
            d_gdq, d_marks = upload(h_gdq, stream), upload(h_marks, stream)
            d_out = run_neighbour(fp, d_gdq, d_marks, nx, top, r1 - r0, stream)
            h_out = download(d_out, stream)
        stream.synchronize()
        del d_gdq, d_marks, d_out
        out[:, :, r0:r1] = h_out.reshape(nints, ngroups, r1 - r0, nx)
        done((r1 - r0) * nx)


def two_point_cost(fp: JumpParams) -> BlockCost:
    """What one pixel of a pass-1 block costs: on the device its inputs, outputs and sort space;
    on the host its inputs as read, their pinned copies and the two pinned outputs."""
    samples = fp.nints * fp.ngroups
    inputs = samples * (4 + 1) + 4 * 2  # data, group DQ, gain, rn2
    outputs = samples * (1 + 1) + 8 * 2  # gdq_out, marks, median, sigma
    scratch = 8 * max(fp.nints * (fp.ngroups - 1), 1)
    return BlockCost(device=inputs + outputs + scratch, host=2 * inputs + samples * 2, arrays=4 + 4 + 1)


def neighbour_cost(fp: JumpParams) -> BlockCost:
    """What one pixel of a pass-2 block costs (its halo rows are planned as extra rows): on the
    device the group DQ and marks in, the group DQ out; on the host their contiguous copies,
    pinned copies and the pinned output."""
    samples = fp.nints * fp.ngroups
    return BlockCost(device=samples * 3, host=samples * 5, arrays=3)
