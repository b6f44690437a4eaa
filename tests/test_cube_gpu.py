"""Cube sums on a real GPU against cpu_fallback: identical bits (``pytest -m gpu``; no jwst needed)."""

import numpy as np
import pytest

from cube_sum_cases import drizzle_case, pointcloud_case
from gpucal.cube import drizzle_sums, pointcloud_sums

pytestmark = pytest.mark.gpu

CASES = {
    "emsm": (pointcloud_sums, dict(npt=20000)),
    "msm": (pointcloud_sums, dict(weighting="msm", boundary=True, npt=20000)),
    "msm-p1.5-table": (pointcloud_sums, dict(weighting="msm", power=1.5, table=True)),
    "nirspec-emsm-empty": (pointcloud_sums, dict(instrument="NIRSPEC", empty_planes=True)),
    "drizzle": (drizzle_sums, dict(npt=20000)),
    "drizzle-table-below": (drizzle_sums, dict(table=True, below_start=True)),
    "drizzle-aligned": (drizzle_sums, dict(aligned=True, instrument="NIRSPEC")),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("max_records", [None, 5000], ids=["one-chunk", "chunks"])
def test_gpu_equals_cpu(name, max_records):
    run, kw = CASES[name]
    case = (drizzle_case if run is drizzle_sums else pointcloud_case)(**kw)
    gpu = run(**case, backend="gpu", max_records=max_records)
    cpu = run(**case, backend="cpu")
    assert cpu[3].sum() > 1000
    for a, b in zip(gpu, cpu):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
