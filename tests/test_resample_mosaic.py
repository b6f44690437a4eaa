"""gpucal.resample_images against jwst 3.0.0's ResampleStep on synthetic _cal images, i2d files, CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("gwcs")
pytest.importorskip("stdatamodels")
pytest.importorskip("jwst")

from resample_models import make_cal_model, write_cal_files  # noqa: E402

import gpucal  # noqa: E402
from gpucal import cli  # noqa: E402
from gpucal.errors import FileFormatError, InputError  # noqa: E402
from gpucal.resample import resample_images  # noqa: E402

ARRAYS = ("data", "wht", "var_rnoise", "var_poisson", "var_flat", "err")
MAX_ULP = 8  # compiled pixel maps differ from the WCS's own by ~1e-9 px (see docs/algorithms/resample.md)


@pytest.fixture(scope="module")
def cal_files(tmp_path_factory):
    return write_cal_files(tmp_path_factory.mktemp("cal"), n=3)


def _jwst(paths, **pars):
    from jwst.resample import ResampleStep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ResampleStep(**pars).run([str(p) for p in paths])


@pytest.fixture(scope="module")
def jwst_default(cal_files):
    return _jwst(cal_files)


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    finite = np.isfinite(a) & np.isfinite(b)
    ia = a.view(np.int32).astype(np.int64)[finite]
    ib = b.view(np.int32).astype(np.int64)[finite]
    return int(np.max(np.abs(ia - ib))) if ia.size else 0


def _same_grid(product, ref):
    assert product.shape == ref.data.shape
    ours, theirs = product.wcs.forward_transform, ref.meta.wcs.forward_transform
    for name in ("crpix", "crval", "cdelt", "pc"):
        np.testing.assert_array_equal(getattr(ours, name).value, getattr(theirs, name).value, err_msg=name)
    assert product.wcs.bounding_box.bounding_box() == ref.meta.wcs.bounding_box.bounding_box()


def _assert_bitwise(product, ref):
    _same_grid(product, ref)
    for name in (*ARRAYS, "con"):
        got, want = getattr(product, name), getattr(ref, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_bitwise_equal_to_jwst_with_wcs_pixel_maps(cal_files, jwst_default):
    product = resample_images(cal_files, backend="cpu", pixmap="wcs")
    _assert_bitwise(product, jwst_default)
    assert np.isfinite(product.data).sum() > 0.5 * product.data.size
    assert product.meta["exposure_time"] == jwst_default.meta.exposure.exposure_time == 330.0
    assert product.meta["pixel_scale_ratio"] == 1.0
    np.testing.assert_allclose(product.meta["pixelarea_arcsecsq"], jwst_default.meta.photometry.pixelarea_arcsecsq,
                               rtol=1e-12)


def test_compiled_pixel_maps_within_ulps_of_jwst(cal_files, jwst_default):
    product = resample_images(cal_files, backend="cpu")
    _same_grid(product, jwst_default)
    np.testing.assert_array_equal(product.con, jwst_default.con)
    for name in ARRAYS:
        got, want = getattr(product, name), getattr(jwst_default, name)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        assert _ulps(got, want) <= MAX_ULP, name


@pytest.mark.parametrize("pars", [
    dict(weight_type="exptime", pixfrac=0.7, rotation=30.0, pixel_scale_ratio=0.7),
    dict(kernel="turbo", pixel_scale_ratio=1.6, crval=[10.0002, -30.0001]),
    dict(pixel_scale=0.13, crpix=[20.0, 25.0], output_shape=[60, 50]),
])
def test_custom_grids_equal_jwst(cal_files, pars):
    ref = _jwst(cal_files, **pars)
    ours = dict(pars)
    if "output_shape" in ours:  # jwst takes (nx, ny); gpucal numpy order (ny, nx)
        ours["output_shape"] = ours["output_shape"][::-1]
    product = resample_images(cal_files, backend="cpu", pixmap="wcs", **ours)
    _assert_bitwise(product, ref)
    assert product.meta["pixel_scale_ratio"] == ref.meta.resample.pixel_scale_ratio


def test_mean_pixel_area_without_spherical_geometry(monkeypatch):
    """The exact spherical-excess fallback agrees with the nominal area of an undistorted TAN."""
    import sys

    from gpucal.resample.output_wcs import mean_pixel_area
    from resample_wcs import PIXEL_SCALE, imaging_gwcs

    monkeypatch.setitem(sys.modules, "spherical_geometry.polygon", None)
    area = mean_pixel_area(imaging_gwcs((40, 50)), (40, 50))
    np.testing.assert_allclose(area, np.deg2rad(PIXEL_SCALE) ** 2, rtol=1e-7)


def test_in_memory_models_and_arrays(cal_files, jwst_default):
    models = [make_cal_model(k) for k in range(3)]
    _assert_bitwise(resample_images(models, backend="cpu", pixmap="wcs"), jwst_default)
    dicts = [dict(data=m.data, wcs=m.meta.wcs, dq=m.dq, var_rnoise=m.var_rnoise, var_poisson=m.var_poisson,
                  var_flat=m.var_flat, err=m.err, exposure_time=m.meta.exposure.exposure_time,
                  measurement_time=m.meta.exposure.measurement_time, s_region=m.meta.wcsinfo.s_region,
                  wcsinfo=dict(ra_ref=m.meta.wcsinfo.ra_ref, dec_ref=m.meta.wcsinfo.dec_ref,
                               roll_ref=m.meta.wcsinfo.roll_ref, v3yangle=0.0, vparity=-1))
             for m in models]
    _assert_bitwise(resample_images(dicts, backend="cpu", pixmap="wcs"), jwst_default)


@pytest.mark.parametrize("flip", [False, True])
def test_arrays_without_pointing_keywords_get_a_grid_from_the_wcs(flip):
    from gpucal.resample import calc_pixmap
    from resample_wcs import imaging_gwcs

    wcs = [imaging_gwcs((34, 40), ra=10.0 + k * 1e-4, roll=20.0, flip=flip) for k in range(2)]
    inputs = [dict(data=np.ones((34, 40), np.float32), wcs=w) for w in wcs]
    product = gpucal.resample_images(inputs, backend="cpu")
    # Orientation and parity derived from the WCS: the output axes follow the detector's.
    pixmap = calc_pixmap(wcs[0], product.wcs, backend="cpu")
    np.testing.assert_allclose(np.diff(pixmap[..., 0], axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.diff(pixmap[..., 1], axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.diff(pixmap[..., 1], axis=1), 0.0, atol=1e-6)
    assert np.nanmax(product.wht) > 0 and np.isnan(product.var_rnoise).all()
    assert product.meta["exposure_time"] == 2.0


def test_i2d_file_opens_in_jwst_datamodels(cal_files, tmp_path):
    from stdatamodels.jwst import datamodels

    product = resample_images(cal_files, backend="cpu")
    path = product.to_fits(tmp_path / "mosaic_i2d.fits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosaic_i2d.fits"]
    with datamodels.open(path) as model:
        assert isinstance(model, datamodels.ImageModel)
        for name in (*ARRAYS, "con"):
            np.testing.assert_array_equal(getattr(model, name), getattr(product, name), err_msg=name)
        assert model.meta.resample.kernel == "square" and model.meta.cal_step.resample == "COMPLETE"
        assert model.meta.exposure.exposure_time == 330.0 and model.meta.instrument.name == "NIRCAM"
        assert model.meta.wcsinfo.ctype1 == "RA---TAN" and model.meta.wcsinfo.ra_ref is None
        ra, dec = model.meta.wcs(10.0, 12.0)
        np.testing.assert_allclose((ra, dec), product.wcs(10.0, 12.0), rtol=0, atol=1e-12)
    with pytest.raises(FileExistsError):
        product.to_fits(path)


def test_progress_reports_each_input(cal_files):
    calls = []
    resample_images(cal_files, backend="cpu", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_bad_inputs(cal_files, tmp_path):
    text = tmp_path / "notes.fits"
    text.write_text("not a fits file")
    with pytest.raises(FileFormatError, match="not a readable FITS file"):
        resample_images([text], backend="cpu")
    from astropy.io import fits

    plain = tmp_path / "plain.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4)), name="SCI")]).writeto(plain)
    with pytest.raises(FileFormatError, match="not a JWST calibrated product"):
        resample_images([plain], backend="cpu")
    model = make_cal_model(0)
    model.meta.wcs = None
    with pytest.raises(InputError, match="has no WCS"):
        resample_images([model], backend="cpu")
    with pytest.raises(InputError, match="unknown kernel"):
        resample_images(cal_files, kernel="boxcar", backend="cpu")
    with pytest.raises(InputError, match="does not overlap"):
        resample_images(cal_files, crpix=[5000.0, 5000.0], output_shape=(20, 20), backend="cpu")
    with pytest.raises(InputError, match="at least one input"):
        resample_images([], backend="cpu")
    with pytest.raises(InputError, match="2-D image"):
        resample_images([dict(data=np.zeros((2, 3, 4)), wcs=make_cal_model(0).meta.wcs)], backend="cpu")
    with pytest.raises(FileNotFoundError):
        resample_images([tmp_path / "missing_cal.fits"], backend="cpu")


def test_cli_writes_an_i2d(cal_files, tmp_path):
    from stdatamodels.jwst import datamodels

    out = tmp_path / "cli_i2d.fits"
    args = ["resample", *map(str, cal_files), "-o", str(out), "--pixfrac", "0.8", "--backend", "cpu", "-q"]
    assert cli.main(args) == cli.EXIT_OK
    direct = resample_images(cal_files, pixfrac=0.8, backend="cpu")
    with datamodels.open(out) as model:
        np.testing.assert_array_equal(model.data, direct.data)
        assert model.meta.resample.pixfrac == 0.8
    assert cli.main(args) == cli.EXIT_USAGE  # exists, no --overwrite
    assert cli.main([*args, "--overwrite", "--kernel", "point"]) == cli.EXIT_OK


def test_cli_refuses_an_output_that_is_an_input_through_a_link(cal_files, tmp_path, capsys):
    import os

    out = tmp_path / "linked_i2d.fits"
    os.link(cal_files[0], out)
    args = ["resample", *map(str, cal_files), "-o", str(out), "--overwrite", "--backend", "cpu", "-q"]
    assert cli.main(args) == cli.EXIT_USAGE
    assert "the same file as the input" in capsys.readouterr().err
    assert os.path.samefile(out, cal_files[0])  # the link is still the input


def test_cli_bad_input_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad_cal.fits"
    bad.write_text("garbage")
    out = tmp_path / "x_i2d.fits"
    assert cli.main(["resample", str(bad), "-o", str(out), "--backend", "cpu", "-q"]) == cli.EXIT_USAGE
    assert "not a readable FITS file" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad_cal.fits"]


def test_files_stream_one_at_a_time(cal_files, monkeypatch):
    """Pass 1 reads metadata only; pass 2 reads each file's arrays once, in order."""
    from gpucal.resample import inputs

    calls = []
    real = inputs._read_cal

    def spy(path, arrays=True):
        calls.append((path.name, arrays))
        return real(path, arrays)

    monkeypatch.setattr(inputs, "_read_cal", spy)
    resample_images(cal_files, backend="cpu")
    names = [p.name for p in cal_files]
    assert calls == [(n, False) for n in names] + [(n, True) for n in names]
