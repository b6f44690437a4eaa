"""gpucal.resample.Drizzle (CPU backend) against drizzle 2.2.0 through the same API.

Every test runs twice: on the compiled host build of ``drizzle.cu`` (the CPU backend's
default) and on the numpy kernels of ``cpu_fallback`` (``GPUCAL_NATIVE=0``).

Bitwise for square, point and turbo (data, weight, context, DQ, squared-weight planes);
within 2 float32 ulp for gaussian and lanczos (the exponential and the Lanczos table are
gpucal's own, shared by both backends). Pixel maps are numpy-built (tests/drizzle_cases.py).
"""

import itertools
import warnings

import numpy as np
import pytest

from drizzle_cases import KERNELS, add_nan_islands, affine_pixmap, outputs, random_image, run, ulp_distance
from gpucal.resample import Drizzle

reference = pytest.importorskip("drizzle.resample")

EXACT = ("square", "point", "turbo")


@pytest.fixture(autouse=True, params=["native", "numpy"])
def cpu_kernels(request, monkeypatch):
    if request.param == "native":
        from gpucal.resample.native import native_functions

        if native_functions() is None:
            pytest.skip("no C++ compiler for the host build")
    monkeypatch.setenv("GPUCAL_NATIVE", "1" if request.param == "native" else "0")
    return request.param


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def assert_parity(calls, **init):
    ref = outputs(run(reference.Drizzle, calls, **init))
    got = outputs(run(Drizzle, calls, backend="cpu", **init))
    assert ref.keys() == got.keys()
    assert np.isfinite(ref["out_wht"]).any() and (ref["out_wht"] != 0).any()
    for name, expected in ref.items():
        actual = got[name]
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, name
        if init.get("kernel", "square") in EXACT or expected.dtype.kind in "iu":
            np.testing.assert_array_equal(actual.view(np.uint8), expected.view(np.uint8), err_msg=name)
        else:
            assert ulp_distance(actual, expected).max() <= 2, name


GEOMETRY = list(itertools.product([0.0, 30.0, 137.0], [0.5, 1.0, 1.7], [False, True]))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pixfrac", [1.0, 0.7, 0.5, 0.1])
def test_geometries(kernel, pixfrac):
    """Rotations, scale ratios 0.5-1.7, flips (handedness change) and a mild distortion."""
    shape = (22, 26)
    for n, (rot, scale, flip) in enumerate(GEOMETRY):
        pm = affine_pixmap(shape, rot, scale, flip, shift=(1.3, -0.4), centre_out=(16, 15), distort=0.05 * (n % 2))
        calls = [dict(data=random_image(shape, seed=n), exptime=2.0, pixmap=pm, pixfrac=pixfrac,
                      pixel_scale_ratio=scale)]
        assert_parity(calls, kernel=kernel, out_shape=(30, 33))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shift", [(0.3, 0.3), (-0.3, -0.3), (0.7, -0.7), (-0.7, 0.7)])
def test_output_edge_shifts(kernel, shift):
    shape = (16, 18)
    calls = [dict(data=random_image(shape, 1), exptime=1.0, pixmap=affine_pixmap(shape, shift=shift))]
    assert_parity(calls, kernel=kernel, out_shape=shape)


def test_edge_shift_drops_the_overhanging_pixel():
    """spec 2.4: with an identity map shifted by +0.7 px the last input column's centre lands
    outside the output, so the last output column keeps only its neighbour's 0.7."""
    shape = (10, 12)
    d = Drizzle(out_shape=shape, backend="cpu")
    d.add_image(np.ones(shape, np.float32), exptime=1.0, pixmap=affine_pixmap(shape, shift=(0.7, 0.0)))
    np.testing.assert_allclose(d.out_wht[:, -1], 0.7, rtol=1e-6)
    np.testing.assert_allclose(d.out_wht[:, 0], 0.3, rtol=1e-6)
    np.testing.assert_allclose(d.out_wht[:, 1:-1], 1.0, rtol=1e-6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_nan_islands_zero_weights_and_nan_data(kernel):
    shape = (24, 28)
    pm = add_nan_islands(affine_pixmap(shape, 20, 1.1, centre_out=(15, 14)), seed=3)
    w = np.random.default_rng(4).random(shape).astype(np.float32)
    w[w < 0.2] = 0
    data = random_image(shape, 5, nan_fraction=0.05)
    safe = w.copy()
    safe[np.isnan(data)] = 0
    assert_parity([dict(data=data, exptime=1.0, pixmap=pm, weight_map=safe, pixfrac=0.8)], kernel=kernel,
                  out_shape=(30, 32))
    assert_parity([dict(data=data, exptime=1.0, pixmap=pm, weight_map=w, pixfrac=0.8)], kernel=kernel,
                  out_shape=(30, 32))
    w[3, 4] = np.nan
    assert_parity([dict(data=random_image(shape, 6), exptime=1.0, pixmap=pm, weight_map=w)], kernel=kernel,
                  out_shape=(30, 32))


def test_nan_data_with_weight_poisons_output():
    shape = (10, 12)
    data = np.ones(shape, np.float32)
    data[5, 6] = np.nan
    d = Drizzle(out_shape=shape, backend="cpu")
    d.add_image(data, exptime=1.0, pixmap=affine_pixmap(shape))
    assert np.isnan(d.out_img[5, 6]) and np.isnan(d.out_img).sum() == 1


@pytest.mark.parametrize("kernel", KERNELS)
def test_dq_and_squared_weight_planes(kernel):
    shape = (20, 22)
    dq = np.random.default_rng(7).integers(0, 16, shape).astype(np.uint32)
    data2 = [random_image(shape, 8) ** 2, None, random_image(shape, 9)]
    pms = [affine_pixmap(shape, 10 * s, 0.9, centre_out=(12 + s * 0.3, 10)) for s in range(3)]
    calls = [dict(data=random_image(shape, s), exptime=1.5, pixmap=pms[s], dq=dq, data2=data2, iscale=1.3)
             for s in range(3)]
    assert_parity(calls, kernel=kernel, out_shape=(24, 26), fillval="0", fillval2="-1")
    calls = [dict(data=random_image(shape, s), exptime=1.5, pixmap=pms[s], data2=random_image(shape, 8))
             for s in range(2)]
    assert_parity(calls, kernel=kernel, out_shape=(24, 26))
    calls = [dict(data=random_image(shape, s), exptime=1.5, pixmap=pms[s], dq=dq) for s in range(2)]
    assert_parity(calls, kernel=kernel, out_shape=(24, 26))


@pytest.mark.parametrize("kernel", KERNELS)
def test_counts_units_bounds_and_estimated_scale(kernel):
    shape = (24, 28)
    psr = 1.0 if kernel in ("square", "point") else None
    calls = [dict(data=random_image(shape, 1), exptime=3.7, pixmap=affine_pixmap(shape, 45, 1.3), in_units="counts",
                  wht_scale=0.6, xmin=3, xmax=20, ymin=2, ymax=18, pixel_scale_ratio=psr)]
    assert_parity(calls, kernel=kernel, out_shape=shape)
    calls[0].update(in_units="cps", xmax=0, ymin=-4)
    assert_parity(calls, kernel=kernel, out_shape=shape)


@pytest.mark.parametrize("kernel", KERNELS)
def test_forty_one_images_second_context_plane(kernel):
    shape = (12, 14)
    calls = [dict(data=random_image(shape, s), exptime=1.0,
                  pixmap=affine_pixmap(shape, 7 * s, 1.0, shift=(0.37 * (s % 5) - 0.8, 0.23 * (s % 7) - 0.6)))
             for s in range(41)]
    assert_parity(calls, kernel=kernel, out_shape=shape)
    assert_parity(calls[:36], kernel=kernel, out_shape=shape, begin_ctx_id=5, max_ctx_id=70, fillval=-3.5)


def test_scanner_special_cases():
    shape = (16, 18)
    pm = affine_pixmap(shape, 15, 1.2, centre_out=(10, 9))
    corner_nan = pm.copy()
    corner_nan[0, 0] = np.nan  # a corner of the input rectangle cannot be mapped
    assert_parity([dict(data=random_image(shape, 2), exptime=1.0, pixmap=corner_nan)], out_shape=(20, 22))
    far = affine_pixmap(shape, shift=(100.0, 0.0))  # no overlap: fill only
    ref = run(reference.Drizzle, [dict(data=random_image(shape, 2), exptime=1.0, pixmap=far)], out_shape=shape)
    got = run(Drizzle, [dict(data=random_image(shape, 2), exptime=1.0, pixmap=far)], out_shape=shape, backend="cpu")
    for name, arr in outputs(ref).items():
        np.testing.assert_array_equal(outputs(got)[name], arr)
    calls = [dict(data=random_image(shape, 3), exptime=1.0, pixmap=pm, pixfrac=0.0005)]  # reset to point
    assert_parity(calls, kernel="square", out_shape=(20, 22))


def test_shape_from_pixmap_and_supplied_outputs():
    shape = (14, 16)
    pm = affine_pixmap(shape, 25, 1.0, centre_out=(30.2, 40.7))
    calls = [dict(data=random_image(shape, 4), exptime=1.0, pixmap=pm)]
    ref = run(reference.Drizzle, calls)
    got = run(Drizzle, calls, backend="cpu")
    for name, arr in outputs(ref).items():
        np.testing.assert_array_equal(outputs(got)[name], arr)
    out_img = np.zeros((20, 20), np.float32)
    out_wht = np.zeros((20, 20), np.float32)
    d = Drizzle(out_img=out_img, out_wht=out_wht, backend="cpu")
    d.add_image(random_image(shape, 4), exptime=2.0, pixmap=affine_pixmap(shape, centre_out=(9, 9)))
    assert d.out_img is out_img and (out_wht > 0).sum() > 100 and d.total_exptime == 2.0


@pytest.mark.parametrize("kernel", KERNELS)
def test_small_cpu_blocks(kernel, monkeypatch):
    """Pixels and records split over many numpy blocks: the state carries over exactly."""
    from gpucal.resample import engine

    monkeypatch.setattr(engine, "CPU_BLOCK_PIXELS", 37)
    monkeypatch.setattr(engine, "CPU_BLOCK_RECORDS", 100)
    shape = (20, 22)
    dq = np.random.default_rng(7).integers(0, 16, shape).astype(np.uint32)
    calls = [dict(data=random_image(shape, s), exptime=1.0, pixmap=affine_pixmap(shape, 40 * s, 0.7 + 0.3 * s),
                  dq=dq, data2=random_image(shape, 9), pixfrac=0.8) for s in range(3)]
    assert_parity(calls, kernel=kernel, out_shape=(26, 27))


def test_small_replay_blocks(monkeypatch):
    """Replay blocks smaller than the pixel blocks: records renumbered per replay block."""
    from gpucal.resample import engine

    monkeypatch.setattr(engine, "CPU_BLOCK_PIXELS", 150)
    monkeypatch.setattr(engine, "CPU_BLOCK_RECORDS", 64)
    monkeypatch.setattr(engine, "CPU_REPLAY_RECORDS", 300)
    shape = (20, 22)
    calls = [dict(data=random_image(shape, s), exptime=1.0, pixmap=affine_pixmap(shape, 40 * s, 0.7 + 0.3 * s),
                  data2=random_image(shape, 9), pixfrac=0.8) for s in range(3)]
    for kernel in ("square", "lanczos3"):
        assert_parity(calls, kernel=kernel, out_shape=(26, 27))


@pytest.mark.parametrize("kernel", ["square", "turbo", "lanczos3"])
def test_worker_threads_same_bits(kernel, monkeypatch):
    """1, 2, 3 and 7 threads (numpy: emit threads over many small blocks; compiled: many chunks,
    output row bands narrower than the kernel boxes): identical outputs, equal to drizzle's."""
    from gpucal.resample import engine

    monkeypatch.setattr(engine, "CPU_BLOCK_PIXELS", 29)
    monkeypatch.setattr(engine, "CPU_BLOCK_RECORDS", 50)
    monkeypatch.setattr("gpucal.resample.native.CHUNK_PIXELS", 31)
    shape = (24, 21)
    dq = np.random.default_rng(3).integers(0, 16, shape).astype(np.uint32)
    calls = [dict(data=random_image(shape, s), exptime=1.0, pixmap=affine_pixmap(shape, 25 * s + 5, 0.8 + 0.2 * s),
                  dq=dq, data2=random_image(shape, 8), pixfrac=0.9) for s in range(3)]
    results = []
    for workers in ("1", "2", "3", "7"):
        monkeypatch.setenv("GPUCAL_CPU_WORKERS", workers)
        results.append(outputs(run(Drizzle, calls, kernel=kernel, out_shape=(27, 26), backend="cpu")))
    ref = outputs(run(reference.Drizzle, calls, kernel=kernel, out_shape=(27, 26)))
    assert (ref["out_wht"] > 0).sum() > 300
    for got in results:
        assert got.keys() == ref.keys()
        for name, arr in ref.items():
            np.testing.assert_array_equal(got[name].view(np.uint8), results[0][name].view(np.uint8), err_msg=name)
            if kernel in EXACT:
                np.testing.assert_array_equal(got[name].view(np.uint8), arr.view(np.uint8), err_msg=name)
            else:
                assert ulp_distance(got[name], arr).max() <= 2, name


def _zero_length_edge(pixmap, out_shape) -> bool:
    from gpucal.errors import InputError
    from gpucal.resample import scanner

    ny, nx = pixmap.shape[:2]
    try:
        box = scanner.shrink_image_section(pixmap, 0, nx - 1, 0, ny - 1)
    except InputError:
        return False
    poly = scanner.scan_rows(pixmap, box, out_shape)[3]
    return any(poly[k - 1] == poly[k] for k in range(len(poly)))


def test_random_cases():
    """400 random small cases (geometry, output window, pixfrac, weights, NaN, dq/data2)."""
    rng = np.random.default_rng(1)
    for n in range(400):
        shape = tuple(int(v) for v in rng.integers(4, 30, 2))
        kernel = KERNELS[rng.integers(0, 6)]
        rot, scale, flip = rng.uniform(0, 360), rng.uniform(0.4, 2.2), bool(rng.integers(0, 2))
        out_shape = (int(rng.integers(3, 40)), int(rng.integers(3, 40)))
        centre = (rng.uniform(-5, out_shape[1] + 5), rng.uniform(-5, out_shape[0] + 5))
        pm = affine_pixmap(shape, rot, scale, flip, centre_out=centre, distort=rng.uniform(0, 0.1))
        if rng.random() < 0.3 and min(shape) > 5:
            pm = add_nan_islands(pm, seed=n, n=int(rng.integers(1, 3)), size=2)
        weights = rng.random(shape).astype(np.float32)
        weights[weights < 0.1] = 0
        kw = dict(data=random_image(shape, n, nan_fraction=0.02), exptime=1.0, pixmap=pm, weight_map=weights,
                  pixfrac=float(rng.choice([1.0, 0.7, 0.5, 0.1, 0.0005])),
                  pixel_scale_ratio=None if rng.random() < 0.2 else scale)
        if rng.random() < 0.3:
            kw.update(dq=rng.integers(0, 9, shape).astype(np.uint32), data2=random_image(shape, n + 1))
        if _zero_length_edge(pm, out_shape):
            continue  # drizzle 2.2.0 reads out of bounds there (see test_drizzle_errors.py)
        try:
            ref = outputs(run(reference.Drizzle, [kw], kernel=kernel, out_shape=out_shape, fillval="NaN"))
        except ValueError:
            with pytest.raises(ValueError):
                run(Drizzle, [kw], kernel=kernel, out_shape=out_shape, backend="cpu")
            continue
        got = outputs(run(Drizzle, [kw], kernel=kernel, out_shape=out_shape, fillval="NaN", backend="cpu"))
        for name, expected in ref.items():
            if kernel in EXACT or expected.dtype.kind in "iu":
                np.testing.assert_array_equal(got[name].view(np.uint8), expected.view(np.uint8), err_msg=f"{n} {name}")
            else:
                assert ulp_distance(got[name], expected).max() <= 2, f"{n} {name}"


@pytest.mark.parametrize("kernel", ["square", "lanczos3"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_also_planes_equal_separate_calls(kernel, workers, monkeypatch):
    """``add_image(also=...)`` gives each extra image the bits of its own fresh ``Drizzle``."""
    from gpucal.resample import engine

    monkeypatch.setattr(engine, "CPU_BLOCK_PIXELS", 41)
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", workers)
    shape, out_shape = (22, 20), (25, 26)
    weights = np.random.default_rng(5).random(shape).astype(np.float32)
    weights[weights < 0.15] = 0
    extra = [random_image(shape, 11), np.abs(random_image(shape, 12)).astype(np.float64)]
    pixmap = affine_pixmap(shape, 33.0, 0.9)
    targets = [(d, np.zeros(out_shape, np.float32), np.zeros(out_shape, np.float32)) for d in extra]
    main = Drizzle(kernel=kernel, out_shape=out_shape, backend="cpu")
    main.add_image(random_image(shape, 1), exptime=1.0, pixmap=affine_pixmap(shape, 10.0, 1.1))
    main.add_image(random_image(shape, 2), exptime=1.0, pixmap=pixmap, weight_map=weights, also=targets)
    for d, img, wht in targets:
        alone = Drizzle(kernel=kernel, out_shape=out_shape, fillval=0.0, disable_ctx=True, backend="cpu")
        alone.add_image(d, exptime=1.0, pixmap=pixmap, weight_map=weights)
        assert (wht > 0).sum() > 200
        np.testing.assert_array_equal(img.view(np.uint32), alone.out_img.view(np.uint32))
        np.testing.assert_array_equal(wht.view(np.uint32), alone.out_wht.view(np.uint32))
    with pytest.raises(ValueError, match="also"):
        main.add_image(extra[0], exptime=1.0, pixmap=pixmap, also=[(extra[0], np.zeros(out_shape), targets[0][2])])


def test_strided_and_fortran_outputs_are_updated_in_place():
    """A strided out_img and a Fortran-ordered out_wht are updated in place, as drizzle's are,
    with nothing written outside the view (the CPU paths address outputs as flat C arrays)."""
    shape, out_shape = (20, 22), (26, 27)
    calls = [dict(data=random_image(shape, s), exptime=1.0, pixmap=affine_pixmap(shape, 30 * s + 10, 0.9 + 0.1 * s),
                  pixfrac=0.8) for s in range(2)]
    ref = run(reference.Drizzle, calls, out_img=np.zeros(out_shape, np.float32),
              out_wht=np.zeros(out_shape, np.float32))
    big = np.full((out_shape[0], 2 * out_shape[1]), -7.0, np.float32)
    img = big[:, ::2]
    img[...] = 0.0
    wht = np.asfortranarray(np.zeros(out_shape, np.float32))
    got = run(Drizzle, calls, out_img=img, out_wht=wht, backend="cpu")
    assert got.out_img is img and got.out_wht is wht and (wht > 0).sum() > 300
    np.testing.assert_array_equal(img.view(np.uint32), ref.out_img.view(np.uint32))
    np.testing.assert_array_equal(wht.view(np.uint32), ref.out_wht.view(np.uint32))
    assert (big[:, 1::2] == -7.0).all()
