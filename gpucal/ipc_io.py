"""Geometry of an IPC row block and the argument list of both IPC kernels.

The CuPy launcher (``gpucal/gpu/ipc.py``) and the host build of ``gpucal/kernels/ipc.cu``
(tests) both call :func:`ipc_arguments`, so the kernels' argument order is written once.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class IpcGeometry(NamedTuple):
    """One row block of every plane (integration x group) of an exposure.

    Input rows are detector rows ``[row0, row0 + rows_in)``; output rows are
    ``[row0 + halo_top, row0 + halo_top + rows)``. The science region S (reference pixels
    excluded) is rows ``[sy0, sy1)`` and columns ``[sx0, sx1)`` of the whole array.
    """

    nplanes: int
    nx: int
    rows_in: int
    rows: int
    halo_top: int
    row0: int
    sy0: int
    sy1: int
    sx0: int
    sx1: int
    kh: int
    kw: int


def kernel_reach(kh: int, kw: int) -> tuple[int, int, int, int]:
    """Rows above/below and columns left/right of an output pixel that its sum reads.

    Output (y, x) reads S[y + tb - j, x + rb - i] for j < kh, i < kw (and S[y, x]), with
    ``tb = kh - kh//2 - 1``: rows ``y - kh//2 .. y + tb``.
    """
    return kh // 2, kh - kh // 2 - 1, kw // 2, kw - kw // 2 - 1


def halo_rows(r0: int, r1: int, ny: int, kh: int) -> tuple[int, int, int]:
    """Rows ``[h0, h1)`` to read for output rows ``[r0, r1)`` and the output's first row in them."""
    above, below, _, _ = kernel_reach(kh, 1)
    h0 = max(0, r0 - above)
    h1 = min(ny, r1 + below)
    return h0, h1, r0 - h0


def ipc_arguments(geom: IpcGeometry, data_in: Any, kernel: Any, data_out: Any) -> list[tuple[str, Any]]:
    """``ipc_2d_kernel`` / ``ipc_4d_kernel`` arguments as (name, value) pairs, in order.

    ``data_in`` (nplanes, rows_in, nx) and ``data_out`` (nplanes, rows, nx) float32;
    ``kernel`` (kh, kw) or (kh, kw, rows, nx) float32.
    """
    return [
        ("data_in", data_in),
        ("kernel", kernel),
        ("data_out", data_out),
        ("nplanes", np.int64(geom.nplanes)),
        ("nx", np.int32(geom.nx)),
        ("rows_in", np.int32(geom.rows_in)),
        ("rows", np.int32(geom.rows)),
        ("halo_top", np.int32(geom.halo_top)),
        ("row0", np.int32(geom.row0)),
        ("sy0", np.int32(geom.sy0)),
        ("sy1", np.int32(geom.sy1)),
        ("sx0", np.int32(geom.sx0)),
        ("sx1", np.int32(geom.sx1)),
        ("kh", np.int32(geom.kh)),
        ("kw", np.int32(geom.kw)),
    ]


def kernel_name(kernel_ndim: int) -> str:
    return "ipc_2d_kernel" if kernel_ndim == 2 else "ipc_4d_kernel"
