"""Memory budgets and row-block plans for streaming exposures through a step."""

from __future__ import annotations

import os
import re

from gpucal.errors import InputError

#: Host memory a CPU path plans for when ``max_memory`` is not given.
DEFAULT_CPU_MEMORY = 2 * 1024**3
#: Samples per numpy call: large enough to amortise numpy's per-call overhead, small
#: enough that the working arrays stay near the core (measured best, with two threads, on
#: 1x10x1024x1024 and 50x20x16x2048 among powers of two from 2**17 to 2**22).
CPU_BLOCK_SAMPLES = 1 << 19

#: Environment variable that caps the threads/processes of the CPU paths (gpucal.batch sets
#: it in each Dask worker to the worker's share of its node's cores).
CPU_WORKERS_ENV = "GPUCAL_CPU_WORKERS"

_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
          "G": 1024**3, "GB": 1024**3, "GIB": 1024**3, "T": 1024**4, "TB": 1024**4, "TIB": 1024**4}


def parse_memory(value: int | float | str | None) -> int | None:
    """Bytes from ``2147483648``, ``"2GB"``, ``"512 MiB"`` (binary units); None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        nbytes = int(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
        if not match or match.group(2).upper() not in _UNITS:
            raise InputError(f"cannot read a memory size from {value!r} (use e.g. 2GB or 512MB)")
        nbytes = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if nbytes <= 0:
        raise InputError(f"memory size must be positive, got {value!r}")
    return nbytes


def rows_per_block(ny: int, nx: int, bytes_per_pixel: int, budget: int) -> int:
    """Largest number of detector rows whose working set fits ``budget`` (at least one).

    Raises
    ------
    InputError
        When even one row does not fit: the budget cannot hold the exposure's smallest unit.
    """
    row_bytes = max(1, int(bytes_per_pixel) * nx)
    rows = int(budget) // row_bytes
    if rows < 1:
        raise InputError(
            f"memory budget of {budget / 1024**2:.1f} MiB cannot hold one detector row "
            f"({row_bytes / 1024**2:.1f} MiB); raise max_memory"
        )
    return min(rows, ny)


def cache_block(samples_per_unit: int) -> int:
    """How many units (rows, pixels) of ``samples_per_unit`` samples fill one numpy block of
    about :data:`CPU_BLOCK_SAMPLES` (at least one)."""
    return max(1, CPU_BLOCK_SAMPLES // max(1, int(samples_per_unit)))


def cpu_workers() -> int:
    """Threads (or processes) a CPU path may use: ``GPUCAL_CPU_WORKERS`` when set, else every core."""
    value = os.environ.get(CPU_WORKERS_ENV, "").strip()
    if not value:
        return max(1, os.cpu_count() or 1)
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise InputError(f"{CPU_WORKERS_ENV} must be a positive integer, got {value!r}")
    return workers
