"""IPC correction in numpy: twin of ``gpucal/kernels/ipc.cu``.

The same functions, names and order of operations as the kernel file, vectorised over the
pixels and planes of a row block (looping only over the kernel's (j, i) terms), so the two
give identical bits. jwst 3.0.0 ``ipc_corr.py::ipc_convolve`` does the same float32
arithmetic (products rounded, then added in row-major order, centre term last), so these
also equal jwst.

Spec: ``../shared/specs/detector1_steps.md`` section 4.4.
"""

from __future__ import annotations

import numpy as np

from gpucal.ipc_io import IpcGeometry, kernel_reach


def science_values(g: IpcGeometry, data_in: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The block's S values padded with zeros by the kernel reach, and the padding (rows, columns).

    Pixels outside S (reference pixels, rows/columns beyond the array or the block) are 0.
    """
    above, below, left, right = kernel_reach(g.kh, g.kw)
    pad_y = max(above, below)
    pad_x = max(left, right)
    padded = np.zeros((g.nplanes, g.rows_in + 2 * pad_y, g.nx + 2 * pad_x), dtype=np.float32)
    y0 = min(max(g.sy0 - g.row0, 0), g.rows_in)
    y1 = min(max(g.sy1 - g.row0, 0), g.rows_in)
    x0 = min(max(g.sx0, 0), g.nx)
    x1 = min(max(g.sx1, 0), g.nx)
    padded[:, pad_y + y0:pad_y + y1, pad_x + x0:pad_x + x1] = data_in[:, y0:y1, x0:x1]
    return padded, pad_y, pad_x


def in_science(g: IpcGeometry) -> np.ndarray:
    """(rows, nx) mask of the output pixels inside S."""
    y = g.row0 + g.halo_top + np.arange(g.rows)
    x = np.arange(g.nx)
    return ((y >= g.sy0) & (y < g.sy1))[:, None] & ((x >= g.sx0) & (x < g.sx1))[None, :]


def ipc_pixel(g: IpcGeometry, data_in: np.ndarray, weight) -> np.ndarray:
    """Corrected output rows of every plane; ``weight(j, i)`` is a scalar or a (rows, nx) array."""
    padded, pad_y, pad_x = science_values(g, data_in)
    cy, cx = g.kh // 2, g.kw // 2
    tb, rb = g.kh - cy - 1, g.kw - cx - 1

    def shifted(dy: int, dx: int) -> np.ndarray:
        ys = pad_y + g.halo_top + dy
        xs = pad_x + dx
        return padded[:, ys:ys + g.rows, xs:xs + g.nx]

    acc = np.zeros((g.nplanes, g.rows, g.nx), dtype=np.float32)
    for j in range(g.kh):
        for i in range(g.kw):
            if j == cy and i == cx:
                continue  # the centre term is added last
            term = weight(j, i) * shifted(tb - j, rb - i)
            acc = acc + term
    term = weight(cy, cx) * shifted(0, 0)
    acc = acc + term
    out = np.array(data_in[:, g.halo_top:g.halo_top + g.rows], dtype=np.float32, copy=True)
    mask = in_science(g)
    out[:, mask] = acc[:, mask]
    return out


def ipc_2d_block(g: IpcGeometry, data_in: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``ipc_2d_kernel``: data_in (nplanes, rows_in, nx), kernel (kh, kw) float32 -> (nplanes, rows, nx)."""
    kernel = np.asarray(kernel, dtype=np.float32)
    return ipc_pixel(g, data_in, lambda j, i: kernel[j, i])


def ipc_4d_block(g: IpcGeometry, data_in: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``ipc_4d_kernel``: kernel (kh, kw, rows, nx) float32, per output pixel."""
    kernel = np.asarray(kernel, dtype=np.float32)
    return ipc_pixel(g, data_in, lambda j, i: kernel[j, i])
