"""FITS input/output: ramp files (lazy reading, round trip, errors) and products."""

from __future__ import annotations

import mmap
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from gpucal import FileFormatError, FitOptProduct, GpucalError, InputError, Ramp, RampFitResult, RateProduct
from gpucal.dq import dq_def_rows
from gpucal.io import atomic_write, output_prefix, strip_product_suffix
from gpucal.io.lazy import ScaledArray
from gpucal.io.write_ramp import write_ramp
from gpucal.refs import write_reference

datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")

META = {
    "INSTRUME": "NIRCAM",
    "DETECTOR": "NRCA1",
    "EXP_TYPE": "NRC_IMAGE",
    "READPATT": "BRIGHT2",
    "SUBARRAY": "SUB64P",
    "SUBSTRT1": 101,
    "SUBSTRT2": 201,
    "SUBSIZE1": 9,
    "SUBSIZE2": 8,
    "TARGNAME": "a long target name that needs more than one card to be stored in a header",
}


def sample_ramp(shape=(2, 4, 8, 9), zeroframe=True, seed=1) -> Ramp:
    rng = np.random.default_rng(seed)
    nints, _, ny, nx = shape
    data = rng.normal(1000, 100, shape).astype(np.float32)
    data[0, 0, 0, 0] = np.nan
    groupdq = rng.integers(0, 8, shape, dtype=np.uint8)
    pixeldq = rng.integers(0, 2**32, (ny, nx), dtype=np.uint32)
    zf = rng.normal(900, 10, (nints, ny, nx)).astype(np.float32) if zeroframe else None
    return Ramp(data, groupdq, pixeldq, group_time=21.474, frame_time=10.737, nframes=2,
                groupgap=0, drop_frames1=1, zeroframe=zf, meta=dict(META))


def memory_mapped(arr) -> bool:
    base = arr
    while base is not None:
        if isinstance(base, (mmap.mmap, np.memmap)):
            return True
        base = getattr(base, "base", None)
    return False


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ============================================================== ramp round trip
def test_ramp_round_trip_exact(tmp_path):
    ramp = sample_ramp()
    path = ramp.to_fits(tmp_path / "jw_test_ramp.fits")
    back = Ramp.from_fits(path)
    assert back.shape == ramp.shape
    for name in ("data", "groupdq", "pixeldq", "zeroframe"):
        np.testing.assert_array_equal(np.asarray(getattr(back, name)), getattr(ramp, name), err_msg=name)
    for name in ("group_time", "frame_time", "nframes", "groupgap", "drop_frames1"):
        assert getattr(back, name) == getattr(ramp, name), name
    for key, value in META.items():
        assert back.meta[key] == value, key
    assert back.meta["FILENAME"] == "jw_test_ramp.fits"
    assert back.meta["NGROUPS"] == 4 and back.meta["TGROUP"] == 21.474
    full = back.block(0, 8)
    np.testing.assert_array_equal(full.data, ramp.data)
    np.testing.assert_array_equal(full.zeroframe, ramp.zeroframe)


def test_ramp_file_is_a_jwst_ramp_model(tmp_path):
    ramp = sample_ramp()
    path = ramp.to_fits(tmp_path / "x_ramp.fits")
    with datamodels.open(path) as model:
        assert type(model).__name__ == "RampModel"
        np.testing.assert_array_equal(model.data, ramp.data)
        np.testing.assert_array_equal(model.groupdq, ramp.groupdq)
        np.testing.assert_array_equal(model.pixeldq, ramp.pixeldq)
        np.testing.assert_array_equal(model.zeroframe, ramp.zeroframe)
        assert model.meta.exposure.ngroups == 4 and model.meta.exposure.nframes == 2
        assert model.meta.exposure.group_time == 21.474
        assert model.meta.telescope == "JWST"
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "PIXELDQ", "GROUPDQ", "ZEROFRAME", "DQ_DEF"]
        assert hdul[0].header["DATAMODL"] == "RampModel"
        assert hdul["DQ_DEF"].data["NAME"][0] == "DO_NOT_USE"


def test_ramp_to_fits_no_overwrite(tmp_path):
    path = tmp_path / "a_ramp.fits"
    sample_ramp(seed=1).to_fits(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="a_ramp.fits"):
        sample_ramp(seed=2).to_fits(path)
    assert path.read_bytes() == before
    sample_ramp(seed=2).to_fits(path, overwrite=True)
    np.testing.assert_array_equal(np.asarray(Ramp.from_fits(path).data), sample_ramp(seed=2).data)
    assert leftovers(tmp_path) == ["a_ramp.fits"]


def test_ramp_to_fits_rewrites_its_own_source(tmp_path):
    path = sample_ramp().to_fits(tmp_path / "s_ramp.fits")
    lazy = Ramp.from_fits(path)
    lazy.to_fits(path, overwrite=True)  # reads its memory map while replacing the file
    np.testing.assert_array_equal(np.asarray(Ramp.from_fits(path).data), sample_ramp().data)


def test_ramp_to_fits_failure_leaves_nothing(tmp_path, monkeypatch):
    from gpucal.io import fits_stream

    calls = {"n": 0}
    real = fits_stream.encode

    def failing(chunk, dtype):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(chunk, dtype)

    monkeypatch.setattr(fits_stream, "encode", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        sample_ramp().to_fits(tmp_path / "f_ramp.fits")
    assert leftovers(tmp_path) == []


# ============================================================== lazy reading
def test_from_fits_is_memory_mapped(tmp_path):
    path = sample_ramp().to_fits(tmp_path / "m_ramp.fits")
    ramp = Ramp.from_fits(path)
    assert memory_mapped(ramp.data) and memory_mapped(ramp.groupdq) and memory_mapped(ramp.zeroframe)
    assert ramp.data.dtype == np.dtype(">f4")  # untouched on-disk layout
    block = ramp.block(3, 6)
    assert block.data.dtype == np.dtype("float32") and block.data.dtype.isnative
    assert block.data.flags.c_contiguous
    np.testing.assert_array_equal(block.data, sample_ramp().data[:, :, 3:6])


def _sparse_ramp_file(path: Path, shape: tuple[int, int, int, int]) -> None:
    """A valid _ramp file whose SCI and GROUPDQ are holes on disk (zeros, nothing allocated)."""
    nints, ngroups, ny, nx = shape
    primary = fits.PrimaryHDU().header
    for key, value in dict(NINTS=nints, NGROUPS=ngroups, NFRAMES=1, GROUPGAP=0,
                           TGROUP=10.737, TFRAME=10.737, INSTRUME="NIRCAM").items():
        primary[key] = value
    with open(path, "wb") as fh:
        fh.write(primary.tostring().encode())
        for name, dtype in (("SCI", np.float32), ("GROUPDQ", np.uint8)):
            header = fits.ImageHDU(data=np.zeros((1, 1, 1, 1), dtype), name=name).header
            for axis, length in enumerate(reversed(shape), start=1):
                header[f"NAXIS{axis}"] = length
            fh.write(header.tostring().encode())
            nbytes = np.dtype(dtype).itemsize * nints * ngroups * ny * nx
            fh.seek(nbytes + (-nbytes) % 2880, os.SEEK_CUR)
        fh.truncate()


def test_opening_a_large_file_reads_nothing(tmp_path):
    path = tmp_path / "big_ramp.fits"
    shape = (1, 16, 2048, 2048)  # 256 MiB of float32 data + 64 MiB of GROUPDQ
    _sparse_ramp_file(path, shape)
    assert path.stat().st_size > 320 * 2**20
    tracemalloc.start()
    try:
        ramp = Ramp.from_fits(path)
        block = ramp.block(100, 102)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ramp.shape == shape
    assert memory_mapped(ramp.data) and memory_mapped(ramp.groupdq)
    assert block.data.shape == (1, 16, 2, 2048) and not block.data.any()
    assert block.groupdq.shape == (1, 16, 2, 2048) and not block.groupdq.any()
    # the only full-size allocation allowed is the (absent, zero-filled) 2-D PIXELDQ
    allowed = 2048 * 2048 * 4 + 4 * 2**20
    assert peak < allowed, f"opening + reading 2 rows allocated {peak / 2**20:.1f} MiB"


def test_uncal_reads_lazily_as_uint16(tmp_path):
    ramp = sample_ramp(zeroframe=True)
    ramp.data[...] = np.nan_to_num(ramp.data)
    path = write_ramp(ramp, tmp_path / "u_uncal.fits", level="uncal")
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ZEROFRAME"]
        assert hdul["SCI"].data.dtype == np.uint16
        assert hdul[0].header["DATAMODL"] == "Level1bModel"
    back = Ramp.from_fits(path)
    assert isinstance(back.data, ScaledArray) and back.data.dtype == np.uint16
    expected = np.clip(np.rint(ramp.data), 0, 65535).astype(np.uint16)
    np.testing.assert_array_equal(back.data[1, 2], expected[1, 2])
    block = back.block(2, 7)
    np.testing.assert_array_equal(block.data, expected[:, :, 2:7].astype(np.float32))
    # no GROUPDQ / PIXELDQ in a level-1b file: zeros that cost nothing
    assert back.groupdq.dtype == np.uint8 and back.groupdq.strides == (0, 0, 0, 0)
    assert not block.groupdq.any() and block.groupdq.flags.writeable
    assert back.pixeldq.dtype == np.uint32 and not back.pixeldq.any()
    with datamodels.open(path) as model:
        assert type(model).__name__ == "Level1bModel"
        np.testing.assert_array_equal(model.data, expected)


def test_scaled_array_int8_and_float_scaling():
    raw = np.array([0, 1, 255], dtype=np.uint8)
    np.testing.assert_array_equal(ScaledArray(raw, 1.0, -128.0, np.dtype(np.int8))[:], [-128, -127, 127])
    raw = np.array([0, 2, -4], dtype=">i2")
    np.testing.assert_allclose(ScaledArray(raw, 0.5, 10.0, np.dtype(np.float32))[:], [10, 11, 8])
    raw32 = np.array([-(2**31), 0, 2**31 - 1], dtype=">i4")
    arr = ScaledArray(raw32, 1.0, 2.0**31, np.dtype(np.uint32))
    np.testing.assert_array_equal(np.asarray(arr), [0, 2**31, 2**32 - 1])
    assert arr.shape == (3,) and len(arr) == 3 and arr.nbytes == 12


def test_segment_file_nints_from_intstart_intend(tmp_path):
    ramp = sample_ramp(zeroframe=False)
    ramp.meta.update(INTSTART=5, INTEND=6, NINTS=10)
    path = ramp.to_fits(tmp_path / "seg_ramp.fits")
    with fits.open(path) as hdul:
        assert hdul[0].header["NINTS"] == 10
    back = Ramp.from_fits(path)
    assert back.nints == 2 and back.meta["NINTS"] == 10


# ============================================================== ramp file errors
def _ramp_hdul(**drop_or_set):
    ramp = sample_ramp(zeroframe=False)
    primary = fits.PrimaryHDU()
    for key, value in dict(NINTS=2, NGROUPS=4, NFRAMES=2, GROUPGAP=0, TGROUP=21.474, TFRAME=10.737).items():
        primary.header[key] = value
    for key, value in drop_or_set.items():
        if value is None:
            del primary.header[key]
        else:
            primary.header[key] = value
    return fits.HDUList([
        primary,
        fits.ImageHDU(ramp.data, name="SCI"),
        fits.ImageHDU(ramp.pixeldq, name="PIXELDQ"),
        fits.ImageHDU(ramp.groupdq, name="GROUPDQ"),
    ])


def test_hand_made_file_reads(tmp_path):
    path = tmp_path / "h_ramp.fits"
    _ramp_hdul().writeto(path)
    ramp = Ramp.from_fits(path)
    assert ramp.shape == (2, 4, 8, 9) and ramp.drop_frames1 == 0  # DRPFRMS1 optional
    assert ramp.pixeldq.dtype == np.uint32 and ramp.pixeldq.dtype.isnative
    np.testing.assert_array_equal(ramp.pixeldq, sample_ramp().pixeldq)


@pytest.mark.parametrize("keyword", ["NGROUPS", "NINTS", "NFRAMES", "GROUPGAP", "TGROUP", "TFRAME"])
def test_missing_keyword(tmp_path, keyword):
    path = tmp_path / "k_ramp.fits"
    _ramp_hdul(**{keyword: None}).writeto(path)
    with pytest.raises(FileFormatError, match=f"k_ramp.fits: missing required primary-header keyword {keyword}"):
        Ramp.from_fits(path)


def test_invalid_keyword_values(tmp_path):
    path = tmp_path / "v_ramp.fits"
    _ramp_hdul(TGROUP=-1.0).writeto(path)
    with pytest.raises(FileFormatError, match="v_ramp.fits.*group_time must be a finite number > 0"):
        Ramp.from_fits(path)
    _ramp_hdul(NFRAMES="two").writeto(path, overwrite=True)
    with pytest.raises(FileFormatError, match="NFRAMES='two' is not a valid int"):
        Ramp.from_fits(path)


def test_shape_disagrees_with_header(tmp_path):
    path = tmp_path / "d_ramp.fits"
    _ramp_hdul(NGROUPS=5).writeto(path)
    with pytest.raises(FileFormatError, match=r"SCI shape \(2, 4, 8, 9\) disagrees.*ngroups=5"):
        Ramp.from_fits(path)


def test_groupdq_of_wrong_type_in_file(tmp_path):
    hdul = _ramp_hdul()
    hdul["GROUPDQ"].data = hdul["GROUPDQ"].data.astype(np.int16)
    path = tmp_path / "g_ramp.fits"
    hdul.writeto(path)
    with pytest.raises(FileFormatError, match=r"g_ramp.fits: groupdq must be uint8 .*got int16"):
        Ramp.from_fits(path)


def test_rate_file_is_not_a_ramp(tmp_path):
    rate = _rate(2)
    path = rate.to_fits(tmp_path / "r_rate.fits")
    with pytest.raises(FileFormatError, match=r"r_rate.fits is not a JWST ramp \(_uncal/_ramp\) product: .*2-D"):
        Ramp.from_fits(path)


def test_reference_file_is_not_a_ramp(tmp_path):
    path = write_reference(tmp_path / "gain.fits", "GAIN", np.ones((4, 4)), instrument="NIRCAM", detector="NRCA1")
    with pytest.raises(FileFormatError, match="is not a JWST ramp.*GAIN reference file"):
        Ramp.from_fits(path)


def test_file_without_sci(tmp_path):
    path = tmp_path / "empty.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((3, 3)))]).writeto(path)
    with pytest.raises(FileFormatError, match="no SCI extension"):
        Ramp.from_fits(path)


def test_text_file_and_missing_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not FITS\n" * 200)
    with pytest.raises(FileFormatError, match="notes.txt is not a readable FITS file"):
        Ramp.from_fits(path)
    with pytest.raises(FileNotFoundError, match="nothere_uncal.fits"):
        Ramp.from_fits(tmp_path / "nothere_uncal.fits")
    with pytest.raises(FileFormatError, match="is a directory"):
        Ramp.from_fits(tmp_path)


# ============================================================== products
def _rate(ndim: int, seed: int = 0, meta=None) -> RateProduct:
    rng = np.random.default_rng(seed)
    shape = (8, 9) if ndim == 2 else (3, 8, 9)
    f = lambda: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    dq = rng.integers(0, 2**32, shape, dtype=np.uint32)
    return RateProduct(f(), f(), dq, f(), f(), meta=dict(meta or {}))


def _fitopt(nints=3, nsegs=2, ncrs=1, seed=0) -> FitOptProduct:
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    four = {name: f(nints, nsegs, 8, 9) for name in
            ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint", "weights")}
    return FitOptProduct(**four, pedestal=f(nints, 8, 9), crmag=f(nints, ncrs, 8, 9))


def test_rate_product_validation():
    good = _rate(2)
    with pytest.raises(InputError, match="data must be float32, got float64"):
        RateProduct(good.data.astype(np.float64), good.err, good.dq, good.var_poisson, good.var_rnoise)
    with pytest.raises(InputError, match=r"err must have shape \(8, 9\), got \(8, 8\)"):
        RateProduct(good.data, good.err[:, :8].copy(), good.dq, good.var_poisson, good.var_rnoise)
    with pytest.raises(InputError, match="dq must be uint32, got int32"):
        RateProduct(good.data, good.err, good.dq.astype(np.int32), good.var_poisson, good.var_rnoise)
    with pytest.raises(InputError, match="data must be 2-D or 3-D"):
        RateProduct(good.data.ravel(), good.err.ravel(), good.dq.ravel(), good.var_poisson.ravel(),
                    good.var_rnoise.ravel())
    with pytest.raises(InputError, match="var_rnoise must be a numpy array"):
        RateProduct(good.data, good.err, good.dq, good.var_poisson, good.var_rnoise.tolist())
    with pytest.raises(InputError, match="meta must be a dict"):
        RateProduct(good.data, good.err, good.dq, good.var_poisson, good.var_rnoise, meta=None)
    # big-endian float32 is still float32
    RateProduct(good.data.astype(">f4"), good.err, good.dq, good.var_poisson, good.var_rnoise)


def test_fitopt_validation():
    fo = _fitopt()
    with pytest.raises(InputError, match=r"pedestal must have shape \(3, 8, 9\)"):
        FitOptProduct(fo.slope, fo.sigslope, fo.var_poisson, fo.var_rnoise, fo.yint, fo.sigyint,
                      fo.weights, fo.pedestal[:2].copy(), fo.crmag)
    with pytest.raises(InputError, match=r"crmag must have shape \(3, ncrs, 8, 9\)"):
        FitOptProduct(fo.slope, fo.sigslope, fo.var_poisson, fo.var_rnoise, fo.yint, fo.sigyint,
                      fo.weights, fo.pedestal, fo.crmag[:, :, :7].copy())
    with pytest.raises(InputError, match=r"weights must have shape \(3, 2, 8, 9\)"):
        FitOptProduct(fo.slope, fo.sigslope, fo.var_poisson, fo.var_rnoise, fo.yint, fo.sigyint,
                      fo.weights[:, :1].copy(), fo.pedestal, fo.crmag)


def test_rate_file_opens_as_image_model(tmp_path):
    meta = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "NGROUPS": 10, "TGROUP": 10.737,
            "not a keyword": 1, "TOOLONGKEY": "x", "BADFLOAT": float("nan"), "ARRAY": [1, 2],
            "BUNIT": "junk", "NAXIS": 5, "FILENAME": "stale.fits"}
    rate = _rate(2, meta=meta)
    path = rate.to_fits(tmp_path / "jw_rate.fits")
    assert path == tmp_path / "jw_rate.fits"
    with datamodels.open(path) as model:
        assert type(model).__name__ == "ImageModel"
        for name in ("data", "err", "dq", "var_poisson", "var_rnoise"):
            np.testing.assert_array_equal(getattr(model, name), getattr(rate, name), err_msg=name)
        assert model.meta.instrument.name == "NIRCAM" and model.meta.exposure.ngroups == 10
        assert model.meta.filename == "jw_rate.fits"
        assert model.meta.bunit_data == "DN/s" and model.meta.bunit_err == "DN/s"
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE", "DQ_DEF"]
        header = hdul[0].header
        assert header["TELESCOP"] == "JWST" and header["DATAMODL"] == "ImageModel"
        assert header["FILENAME"] == "jw_rate.fits" and header["NAXIS"] == 0
        for key in ("TOOLONGKEY", "BADFLOAT", "ARRAY", "BUNIT"):
            assert key not in header
        assert hdul["VAR_POISSON"].header["BUNIT"] == "DN^2/s^2"
        assert hdul["DQ"].data.dtype == np.uint32
        table = hdul["DQ_DEF"].data
        assert table["VALUE"].dtype == np.uint32 and table["BIT"].dtype.kind == "i"
        rows = dq_def_rows()
        assert [(int(b), int(v), n, d) for b, v, n, d in table] == rows


def test_rateints_file_opens_as_cube_model(tmp_path):
    rateints = _rate(3)
    path = rateints.to_fits(tmp_path / "jw_rateints.fits")
    with datamodels.open(path) as model:
        assert type(model).__name__ == "CubeModel"
        for name in ("data", "err", "dq", "var_poisson", "var_rnoise"):
            np.testing.assert_array_equal(getattr(model, name), getattr(rateints, name), err_msg=name)
    with fits.open(path) as hdul:
        assert hdul[0].header["DATAMODL"] == "CubeModel" and "DQ_DEF" in hdul


@pytest.mark.parametrize("ncrs", [1, 0])
def test_fitopt_file_opens_as_rampfit_output_model(tmp_path, ncrs):
    fo = _fitopt(ncrs=ncrs)
    path = fo.to_fits(tmp_path / "jw_fitopt.fits")
    with datamodels.open(path) as model:
        assert type(model).__name__ == "RampFitOutputModel"
        for name in ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint",
                     "pedestal", "weights", "crmag"):
            np.testing.assert_array_equal(getattr(model, name), getattr(fo, name), err_msg=name)
    with fits.open(path) as hdul:
        assert {h.name for h in hdul} >= {"SLOPE", "SIGSLOPE", "YINT", "SIGYINT", "PEDESTAL", "WEIGHTS",
                                         "CRMAG", "VAR_POISSON", "VAR_RNOISE"}


def test_writing_does_not_touch_the_arrays(tmp_path):
    rate = _rate(2)
    before = rate.data.copy()
    rate.data.flags.writeable = False  # a read-only array must be writable too
    rate.to_fits(tmp_path / "ro_rate.fits")
    assert rate.data.dtype.isnative
    np.testing.assert_array_equal(rate.data, before)


def test_result_writes_all_products(tmp_path):
    result = RampFitResult(_rate(2), _rate(3), _fitopt(), backend="cpu", elapsed_s=1.5,
                           meta={"INSTRUME": "NIRCAM", "S_RAMP": "COMPLETE"})
    paths = result.to_fits(tmp_path / "out" / "jw001_nrca1_uncal.fits")
    assert paths == [tmp_path / "out" / f"jw001_nrca1_{s}.fits" for s in ("rate", "rateints", "fitopt")]
    with datamodels.open(paths[0]) as model:
        np.testing.assert_array_equal(model.data, result.rate.data)
        assert model.meta.instrument.name == "NIRCAM"
    with datamodels.open(paths[1]) as model:
        np.testing.assert_array_equal(model.data, result.rateints.data)
    with datamodels.open(paths[2]) as model:
        np.testing.assert_array_equal(model.slope, result.fitopt.slope)
    with fits.open(paths[1]) as hdul:
        assert hdul[0].header["S_RAMP"] == "COMPLETE"
        assert hdul[0].header["FILENAME"] == "jw001_nrca1_rateints.fits"


def test_result_without_rateints_and_fitopt(tmp_path):
    paths = RampFitResult(_rate(2), None).to_fits(str(tmp_path / "p"))
    assert paths == [tmp_path / "p_rate.fits"]
    assert leftovers(tmp_path) == ["p_rate.fits"]


def test_result_with_nothing_to_fit(tmp_path):
    result = RampFitResult(None, None)
    with pytest.raises(GpucalError, match="no products to write.*rate is None"):
        result.to_fits(tmp_path / "n")
    assert leftovers(tmp_path) == []


def test_result_validation():
    with pytest.raises(InputError, match="rate must be 2-D"):
        RampFitResult(_rate(3), None)
    with pytest.raises(InputError, match="rateints must be a RateProduct"):
        RampFitResult(_rate(2), np.zeros(3))
    rateints = _rate(3)
    rateints_small = RateProduct(*(a[:, :4] .copy() for a in (rateints.data, rateints.err, rateints.dq,
                                                               rateints.var_poisson, rateints.var_rnoise)))
    with pytest.raises(InputError, match="does not match rate shape"):
        RampFitResult(_rate(2), rateints_small)


def test_invalid_product_writes_nothing(tmp_path):
    rate = _rate(2)
    rate.err = rate.err[:4]  # broken after construction
    with pytest.raises(InputError, match="err must have shape"):
        rate.to_fits(tmp_path / "bad_rate.fits")
    result = RampFitResult(_rate(2), _rate(3))
    result.rateints.dq = result.rateints.dq.astype(np.int64)
    with pytest.raises(InputError, match="dq must be uint32"):
        result.to_fits(tmp_path / "bad")
    fo = _fitopt()
    fo.pedestal = fo.pedestal.astype(np.float64)
    with pytest.raises(InputError, match="pedestal must be float32"):
        fo.to_fits(tmp_path / "bad_fitopt.fits")
    assert leftovers(tmp_path) == []  # not even the valid rate of the result


def test_failed_product_write_leaves_no_file(tmp_path, monkeypatch):
    def half_then_fail(self, fileobj, *args, **kwargs):
        fileobj.write(b"SIMPLE  =                    T" + b" " * 2000)
        raise OSError("no space left on device")

    target = tmp_path / "x_rate.fits"
    monkeypatch.setattr(fits.HDUList, "writeto", half_then_fail)
    with pytest.raises(OSError, match="no space left"):
        _rate(2).to_fits(target)
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    _rate(2, seed=1).to_fits(target)
    before = target.read_bytes()
    monkeypatch.setattr(fits.HDUList, "writeto", half_then_fail)
    with pytest.raises(OSError):
        _rate(2, seed=2).to_fits(target)  # overwrite fails: the old file survives intact
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == ["x_rate.fits"]


def test_rate_no_overwrite(tmp_path):
    target = _rate(2).to_fits(tmp_path / "o_rate.fits")
    with pytest.raises(FileExistsError):
        _rate(2).to_fits(target, overwrite=False)


# ============================================================== helpers
def test_atomic_write_permissions_and_cleanup(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    with atomic_write(tmp_path / "sub" / "f.bin") as fh:
        fh.write(b"abc")
        assert leftovers(tmp_path / "sub") != []  # only the temporary file so far
        assert not (tmp_path / "sub" / "f.bin").exists()
    assert (tmp_path / "sub" / "f.bin").read_bytes() == b"abc"
    assert (tmp_path / "sub" / "f.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(KeyError):
        with atomic_write(tmp_path / "sub" / "f.bin") as fh:
            fh.write(b"partial")
            raise KeyError("boom")
    assert (tmp_path / "sub" / "f.bin").read_bytes() == b"abc"
    assert leftovers(tmp_path / "sub") == ["f.bin"]


@pytest.mark.parametrize(
    "name,expected",
    [
        ("jw001_nrca1_uncal.fits", "jw001_nrca1"),
        ("jw001_nrca1_ramp.fits", "jw001_nrca1"),
        ("jw001_nrca1_rate.fits", "jw001_nrca1"),
        ("jw001_nrca1.fits", "jw001_nrca1"),
        ("jw001_nrca1_uncal.FITS", "jw001_nrca1"),
        ("jw001_nrca1", "jw001_nrca1"),
        ("_ramp.fits", "_ramp"),
    ],
)
def test_strip_product_suffix(name, expected):
    assert strip_product_suffix(name) == expected


def test_output_prefix():
    assert output_prefix("/data/in/jw001_nrca1_uncal.fits", "out") == Path("out/jw001_nrca1")
    assert output_prefix(Path("jw_ramp.fits"), Path("/tmp/o")) == Path("/tmp/o/jw")


def test_io_exports_functions():
    import sys

    import gpucal.io as gio

    Ramp.from_fits  # noqa: B018  (the submodules are imported by now)
    assert gio.read_ramp is sys.modules["gpucal.io.read_ramp"].read_ramp
    assert gio.write_ramp is sys.modules["gpucal.io.write_ramp"].write_ramp
    assert gio.write_rate is sys.modules["gpucal.io.write_products"].write_rate


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_from_fits_releases_the_file_with_the_ramp(tmp_path):
    import gc

    path = str(sample_ramp().to_fits(tmp_path / "fd_ramp.fits").resolve())

    def open_fds() -> int:
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == path for fd in os.listdir("/proc/self/fd"))

    ramp = Ramp.from_fits(path)
    assert open_fds() <= 1  # at most the memory map's own descriptor, no open file object
    np.testing.assert_array_equal(ramp.block(0, 8).data, sample_ramp().data)
    del ramp
    gc.collect()
    assert open_fds() == 0
