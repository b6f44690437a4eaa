"""Unusable gain / read noise and all-NaN ramps: flagged in DQ, counted in a warning, refused
when nothing is usable -- through ramp_fit, detect_jumps, detector1 and the CLI, on both backends."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

import gpucal
from gpucal import cli, dq
from gpucal.errors import InputError
from gpucal.pipeline import detector1_result
from gpucal.refs.write import write_reference
from ramp_cases import random_case
from stcal_reference import stcal_ramp_fit
from test_ramp_fit_parity import assert_matches_stcal

OTHER_BAD = dq.PIXEL["OTHER_BAD_PIXEL"]
GAIN_FLAGS = dq.DO_NOT_USE | dq.NO_GAIN_VALUE
RN_FLAGS = dq.DO_NOT_USE | OTHER_BAD


def bad_case():
    """A 2-integration 8x9 exposure with every kind of unusable calibration, and one all-NaN ramp."""
    case = random_case("bad-cal", 2, 6, 8, 9, seed=21, flag_rate=0.0, bad_refs=False)
    case.groupdq[...] = 0  # no saturation, no dead pixels: only the calibration makes a pixel unusable
    case.pixeldq[...] = 0
    case.gain[0, :5] = [np.nan, np.nan, 0.0, -1.5, np.inf]
    case.readnoise[1, :4] = [0.0, 0.0, np.nan, -3.0]
    case.data[1, :, 2, 2] = np.nan  # one ramp NaN in every group
    return case


def fit(case, backend="cpu", **kw):
    return gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend=backend, **kw)


def test_flags_warns_and_matches_stcal_on_the_flagged_inputs(caplog):
    case = bad_case()
    with caplog.at_level(logging.WARNING, logger="gpucal"):
        result = fit(case)
    text = caplog.text
    assert "ramp_fit: 5 of 72 pixels have an unusable gain (2 NaN, 1 infinite, 2 zero or negative)" in text
    assert "ramp_fit: 4 of 72 pixels have an unusable read noise (1 NaN, 3 zero or negative)" in text
    assert "ramp_fit: 1 of 144 ramps (integration x pixel) have NaN data in every fitted group" in text
    rate, ints = result.rate, result.rateints
    assert np.all(rate.dq[0, :5] & GAIN_FLAGS == GAIN_FLAGS)
    assert np.all(rate.dq[1, :4] & RN_FLAGS == RN_FLAGS)
    bad = np.zeros((8, 9), bool)
    bad[0, :5] = bad[1, :4] = True
    assert np.isnan(rate.data[bad]).all() and np.all(rate.err[bad] == 0) and np.all(rate.var_poisson[bad] == 0)
    assert np.isfinite(rate.data[~bad]).all() and np.all(rate.dq[~bad] & dq.DO_NOT_USE == 0)
    # the all-NaN ramp: its integration is DO_NOT_USE, the pixel's rate comes from the other one
    assert np.isnan(ints.data[1, 2, 2]) and ints.dq[1, 2, 2] & dq.DO_NOT_USE
    assert np.isfinite(rate.data[2, 2]) and rate.data[2, 2] == ints.data[0, 2, 2]
    # bit for bit stcal, given the same flags (stcal_reference applies them)
    reference = stcal_ramp_fit(case.data, case.groupdq, case.pixeldq, case.gain, case.readnoise,
                               group_time=case.group_time, frame_time=case.frame_time, nframes=case.nframes)
    assert_matches_stcal(result, reference)
    # stcal alone: the same NaN gain / non-positive gain pixels (its own NO_GAIN_VALUE rule) ...
    plain, plain_ints, _ = stcal_ramp_fit(case.data, case.groupdq, case.pixeldq, case.gain, case.readnoise,
                                          group_time=case.group_time, frame_time=case.frame_time,
                                          nframes=case.nframes, gpucal_flags=False)
    np.testing.assert_array_equal(plain["dq"][0, :4], rate.dq[0, :4])
    # ... but a NaN rate with DQ 0 for an infinite gain and a zero or NaN read noise, 0 for the NaN ramp
    assert np.isnan(plain["slope"][0, 4]) and plain["dq"][0, 4] == 0
    assert np.isnan(plain["slope"][1, :3]).all() and np.all(plain["dq"][1, :3] == 0)
    assert plain_ints["slope"][1, 2, 2] == 0 and plain_ints["dq"][1, 2, 2] == 0


@pytest.mark.parametrize("which, values, match", [
    ("gain", 0.0, r"all 72 pixels are unusable \(72 zero or negative\)"),
    ("gain", -2.0, "zero or negative"),
    ("gain", np.nan, "72 NaN"),
    ("readnoise", 0.0, "read noise has no usable value"),
    ("readnoise", "mixed", r"\(36 NaN, 36 infinite\)"),
])
def test_reference_without_a_usable_value_is_refused(which, values, match):
    case = bad_case()
    arr = getattr(case, which)
    if values == "mixed":
        arr[:4], arr[4:] = np.nan, np.inf
    else:
        arr[...] = values
    with pytest.raises(InputError, match=match):
        fit(case)
    with pytest.raises(InputError, match=match):
        gpucal.detect_jumps(case.ramp(), case.gain, case.readnoise, backend="cpu")


def test_all_nan_data_are_refused():
    case = bad_case()
    case.data[...] = np.nan
    with pytest.raises(InputError, match="NaN in every group of every ramp"):
        fit(case)


def test_jump_flags_the_pixel_dq(caplog):
    case = bad_case()
    with caplog.at_level(logging.WARNING, logger="gpucal"):
        out = gpucal.detect_jumps(case.ramp(), case.gain, case.readnoise, backend="cpu")
    assert "jump: 5 of 72 pixels have an unusable gain" in caplog.text
    assert np.all(out.pixeldq[0, :5] & GAIN_FLAGS == GAIN_FLAGS)
    assert np.all(out.pixeldq[1, :4] & RN_FLAGS == RN_FLAGS)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gpucal"):  # already flagged: ramp_fit does not repeat it
        gpucal.ramp_fit(out, case.gain, case.readnoise, backend="cpu")
    assert "unusable" not in caplog.text


def _write(tmp_path, case, gain=None, readnoise=None):
    ramp = case.ramp()
    ramp.meta.update(INSTRUME="NIRCAM", DETECTOR="NRCA1")
    path = ramp.to_fits(tmp_path / "x_ramp.fits")
    g = write_reference(tmp_path / "g.fits", "GAIN", case.gain if gain is None else gain, instrument="NIRCAM",
                        detector="NRCA1")
    r = write_reference(tmp_path / "r.fits", "READNOISE", case.readnoise if readnoise is None else readnoise,
                        instrument="NIRCAM", detector="NRCA1")
    return path, g, r


def test_cli_ramp_fit_refuses_an_all_zero_gain_file(tmp_path, capsys):
    case = bad_case()
    path, g, r = _write(tmp_path, case, gain=np.zeros_like(case.gain))
    out = tmp_path / "out"
    assert cli.main(["ramp-fit", str(path), "--gain", str(g), "--readnoise", str(r), "-o", str(out), "-q",
                     "--backend", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "GAIN reference has no usable value" in err and "Traceback" not in err
    assert not out.exists()


def test_cli_ramp_fit_warns_and_flags(tmp_path, caplog):
    from astropy.io import fits

    case = bad_case()
    path, g, r = _write(tmp_path, case)
    with caplog.at_level(logging.WARNING, logger="gpucal"):
        assert cli.main(["ramp-fit", str(path), "--gain", str(g), "--readnoise", str(r), "-o", str(tmp_path / "o"),
                         "-q", "--backend", "cpu"]) == 0
    err = caplog.text
    assert "5 of 72 pixels have an unusable gain" in err and "4 of 72 pixels have an unusable read noise" in err
    with fits.open(tmp_path / "o" / "x_rate.fits") as hdul:
        assert np.all(hdul["DQ"].data[1, :4] & RN_FLAGS == RN_FLAGS)


def test_detector1_flags_warns_once_and_refuses_before_any_step(tmp_path, caplog):
    from test_detector1 import _write_inputs, nir_case

    ramp, refs = nir_case(nints=1, ngroups=5)
    refs["gain"][3, 4] = 0.0
    refs["readnoise"][5, 6] = 0.0
    uncal, paths = _write_inputs(tmp_path, ramp, refs)
    with caplog.at_level(logging.WARNING, logger="gpucal"):
        result = detector1_result(uncal, refs=paths, backend="cpu")
    assert caplog.text.count("pixels have an unusable gain") == 1
    assert caplog.text.count("pixels have an unusable read noise") == 1
    assert result.rate.dq[3, 4] & GAIN_FLAGS == GAIN_FLAGS and np.isnan(result.rate.data[3, 4])
    assert result.rate.dq[5, 6] & RN_FLAGS == RN_FLAGS and np.isnan(result.rate.data[5, 6])

    paths["readnoise"] = write_reference(tmp_path / "rn0.fits", "READNOISE", np.zeros_like(refs["readnoise"]),
                                         instrument="NIRCAM", detector="NRCA1")
    ran = []
    module = sys.modules["gpucal.pipeline.detector1"]
    real = module.step_function
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "step_function", lambda name: ran.append(name) or real(name))
        with pytest.raises(InputError, match="READNOISE reference has no usable value"):
            detector1_result(uncal, refs=paths, backend="cpu", output_dir=tmp_path / "out")
    assert ran == [] and not (tmp_path / "out").exists()


@pytest.fixture
def fake_gpu(cupy_stand_in):
    """The strict CuPy stand-in (tests/conftest.py), kernels on the host build."""
    return cupy_stand_in


def test_gpu_path_flags_the_same_pixels(fake_gpu):
    case = bad_case()
    gpu, cpu = fit(case, "gpu", max_memory="20KB", save_opt=True), fit(case, "cpu", save_opt=True)
    assert gpu.backend == "gpu"
    for a, b in ((gpu.rate, cpu.rate), (gpu.rateints, cpu.rateints)):
        for attr in ("data", "err", "dq", "var_poisson", "var_rnoise"):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    with pytest.raises(InputError, match="gain has no usable value"):
        gpucal.ramp_fit(case.ramp(), np.zeros_like(case.gain), case.readnoise, backend="gpu")
