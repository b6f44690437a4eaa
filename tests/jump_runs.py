"""Run the jump-detection kernels through the numpy fallback, the host build or CuPy."""

from __future__ import annotations

import numpy as np

from cpu_fallback.jump import JumpParams, neighbour_block, two_point_block
from gpucal.jump_detection import halo_window
from gpucal.jump_io import (TwoPointInputs, TwoPointOutputs, neighbour_arguments, scratch_shape,
                            two_point_arguments)


def two_point_numpy(fp: JumpParams, inputs: TwoPointInputs) -> TwoPointOutputs:
    before = [a.copy() for a in inputs]
    out = TwoPointOutputs.allocate(fp, inputs.data.shape[2])
    two_point_block(fp, *inputs, *out)
    for name, a, b in zip(TwoPointInputs._fields, before, inputs):
        assert np.array_equal(a, b, equal_nan=True), f"two_point_block modified its input {name}"
    return out


def two_point_host(fp: JumpParams, inputs: TwoPointInputs, poison: bool = True) -> TwoPointOutputs:
    from host_build import host_library, launch_host

    npix = inputs.data.shape[2]
    out = TwoPointOutputs.allocate(fp, npix)
    if poison:  # every element must be written by the kernel
        out.gdq_out.fill(0xAB)
        out.marks.fill(0xCD)
        out.median.fill(-12345.0)
        out.sigma.fill(-12345.0)
    scratch = np.empty(scratch_shape(fp, npix), dtype=np.float64)
    args = two_point_arguments(fp, inputs, out, scratch)
    launch_host(host_library("jump"), "two_point_kernel", [v for _, v in args])
    return out


def two_point_cupy(fp: JumpParams, inputs: TwoPointInputs) -> TwoPointOutputs:
    import cupy

    from gpucal.gpu.jump import run_two_point

    d_in = TwoPointInputs(*(cupy.asarray(a) for a in inputs))
    d_out = run_two_point(fp, d_in)
    return TwoPointOutputs(*(cupy.asnumpy(a) for a in d_out))


def split_rows(gdq: np.ndarray, marks: np.ndarray, ny: int, nx: int, rows: int):
    """Yield (r0, r1, halo gdq, halo marks, halo_top) for row blocks of ``rows`` rows."""
    nints, ngroups = gdq.shape[:2]
    g4 = gdq.reshape(nints, ngroups, ny, nx)
    m4 = marks.reshape(nints, ngroups, ny, nx)
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        h0, h1, top = halo_window(r0, r1, ny)
        shape = (nints, ngroups, (h1 - h0) * nx)
        yield (r0, r1, np.ascontiguousarray(g4[:, :, h0:h1]).reshape(shape),
               np.ascontiguousarray(m4[:, :, h0:h1]).reshape(shape), top)


def neighbour_numpy(fp, gdq_in, marks, nx, halo_top, rows) -> np.ndarray:
    out = np.empty((fp.nints, fp.ngroups, rows * nx), dtype=np.uint8)
    neighbour_block(fp, gdq_in, marks, out, nx, halo_top, rows)
    return out


def neighbour_host(fp, gdq_in, marks, nx, halo_top, rows) -> np.ndarray:
    from host_build import host_library, launch_host

    out = np.full((fp.nints, fp.ngroups, rows * nx), 0xEE, dtype=np.uint8)
    args = neighbour_arguments(fp, gdq_in, marks, out, nx, halo_top, rows)
    launch_host(host_library("jump"), "neighbour_kernel", [v for _, v in args])
    return out


def neighbour_cupy(fp, gdq_in, marks, nx, halo_top, rows) -> np.ndarray:
    import cupy

    from gpucal.gpu.jump import run_neighbour

    return cupy.asnumpy(run_neighbour(fp, cupy.asarray(gdq_in), cupy.asarray(marks), nx, halo_top, rows))


def assert_two_point_identical(a: TwoPointOutputs, b: TwoPointOutputs, label: str = "") -> None:
    for name, x, y in zip(TwoPointOutputs._fields, a, b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, f"{label} {name}: shape {x.shape} != {y.shape}"
        if x.dtype.kind == "f":
            same = (x.view(np.uint64) == y.view(np.uint64)) | (np.isnan(x) & np.isnan(y))
        else:
            same = x == y
        assert same.all(), f"{label} {name}: {np.count_nonzero(~same)} of {x.size} elements differ"
