"""cube.cu built for the host (g++ -ffp-contract=off) equals cpu_fallback/cube.py bit for bit.

Per-element functions (portable exp/pow, polygon overlap) are called directly; the launcher
runs on tests/fake_cupy.py so the count/emit/sort/segment passes are checked end to end
(several point chunks) against the numpy path.
"""

import ctypes

import numpy as np
import pytest

from cpu_fallback import cube as cpu_cube
from cube_sum_cases import drizzle_case, pointcloud_case
from gpucal.cube import drizzle_sums, pointcloud_sums
from host_build import host_compiler, host_library

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")

P = ctypes.c_void_p


def ptr(a):
    return P(a.ctypes.data)


def host_exp(x):
    out = np.empty_like(x)
    fn = host_library("cube").portable_exp_host
    fn.argtypes = (P, P, ctypes.c_longlong)
    fn(ptr(x), ptr(out), x.size)
    return out


def test_portable_exp_identical():
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.uniform(0, 50, 20000), rng.uniform(-745, 709, 5000),
                        [0.0, -0.0, 1e-300, -1e-20, -744.9, -745.2, 709.7, 710.0, np.nan, -np.inf, np.inf]])
    got = host_exp(x)
    np.testing.assert_array_equal(got, cpu_cube.portable_exp(x))
    assert got[-7] > 0 and got[-6] == 0 and got[-4] == np.inf  # subnormal kept; underflow; overflow


def test_portable_pow_identical():
    rng = np.random.default_rng(1)
    s = np.concatenate([rng.uniform(0, 10, 4000), [0.0, 1.0, 1e-200, 3e5]])
    for p in (2.0, 3.0, 1.0, 0.0, 1.5, 2.7, 17.0):
        pv = np.full(s.size, p)
        out = np.empty_like(s)
        fn = host_library("cube").portable_pow_host
        fn.argtypes = (P, P, P, ctypes.c_longlong)
        fn(ptr(s), ptr(pv), ptr(out), s.size)
        np.testing.assert_array_equal(out, cpu_cube.portable_pow(s, pv), err_msg=str(p))


def test_overlap_area_identical():
    rng = np.random.default_rng(2)
    n = 3000
    cx, cy = rng.uniform(-0.2, 0.2, n), rng.uniform(-0.2, 0.2, n)
    ang = rng.uniform(0, np.pi, n)
    xi = np.stack([cx + sx * 0.1 * np.cos(ang) - sy * 0.06 * np.sin(ang)
                   for sx, sy in ((-1, -1), (-1, 1), (1, 1), (1, -1))], axis=1)
    eta = np.stack([cy + sx * 0.1 * np.sin(ang) + sy * 0.06 * np.cos(ang)
                    for sx, sy in ((-1, -1), (-1, 1), (1, 1), (1, -1))], axis=1)
    xi[:500] = np.round(xi[:500] / 0.0625) * 0.0625  # edges on the box edges
    eta[:500] = np.round(eta[:500] / 0.0625) * 0.0625
    xcen, ycen = np.zeros(n), np.zeros(n)
    out = np.empty(n)
    fn = host_library("cube").overlap_area_host
    fn.argtypes = (P, P, ctypes.c_double, ctypes.c_double, P, P, P, ctypes.c_longlong)
    xi, eta = np.ascontiguousarray(xi), np.ascontiguousarray(eta)
    fn(ptr(xcen), ptr(ycen), 0.125, 0.125, ptr(xi), ptr(eta), ptr(out), n)
    ref = cpu_cube.overlap_area(xcen, ycen, 0.125, 0.125, xi, eta)
    np.testing.assert_array_equal(out, ref)
    assert (ref > 0).sum() > 1000 and (ref == 0).sum() > 100


@pytest.fixture
def host_gpu(cupy_stand_in, monkeypatch):
    from gpucal.cube import sums

    monkeypatch.setattr(sums, "resolve_backend", lambda b=None: "cpu" if b == "cpu" else "gpu")
    return cupy_stand_in


@pytest.mark.parametrize("kind", ["emsm", "msm", "msm-p1.5", "drizzle", "drizzle-below-start", "nirspec-msm"])
def test_launcher_equals_cpu(host_gpu, kind):
    if kind.startswith("drizzle"):
        case = drizzle_case(npt=800, below_start=kind.endswith("start"), seed=3)
        run = drizzle_sums
    else:
        case = pointcloud_case(instrument="NIRSPEC" if kind.startswith("nirspec") else "MIRI",
                               weighting="emsm" if kind == "emsm" else "msm", npt=800, seed=4,
                               boundary=True, power=1.5 if kind.endswith("1.5") else 2.0)
        run = pointcloud_sums
    gpu = run(**case, backend="gpu", max_records=3000)
    cpu = run(**case, backend="cpu")
    assert len(host_gpu.ops("kernel", "segment_sum_kernel")) > 2  # several chunks
    assert cpu[3].sum() > 500
    for a, b in zip(gpu, cpu):
        np.testing.assert_array_equal(a, b)
