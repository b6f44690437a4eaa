"""The CPU backend's compiled drizzle (host build of ``drizzle.cu``: ``drizzle_geometry`` and ``drizzle_apply``)
against the numpy kernels of ``cpu_fallback``: the same bits for every kernel, the gaussian
and lanczos ones included (drizzle 2.2 itself is only matched within 2 ulp there), with
context planes, DQ, squared-weight planes, ``also`` images and any number of row bands; and
what happens when the compiled path is switched off or cannot be built.
"""

import logging
import warnings

import numpy as np
import pytest

from drizzle_cases import KERNELS, add_nan_islands, affine_pixmap, outputs, random_image
from gpucal import native
from gpucal.resample import Drizzle
from gpucal.resample.native import row_bands, native_functions

pytestmark = pytest.mark.skipif(native.host_compiler() is None, reason="no C++ compiler for the host build")


def _drizzle_all(kernel, monkeypatch, *, native_on: bool, workers: str):
    monkeypatch.setenv("GPUCAL_NATIVE", "1" if native_on else "0")
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", workers)
    shape, out_shape = (31, 28), (36, 40)
    rng = np.random.default_rng(4)
    weights = rng.random(shape).astype(np.float32)
    weights[weights < 0.1] = 0
    dq = rng.integers(0, 64, shape).astype(np.uint32)
    also = [(random_image(shape, 20), np.zeros(out_shape, np.float32), np.zeros(out_shape, np.float32))]
    d = Drizzle(kernel=kernel, out_shape=out_shape, fillval="NaN", backend="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(35):  # 35 images: a second context plane
            pm = affine_pixmap(shape, 11.0 * s, 0.8 + 0.02 * s, flip=s % 3 == 0, centre_out=(19 + s % 4, 17),
                               distort=0.03)
            if s % 5 == 0:
                pm = add_nan_islands(pm, seed=s, n=2, size=2)
            d.add_image(random_image(shape, s, nan_fraction=0.01), exptime=1.0, pixmap=pm, weight_map=weights,
                        pixfrac=0.6 + 0.01 * s, dq=dq if s % 2 else None,
                        data2=[random_image(shape, 50 + s), None],
                        also=also if s % 4 == 1 else None)
    res = outputs(d)
    res.update(also_img=also[0][1], also_wht=also[0][2])
    return res


@pytest.mark.parametrize("kernel", KERNELS)
def test_compiled_equals_numpy_bitwise(kernel, monkeypatch):
    numpy_out = _drizzle_all(kernel, monkeypatch, native_on=False, workers="1")
    assert (numpy_out["out_wht"] > 0).sum() > 500 and (numpy_out["also_wht"] > 0).sum() > 300
    for workers, chunk in (("1", 1 << 16), ("4", 53)):  # 53: many chunks, each split over 4 threads
        monkeypatch.setattr("gpucal.resample.native.CHUNK_PIXELS", chunk)
        compiled = _drizzle_all(kernel, monkeypatch, native_on=True, workers=workers)
        assert compiled.keys() == numpy_out.keys()
        for name, expected in numpy_out.items():
            np.testing.assert_array_equal(compiled[name].view(np.uint8), expected.view(np.uint8),
                                          err_msg=f"{name} ({workers} thread(s))")


def test_row_bands_cover_the_output_once():
    pixmap = affine_pixmap((50, 40), 30.0, 1.0, centre_out=(30, 60))
    pix = np.arange(2000, dtype=np.int64)
    bands = row_bands(pixmap, pix, 100, 5)
    assert bands[0][0] == 0 and bands[-1][1] == 100 and len(bands) == 5
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bands, bands[1:]))
    # the pixels' centres lie in rows ~35..85: the bands split that range, not [0, 100)
    assert 35 < bands[1][0] < bands[-1][0] < 85
    assert row_bands(pixmap, pix, 100, 1) == [(0, 100)]
    assert row_bands(np.full((2, 2, 2), np.nan), np.arange(4), 10, 3) == [(0, 10)]


def test_switched_off_runs_numpy(monkeypatch):
    monkeypatch.setenv("GPUCAL_NATIVE", "0")
    assert native_functions() is None
    monkeypatch.setenv("GPUCAL_NATIVE", "1")
    assert native_functions() is not None


def _small_drizzle() -> np.ndarray:
    d = Drizzle(out_shape=(12, 12), backend="cpu")
    d.add_image(random_image((10, 10), 1), exptime=1.0, pixmap=affine_pixmap((10, 10), 20.0, centre_out=(6, 6)))
    return d.out_img


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


def test_no_compiler_falls_back_to_numpy_with_a_warning(monkeypatch, caplog, empty_cache):
    compiled = _small_drizzle()  # builds into the empty cache: remove it again
    for built in empty_cache.iterdir():
        built.unlink()
    monkeypatch.setattr(native, "host_compiler", lambda: None)
    native._built.cache_clear()
    native.host_library.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="gpucal.native"):
            assert native.native_library("drizzle") is None
            fallback = _small_drizzle()
        assert caplog.text.count("no C++ compiler") == 1 and "numpy kernels" in caplog.text  # logged once
        assert np.isfinite(fallback).sum() > 80
        np.testing.assert_array_equal(fallback.view(np.uint32), compiled.view(np.uint32))
    finally:
        native._built.cache_clear()
        native.host_library.cache_clear()


def test_prebuilt_library_in_a_read_only_cache_needs_no_compiler(monkeypatch, empty_cache):
    """A container image builds the library once (GPUCAL_NATIVE_CACHE) and ships no compiler."""
    native.host_library("drizzle")
    built = empty_cache / native.library_name("drizzle")
    assert built.exists()
    empty_cache.chmod(0o555)
    try:
        native.host_library.cache_clear()
        monkeypatch.setattr(native, "host_compiler", lambda: None)
        assert native.host_library("drizzle")._name == str(built)
    finally:
        empty_cache.chmod(0o755)


def test_failed_build_names_the_compiler_error(monkeypatch, tmp_path, empty_cache):
    script = tmp_path / "broken-cxx"
    script.write_text("#!/bin/sh\necho 'fatal: this compiler is broken' >&2\nexit 3\n")
    script.chmod(0o755)
    monkeypatch.setenv("CXX", str(script))
    with pytest.raises(RuntimeError, match="host build of drizzle.cu failed:\nfatal: this compiler is broken"):
        native.host_library("drizzle")
    assert not any(empty_cache.iterdir())  # no half-written library left behind


def test_a_library_planted_in_a_shared_fallback_directory_is_not_loaded(monkeypatch, tmp_path, empty_cache):
    """The fallback cache lives in the shared temporary directory: a directory others can write
    (or that another user created) is neither loaded from nor built into."""
    fallback = tmp_path / "fallback"
    fallback.mkdir()
    planted = fallback / native.library_name("drizzle")
    planted.write_bytes(b"not a library")
    fallback.chmod(0o777)
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "unwritable" / "cache")
    monkeypatch.setattr(native, "_writable_cache", lambda: empty_cache)  # builds go to a trusted place
    empty_cache.mkdir(parents=True, exist_ok=True)
    lib = native.host_library("drizzle")  # builds instead of loading the planted file
    assert lib._name == str(empty_cache / native.library_name("drizzle"))
    assert not native._trusted(fallback)
    fallback.chmod(0o700)
    assert native._trusted(fallback)
