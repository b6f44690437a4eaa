"""Run a per-pixel step over blocks of a ramp (rows, or whole integrations) and assemble a new
:class:`~gpucal.Ramp`.

Each block is read with :meth:`Ramp.block` (fresh native arrays), moved to the backend's
array module, handed to the step's kernel, and copied back into new host arrays. A step
that looks at neighbouring rows (saturation growth) asks for a ``halo``: the kernel then
sees ``halo`` extra rows on each side (fewer at the detector edges) and only the interior
rows are kept.

On the CPU, blocks are cache-sized (about :data:`~gpucal.chunking.CPU_BLOCK_SAMPLES`
samples) and run on :func:`~gpucal.chunking.cpu_workers` threads: numpy releases the GIL in
its element loops, the kernels are pure functions of their block, and every block writes
its own rows (or integrations) of the output, so the result does not depend on the thread
count. TSO shapes (few rows, many integrations) run in blocks of whole integrations.

A Ramp whose arrays are already on the GPU (CuPy; the detector1 chain uploads each block
once) is handed to the kernel whole, and the new Ramp keeps the kernel's device arrays:
no copy to or from the host.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import chunking
from ..backend import array_module, on_device, resolve_backend, to_host
from ..chunking import cache_block, cpu_workers, parse_memory, rows_per_block
from ..ramp import Ramp
from ._derive import like

logger = logging.getLogger(__name__)

#: Working-set budget per block (bytes) when the caller gives none.
DEFAULT_BLOCK_BYTES = 256 * 1024**2

#: An integration of at most this many cache blocks may be one CPU block of its own (see run_blocks).
INTEGRATION_BLOCK_FACTOR = 8

#: kernel(xp, data, groupdq, pixeldq, zeroframe, rows, ints) -> (data, groupdq, pixeldq, zeroframe);
#: ``rows`` / ``ints`` are the ``slice`` of detector rows / integrations the block arrays cover.
Kernel = Callable[[Any, Any, Any, Any, Any, slice, slice], tuple[Any, Any, Any, Any]]


def backend_and_module(backend: str | None) -> tuple[str, Any]:
    """Resolved backend name and its array module (cupy or numpy)."""
    name = resolve_backend(backend)
    return name, array_module(name)


def _blocks(ramp: Ramp, halo: int, block_bytes: int, cpu: bool) -> tuple[list[tuple[slice, slice]], int, str]:
    """``([(output rows, integrations)], workers, layout)`` of the blocks a step runs over.

    Row blocks span every integration. On the CPU, when a cache-sized row block would be only
    a few rows of many integrations (TSO shapes: 32 rows x hundreds of integrations) and one
    integration is small, blocks of whole integrations are used instead: contiguous in memory
    and without halo rows.
    """
    nints, ngroups, ny, nx = ramp.shape
    bytes_per_pixel = 3 * ramp.nbytes_per_row // max(nx, 1)
    budget_rows = rows_per_block(ny, nx, bytes_per_pixel, block_bytes)
    workers = 1
    if cpu:
        # Threads share the budget; a block holds about a cache-sized number of samples.
        workers = max(1, min(cpu_workers(), budget_rows))
        budget_rows = min(budget_rows // workers, max(cache_block(nints * ngroups * nx), 4 * halo + 1))
    step = max(1, budget_rows - 2 * halo)
    every = slice(0, nints)
    if cpu and nints > 1 and step < ny:
        per_int = ngroups * ny * nx
        ints = cache_block(per_int)
        int_bytes = bytes_per_pixel * ny * nx // nints
        if per_int <= INTEGRATION_BLOCK_FACTOR * chunking.CPU_BLOCK_SAMPLES and ints * int_bytes <= block_bytes // workers:
            blocks = [(slice(0, ny), slice(i, min(nints, i + ints))) for i in range(0, nints, ints)]
            return blocks, max(1, min(cpu_workers(), len(blocks))), f"blocks of {ints} integration(s)"
    return [(slice(r, min(ny, r + step)), every) for r in range(0, ny, step)], workers, f"row blocks of {step}"


def run_blocks(ramp: Ramp, kernel: Kernel, backend: str | None, *, halo: int = 0,
               max_memory: int | str | None = None) -> Ramp:
    """Apply ``kernel`` block by block and return a new Ramp (``ramp`` is not modified).

    ``max_memory`` (bytes or "512MB"; default 256 MiB) bounds the working set of the blocks
    in flight: on the CPU it is shared by the threads. Kernels work per pixel and per
    integration, except for ``halo`` rows of neighbours; the pixel DQ they return is the
    input's OR their flags, so blocks of integrations OR theirs together.
    """
    block_bytes = parse_memory(max_memory) or DEFAULT_BLOCK_BYTES
    name, xp = backend_and_module(backend)
    nints, ngroups, ny, nx = ramp.shape
    if name == "gpu" and on_device(ramp.data):
        d, g, p, z = kernel(xp, ramp.data, ramp.groupdq, ramp.pixeldq, ramp.zeroframe, slice(0, ny), slice(0, nints))
        return like(ramp, d.astype(xp.float32, copy=False), g.astype(xp.uint8, copy=False),
                    p.astype(xp.uint32, copy=False), None if z is None else z.astype(xp.float32, copy=False))
    data = np.empty(ramp.shape, np.float32)
    groupdq = np.empty(ramp.shape, np.uint8)
    pixeldq = np.zeros((ny, nx), np.uint32)
    zeroframe = None if ramp.zeroframe is None else np.empty((nints, ny, nx), np.float32)
    blocks, workers, layout = _blocks(ramp, halo, block_bytes, name == "cpu")
    lock = threading.Lock()

    def run(block: tuple[slice, slice]) -> None:
        rows, ints = block
        h0, h1 = max(0, rows.start - halo), min(ny, rows.stop + halo)
        blk = ramp.block(h0, h1, ints=(ints.start, ints.stop))
        arrays = [xp.asarray(a) if a is not None else None for a in blk]
        d, g, p, z = kernel(xp, *arrays, slice(h0, h1), ints)
        keep = slice(rows.start - h0, rows.stop - h0)
        data[ints, :, rows] = to_host(d[:, :, keep])
        groupdq[ints, :, rows] = to_host(g[:, :, keep])
        if zeroframe is not None:
            zeroframe[ints, rows] = to_host(z[:, keep])
        p = to_host(p[keep])
        with lock:
            pixeldq[rows] |= p

    if workers == 1:
        for block in blocks:
            run(block)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(run, blocks):  # re-raises a block's error
                pass
    logger.debug("ran %s on %s in %s (%s, %d thread(s))", getattr(kernel, "__name__", "step"), ramp, layout, name,
                 workers)
    return like(ramp, data, groupdq, pixeldq, zeroframe)


def ref_rows(xp: Any, array: Any, rows: slice) -> Any:
    """Rows ``rows`` (last-but-one axis) of a reference array (host or device) on the backend."""
    if array is None:
        return None
    if on_device(array):
        return xp.ascontiguousarray(array[..., rows, :])
    return xp.asarray(np.ascontiguousarray(array[..., rows, :]))
