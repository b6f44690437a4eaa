"""The two-stream launchers (ramp_fit, jump pass 1, ipc) as CUDA orders them, from the stand-in's event log.

Block k runs on one stream and block k+1 on the other: the host-to-device copies of block
k+1 must be free to overlap the kernel of block k, and the download of block k the kernel
of block k+1 (no synchronisation between them: ``get(blocking=False)`` into pinned memory,
the host waits only where it reads). Arrays every block reads (weight table, 2-D IPC
kernel) must be ordered before the kernels of both streams.
"""

import importlib

import numpy as np
import pytest

import gpucal
from gpucal.refs.ipc import synthetic_ipc_kernel
from gpucal.synthetic import make_exposure
from jump_cases import exposure
from ramp_cases import random_case


def assert_blocks_overlap(rt, kernel: str, min_blocks: int = 3) -> None:
    kernels = rt.ops("kernel", kernel)
    assert len(kernels) >= min_blocks
    for k0, k1 in zip(kernels, kernels[1:]):
        assert k0.stream is not k1.stream, "consecutive blocks on one stream"
        uploads = [op for op in rt.ops("h2d") if op.stream is k1.stream and k0.index < op.index < k1.index]
        downloads = [op for op in rt.ops("d2h") if op.stream is k0.stream and k0.index < op.index < k1.index]
        assert uploads and downloads
        for up in uploads:
            assert rt.concurrent(up, k0), f"{up!r} waits for {k0!r}: no copy/compute overlap"
        for down in downloads:
            assert rt.concurrent(down, k1), f"{k1!r} waits for {down!r}: no copy/compute overlap"


def assert_shared_inputs_ordered(rt, kernel: str) -> None:
    """Every copy on the null stream is ordered before every kernel on the non-blocking streams."""
    shared = [op for op in rt.ops("h2d") if op.stream.is_null]
    assert shared
    for k in rt.ops("kernel", kernel):
        assert k.stream.non_blocking
        assert all(op.before(k) for op in shared)


@pytest.fixture
def gpu_steps(cupy_stand_in, monkeypatch):
    for name in ("gpucal.jump_detection", "gpucal.steps.ipc"):
        monkeypatch.setattr(importlib.import_module(name), "resolve_backend",
                            lambda b=None: "cpu" if b == "cpu" else "gpu")
    return cupy_stand_in


def test_ramp_fit_blocks_overlap(gpu_steps):
    case = random_case("overlap", 2, 6, 30, 16, seed=21, zeroframe=True)
    gpu = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="gpu", max_memory="40KB")
    cpu = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu")
    np.testing.assert_array_equal(gpu.rate.data, cpu.rate.data)
    np.testing.assert_array_equal(gpu.rateints.dq, cpu.rateints.dq)
    assert_blocks_overlap(gpu_steps, "ramp_fit_kernel")
    assert_shared_inputs_ordered(gpu_steps, "ramp_fit_kernel")


def test_jump_blocks_overlap(gpu_steps):
    ex = exposure(nints=2, ngroups=6, ny=30, nx=20, seed=22, cr_rate=5e-3)
    gpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="gpu", max_memory="40KB")
    cpu = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu")
    np.testing.assert_array_equal(gpu.groupdq, cpu.groupdq)
    assert_blocks_overlap(gpu_steps, "two_point_kernel")


@pytest.mark.parametrize("per_pixel", [False, True], ids=["2d", "4d"])
def test_ipc_blocks_overlap(gpu_steps, per_pixel):
    from gpucal.steps import ipc

    ex = make_exposure(2, 3, 40, 30, seed=23, flag_jumps=False)
    kernel = synthetic_ipc_kernel((2048, 30) if per_pixel else None)
    gpu = ipc(ex.ramp, kernel, backend="gpu", max_memory="40KB")
    cpu = ipc(ex.ramp, kernel, backend="cpu")
    np.testing.assert_array_equal(gpu.data, cpu.data)
    name = "ipc_4d_kernel" if per_pixel else "ipc_2d_kernel"
    assert_blocks_overlap(gpu_steps, name)
    if not per_pixel:
        assert_shared_inputs_ordered(gpu_steps, name)
