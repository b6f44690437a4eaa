"""The CuPy launcher's logic, run without a GPU against a CuPy stand-in (tests/fake_cupy.py)
whose kernel calls execute the host build of the same CUDA source."""

import numpy as np
import pytest

import gpucal
from host_build import host_compiler
from kernel_runs import assert_identical, block_problem, run_numpy
from ramp_cases import random_case, standard_cases

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


@pytest.fixture
def fake_gpu(cupy_stand_in):
    return cupy_stand_in


@pytest.mark.parametrize("case", standard_cases()[:6], ids=lambda c: c.name)
def test_launcher_block_equals_numpy(fake_gpu, case):
    from kernel_runs import run_cupy

    fp, inputs, table = block_problem(case, save_opt=True)
    assert_identical(run_cupy(fp, inputs, table), run_numpy(fp, inputs, table), case.name)


def test_streamed_gpu_path_equals_cpu(fake_gpu):
    """Many row blocks through both slots, with the optional product and a ZEROFRAME."""
    case = random_case("launcher", 2, 9, 37, 21, seed=5, flag_rate=0.15, suppress=False, zeroframe=True)
    kwargs = dict(save_opt=True, suppress_one_group=False)
    gpu = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="gpu", max_memory="60KB", **kwargs)
    cpu = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu", **kwargs)
    assert gpu.backend == "gpu"
    for attr in ("data", "err", "dq", "var_poisson", "var_rnoise"):
        for a, b in ((gpu.rate, cpu.rate), (gpu.rateints, cpu.rateints)):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    for attr in ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint", "weights", "pedestal",
                 "crmag"):
        np.testing.assert_array_equal(getattr(gpu.fitopt, attr), getattr(cpu.fitopt, attr))


def test_gpu_progress_and_block_count(fake_gpu):
    case = random_case("progress", 1, 5, 40, 16, seed=6)
    calls = []
    gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="gpu", max_memory="40KB",
                    progress=lambda done, total: calls.append(done))
    assert len(calls) >= 4 and calls[-1] == 40 * 16
