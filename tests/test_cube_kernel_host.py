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


def test_portable_pow_special_values_identical():
    s = np.array([1.0, 1.0, 1.0, np.inf, np.inf, np.nan, 2.0, -1.0, 5e-324, 1e-310, 0.0, 0.0, 1e300, 1e-300,
                  1.0 + 2.0**-52, 0.5, 3.0])
    p = np.array([1e305, -1e305, np.inf, 1.5, -1.5, 1.5, np.nan, 1.5, 0.5, -0.7, -2.5, 0.5, 2.5, 2.5, 1e17, 1e-320,
                  -600.3])
    out = np.empty_like(s)
    fn = host_library("cube").portable_pow_host
    fn.argtypes = (P, P, P, ctypes.c_longlong)
    fn(ptr(s), ptr(p), ptr(out), s.size)
    expected = cpu_cube.portable_pow(s, p)
    np.testing.assert_array_equal(out, expected)
    assert (expected[:2] == 1.0).all() and np.isnan(expected[2])  # 1^p; 1^inf as exp(inf * 0)
    assert list(expected[3:5]) == [np.inf, 0.0] and np.isnan(expected[5:8]).all()
    assert expected[10] == np.inf and expected[11] == 0.0 and expected[12] == np.inf and expected[13] == 0.0
    assert expected[15] == 1.0 and 0 < expected[16] < np.inf


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units in the last place of binary64 at the exact value (2**-1074 below the normals)."""
    _, e = np.frexp(exact)
    unit = np.ldexp(np.longdouble(1.0), np.maximum(e.astype(np.int64) - 53, -1074))
    return np.asarray(np.abs(got.astype(np.longdouble) - exact) / unit, dtype=np.float64)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs an 80-bit or wider long double as reference")
def test_portable_exp_and_pow_accuracy():
    """Against long double (64-bit mantissa, about 2**-11 ulp of binary64). Measured over 1.8e7
    inputs (s from 1e-320 to 1e300, non-integer |p| <= 16): exp and pow at most 0.92 ulp, i.e.
    within 1 ulp, subnormal results within 1 unit of 2**-1074. With large |p| (tens and more) and
    s near 1 the error of log(s) (about 2**-59 relative, the classic log series) shows: about
    0.9 + |p ln s| / 24 ulp (10^7 inputs with |p| up to 10^4: 29 ulp at most, near the overflow
    limit |p ln s| = 709); asserted 0.9 + |p ln s| / 20. The former exp(p * log(s)) in plain
    binary64 was off by up to 89 ulp for s in (0, 10), p in (0, 8)."""
    rng = np.random.default_rng(5)
    n = 200_000
    x = rng.uniform(-745.0, 709.7, n)
    assert _ulps(cpu_cube.portable_exp(x), np.exp(x.astype(np.longdouble))).max() < 1.0
    L = np.longdouble
    domains = [
        (rng.uniform(0, 10, n), rng.uniform(0, 8, n)),  # msm distances and powers
        (10 ** rng.uniform(-300, 300, n), rng.uniform(-16, 16, n)),
        (rng.uniform(0.7, 1.42, n), rng.uniform(-16, 16, n)),  # log(s) from the series alone
        (10 ** rng.uniform(-320, -300, n), rng.uniform(-1, 1, n)),  # subnormal s
    ]
    for s, p in domains:
        exact = np.power(s.astype(L), p.astype(L))
        finite = np.abs(exact) < L(np.finfo(np.float64).max)
        err = _ulps(cpu_cube.portable_pow(s, p)[finite], exact[finite])
        assert err.max() < 1.0, (s.min(), s.max(), err.max())
        assert finite.mean() > 0.5
    s, p = rng.uniform(0.5, 2.0, n), 10 ** rng.uniform(1.2, 4, n)
    exact = np.power(s.astype(L), p.astype(L))
    finite = np.abs(exact) < L(np.finfo(np.float64).max)
    err = _ulps(cpu_cube.portable_pow(s, p)[finite], exact[finite])
    y = np.abs(p * np.log(s))[finite]
    assert (err <= 0.9 + y / 20).all() and err.max() > 2  # the growth is real, and bounded
