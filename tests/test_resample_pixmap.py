"""gpucal.resample.calc_pixmap against the WCSs' own evaluation and stcal's pixel map."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("gwcs")

from resample_wcs import fits_wcs, imaging_gwcs  # noqa: E402

from gpucal.errors import InputError  # noqa: E402
from gpucal.resample import calc_pixmap  # noqa: E402
from gpucal.resample.model_compiler import UnsupportedModel, compile_model  # noqa: E402

TOL = 1e-8  # pixels
OUT_SHAPE = (60, 70)


def _own_pixmap(wcs_from, wcs_to, shape):
    """The WCSs' own numpy evaluation, output bounding box disabled (as the jwst step)."""
    y, x = np.indices(shape, dtype=np.float64)
    saved = getattr(wcs_to, "bounding_box", None)
    if saved is not None:
        wcs_to.bounding_box = None
    try:
        px, py = wcs_to.world_to_pixel_values(*wcs_from.pixel_to_world_values(x, y))
    finally:
        if saved is not None:
            wcs_to.bounding_box = saved
    return np.dstack([px, py])


CASES = {
    "gwcs->gwcs": lambda: (imaging_gwcs(), imaging_gwcs(OUT_SHAPE, ra=10.001, roll=35)),
    "distorted gwcs->gwcs": lambda: (imaging_gwcs(distorted=True), imaging_gwcs(OUT_SHAPE, ra=10.001, roll=35)),
    "flipped gwcs->gwcs": lambda: (imaging_gwcs(flip=True), imaging_gwcs(OUT_SHAPE, dec=-30.002, roll=-80)),
    "partial bbox": lambda: (imaging_gwcs(bounding_box=((3.2, 40.5), (-0.5, 30.1))), imaging_gwcs(OUT_SHAPE)),
    "TAN-SIP->TAN": lambda: (fits_wcs(sip=True), fits_wcs(OUT_SHAPE, roll=5)),
    "TAN->gwcs": lambda: (fits_wcs(), imaging_gwcs(OUT_SHAPE, roll=-5)),
    "gwcs->TAN": lambda: (imaging_gwcs(distorted=True), fits_wcs(OUT_SHAPE, ra=9.9995, roll=5)),
    "near the pole": lambda: (imaging_gwcs(dec=89.99), imaging_gwcs(OUT_SHAPE, dec=89.99, roll=50)),
    "across RA 0": lambda: (imaging_gwcs(ra=0.0005), imaging_gwcs(OUT_SHAPE, ra=359.9995)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pixmap_matches_own_evaluation(case):
    wcs_from, wcs_to = CASES[case]()
    got = calc_pixmap(wcs_from, wcs_to, backend="cpu")
    want = _own_pixmap(wcs_from, wcs_to, wcs_from.array_shape)
    assert got.shape == want.shape == (*wcs_from.array_shape, 2)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.nanmax(np.abs(got - want)) < TOL
    assert np.isfinite(got).any()


@pytest.mark.parametrize("case", ["distorted gwcs->gwcs", "partial bbox", "TAN-SIP->TAN"])
def test_pixmap_matches_stcal_and_drizzle(case):
    from drizzle.utils import calc_pixmap as drizzle_pixmap
    from stcal.resample.utils import calc_pixmap as stcal_pixmap

    wcs_from, wcs_to = CASES[case]()
    got = calc_pixmap(wcs_from, wcs_to, backend="cpu")
    for ref in (stcal_pixmap(wcs_from, wcs_to, wcs_from.array_shape),
                drizzle_pixmap(wcs_from, wcs_to, wcs_from.array_shape)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        assert np.nanmax(np.abs(got - ref)) < TOL


def test_partial_bounding_box_gives_nan_outside():
    wcs_from = imaging_gwcs(bounding_box=((3.2, 40.5), (-0.5, 30.1)))
    got = calc_pixmap(wcs_from, imaging_gwcs(OUT_SHAPE), backend="cpu")
    assert np.isnan(got[:, :4]).all() and np.isfinite(got[:31, 4:41]).all()
    assert np.isnan(got[31:]).all() and np.isnan(got[:, 41:]).all()


def test_identity_map_is_pixel_grid():
    wcs = imaging_gwcs()
    got = calc_pixmap(wcs, imaging_gwcs(), backend="cpu")
    y, x = np.indices(wcs.array_shape, dtype=np.float64)
    assert np.max(np.abs(got[..., 0] - x)) < TOL and np.max(np.abs(got[..., 1] - y)) < TOL


def test_unsupported_models_fall_back_with_log(caplog):
    from astropy.modeling import models as m
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    wcs_to = imaging_gwcs(OUT_SHAPE)
    sin = (m.Shift(-25) & m.Shift(-20) | m.Scale(3e-5) & m.Scale(3e-5) | m.Pix2Sky_SIN()
           | m.RotateNative2Celestial(10.0, -30.0, 180.0))
    wcs_from = gwcs_wcs.WCS([(cf.Frame2D(name="detector"), sin), (wcs_to.output_frame, None)])
    with caplog.at_level(logging.INFO, logger="gpucal.resample.pixmap"):
        got = calc_pixmap(wcs_from, wcs_to, shape=(40, 50), backend="cpu")
    assert "evaluating the input WCS on the CPU (model Pix2Sky_" in caplog.text
    want = _own_pixmap(wcs_from, wcs_to, (40, 50))
    assert np.nanmax(np.abs(got - want)) < TOL

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gpucal.resample.pixmap"):
        got = calc_pixmap(fits_wcs(), fits_wcs(OUT_SHAPE, sip=True), backend="cpu")
    assert "output WCS inverse on the CPU" in caplog.text
    np.testing.assert_allclose(got, _own_pixmap(fits_wcs(), fits_wcs(OUT_SHAPE, sip=True), (40, 50)), atol=TOL, rtol=0)


def test_compiler_rejects_units_and_unknown_models():
    from astropy import units as u
    from astropy.modeling import models as m

    with pytest.raises(UnsupportedModel, match="has units"):
        compile_model(m.Shift(3 * u.pix))
    with pytest.raises(UnsupportedModel, match="Gaussian2D"):
        compile_model(m.Gaussian2D())
    with pytest.raises(UnsupportedModel, match="compound operator"):
        compile_model(m.Shift(1) + m.Shift(2), inverse=True)


def test_compiler_arithmetic_and_mapping():
    from astropy.modeling import models as m

    x = np.linspace(-3, 5, 7)
    y = np.linspace(1, 2, 7)
    model = m.Mapping((0, 1, 1)) | m.Shift(2) * m.Scale(3) & m.Polynomial2D(1, c0_0=1, c1_0=2, x_domain=(0, 4))
    got = compile_model(model)(np, x, y)
    want = model(x, y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=1e-15)


def test_bad_shapes():
    no_shape = imaging_gwcs(bounding_box=None)
    no_shape.array_shape = None
    with pytest.raises(InputError, match="cannot tell the input image shape"):
        calc_pixmap(no_shape, imaging_gwcs(), backend="cpu")
    with pytest.raises(InputError, match="positive sizes"):
        calc_pixmap(imaging_gwcs(), imaging_gwcs(), shape=(0, 5), backend="cpu")


@pytest.mark.gpu
def test_pixmap_gpu_matches_cpu():
    import cupy

    for case in sorted(CASES):
        wcs_from, wcs_to = CASES[case]()
        cpu = calc_pixmap(wcs_from, wcs_to, backend="cpu")
        gpu = calc_pixmap(wcs_from, wcs_to, backend="gpu", keep_on_device=True)
        assert isinstance(gpu, cupy.ndarray)
        gpu = gpu.get()
        np.testing.assert_array_equal(np.isnan(gpu), np.isnan(cpu))
        assert np.nanmax(np.abs(gpu - cpu)) < TOL, case


@pytest.mark.parametrize("case", ["distorted gwcs->gwcs", "TAN-SIP->TAN"])
def test_gpu_plumbing_with_the_cupy_stand_in(case, cupy_stand_in, monkeypatch):
    """The device path's array code on tests/fake_cupy.py (CuPy's rules: no host arrays mixed in)."""
    from fake_cupy import DeviceArray

    from gpucal.resample import pixmap as pm

    monkeypatch.setattr(pm, "resolve_backend", lambda backend: "gpu")
    wcs_from, wcs_to = CASES[case]()
    on_device = calc_pixmap(wcs_from, wcs_to, backend="gpu", keep_on_device=True)
    assert isinstance(on_device, DeviceArray)
    np.testing.assert_array_equal(on_device.get(), calc_pixmap(wcs_from, wcs_to, backend="cpu"))
    # The CPU fallback inside a device run moves its results onto the device.
    fallback = calc_pixmap(wcs_from, wcs_to, backend="gpu", compiled=False, keep_on_device=True)
    assert isinstance(fallback, DeviceArray)
    np.testing.assert_array_equal(fallback.get(), _own_pixmap(wcs_from, wcs_to, wcs_from.array_shape))
