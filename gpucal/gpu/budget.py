"""Memory plans of the two-stream GPU launchers: how many detector rows one block may hold.

Two budgets, never mixed:

- **device**: bytes on the current CUDA device for every block in flight at once (the
  two-stream pipeline of :mod:`gpucal.gpu.transfer` keeps :data:`BLOCKS_IN_FLIGHT` blocks
  alive: one computing while the next is copied) plus the launcher's resident arrays.
  ``max_device_memory`` when given, never more than the device has free
  (:func:`gpucal.backend.free_device_memory`); by default :data:`DEVICE_FRACTION` of that.
- **host**: bytes of host memory for the same blocks: each block's inputs as read, their
  pinned (page-locked) copies and the pinned outputs. ``max_memory`` when given, else
  :data:`~gpucal.chunking.DEFAULT_CPU_MEMORY`; never more than the host has available.

Each launcher states what one pixel of one block costs on each side (:class:`BlockCost`, with
every block-sized array counted) and :func:`plan_rows` takes the largest number of rows that
fits both. CuPy keeps freed pinned buffers in its pool for reuse; :func:`release_pinned_pool`
gives them back once a run is over, so the host budget holds after the run too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ..chunking import DEFAULT_CPU_MEMORY, parse_memory
from ..errors import InputError

log = logging.getLogger(__name__)

#: Blocks a two-stream launcher keeps on the device at once.
BLOCKS_IN_FLIGHT = 2
#: Share of the free device memory planned for when no ``max_device_memory`` is given; the rest
#: is headroom for other processes on the device and the CUDA runtime's own allocations.
DEVICE_FRACTION = 0.7
#: CuPy's memory pool rounds every allocation up to a multiple of this many bytes.
ALLOCATION_UNIT = 512


@dataclass(frozen=True)
class BlockCost:
    """What one pixel of one block costs a launcher.

    Attributes
    ----------
    device
        Device bytes per pixel: the block's inputs, outputs and block-sized temporaries.
    host
        Host bytes per pixel: the inputs as read, their pinned copies, the pinned outputs.
    arrays
        Device arrays per block (each may be rounded up by :data:`ALLOCATION_UNIT` bytes).
    """

    device: int
    host: int
    arrays: int = 0


def allocation_bytes(nbytes: int) -> int:
    """Device bytes an array of ``nbytes`` takes in CuPy's pool (rounded up to the allocation unit)."""
    return -(-max(int(nbytes), 1) // ALLOCATION_UNIT) * ALLOCATION_UNIT


def device_budget(max_device_memory: int | str | None = None) -> int:
    """Device bytes the blocks in flight may use: ``max_device_memory`` (bytes or ``"40GB"``), at
    most the free memory of the current device; default :data:`DEVICE_FRACTION` of it."""
    from .. import backend

    free = backend.free_device_memory()
    asked = parse_memory(max_device_memory)
    if asked is None:
        return int(DEVICE_FRACTION * free)
    if asked > free:
        log.info("max_device_memory of %.1f MiB is more than the %.1f MiB free on the device: planning for the "
                 "free memory", asked / 2**20, free / 2**20)
    return min(asked, free)


def available_host_memory() -> int | None:
    """Host memory the system could give now (``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def host_budget(max_memory: int | str | None = None) -> int:
    """Host bytes the blocks in flight may use: ``max_memory`` or :data:`DEFAULT_CPU_MEMORY`, at most
    what the host has available (pinned memory cannot be swapped out)."""
    budget = parse_memory(max_memory) or DEFAULT_CPU_MEMORY
    available = available_host_memory()
    if available is not None and budget > available:
        log.info("host memory budget of %.1f MiB is more than the %.1f MiB available: planning for the "
                 "available memory", budget / 2**20, available / 2**20)
        return available
    return budget


def plan_rows(ny: int, nx: int, cost: BlockCost, *, device: int, host: int, resident: int = 0, halo: int = 0,
              in_flight: int = BLOCKS_IN_FLIGHT) -> int:
    """Rows of one block such that ``in_flight`` blocks, each with ``halo`` extra rows on both
    sides, fit ``device`` bytes beside ``resident`` device bytes, and ``host`` bytes.

    Raises
    ------
    InputError
        When not even one row fits a budget (the message names which one to raise).
    """
    extra = 2 * int(halo)
    device_row = in_flight * nx * cost.device
    device_left = device - resident - in_flight * (extra * nx * cost.device + cost.arrays * ALLOCATION_UNIT)
    host_row = in_flight * nx * cost.host
    host_left = host - in_flight * extra * nx * cost.host
    if device_left < device_row:
        raise InputError(
            f"device memory budget of {device / 2**20:.1f} MiB cannot hold {in_flight} block(s) of one detector "
            f"row ({(device_row + device - device_left) / 2**20:.1f} MiB); raise max_device_memory or free "
            "device memory")
    if host_left < host_row:
        raise InputError(
            f"host memory budget of {host / 2**20:.1f} MiB cannot hold {in_flight} block(s) of one detector row "
            f"with their pinned staging ({(host_row + host - host_left) / 2**20:.1f} MiB); raise max_memory")
    return min(device_left // device_row, host_left // host_row, ny)


def release_pinned_pool() -> None:
    """Give the pinned host buffers CuPy's pool keeps for reuse back to the system."""
    import cupy

    cupy.get_default_pinned_memory_pool().free_all_blocks()
