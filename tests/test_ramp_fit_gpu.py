"""CuPy path against cpu_fallback on a real GPU: identical bits (run with ``pytest -m gpu``).

Skipped cleanly without CuPy or a device. Needs no reference packages (no stcal), so it
runs on a bare GPU machine; parity with stcal is the CPU suite's job.
"""

import numpy as np
import pytest

import gpucal
from kernel_runs import assert_identical, block_problem, run_cupy, run_numpy
from ramp_cases import fuzz_case, random_case, standard_cases

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("case", standard_cases(), ids=lambda c: c.name)
def test_cupy_kernel_identical_to_numpy(case):
    fp, inputs, table = block_problem(case, save_opt=True)
    assert_identical(run_cupy(fp, inputs, table), run_numpy(fp, inputs, table), case.name)


@pytest.mark.parametrize("seed", range(6))
def test_cupy_kernel_identical_random(seed):
    case = fuzz_case(300 + seed, ny=33, nx=65, max_groups=40)
    fp, inputs, table = block_problem(case, save_opt=bool(seed % 2))
    assert_identical(run_cupy(fp, inputs, table), run_numpy(fp, inputs, table), case.name)


def test_public_api_gpu_equals_cpu_with_streaming():
    """Whole exposure through ramp_fit(backend='gpu') in several blocks equals the CPU run."""
    case = random_case("stream", 2, 12, 96, 80, seed=7, flag_rate=0.1)
    gpu = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="gpu", save_opt=True,
                          max_memory="1MB")
    cpu = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu", save_opt=True)
    assert gpu.backend == "gpu"
    for attr in ("data", "err", "dq", "var_poisson", "var_rnoise"):
        for a, b in ((gpu.rate, cpu.rate), (gpu.rateints, cpu.rateints)):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    for attr in ("slope", "sigslope", "yint", "sigyint", "weights", "pedestal", "crmag"):
        np.testing.assert_array_equal(getattr(gpu.fitopt, attr), getattr(cpu.fitopt, attr))
