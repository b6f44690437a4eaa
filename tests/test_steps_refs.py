"""Calibration reference readers/writers: round trip, subarray cut-outs, bad input, synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
from steps_cases import raw_exposure

from gpucal import Ramp, steps
from gpucal.errors import FileFormatError, InputError
from gpucal.refs import (
    builtin_calib_refs,
    make_calib_refs,
    read_dark,
    read_linearity,
    read_mask,
    read_reference,
    read_saturation,
    read_superbias,
    write_calib_refs,
    write_reference,
)

READERS = {"mask": read_mask, "saturation": read_saturation, "superbias": read_superbias,
           "linearity": read_linearity, "dark": read_dark}


@pytest.fixture(scope="module")
def full_frame(tmp_path_factory):
    refs = make_calib_refs(64, 80, seed=5, dark_frames=8, special_fraction=0.01)
    files = write_calib_refs(refs, tmp_path_factory.mktemp("refs"), "t", instrument="NIRCAM", detector="NRCA1")
    return refs, files


def test_round_trip(full_frame):
    refs, files = full_frame
    for key, path in files.items():
        got = READERS[key](path)
        assert got.reftype == refs[key].reftype
        np.testing.assert_array_equal(got.dq, refs[key].dq)
        if refs[key].data is not None:
            np.testing.assert_array_equal(got.data, refs[key].data)
            assert got.data.dtype == np.float32 and got.dq.dtype == np.uint32
    assert read_mask(files["mask"]).dq_def  # DQ_DEF table written and read back
    assert read_dark(files["dark"]).header["NFRAMES"] == 1


def _sub_ramp(x0, y0, ny, nx):
    r = raw_exposure(1, 3, ny, nx, zeroframe=False)
    meta = dict(r.meta, SUBSTRT1=x0, SUBSTRT2=y0, SUBSIZE1=nx, SUBSIZE2=ny)
    return Ramp(r.data, r.groupdq, r.pixeldq, group_time=r.group_time, frame_time=r.frame_time,
                nframes=r.nframes, meta=meta)


def test_subarray_cut(full_frame):
    refs, files = full_frame
    ramp = _sub_ramp(11, 21, 16, 24)
    win = (slice(20, 36), slice(10, 34))
    np.testing.assert_array_equal(read_mask(files["mask"], ramp).dq, refs["mask"].dq[win])
    np.testing.assert_array_equal(read_saturation(files["saturation"], ramp).data, refs["saturation"].data[win])
    np.testing.assert_array_equal(read_superbias(files["superbias"], ramp).dq, refs["superbias"].dq[win])
    lin = read_linearity(files["linearity"], ramp)
    np.testing.assert_array_equal(lin.data, refs["linearity"].data[(slice(None),) + win])
    with pytest.raises(InputError, match="not cut to subarrays"):
        read_dark(files["dark"], ramp)
    with pytest.raises(InputError, match="not inside"):
        read_mask(files["mask"], _sub_ramp(70, 1, 16, 24))


def test_bad_inputs(full_frame, tmp_path):
    _, files = full_frame
    with pytest.raises(FileFormatError, match="REFTYPE 'MASK', expected 'SATURATION'"):
        read_saturation(files["mask"])
    with pytest.raises(FileNotFoundError):
        read_mask(tmp_path / "nope.fits")
    gain = write_reference(tmp_path / "g.fits", "SATURATION", np.ones((4, 4)), instrument="NIRCAM",
                           detector="NRCA1")
    assert read_reference(gain, "SATURATION").shape == (4, 4)
    with pytest.raises(FileFormatError, match="no DQ extension"):
        read_mask(write_reference(tmp_path / "m.fits", "MASK", np.ones((4, 4)), instrument="NIRCAM",
                                  detector="NRCA1"))
    with pytest.raises(FileFormatError, match="no COEFFS"):
        read_linearity(write_reference(tmp_path / "l.fits", "LINEARITY", np.ones((4, 4)), instrument="NIRCAM",
                                       detector="NRCA1"))
    with pytest.raises(InputError, match="does not match the exposure"):
        read_saturation(files["saturation"], raw_exposure(1, 3, 70, 12, zeroframe=False))  # ref too small
    ramp = raw_exposure(1, 3, 10, 12, zeroframe=False)
    wrong = make_calib_refs(10, 13)
    with pytest.raises(InputError, match="SATURATION reference data has shape"):
        steps.saturation(ramp, wrong["saturation"], backend="cpu")
    with pytest.raises(InputError, match="expected a MASK reference"):
        steps.dq_init(ramp, wrong["saturation"], backend="cpu")
    with pytest.raises(InputError, match="n_pix_grow_sat"):
        steps.saturation(ramp, make_calib_refs(10, 12)["saturation"], n_pix_grow_sat=-1, backend="cpu")


def test_all_nan_reference_is_an_error(tmp_path):
    from gpucal.refs import write_calib_reference

    path = write_calib_reference(tmp_path / "s.fits", "SATURATION", data=np.full((4, 4), np.nan),
                                 dq=np.zeros((4, 4)), instrument="NIRCAM", detector="NRCA1")
    with pytest.raises(InputError, match="no finite value"):
        read_saturation(path)


def test_builtin_set_is_cached_and_deterministic(tmp_path):
    first = builtin_calib_refs(tmp_path)
    stamp = {k: p.stat().st_mtime_ns for k, p in first.items()}
    again = builtin_calib_refs(tmp_path)
    assert {k: p.stat().st_mtime_ns for k, p in again.items()} == stamp
    a, b = make_calib_refs(8, 8, seed=3), make_calib_refs(8, 8, seed=3)
    for key in a:
        np.testing.assert_array_equal(a[key].dq, b[key].dq)


def test_subarray_reference_through_saturation_matches_stcal(full_frame):
    from stcal.saturation.saturation import flag_saturated_pixels
    from steps_cases import DQFLAGS

    refs, files = full_frame
    ramp = _sub_ramp(11, 21, 16, 24)
    sat = read_saturation(files["saturation"], ramp)
    out = steps.saturation(ramp, sat, use_readpatt=False, backend="cpu")
    win = (slice(20, 36), slice(10, 34))
    b = ramp.block(0, ramp.ny)
    gdq, pdq, _ = flag_saturated_pixels(b.data.copy(), b.groupdq.copy(), b.pixeldq.copy(),
                                        refs["saturation"].data[win].copy(), refs["saturation"].dq[win].copy(),
                                        65535.0, DQFLAGS, n_pix_grow_sat=1)
    np.testing.assert_array_equal(out.groupdq, gdq)
    np.testing.assert_array_equal(out.pixeldq, pdq)


def test_linearity_inverse_coefficients_round_trip(tmp_path):
    from astropy.io import fits

    refs = make_calib_refs(10, 12, seed=2)
    files = write_calib_refs({"linearity": refs["linearity"]}, tmp_path, "x", instrument="NIRCAM", detector="NRCA1")
    with fits.open(files["linearity"], mode="update") as hdul:
        hdul.append(fits.ImageHDU(refs["linearity"].data, name="INV_COEFFS"))
    lin = read_linearity(files["linearity"])
    np.testing.assert_array_equal(lin.inv_coeffs, refs["linearity"].data)
    with fits.open(files["linearity"], mode="update") as hdul:
        hdul["INV_COEFFS"].data = refs["linearity"].data[:, :5]
    with pytest.raises(FileFormatError, match="INV_COEFFS shape"):
        read_linearity(files["linearity"])


def test_builtin_set_fits_the_builtin_exposure(tmp_path):
    from gpucal.synthetic import builtin_exposure

    ramp = Ramp.from_fits(builtin_exposure(tmp_path)["ramp"])
    files = builtin_calib_refs(tmp_path)
    refs = {key: READERS[key](path, ramp) for key, path in files.items()}
    out = steps.dq_init(ramp, refs["mask"], backend="cpu")
    out = steps.saturation(out, refs["saturation"], superbias_ref=refs["superbias"], backend="cpu")
    out = steps.superbias(out, refs["superbias"], backend="cpu")
    out = steps.linearity(out, refs["linearity"], backend="cpu")
    res = steps.dark_current(out, refs["dark"], backend="cpu")
    assert not res.skipped and res.ramp.shape == ramp.shape
    assert np.isfinite(res.ramp.block(0, 8).data).mean() > 0.99
