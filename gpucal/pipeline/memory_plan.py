"""How detector1 shares its host-memory budget (docs/algorithms/detector1_pipeline.md, "Memory").

``max_memory`` bounds the anonymous host memory a run adds (:mod:`gpucal.memory_peak`). Part of
it is a floor no chunking can shrink: the rate and rateints products, the reference arrays
read for the exposure, and a few per-pixel 2-D arrays of jump and ramp_fit. What is left is the
working share that plans the blocks: integration or row blocks of the chain, refpix's planes,
jump's and ramp_fit's row blocks, and whether the exposure-sized buffers (the calibrated ramp
and jump's three flag arrays) are held in memory or in scratch files. A budget below the floor
plus the smallest working share (one refpix plane, one row block of each step) is refused.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..chunking import DEFAULT_CPU_MEMORY, cpu_workers, parse_memory
from ..errors import InputError
from ..memory_peak import format_bytes
from ..ramp import Ramp

#: rate and each rateints plane: SCI, ERR, VAR_POISSON, VAR_RNOISE float32 and DQ uint32.
OUTPUT_BYTES_PER_PIXEL = 20
#: 2-D per-pixel arrays alive beside the products (pixel DQ, average dark, jump's and
#: ramp_fit's gain / read-noise derived images, calibration flags), measured on 1024x1024.
PIXEL_SCRATCH_BYTES = 48
#: Fixed cost of one ramp_fit worker process besides its blocks (its copies of the parent's
#: pages that Python touches, its heap), measured on 2x10x512x512 and 2x10x1024x1024.
WORKER_BYTES = 12 * 2**20
#: Fixed cost of a run besides its arrays: the heap arenas of its threads and what the
#: allocator keeps of freed blocks, the Python objects it creates (measured on 2x10x512x512,
#: where a run without it went 6% over a budget near the minimum on a busy machine).
RUN_BYTES = 16 * 2**20
#: Exposure-sized buffers per sample: the calibrated ramp (float32 data, uint8 group DQ) and
#: jump's three uint8 flag arrays.
BUFFER_BYTES_PER_SAMPLE = 5 + 3
#: Part of the budget above the floor that plans blocks; the rest is headroom for the heap's
#: slack (freed memory the allocator keeps), ramp_fit workers' copies of shared pages and the
#: run's Python objects (measured: a run planned to the last byte overshot by about 1%).
WORK_FRACTION = 0.8
#: Copies of one block alive at once inside the chain (input, step output, temporaries), and
#: bytes per sample of a copy (float32 data, uint8 group DQ).
BLOCK_COPIES = 3
BLOCK_BYTES_PER_SAMPLE = 5


@dataclass(frozen=True)
class MemoryPlan:
    """The budget of one detector1 run, in bytes."""

    budget: int
    outputs: int
    references: int
    pixel_arrays: int
    workers: int
    minimum_work: int

    @property
    def floor(self) -> int:
        """What the budget cannot go below before any working share."""
        return self.outputs + self.references + self.pixel_arrays + self.workers + RUN_BYTES

    @property
    def work(self) -> int:
        """The working share: blocks, and the exposure-sized buffers when they fit."""
        return int(WORK_FRACTION * (self.budget - self.floor))

    def buffers_in_memory(self, ramp: Ramp) -> bool:
        """Keep the calibrated ramp (and jump's flag arrays) in memory: they fit half the working share."""
        return BUFFER_BYTES_PER_SAMPLE * _samples(ramp) <= self.work // 2

    def describe(self) -> str:
        return (f"budget {format_bytes(self.budget)}: floor {format_bytes(self.floor)} (rate/rateints "
                f"{format_bytes(self.outputs)}, references {format_bytes(self.references)}, per-pixel arrays "
                f"{format_bytes(self.pixel_arrays)}, ramp_fit worker processes {format_bytes(self.workers)}, "
                f"run overhead {format_bytes(RUN_BYTES)}), "
                f"working share {format_bytes(self.work)}")


def _samples(ramp: Ramp) -> int:
    return ramp.nints * ramp.ngroups * ramp.ny * ramp.nx


def reference_bytes(refs: Mapping[str, Any], ramp: Ramp | None = None) -> int:
    """Bytes of the distinct arrays held by the references. A reference still given as a file
    path counts what its reader will hold, from the headers alone (each image extension's
    leading axes times its frame cut to the exposure's, 4 bytes a value), so a run can be
    refused before anything is read."""
    seen: dict[int, int] = {}
    for ref in refs.values():
        if isinstance(ref, (str, os.PathLike)):
            seen[id(ref)] = _file_reference_bytes(Path(ref), ramp)
            continue
        arrays = [ref] if isinstance(ref, np.ndarray) else [getattr(ref, name, None) for name in (
            "data", "dq", "average_dark_current", "inv_coeffs")]
        for a in arrays:
            if isinstance(a, np.ndarray):
                base = a if a.base is None else a.base
                seen[id(base)] = getattr(base, "nbytes", a.nbytes)
    return sum(seen.values())


def _file_reference_bytes(path: Path, ramp: Ramp | None) -> int:
    from ..io.fits_open import open_fits

    frame = None if ramp is None else ramp.ny * ramp.nx
    total = 0
    with open_fits(path, memmap=True, lazy_load_hdus=True) as hdul:
        for hdu in hdul[1:]:
            header = hdu.header
            if header.get("XTENSION") != "IMAGE" or int(header.get("NAXIS", 0)) < 2:
                continue
            axes = [int(header[f"NAXIS{i}"]) for i in range(1, int(header["NAXIS"]) + 1)]
            own = axes[0] * axes[1]  # larger images are cut to the exposure; a kernel stays small
            total += 4 * math.prod(axes[2:]) * (own if frame is None else min(own, frame))
    return total


def minimum_work(ramp: Ramp, halo: int, refpix: bool) -> int:
    """The smallest working share: one refpix plane, and one row (plus halos) of each blocked step."""
    from ..jump_detection import CPU_BYTES_PER_SAMPLE as JUMP
    from ..ramp_fitting import CPU_BYTES_PER_SAMPLE as FIT
    from ..steps.refpix import BYTES_PER_PLANE_PIXEL

    per_row = ramp.nints * ramp.ngroups * ramp.nx
    chain_rows = 2 * BLOCK_COPIES * BLOCK_BYTES_PER_SAMPLE * ramp.ngroups * ramp.nx * (2 * halo + 1)
    tail_row = 2 * per_row * max(JUMP, FIT) * cpu_workers()
    plane = 2 * BYTES_PER_PLANE_PIXEL * ramp.ny * ramp.nx if refpix else 0
    return max(chain_rows, tail_row, plane)


def plan_memory(ramp: Ramp, refs: Mapping[str, Any], max_memory: int | str | None, *, halo: int,
                refpix: bool) -> MemoryPlan:
    """The run's :class:`MemoryPlan`; InputError when an explicit ``max_memory`` is below the
    floor plus the smallest working share. Without one, the budget is 2 GiB, or that minimum
    when it is larger."""
    from ..ramp_fitting import PROCESS_MIN_SAMPLES

    npix = ramp.ny * ramp.nx
    outputs = OUTPUT_BYTES_PER_PIXEL * npix * (1 + ramp.nints)
    processes = cpu_workers() if cpu_workers() > 1 and _samples(ramp) >= PROCESS_MIN_SAMPLES else 0
    plan = MemoryPlan(budget=0, outputs=outputs, references=reference_bytes(refs, ramp),
                      pixel_arrays=PIXEL_SCRATCH_BYTES * npix, workers=processes * WORKER_BYTES,
                      minimum_work=minimum_work(ramp, halo, refpix))
    needed = plan.floor + math.ceil(plan.minimum_work / WORK_FRACTION)
    budget = parse_memory(max_memory)
    if budget is None:
        budget = max(DEFAULT_CPU_MEMORY, needed)
    elif budget < needed:
        raise InputError(
            f"max_memory {format_bytes(budget)} is below what detector1 needs for this "
            f"{'x'.join(map(str, ramp.shape))} exposure: a floor of {format_bytes(plan.floor)} that no chunking "
            f"shrinks (rate/rateints products {format_bytes(outputs)}, references "
            f"{format_bytes(plan.references)}, per-pixel arrays {format_bytes(plan.pixel_arrays)}, ramp_fit "
            f"worker processes {format_bytes(plan.workers)}, run overhead {format_bytes(RUN_BYTES)}) plus "
            f"{format_bytes(needed - plan.floor)} to work in; use at least {math.ceil(needed / 2**20)}MB")
    return dataclasses.replace(plan, budget=budget)
