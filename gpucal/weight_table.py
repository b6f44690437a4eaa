"""Optimal-weighting table shared by both ramp-fitting backends.

OLS_C weights group ``j`` of an ``n``-group segment by ``powf(u, P)`` with
``u = |(j - mid) / mid|``, ``mid = (n - 1) / 2`` and ``P`` chosen from the segment's SNR
(spec ramp_fit.md section 6.4). ``u`` depends only on ``(n, j)`` and ``P`` takes six
values, so the whole set of weights fits in a small table. Building it once on the host
with the C library's own ``powf`` gives the GPU kernel, the host build and the numpy
fallback the same bits, and the same bits as stcal, which calls that ``powf``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

import numpy as np

log = logging.getLogger(__name__)

#: Exponents P for SNR below 5, 10, 20, 50, 100 and above (index = kernel's power index).
POWERS = (0.0, 0.4, 1.0, 3.0, 6.0, 10.0)


@functools.lru_cache(maxsize=1)
def _libm_powf():
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        powf = ctypes.CDLL(name).powf
    except (OSError, AttributeError):
        return None
    powf.restype = ctypes.c_float
    powf.argtypes = (ctypes.c_float, ctypes.c_float)
    return powf


def _powf_values(u: np.ndarray, power: float) -> np.ndarray:
    powf = _libm_powf()
    if powf is not None:
        return np.array([powf(float(x), power) for x in u], dtype=np.float32)
    # No C library powf (unusual platform): the double-precision form rounds like glibc
    # powf in all but ~0.07% of inputs (spec ramp_fit.md section 10).
    log.warning("libm powf not found; optimal weights use float32(pow(double, double))")
    u32 = u.astype(np.float32).astype(np.float64)
    return np.power(u32, np.float64(np.float32(power))).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _cached_table(ngroups: int) -> np.ndarray:
    per_power = ngroups * (ngroups + 1) // 2
    table = np.zeros(len(POWERS) * per_power, dtype=np.float32)
    u_parts = []
    for seglen in range(ngroups + 1):
        if seglen < 3:
            u_parts.append(np.zeros(seglen))  # lengths 1 and 2 are fitted without weights
            continue
        mid = float(seglen - 1) / 2.0
        invmid = 1.0 / mid
        j = np.arange(seglen, dtype=np.float64)
        u_parts.append(np.abs((j - mid) * invmid))
    u_all = np.concatenate(u_parts) if u_parts else np.zeros(0)
    for index, power in enumerate(POWERS):
        table[index * per_power : (index + 1) * per_power] = _powf_values(u_all, power)
    table.setflags(write=False)
    return table


def weight_table(ngroups: int) -> np.ndarray:
    """Float32 table of ``powf(u(n, j), P)`` for segment lengths ``n <= ngroups``.

    Layout: for power index ``i`` and segment length ``n``, entries ``j = 0 .. n-1`` start
    at ``i * ngroups * (ngroups + 1) // 2 + n * (n - 1) // 2`` (the kernel's
    ``weight_table_offset``). Read-only and cached per ``ngroups``.
    """
    if ngroups < 1:
        raise ValueError(f"ngroups must be >= 1, got {ngroups}")
    return _cached_table(int(ngroups))


def weight_table_offset(power_index: np.ndarray | int, seglen: np.ndarray | int, ngroups: int):
    """Start of the entries for ``(power_index, seglen)`` in :func:`weight_table`."""
    per_power = ngroups * (ngroups + 1) // 2
    return power_index * per_power + seglen * (seglen - 1) // 2
