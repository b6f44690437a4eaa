"""The host build of gpucal/kernels/ipc.cu against cpu_fallback/ipc.py: identical bits.

Both kernels (2-D and per-pixel 4-D), compiled by the system C++ compiler without FMA
contraction and run over every block and thread of a small grid, on adversarial blocks
(NaN, signed zeros, huge values, odd and even kernel sizes, reference-pixel margins on
every side, row blocks of 1..n rows with their halo). Outputs are poisoned first, so an
element the kernel fails to write shows up as a difference.
"""

import numpy as np
import pytest

from host_build import host_compiler
from ipc_runs import host_block, numpy_block, random_data, random_kernel, run_blocks

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")

MARGINS = [(0, 0, 0, 0), (4, 4, 4, 4), (4, 0, 0, 4), (0, 3, 2, 0)]


@pytest.mark.parametrize("per_pixel", [False, True], ids=["2d", "4d"])
@pytest.mark.parametrize("ksize", [(3, 3), (5, 3), (1, 1), (2, 2), (4, 3)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_kernel_identical_to_numpy(ksize, per_pixel):
    ny, nx = 13, 11
    for seed, margins in enumerate(MARGINS):
        rng = np.random.default_rng(seed)
        data = random_data(rng, 3, ny, nx)
        kernel = random_kernel(rng, *ksize, per_pixel=(ny, nx) if per_pixel else None)
        for rows in (1, 4, ny):
            host = run_blocks(host_block, data, kernel, margins, rows)
            ref = run_blocks(numpy_block, data, kernel, margins, rows)
            whole = run_blocks(numpy_block, data, kernel, margins, ny)
            msg = f"margins {margins} rows {rows}"
            np.testing.assert_array_equal(host, ref, err_msg=msg)
            # NaN at the same places (assert_array_equal), every other value bit for bit
            finite = ~np.isnan(ref)
            np.testing.assert_array_equal(host.view(np.uint32)[finite], ref.view(np.uint32)[finite], err_msg=msg)
            np.testing.assert_array_equal(ref.view(np.uint32)[finite], whole.view(np.uint32)[finite], err_msg=msg)


def test_margin_pixels_copied_and_reference_pixels_contribute_zero():
    rng = np.random.default_rng(3)
    data = random_data(rng, 2, 12, 12, nan_fraction=0)
    kernel = random_kernel(rng)
    margins = (4, 4, 4, 4)
    out = run_blocks(host_block, data, kernel, margins, 5)
    interior = np.zeros((12, 12), bool)
    interior[4:8, 4:8] = True
    np.testing.assert_array_equal(out[:, ~interior].view(np.uint32), data[:, ~interior].view(np.uint32))
    # changing reference pixels does not change the science pixels
    data2 = data.copy()
    data2[:, ~interior] = np.nan
    out2 = run_blocks(host_block, data2, kernel, margins, 5)
    np.testing.assert_array_equal(out2[:, interior], out[:, interior])
