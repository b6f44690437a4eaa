"""IPC CuPy path against cpu_fallback on a real GPU: identical bits (``pytest -m gpu``)."""

import numpy as np
import pytest

from gpucal.refs.ipc import synthetic_ipc_kernel
from gpucal.steps import ipc
from gpucal.synthetic import make_exposure
from ipc_runs import cupy_block, numpy_block, random_data, random_kernel, run_blocks

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("per_pixel", [False, True], ids=["2d", "4d"])
@pytest.mark.parametrize("ksize", [(3, 3), (5, 5), (2, 2)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_kernels_identical(ksize, per_pixel):
    ny, nx = 67, 53
    for seed, margins in enumerate([(0, 0, 0, 0), (4, 4, 4, 4), (4, 0, 3, 4)]):
        rng = np.random.default_rng(seed)
        data = random_data(rng, 4, ny, nx)
        kernel = random_kernel(rng, *ksize, per_pixel=(ny, nx) if per_pixel else None)
        for rows in (1, 16, ny):
            dev = run_blocks(cupy_block, data, kernel, margins, rows)
            ref = run_blocks(numpy_block, data, kernel, margins, rows)
            np.testing.assert_array_equal(dev, ref)
            finite = ~np.isnan(ref)
            np.testing.assert_array_equal(dev.view(np.uint32)[finite], ref.view(np.uint32)[finite])


@pytest.mark.parametrize("per_pixel", [False, True], ids=["2d", "4d"])
def test_public_step_gpu_equals_cpu_with_streaming(per_pixel):
    ex = make_exposure(2, 5, 256, 2048, seed=3, flag_jumps=False)
    r = ex.ramp
    r.meta.update(SUBSTRT1=1, SUBSTRT2=1)
    kernel = synthetic_ipc_kernel((256, 2048) if per_pixel else None)
    gpu = ipc(r, kernel, backend="gpu", max_memory="8MB")
    cpu = ipc(r, kernel, backend="cpu")
    np.testing.assert_array_equal(gpu.data, cpu.data)
