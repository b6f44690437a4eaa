"""Reference files: CRDS-format reading, subarray cut-outs, synthetic writing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits

from gpucal import FileFormatError, InputError, Ramp
from gpucal.refs import cut_subarray, read_gain, read_readnoise, read_reference, subarray_window, write_reference

datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")


def ramp_for(ny: int, nx: int, **meta) -> Ramp:
    shape = (1, 2, ny, nx)
    return Ramp(np.zeros(shape, np.float32), np.zeros(shape, np.uint8), np.zeros((ny, nx), np.uint32),
                group_time=1.0, frame_time=1.0, nframes=1, meta=meta)


def coded_image(ny: int, nx: int) -> np.ndarray:
    yy, xx = np.mgrid[0:ny, 0:nx]
    return (yy * 10000 + xx).astype(np.float32)


def test_write_and_read_gain(tmp_path):
    gain = np.random.default_rng(0).uniform(1.8, 2.2, (16, 20)).astype(np.float32)
    path = write_reference(tmp_path / "g.fits", "gain", gain, instrument="nircam", detector="nrca1")
    out = read_gain(path)
    assert out.dtype == np.float32 and out.dtype.isnative and out.flags.c_contiguous
    np.testing.assert_array_equal(out, gain)
    with fits.open(path) as hdul:
        header = hdul[0].header
        expected = {"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "REFTYPE": "GAIN",
                    "SUBARRAY": "FULL", "AUTHOR": "gpucal synthetic", "PEDIGREE": "DUMMY"}
        for key, value in expected.items():
            assert header[key] == value, key
        assert header["DESCRIP"] and header["USEAFTER"].startswith("20")
        assert hdul["SCI"].header["BUNIT"] == "electrons/DN"
    with datamodels.open(path) as model:
        assert type(model).__name__ == "GainModel"
        np.testing.assert_array_equal(model.data, gain)


def test_write_and_read_readnoise(tmp_path):
    rn = np.full((4, 5), 12.5)
    path = write_reference(tmp_path / "rn.fits", "READNOISE", rn, instrument="MIRI", detector="MIRIMAGE",
                           subarray="GENERIC", extra={"SUBSTRT1": 3, "SUBSTRT2": 4, "SUBSIZE1": 5, "SUBSIZE2": 4})
    np.testing.assert_array_equal(read_readnoise(path), rn.astype(np.float32))
    with fits.open(path) as hdul:
        assert hdul["SCI"].header["BUNIT"] == "DN"
        assert hdul[0].header["SUBSTRT1"] == 3 and hdul[0].header["SUBARRAY"] == "GENERIC"
    with datamodels.open(path) as model:
        assert type(model).__name__ == "ReadnoiseModel"


def test_write_reference_rejects_bad_data(tmp_path):
    with pytest.raises(InputError, match="2-D real array"):
        write_reference(tmp_path / "x.fits", "GAIN", np.ones((2, 3, 4)), instrument="NIRCAM", detector="NRCA1")
    with pytest.raises(InputError, match="2-D real array"):
        write_reference(tmp_path / "x.fits", "GAIN", np.ones((3, 4), bool), instrument="NIRCAM", detector="NRCA1")
    assert list(tmp_path.iterdir()) == []


def test_wrong_reftype(tmp_path):
    path = write_reference(tmp_path / "rn.fits", "READNOISE", np.ones((4, 4)), instrument="NIRCAM", detector="NRCA1")
    with pytest.raises(FileFormatError, match=r"rn.fits has REFTYPE 'READNOISE', expected 'GAIN'"):
        read_gain(path)
    assert read_reference(path, "readnoise").shape == (4, 4)  # case-insensitive


def test_missing_reftype_and_sci(tmp_path, caplog):
    path = tmp_path / "plain.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.full((3, 3), 2.0), name="SCI")]).writeto(path)
    with caplog.at_level(logging.WARNING, logger="gpucal.refs"):
        np.testing.assert_array_equal(read_gain(path), np.full((3, 3), 2.0, np.float32))
    assert "plain.fits names no reference type (no REFTYPE or DATAMODL): read as a GAIN reference" in caplog.text
    path2 = tmp_path / "nosci.fits"
    primary = fits.PrimaryHDU()
    primary.header["REFTYPE"] = "GAIN"
    fits.HDUList([primary, fits.ImageHDU(np.ones((3, 3)), name="DQ")]).writeto(path2)
    with pytest.raises(FileFormatError, match="no SCI image extension"):
        read_gain(path2)


def test_3d_sci_is_rejected(tmp_path):
    primary = fits.PrimaryHDU()
    primary.header["REFTYPE"] = "GAIN"
    path = tmp_path / "cube.fits"
    fits.HDUList([primary, fits.ImageHDU(np.ones((2, 3, 3), np.float32), name="SCI")]).writeto(path)
    with pytest.raises(FileFormatError, match=r"SCI is 3-D \(2, 3, 3\), expected 2-D"):
        read_gain(path)


def test_not_fits_and_missing(tmp_path):
    path = tmp_path / "gain.txt"
    path.write_text("GAIN 2.0\n" * 400)
    with pytest.raises(FileFormatError, match="gain.txt is not a readable FITS file"):
        read_gain(path)
    with pytest.raises(FileNotFoundError, match="missing_gain.fits"):
        read_gain(tmp_path / "missing_gain.fits")


def test_big_endian_storage_becomes_native(tmp_path):
    primary = fits.PrimaryHDU()
    primary.header["REFTYPE"] = "GAIN"
    path = tmp_path / "f64.fits"
    data = np.arange(12, dtype=">f8").reshape(3, 4)
    fits.HDUList([primary, fits.ImageHDU(data, name="SCI")]).writeto(path)
    out = read_gain(path)
    assert out.dtype == np.dtype(np.float32) and out.dtype.isnative
    np.testing.assert_array_equal(out, data)


def test_full_frame_reference_cut_to_subarray(tmp_path):
    full = coded_image(2048, 2048)
    path = write_reference(tmp_path / "full_gain.fits", "GAIN", full, instrument="NIRCAM", detector="NRCA1")
    ramp = ramp_for(8, 9, SUBSTRT1=101, SUBSTRT2=201, SUBSIZE1=9, SUBSIZE2=8, DETECTOR="NRCA1")
    out = read_gain(path, ramp)
    assert out.shape == (8, 9) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, full[200:208, 100:109])
    assert out[0, 0] == 200 * 10000 + 100


def test_subarray_reference_with_its_own_origin(tmp_path):
    sub = coded_image(64, 80)  # detector pixels x 33..112, y 17..80 (1-based)
    path = write_reference(tmp_path / "sub_gain.fits", "GAIN", sub, instrument="NIRCAM", detector="NRCA1",
                           subarray="SUB80", extra={"SUBSTRT1": 33, "SUBSTRT2": 17, "SUBSIZE1": 80, "SUBSIZE2": 64})
    ramp = ramp_for(5, 6, SUBSTRT1=40, SUBSTRT2=20, SUBSIZE1=6, SUBSIZE2=5)
    np.testing.assert_array_equal(read_gain(path, ramp), sub[3:8, 7:13])
    outside = ramp_for(5, 6, SUBSTRT1=10, SUBSTRT2=20, SUBSIZE1=6, SUBSIZE2=5)
    with pytest.raises(InputError, match="SUBSTRT1=10 SUBSTRT2=20 .* is not inside the reference image"):
        read_gain(path, outside)


def test_same_shape_reference_at_another_position(tmp_path):
    path = write_reference(tmp_path / "g.fits", "GAIN", np.ones((5, 6)), instrument="NIRCAM", detector="NRCA1",
                           extra={"SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": 6, "SUBSIZE2": 5})
    same = ramp_for(5, 6, SUBSTRT1=1, SUBSTRT2=1, SUBSIZE1=6, SUBSIZE2=5)
    assert read_gain(path, same).shape == (5, 6)
    elsewhere = ramp_for(5, 6, SUBSTRT1=101, SUBSTRT2=1, SUBSIZE1=6, SUBSIZE2=5)
    with pytest.raises(InputError, match="SUBSTRT1=1 SUBSTRT2=1.*SUBSTRT1=101"):
        read_gain(path, elsewhere)


def test_shape_mismatch_names_both_shapes(tmp_path):
    path = write_reference(tmp_path / "g.fits", "GAIN", np.ones((10, 12)), instrument="NIRCAM", detector="NRCA1")
    with pytest.raises(InputError, match=r"shape \(10, 12\) does not match the exposure's \(ny, nx\) = \(8, 9\)"):
        read_gain(path, ramp_for(8, 9))
    # a subarray window whose size disagrees with the data also fails clearly
    wrong = ramp_for(8, 9, SUBSTRT1=1, SUBSTRT2=1, SUBSIZE1=4, SUBSIZE2=4)
    with pytest.raises(InputError, match=r"shape \(4, 4\) does not match .* \(8, 9\)"):
        read_gain(path, wrong)
    # a smaller reference than the exposure
    with pytest.raises(InputError, match=r"\(10, 12\) does not match .* \(20, 20\)"):
        read_gain(path, ramp_for(20, 20, SUBSTRT1=1, SUBSTRT2=1, SUBSIZE1=20, SUBSIZE2=20))


def test_nan_values_warn_and_all_nan_fails(tmp_path, caplog):
    gain = np.full((6, 7), 2.0, np.float32)
    gain[1, 1] = gain[2, 3] = np.nan
    gain[0, 0] = 0.0
    path = write_reference(tmp_path / "g.fits", "GAIN", gain, instrument="NIRCAM", detector="NRCA1")
    with caplog.at_level(logging.WARNING, logger="gpucal.refs.read"):
        out = read_gain(path)
    assert np.isnan(out).sum() == 2 and out[0, 0] == 0.0
    assert "2 of 42 GAIN values are NaN or infinite" in caplog.text
    bad = write_reference(tmp_path / "nan.fits", "GAIN", np.full((3, 3), np.nan), instrument="NIRCAM",
                          detector="NRCA1")
    with pytest.raises(InputError, match="no finite value"):
        read_gain(bad)


def test_detector_mismatch_warns(tmp_path, caplog):
    path = write_reference(tmp_path / "g.fits", "GAIN", np.ones((4, 4)), instrument="NIRCAM", detector="NRCB2")
    with caplog.at_level(logging.WARNING, logger="gpucal.refs.read"):
        read_gain(path, ramp_for(4, 4, DETECTOR="NRCA1"))
    assert "for detector NRCB2, the exposure is NRCA1" in caplog.text


def test_subarray_helpers():
    assert subarray_window({"SUBSTRT1": 1, "SUBSTRT2": 2, "SUBSIZE1": 3, "SUBSIZE2": 4}) == (1, 2, 3, 4)
    assert subarray_window({"SUBSTRT1": 1, "SUBSTRT2": 2, "SUBSIZE1": 3}) is None
    assert subarray_window({"SUBSTRT1": 0, "SUBSTRT2": 2, "SUBSIZE1": 3, "SUBSIZE2": 4}) is None
    image = coded_image(10, 10)
    np.testing.assert_array_equal(cut_subarray(image, (3, 2, 4, 5)), image[1:6, 2:6])
    with pytest.raises(InputError):
        cut_subarray(image, (8, 1, 4, 4))


def _saved_by_stdatamodels(path, model: str, **arrays):
    """A reference file as ``datamodels.<model>(...).save(path)`` writes it: DATAMODL, no REFTYPE."""
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    with getattr(datamodels, model)(**arrays) as m:
        m.save(path)
    with fits.open(path) as hdul:
        assert hdul[0].header["DATAMODL"] == model and "REFTYPE" not in hdul[0].header
    return path


def test_references_saved_by_stdatamodels_are_read(tmp_path, caplog):
    """jwst opens a GainModel(...).save() file, which has DATAMODL but no REFTYPE; so does gpucal."""
    from gpucal.refs import read_dark, read_linearity, read_mask, read_saturation, read_superbias
    from gpucal.refs.ipc import read_ipc

    rng = np.random.default_rng(4)
    image = rng.uniform(1.5, 2.5, (6, 7)).astype(np.float32)
    gain = _saved_by_stdatamodels(tmp_path / "gain.fits", "GainModel", data=image)
    readnoise = _saved_by_stdatamodels(tmp_path / "rn.fits", "ReadnoiseModel", data=image * 3)
    with caplog.at_level(logging.WARNING, logger="gpucal.refs"):
        np.testing.assert_array_equal(read_gain(gain), image)
        np.testing.assert_array_equal(read_readnoise(readnoise), image * 3)
        dq = np.zeros((6, 7), np.uint32)
        dq[1, 2] = 1
        np.testing.assert_array_equal(
            read_mask(_saved_by_stdatamodels(tmp_path / "mask.fits", "MaskModel", dq=dq)).dq, dq)
        for reader, model in ((read_saturation, "SaturationModel"), (read_superbias, "SuperBiasModel")):
            ref = reader(_saved_by_stdatamodels(tmp_path / f"{model}.fits", model, data=image, dq=dq))
            np.testing.assert_array_equal(ref.data, image)
        coeffs = np.stack([image * 0, image * 0 + 1, image * 1e-6])
        np.testing.assert_array_equal(
            read_linearity(_saved_by_stdatamodels(tmp_path / "lin.fits", "LinearityModel", coeffs=coeffs,
                                                   dq=dq)).data, coeffs)
        dark = _saved_by_stdatamodels(tmp_path / "dark.fits", "DarkModel", data=np.stack([image] * 3))
        with fits.open(dark, mode="update") as hdul:  # a dark needs its readout keywords
            hdul[0].header.update(NFRAMES=1, GROUPGAP=0)
        assert read_dark(dark).data.shape == (3, 6, 7)
        kernel = np.zeros((3, 3), np.float32)
        kernel[1, 1] = 1
        np.testing.assert_array_equal(read_ipc(_saved_by_stdatamodels(tmp_path / "ipc.fits", "IPCModel",
                                                                       data=kernel)).data, kernel)
    assert "reference type" not in caplog.text  # DATAMODL named the type: no warning


def test_a_reference_naming_another_type_is_refused(tmp_path):
    from gpucal.refs import read_saturation

    image = np.ones((4, 5), np.float32)
    readnoise = _saved_by_stdatamodels(tmp_path / "rn.fits", "ReadnoiseModel", data=image)
    with pytest.raises(FileFormatError, match=r"rn.fits is a ReadnoiseModel \(DATAMODL\), not a GAIN reference "
                                              r"\(GainModel\)"):
        read_gain(readnoise)
    ramp = _saved_by_stdatamodels(tmp_path / "x_ramp.fits", "RampModel", data=np.ones((1, 2, 4, 5), np.float32))
    with pytest.raises(FileFormatError, match="is a RampModel"):
        read_saturation(ramp)
    # REFTYPE and DATAMODL that disagree: refused.
    path = write_reference(tmp_path / "g.fits", "GAIN", image, instrument="NIRCAM", detector="NRCA1")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["DATAMODL"] = "ReadnoiseModel"
    with pytest.raises(FileFormatError, match="is a ReadnoiseModel"):
        read_gain(path)


def test_ramp_fit_command_takes_stdatamodels_references(tmp_path):
    """The issue's case: ``gpucal ramp-fit --gain`` with a GainModel(...).save() file (jwst reads it)."""
    from gpucal import cli
    from gpucal.synthetic import make_exposure, write_exposure

    files = write_exposure(make_exposure(1, 4, 8, 10, seed=2), tmp_path, name="x")
    with fits.open(files["gain"]) as g, fits.open(files["readnoise"]) as r:
        gain = _saved_by_stdatamodels(tmp_path / "g.fits", "GainModel", data=g["SCI"].data.astype(np.float32))
        rn = _saved_by_stdatamodels(tmp_path / "r.fits", "ReadnoiseModel", data=r["SCI"].data.astype(np.float32))
    for out, refs in (("a", (gain, rn)), ("b", (files["gain"], files["readnoise"]))):
        argv = ["ramp-fit", str(files["ramp"]), "--gain", str(refs[0]), "--readnoise", str(refs[1]), "-q",
                "--backend", "cpu", "-o", str(tmp_path / out)]
        assert cli.main(argv) == 0
    with fits.open(tmp_path / "a" / "x_rate.fits") as a, fits.open(tmp_path / "b" / "x_rate.fits") as b:
        np.testing.assert_array_equal(a["SCI"].data, b["SCI"].data)
