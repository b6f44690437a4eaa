"""Host-device transfers shared by the CuPy launchers: pinned buffers and a two-stream pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def pinned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised numpy array in page-locked host memory (needed for async copies)."""
    import cupy

    count = int(np.prod(shape))
    mem = cupy.cuda.alloc_pinned_memory(max(count * np.dtype(dtype).itemsize, 1))
    return np.frombuffer(mem, dtype=dtype, count=count).reshape(shape)


def pinned_copy(array: np.ndarray) -> np.ndarray:
    pinned = pinned_empty(array.shape, array.dtype)
    pinned[...] = array
    return pinned


def upload_shared(*arrays: np.ndarray) -> list:
    """Device copies of host arrays that kernels on several streams read (tables, dummies).

    The copies run on the current stream, which is then synchronised once: kernels issued
    afterwards on any stream, non-blocking ones included, are ordered after them.
    """
    import cupy

    copies = [cupy.asarray(a) for a in arrays]
    cupy.cuda.get_current_stream().synchronize()
    return copies


def upload(pinned: np.ndarray, stream):
    """Asynchronous host-to-device copy of a pinned array on ``stream``."""
    import cupy

    out = cupy.empty(pinned.shape, dtype=pinned.dtype)
    out.set(pinned, stream=stream)
    return out


def download(array, stream) -> np.ndarray:
    """Asynchronous device-to-host copy into a new pinned array on ``stream``.

    The copy does not block (``get`` does by default in CuPy 13 and 14): the host may read
    the result only after ``stream.synchronize()``.
    """
    out = pinned_empty(array.shape, array.dtype)
    array.get(stream=stream, out=out, blocking=False)
    return out


def two_stream_pipeline(blocks: Iterable[tuple[Any, Callable[[], Any]]],
                        process: Callable[[Any, Any], tuple[Any, list]],
                        finish: Callable[[Any, Any], None]) -> None:
    """Run blocks through two alternating CUDA streams.

    For each ``(key, load)``: ``load()`` reads the block on the host, ``process(inputs,
    stream)`` issues its uploads, kernels and downloads on ``stream`` and returns the
    pinned host outputs and the buffers to keep alive until the stream is done; then
    ``finish(key, outputs)`` runs once that stream has synchronised, which happens only
    before its slot is reused (or at the end). Reading and copying block k+1 so overlaps
    the kernels of block k, and the download of block k the kernels of block k+1.
    """
    import cupy

    streams = [cupy.cuda.Stream(non_blocking=True) for _ in range(2)]
    pending: list[tuple | None] = [None, None]

    def drain(slot: int) -> None:
        item = pending[slot]
        if item is not None:
            key, outputs, stream, _keepalive = item
            stream.synchronize()
            finish(key, outputs)
            pending[slot] = None

    for index, (key, load) in enumerate(blocks):
        slot = index % 2
        drain(slot)
        stream = streams[slot]
        inputs = load()
        with stream:
            outputs, keepalive = process(inputs, stream)
        pending[slot] = (key, outputs, stream, keepalive)
    drain(0)
    drain(1)
