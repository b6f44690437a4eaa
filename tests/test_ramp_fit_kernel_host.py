"""The host build of gpucal/kernels/ramp_fit.cu against cpu_fallback: identical bits.

The same source the GPU runs, compiled by the system C++ compiler without FMA
contraction, run over every block and thread of a small grid, on the adversarial cases.
"""

import numpy as np
import pytest

from host_build import host_compiler
from kernel_runs import assert_identical, block_problem, run_host, run_numpy
from ramp_cases import fuzz_case, random_case, standard_cases

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


@pytest.mark.parametrize("case", standard_cases(), ids=lambda c: c.name)
def test_host_kernel_identical_to_numpy(case):
    fp, inputs, table = block_problem(case, save_opt=True)
    assert_identical(run_host(fp, inputs, table), run_numpy(fp, inputs, table), case.name)


@pytest.mark.parametrize("seed", range(8))
def test_host_kernel_identical_to_numpy_random(seed):
    case = fuzz_case(200 + seed, ny=7, nx=13, max_groups=25)
    fp, inputs, table = block_problem(case, save_opt=bool(seed % 2))
    assert_identical(run_host(fp, inputs, table), run_numpy(fp, inputs, table), case.name)


def test_host_kernel_writes_every_output():
    """Poisoned outputs: the kernel must overwrite every rate and rateints element."""
    from gpucal.ramp_fit_io import BlockOutputs, kernel_arguments
    from host_build import host_library, launch_host

    case = random_case("poison", 2, 6, 5, 9, seed=3)
    fp, inputs, table = block_problem(case, save_opt=False)
    out = BlockOutputs.allocate(fp, inputs.data.shape[2])
    for array in (out.rate_out, out.ints_out):
        array.fill(-12345.0)
    scratch = np.empty((fp.ngroups - 1, inputs.data.shape[2]))
    args = kernel_arguments(fp, inputs, out, table, scratch, dummy=np.zeros(1, np.float32))
    launch_host(host_library("ramp_fit"), "ramp_fit_kernel", [v for _, v in args])
    assert not (out.rate_out == -12345.0).any()
    assert not (out.ints_out == -12345.0).any()
    assert_identical(out, run_numpy(fp, inputs, table))
