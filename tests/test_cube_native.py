"""The CPU backend's compiled cube sums (host build of ``cube.cu``: ``cube_*_ranges`` and
``cube_*_apply``) against the numpy kernels of ``cpu_fallback``: the same bits for msm (integer
and non-integer powers), emsm and drizzle, MIRI and NIRSpec, linear and table axes, for any
number of threads and chunks; and what happens when the compiled path is switched off or cannot
be built.
"""

import logging

import numpy as np
import pytest

from cube_sum_cases import drizzle_case, pointcloud_case
from gpucal import native
from gpucal.cube import drizzle_sums, pointcloud_sums
from gpucal.cube import native as cube_native

pytestmark = pytest.mark.skipif(native.host_compiler() is None, reason="no C++ compiler for the host build")

CASES = {
    "emsm": (pointcloud_sums, dict(weighting="emsm", boundary=True, seed=11)),
    "msm": (pointcloud_sums, dict(weighting="msm", boundary=True, seed=12)),
    "msm-p1.5": (pointcloud_sums, dict(weighting="msm", power=1.5, seed=13)),
    "msm-p3-table": (pointcloud_sums, dict(weighting="msm", power=3.0, table=True, seed=14)),
    "nirspec-emsm-empty-planes": (pointcloud_sums, dict(instrument="NIRSPEC", empty_planes=True, seed=15)),
    "drizzle": (drizzle_sums, dict(seed=16)),
    "drizzle-below-start": (drizzle_sums, dict(below_start=True, seed=17)),
    "drizzle-aligned-edges": (drizzle_sums, dict(aligned=True, seed=18)),
    "drizzle-nirspec-table": (drizzle_sums, dict(instrument="NIRSPEC", table=True, seed=19)),
}


def _case(name: str) -> tuple:
    run, kw = CASES[name]
    case = (drizzle_case if run is drizzle_sums else pointcloud_case)(npt=2500, **kw)
    if name == "drizzle":  # a few unusable footprints: a NaN corner, a NaN wavelength width
        case["xi2"][::97] = np.nan
        case["dwave"][5::89] = np.nan
    if name == "emsm":  # and points with a NaN coordinate or wavelength
        case["coord2"][3::101] = np.nan
        case["wave"][7::103] = np.nan
    return run, case


def _no_numpy(*args, **kwargs):
    raise AssertionError("the numpy kernels ran where the compiled path was expected")


@pytest.mark.parametrize("name", CASES)
def test_compiled_equals_numpy_bitwise(name, monkeypatch):
    run, case = _case(name)
    monkeypatch.setenv("GPUCAL_NATIVE", "0")
    expected = run(**case, backend="cpu", max_records=4000)
    assert expected[3].sum() > 1500
    monkeypatch.setenv("GPUCAL_NATIVE", "1")
    monkeypatch.setattr("cpu_fallback.cube.pointcloud_match", _no_numpy)
    monkeypatch.setattr("cpu_fallback.cube.drizzle_match", _no_numpy)
    # 1 thread in one chunk; 2, 3 and 7 threads over chunks of 97 points (plane bands narrower
    # than a point's plane range, points on both sides of every band edge)
    for workers, chunk in (("1", 1 << 18), ("2", 97), ("3", 97), ("7", 97)):
        monkeypatch.setenv("GPUCAL_CPU_WORKERS", workers)
        monkeypatch.setattr(cube_native, "CHUNK_POINTS", chunk)
        got = run(**case, backend="cpu")
        for i, (a, b) in enumerate(zip(got, expected)):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8),
                                          err_msg=f"output {i}, {workers} thread(s)")


def test_plane_bands_split_the_points_planes():
    ranges = np.zeros((5000, 6), dtype=np.int32)
    lo = np.random.default_rng(0).integers(300, 700, 5000)
    ranges[:, 4], ranges[:, 5] = lo, lo + 4
    bands = cube_native.plane_bands(ranges, 1000, 4)
    assert bands[0][0] == 0 and bands[-1][1] == 1000 and len(bands) == 4
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bands, bands[1:]))
    assert 300 < bands[1][0] < bands[-1][0] < 700  # the points' planes are split, not [0, 1000)
    assert cube_native.plane_bands(ranges, 1000, 1) == [(0, 1000)]
    ranges[:, 5] = ranges[:, 4]  # no point reaches a plane
    assert cube_native.plane_bands(ranges, 1000, 3) == [(0, 1000)]


def test_progress_reports_every_chunk(monkeypatch):
    monkeypatch.setattr(cube_native, "CHUNK_POINTS", 1000)
    run, case = _case("emsm")
    seen = []
    run(**case, backend="cpu", progress=lambda done, total: seen.append((done, total)))
    n = case["coord1"].size
    assert seen == [(1000, n), (2000, n), (n, n)]


def test_switched_off_runs_numpy(monkeypatch):
    monkeypatch.setenv("GPUCAL_NATIVE", "0")
    assert cube_native.native_functions() is None
    calls = []
    real = cube_native.pointcloud_match_native
    monkeypatch.setattr("gpucal.cube.sums.pointcloud_match_native", lambda *a, **k: calls.append(1) or real(*a, **k))
    run, case = _case("msm")
    run(**case, backend="cpu")
    assert calls == []
    monkeypatch.setenv("GPUCAL_NATIVE", "1")
    assert cube_native.native_functions() is not None
    run(**case, backend="cpu")
    assert calls == [1]


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    """No cached host library anywhere: builds go to ``tmp_path/cache``."""
    monkeypatch.setenv("GPUCAL_NATIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_fallback_dir", lambda: tmp_path / "fallback")
    native._built.cache_clear()
    native.host_library.cache_clear()
    yield tmp_path / "cache"
    native._built.cache_clear()
    native.host_library.cache_clear()


def test_no_compiler_falls_back_to_numpy_with_one_warning(monkeypatch, caplog, empty_cache):
    run, case = _case("drizzle")
    compiled = run(**case, backend="cpu")  # builds into the empty cache: remove it again
    for built in empty_cache.iterdir():
        built.unlink()
    monkeypatch.setattr(native, "host_compiler", lambda: None)
    native._built.cache_clear()
    native.host_library.cache_clear()
    with caplog.at_level(logging.WARNING, logger="gpucal.native"):
        first = run(**case, backend="cpu")
        pc_run, pc_case = _case("emsm")
        pc_run(**pc_case, backend="cpu")
        second = run(**case, backend="cpu")
    warnings = [r for r in caplog.records if "no compiled cube kernels" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler" in warnings[0].getMessage()
    assert "numpy kernels" in warnings[0].getMessage()
    for a, b, c in zip(compiled, first, second):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert compiled[3].sum() > 1000
