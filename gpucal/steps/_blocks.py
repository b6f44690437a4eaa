"""Run a per-pixel step over row blocks of a ramp and assemble a new :class:`~gpucal.Ramp`.

Each block is read with :meth:`Ramp.block` (fresh native arrays), moved to the backend's
array module, handed to the step's kernel, and copied back into new host arrays. A step
that looks at neighbouring rows (saturation growth) asks for a ``halo``: the kernel then
sees ``halo`` extra rows on each side (fewer at the detector edges) and only the interior
rows are kept.

On the CPU, blocks are cache-sized (about :data:`~gpucal.chunking.CPU_BLOCK_SAMPLES`
samples) and run on :func:`~gpucal.chunking.cpu_workers` threads: numpy releases the GIL in
its element loops, the kernels are pure functions of their block, and every block writes
its own rows of the output, so the result does not depend on the thread count.

A Ramp whose arrays are already on the GPU (CuPy; the detector1 chain uploads each block
once) is handed to the kernel whole, and the new Ramp keeps the kernel's device arrays:
no copy to or from the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..backend import array_module, on_device, resolve_backend, to_host
from ..chunking import cache_block, cpu_workers, parse_memory, rows_per_block
from ..ramp import Ramp
from ._derive import like

logger = logging.getLogger(__name__)

#: Working-set budget per block (bytes) when the caller gives none.
DEFAULT_BLOCK_BYTES = 256 * 1024**2

#: kernel(xp, data, groupdq, pixeldq, zeroframe, rows) -> (data, groupdq, pixeldq, zeroframe);
#: ``rows`` is the ``slice`` of detector rows the block arrays cover.
Kernel = Callable[[Any, Any, Any, Any, Any, slice], tuple[Any, Any, Any, Any]]


def backend_and_module(backend: str | None) -> tuple[str, Any]:
    """Resolved backend name and its array module (cupy or numpy)."""
    name = resolve_backend(backend)
    return name, array_module(name)


def run_blocks(ramp: Ramp, kernel: Kernel, backend: str | None, *, halo: int = 0,
               max_memory: int | str | None = None) -> Ramp:
    """Apply ``kernel`` block by block and return a new Ramp (``ramp`` is not modified).

    ``max_memory`` (bytes or "512MB"; default 256 MiB) bounds the working set of the blocks
    in flight: on the CPU it is shared by the threads.
    """
    block_bytes = parse_memory(max_memory) or DEFAULT_BLOCK_BYTES
    name, xp = backend_and_module(backend)
    nints, ngroups, ny, nx = ramp.shape
    if name == "gpu" and on_device(ramp.data):
        d, g, p, z = kernel(xp, ramp.data, ramp.groupdq, ramp.pixeldq, ramp.zeroframe, slice(0, ny))
        return like(ramp, d.astype(xp.float32, copy=False), g.astype(xp.uint8, copy=False),
                    p.astype(xp.uint32, copy=False), None if z is None else z.astype(xp.float32, copy=False))
    data = np.empty(ramp.shape, np.float32)
    groupdq = np.empty(ramp.shape, np.uint8)
    pixeldq = np.empty((ny, nx), np.uint32)
    zeroframe = None if ramp.zeroframe is None else np.empty((nints, ny, nx), np.float32)
    bytes_per_pixel = 3 * ramp.nbytes_per_row // max(nx, 1)
    budget_rows = rows_per_block(ny, nx, bytes_per_pixel, block_bytes)
    workers = 1
    if name == "cpu":
        # Threads share the budget; a block holds about a cache-sized number of samples.
        workers = max(1, min(cpu_workers(), budget_rows))
        budget_rows = min(budget_rows // workers, max(cache_block(nints * ngroups * nx), 4 * halo + 1))
    step = max(1, budget_rows - 2 * halo)

    def run(r0: int) -> None:
        r1 = min(ny, r0 + step)
        h0, h1 = max(0, r0 - halo), min(ny, r1 + halo)
        blk = ramp.block(h0, h1)
        arrays = [xp.asarray(a) if a is not None else None for a in blk]
        d, g, p, z = kernel(xp, *arrays, slice(h0, h1))
        keep = slice(r0 - h0, r0 - h0 + (r1 - r0))
        data[:, :, r0:r1] = to_host(d[:, :, keep])
        groupdq[:, :, r0:r1] = to_host(g[:, :, keep])
        pixeldq[r0:r1] = to_host(p[keep])
        if zeroframe is not None:
            zeroframe[:, r0:r1] = to_host(z[:, keep])

    starts = range(0, ny, step)
    if workers == 1:
        for r0 in starts:
            run(r0)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(run, starts):  # re-raises a block's error
                pass
    logger.debug("ran %s on %s in row blocks of %d (%s, %d thread(s))", getattr(kernel, "__name__", "step"), ramp, step,
                 name, workers)
    return like(ramp, data, groupdq, pixeldq, zeroframe)


def ref_rows(xp: Any, array: Any, rows: slice) -> Any:
    """Rows ``rows`` (last-but-one axis) of a reference array (host or device) on the backend."""
    if array is None:
        return None
    if on_device(array):
        return xp.ascontiguousarray(array[..., rows, :])
    return xp.asarray(np.ascontiguousarray(array[..., rows, :]))
