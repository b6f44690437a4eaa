"""Run one ramp-fitting block through the numpy fallback, the host build or CuPy."""

from __future__ import annotations

import numpy as np

from cpu_fallback.ramp_fit import ramp_fit_block
from gpucal.ramp_fitting import _group_window, fit_params, scaled_read_noise
from gpucal.ramp_fit_io import BlockInputs, BlockOutputs, kernel_arguments
from gpucal.weight_table import weight_table


def block_problem(case, *, save_opt=True):
    """(FitParams, BlockInputs, weight table) for a whole test case as one block."""
    ramp = case.ramp()
    suppress = case.suppress_one_group and ramp.ngroups > 1
    window = _group_window(ramp, suppress)
    fp = fit_params(ramp, window, suppress=suppress, save_opt=save_opt)
    nints, ngroups, ny, nx = case.data.shape
    npix = ny * nx
    dark = case.average_dark_current
    inputs = BlockInputs(
        data=np.ascontiguousarray(case.data.reshape(nints, ngroups, npix)),
        groupdq=np.ascontiguousarray(case.groupdq.reshape(nints, ngroups, npix)),
        pixeldq=case.pixeldq.reshape(npix).copy(),
        gain=case.gain.reshape(npix).copy(),
        sigma_r=scaled_read_noise(case.readnoise, case.gain, case.nframes).reshape(npix),
        dark=np.zeros(npix, np.float32) if dark is None else dark.reshape(npix).copy(),
        zeroframe=None if case.zeroframe is None else case.zeroframe.reshape(nints, npix).copy(),
    )
    return fp, inputs, weight_table(fp.ngroups)


def copy_inputs(inputs: BlockInputs) -> BlockInputs:
    return BlockInputs(*(None if a is None else a.copy() for a in inputs))


def run_numpy(fp, inputs, table) -> BlockOutputs:
    """The numpy fallback on ``inputs``, which it must leave untouched (checked)."""
    before = copy_inputs(inputs)
    out = BlockOutputs.allocate(fp, inputs.data.shape[2])
    ramp_fit_block(fp, *inputs, table, *out)
    for name, a, b in zip(BlockInputs._fields, before, inputs):
        assert a is None or np.array_equal(a, b, equal_nan=True), f"ramp_fit_block modified its input {name}"
    return out


def run_host(fp, inputs, table) -> BlockOutputs:
    from host_build import host_library, launch_host

    npix = inputs.data.shape[2]
    out = BlockOutputs.allocate(fp, npix)
    scratch = np.empty((max(fp.ngroups - 1, 1), npix), dtype=np.float64)
    args = kernel_arguments(fp, inputs, out, table, scratch, dummy=np.zeros(1, np.float32))
    launch_host(host_library("ramp_fit"), "ramp_fit_kernel", [value for _, value in args])
    return out


def run_cupy(fp, inputs, table) -> BlockOutputs:
    from gpucal.gpu.ramp_fit import fit_blocks_gpu

    results = {}

    def store(r0, r1, out):
        results["out"] = out

    fit_blocks_gpu(fp, [(0, 1, lambda: inputs)], store, table)
    return results["out"]


def assert_identical(a: BlockOutputs, b: BlockOutputs, label: str = "") -> None:
    """Every output array equal bit for bit (any NaN equals any NaN)."""
    for name, x, y in zip(BlockOutputs._fields, a, b):
        if x is None and y is None:
            continue
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, f"{label} {name}: shape {x.shape} != {y.shape}"
        if x.dtype.kind == "f":
            bits_equal = x.view(np.uint32 if x.dtype.itemsize == 4 else np.uint64) == y.view(
                np.uint32 if y.dtype.itemsize == 4 else np.uint64)
            same = bits_equal | (np.isnan(x) & np.isnan(y))
        else:
            same = x == y
        assert same.all(), f"{label} {name}: {np.count_nonzero(~same)} of {x.size} elements differ"
