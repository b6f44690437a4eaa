"""Exposure-sized work arrays: in memory when the budget holds them, else in a scratch file.

A scratch array is a memory map of a temporary file that is unlinked as soon as it exists
(POSIX): it needs no cleaning, even after a crash or SIGKILL, and it is freed with the last
reference to the array. Its pages are page cache, written back and evicted by the kernel
under memory pressure, so they do not count against ``max_memory`` (see
:mod:`gpucal.memory_peak`). Note that on a tmpfs directory the file lives in memory.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np


def exposure_array(shape: tuple[int, ...], dtype: np.dtype | type, *, in_memory: bool,
                   directory: str | os.PathLike[str] | None = None) -> np.ndarray:
    """An uninitialised array of ``shape``: ``np.empty``, or a memory-mapped unlinked file in
    ``directory`` (default: the system temporary directory)."""
    if in_memory:
        return np.empty(shape, dtype)
    with tempfile.TemporaryFile(prefix="gpucal-scratch-", dir=directory) as fh:
        # the map keeps its own handle on the (already unlinked) file
        return np.memmap(fh, dtype=dtype, mode="w+", shape=shape)
