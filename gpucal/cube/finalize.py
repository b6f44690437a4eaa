"""From the running voxel sums to SCI/ERR/DQ/WMAP: normalisation and the final DQ planes.

Order of operations and flag values follow jwst 3.0.0 (ifu_cube.py ``find_spaxel_flux``,
``set_final_dq_flags`` and the spectral-tear rule of ``setup_final_ifucube_model``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .. import dq as dqflags

log = logging.getLogger(__name__)

OVERLAP_FULL = 2  # intermediate flags of the sums; cleared here
OVERLAP_PARTIAL = 4
_DNU = dqflags.DO_NOT_USE
_NS = dqflags.PIXEL["NON_SCIENCE"]


@dataclass
class VoxelSums:
    """Running totals over files (flat voxel index ``iw*ny*nx + iy*nx + ix``)."""

    flux: np.ndarray
    weight: np.ndarray
    var: np.ndarray
    count: np.ndarray
    dq: np.ndarray

    @classmethod
    def zeros(cls, nvoxels: int) -> "VoxelSums":
        """Accumulators for a cube of ``nvoxels`` voxels."""
        z = np.zeros(nvoxels, dtype=np.float64)
        return cls(z, z.copy(), z.copy(), z.copy(), np.zeros(nvoxels, dtype=np.uint32))

    def add(self, flux, weight, var, count, dq) -> None:
        """Add one file's sums (file order matters: float64 addition is not associative)."""
        self.flux += np.asarray(flux, np.float64)  # in place: same rounding as T = T + F
        self.weight += np.asarray(weight, np.float64)
        self.var += np.asarray(var, np.float64)
        self.count += np.asarray(count, np.float64)
        self.dq |= np.asarray(dq).astype(np.uint32)


def final_dq(weight: np.ndarray, dq: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Final DQ (0, DO_NOT_USE, NON_SCIENCE|DO_NOT_USE) from the OR of the per-file planes."""
    dq = dq.astype(np.uint32).ravel().copy()
    dq[weight > 0] = OVERLAP_PARTIAL
    dq[dq == 0] = _NS | _DNU
    dq[(dq & OVERLAP_FULL) != 0] = 0
    dq[(dq & OVERLAP_PARTIAL) != 0] = 0
    dq[(dq == 0) & (weight == 0)] = _DNU  # holes
    _close_holes(dq, shape)
    return dq


def _close_holes(dq: np.ndarray, shape: tuple[int, int, int]) -> None:
    """Holes on the border or next to NON_SCIENCE become NON_SCIENCE|DO_NOT_USE (in place).

    jwst visits holes in increasing flat index and updates the array as it goes, so a
    converted hole can convert the next one. Its left (x-1) and lower (y-1) neighbours are
    visited before it and its right and upper ones after, so a hole converts iff it lies on
    the spatial border, or a right/upper neighbour that is not a hole carries NON_SCIENCE, or
    a left/lower neighbour carries it after its own visit. Only neighbours with
    ``0 < x' < nx`` and ``0 < y' < ny`` count (jwst's test). The dependencies point to lower
    indices only, so iterating the rule to a fixed point gives jwst's result, vectorised.
    """
    nz, ny, nx = shape
    d = dq.reshape(nz, ny, nx)
    hole = d == _DNU
    if not hole.any():
        return
    ns = (d & _NS) != 0
    fixed = np.zeros_like(hole)  # border, or a NON_SCIENCE neighbour that never changes
    fixed[:, 0, :] = fixed[:, -1, :] = True
    fixed[:, :, 0] = fixed[:, :, -1] = True
    fixed[:, 1:-1, 1:-1] |= ns[:, 1:-1, 2:] | ns[:, 2:, 1:-1]  # right, above (never holes when NS)
    fixed[:, :, 2:] |= ns[:, :, 1:-1]  # left neighbour at x-1 >= 1
    fixed[:, 2:, :] |= ns[:, 1:-1, :]  # lower neighbour at y-1 >= 1
    converted = hole & fixed
    while True:
        grown = converted.copy()
        grown[:, :, 2:] |= converted[:, :, 1:-1]
        grown[:, 2:, :] |= converted[:, 1:-1, :]
        grown &= hole
        if np.array_equal(grown, converted):
            break
        converted = grown
    d[converted] = _NS | _DNU


def finalize(sums: VoxelSums, shape: tuple[int, int, int], instrument: str):
    """(flux, err, dq, wmap) cubes of ``shape`` from the totals (float64, uint32)."""
    flux = sums.flux.copy()
    var = sums.var.copy()
    good = sums.count > 0
    flux[good] = flux[good] / sums.weight[good]
    var[good] = var[good] / (sums.weight[good] * sums.weight[good])
    dq = final_dq(sums.weight, sums.dq, shape).reshape(shape)
    flux = flux.reshape(shape)
    var = var.reshape(shape)
    wmap = sums.count.reshape(shape).copy()
    if instrument == "MIRI":
        _spectral_tears(flux, var, wmap, dq)
    dnu = (dq & _DNU) != 0
    flux[dnu] = np.nan
    var[dnu] = np.nan
    return flux, np.sqrt(var), dq, wmap


def _spectral_tears(flux, var, wmap, dq) -> None:
    """Planes with under 75 % of the 3rd-percentile good-voxel count are blanked (MIRI)."""
    ngood = np.count_nonzero(dq.reshape(dq.shape[0], -1) == 0, axis=1).astype(np.float64)
    covered = ngood > 0
    if not covered.any():
        return
    pctile = np.percentile(ngood[covered], 3)
    low = np.flatnonzero(covered & (ngood < 0.75 * pctile))
    log.info("spectral tear planes blanked: %d", low.size)
    flux[low] = 0
    wmap[low] = 0
    var[low] = 0
    dq[low] = _DNU + _NS
