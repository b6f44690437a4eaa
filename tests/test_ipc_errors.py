"""IPC reference files (write/read round trip) and bad input: clear errors, input untouched."""

import numpy as np
import pytest
from astropy.io import fits

from gpucal.errors import FileFormatError, InputError
from gpucal.refs.ipc import IpcReference, read_ipc, synthetic_ipc_kernel, write_ipc
from gpucal.steps import ipc
from gpucal.synthetic import make_exposure


@pytest.fixture
def ramp():
    r = make_exposure(1, 2, 16, 20, seed=1, flag_jumps=False).ramp
    r.meta.update(SUBSTRT1=5, SUBSTRT2=9)
    return r


@pytest.mark.parametrize("per_pixel", [None, (30, 40)])
def test_write_read_round_trip_and_jwst_opens_it(tmp_path, per_pixel, ramp):
    k = synthetic_ipc_kernel(per_pixel)
    path = write_ipc(tmp_path / "ipc.fits", k, instrument="NIRCAM", detector="NRCA1")
    ref = read_ipc(path)
    np.testing.assert_array_equal(ref.data, k)
    assert ref.meta["DETECTOR"] == "NRCA1" and ref.per_pixel == (per_pixel is not None)
    np.testing.assert_allclose(k.sum(axis=(0, 1)), 1.0, rtol=1e-6)
    stdm = pytest.importorskip("stdatamodels.jwst.datamodels")
    with stdm.open(path) as model:
        assert type(model).__name__ == "IPCModel"
        np.testing.assert_array_equal(model.data, k)
    np.testing.assert_array_equal(ipc(ramp, path, backend="cpu").data, ipc(ramp, ref, backend="cpu").data)


def test_wrong_reftype_and_missing_sci(tmp_path):
    p = tmp_path / "gain.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header({"REFTYPE": "GAIN"})),
                  fits.ImageHDU(np.ones((3, 3), np.float32), name="SCI")]).writeto(p)
    with pytest.raises(FileFormatError, match="REFTYPE 'GAIN', expected 'IPC'"):
        read_ipc(p)
    q = tmp_path / "nosci.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header({"REFTYPE": "IPC"}))]).writeto(q)
    with pytest.raises(FileFormatError, match="no SCI"):
        read_ipc(q)
    with pytest.raises(FileNotFoundError):
        read_ipc(tmp_path / "absent.fits")


@pytest.mark.parametrize("bad, match", [
    (np.ones(3, np.float32), "2-D .* or 4-D"),
    (np.ones((3, 3, 3), np.float32), "2-D .* or 4-D"),
    (np.full((3, 3), np.nan, np.float32), "NaN or infinite"),
    (np.ones((3, 3), complex), "must be real"),
])
def test_bad_kernels(bad, match, ramp):
    with pytest.raises(InputError, match=match):
        IpcReference.from_array(bad)
    before = ramp.data.copy()
    with pytest.raises(InputError, match=match):
        ipc(ramp, bad, backend="cpu")
    np.testing.assert_array_equal(ramp.data, before)


def test_per_pixel_kernel_must_cover_the_subarray(ramp):
    with pytest.raises(InputError, match="does not cover the subarray"):
        ipc(ramp, synthetic_ipc_kernel((20, 20)), backend="cpu")


def test_exposure_keywords(ramp):
    ramp.meta["SUBSIZE1"] = 21
    with pytest.raises(InputError, match="disagree"):
        ipc(ramp, synthetic_ipc_kernel(), backend="cpu")
    for key in ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2"):
        ramp.meta.pop(key)
    with pytest.raises(InputError, match="no valid SUBSTRT1/2"):
        ipc(ramp, synthetic_ipc_kernel(), backend="cpu")
    with pytest.raises(InputError, match="ipc_ref must be"):
        ipc(ramp, [[1.0]], backend="cpu")
