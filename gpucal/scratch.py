"""Exposure-sized work arrays: in memory when the budget holds them, else in a scratch file.

A scratch array is a memory map of a temporary file that is unlinked as soon as it exists
(POSIX): it needs no cleaning, even after a crash or SIGKILL, and it is freed with the last
reference to the array. Its pages are page cache, written back and evicted by the kernel
under memory pressure, so they do not count against ``max_memory`` (see
:mod:`gpucal.memory_peak`). Note that on a tmpfs directory the file lives in memory.

The file is made in a run's scratch directory (``.gpucal-scratch/<host>.<pid>.<token>/``,
:mod:`gpucal.io.debris`), so that should a process die in the instant between making and
unlinking it (or on a system that cannot unlink an open file), a later run removes it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import numpy as np

from .io.debris import scratch_space

ScratchDir = str | os.PathLike[str] | Callable[[], str | os.PathLike[str]]


def exposure_array(shape: tuple[int, ...], dtype: np.dtype | type, *, in_memory: bool,
                   directory: ScratchDir | None = None) -> np.ndarray:
    """An uninitialised array of ``shape``: ``np.empty``, or a memory-mapped unlinked file in
    ``directory`` (a path, or a function returning one, called only for a file; default: a
    scratch directory of this process under the system temporary directory, removed again
    once the file exists)."""
    if in_memory:
        return np.empty(shape, dtype)
    if directory is None:
        with scratch_space(None) as scratch:
            return _mapped(shape, dtype, scratch.path())
    return _mapped(shape, dtype, directory() if callable(directory) else directory)


def _mapped(shape: tuple[int, ...], dtype: np.dtype | type, directory: str | os.PathLike[str]) -> np.ndarray:
    with tempfile.TemporaryFile(prefix="gpucal-scratch-", dir=directory) as fh:
        # the map keeps its own handle on the (already unlinked) file
        return np.memmap(fh, dtype=dtype, mode="w+", shape=shape)
