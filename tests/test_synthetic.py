"""Synthetic exposures: determinism, physics, flags, files and the built-in cache."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from gpucal import InputError, Ramp, dq, synthetic
from gpucal.refs import read_gain, read_readnoise
from gpucal.synthetic import (
    builtin_exposure,
    group_read_times,
    make_exposure,
    write_exposure,
)


@pytest.fixture(scope="module")
def exposure():
    return make_exposure(nints=2, ngroups=10, ny=128, nx=160, seed=7, zeroframe=True)


def ols_slopes(data: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Unweighted least-squares slope of every pixel of one integration (G, ny, nx)."""
    t = times - times.mean()
    return np.tensordot(t, data.astype(np.float64), axes=(0, 0)) / np.sum(t * t)


def clean_pixels(exp) -> np.ndarray:
    ramp = exp.ramp
    return (ramp.pixeldq == 0) & ~(ramp.groupdq != 0).any(axis=(0, 1)) & ~exp.cr_mask.any(axis=(0, 1))


def test_same_seed_same_bytes_other_seed_differs():
    a = make_exposure(2, 6, 40, 50, seed=11, zeroframe=True)
    b = make_exposure(2, 6, 40, 50, seed=11, zeroframe=True)
    c = make_exposure(2, 6, 40, 50, seed=12, zeroframe=True)
    for name in ("data", "groupdq", "pixeldq", "zeroframe"):
        assert getattr(a.ramp, name).tobytes() == getattr(b.ramp, name).tobytes(), name
    for name in ("gain", "readnoise", "true_rate", "cr_mask"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.ramp.data.tobytes() != c.ramp.data.tobytes()
    # the zero frame option does not change the other arrays
    d = make_exposure(2, 6, 40, 50, seed=11, zeroframe=False)
    assert d.ramp.zeroframe is None and d.ramp.data.tobytes() == a.ramp.data.tobytes()


def test_shapes_and_types(exposure):
    ramp = exposure.ramp
    assert isinstance(ramp, Ramp) and ramp.shape == (2, 10, 128, 160)
    assert ramp.data.dtype == np.float32 and ramp.groupdq.dtype == np.uint8 and ramp.pixeldq.dtype == np.uint32
    assert ramp.zeroframe.shape == (2, 128, 160) and ramp.zeroframe.dtype == np.float32
    for name in ("gain", "readnoise", "true_rate"):
        assert getattr(exposure, name).shape == (128, 160) and getattr(exposure, name).dtype == np.float32
    assert exposure.cr_mask.shape == ramp.shape and exposure.cr_mask.dtype == bool
    assert ramp.group_time == pytest.approx(10.737) and ramp.nframes == 1
    meta = ramp.meta
    assert meta["INSTRUME"] == "NIRCAM" and meta["DETECTOR"] == "NRCA1" and meta["READPATT"] == "RAPID"
    assert (meta["SUBSIZE1"], meta["SUBSIZE2"], meta["NGROUPS"], meta["NINTS"]) == (160, 128, 10, 2)


def test_reference_maps(exposure):
    gain, rn = exposure.gain, exposure.readnoise
    bad = np.isnan(gain) | (gain == 0)
    assert np.isnan(gain).sum() >= 1 and (gain == 0).sum() >= 1
    assert 1.8 <= gain[~bad].min() and gain[~bad].max() <= 2.2
    assert 8 <= rn.min() and rn.max() <= 16 and 11 < rn.mean() < 13


def test_rate_distribution(exposure):
    rate = exposure.true_rate
    sky = (rate >= 0.1) & (rate <= 5.0)
    assert sky.mean() > 0.8  # mostly faint sky
    assert (rate < 0).sum() > 10  # some negative-rate pixels
    assert rate.max() > 100  # stars


def test_saturation_is_flagged_and_sticky(exposure):
    ramp = exposure.ramp
    sat = (ramp.groupdq & dq.SATURATED) != 0
    assert sat.any()
    # once saturated, every later group stays saturated
    assert not (sat[:, :-1] & ~sat[:, 1:]).any()
    # some pixel saturates in the middle of the ramp (not in group 0, but before the end)
    first = np.where(sat.any(axis=1), sat.argmax(axis=1), -1)
    assert ((first > 0) & (first < ramp.ngroups - 1)).any()
    # saturated values sit at the saturation level (plus read noise)
    assert np.all(np.abs(ramp.data[sat] - 60000.0) < 100)
    assert ramp.data[~sat].max() < 60000.0 + 100


def test_cosmic_rays_and_jump_flags(exposure):
    ramp = exposure.ramp
    hit_pixels = exposure.cr_mask.any(axis=1)
    assert 0.005 < hit_pixels.mean() < 0.05  # ~1-3 % of pixels per integration
    assert not exposure.cr_mask[:, 0].any()  # a jump is never in group 0
    jump = (ramp.groupdq & dq.JUMP_DET) != 0
    sat = (ramp.groupdq & dq.SATURATED) != 0
    np.testing.assert_array_equal(jump, exposure.cr_mask & ~sat)
    # the data really step up at the CR group
    n, g, y, x = np.nonzero(exposure.cr_mask & ~sat)
    step = ramp.data[n, g, y, x] - ramp.data[n, g - 1, y, x]
    assert np.median(step) > 100


def test_flag_jumps_false():
    a = make_exposure(1, 8, 64, 64, seed=5)
    b = make_exposure(1, 8, 64, 64, seed=5, flag_jumps=False)
    assert b.cr_mask.any() and not (b.ramp.groupdq & dq.JUMP_DET).any()
    np.testing.assert_array_equal(a.ramp.data, b.ramp.data)
    np.testing.assert_array_equal(a.ramp.groupdq & ~np.uint8(dq.JUMP_DET), b.ramp.groupdq)


def test_bad_pixels_and_do_not_use_groups(exposure):
    ramp = exposure.ramp
    npix = ramp.ny * ramp.nx
    dnu = (ramp.pixeldq & dq.DO_NOT_USE) != 0
    assert dnu.sum() == round(0.002 * npix)
    dead = (ramp.pixeldq & dq.PIXEL["DEAD"]) != 0
    hot = (ramp.pixeldq & dq.PIXEL["HOT"]) != 0
    assert dead.any() and hot.any() and np.array_equal(dead | hot, dnu)
    assert np.all(exposure.true_rate[dead] == 0) and np.all(exposure.true_rate[hot] >= 50)
    group_dnu = (ramp.groupdq & dq.DO_NOT_USE) != 0
    n, g, _, _ = np.nonzero(group_dnu)
    assert g.size >= 3 and g.min() >= 1 and g.max() <= ramp.ngroups - 2


def test_least_squares_slopes_recover_true_rate(exposure):
    ramp = exposure.ramp
    times = group_read_times(ramp.ngroups, ramp.frame_time, ramp.nframes, ramp.groupgap)
    clean = clean_pixels(exposure)
    true = exposure.true_rate[clean]
    for n in range(ramp.nints):
        resid = ols_slopes(ramp.data[n], times)[clean] - true
        faint = true < 5
        assert abs(np.median(resid[faint])) < 0.03
        # read noise ~8.5 DN per group and shot noise give ~0.1-0.2 DN/s here
        assert 0.05 < np.std(resid[faint]) < 0.3
        bright = true > 100
        assert bright.sum() > 5
        assert np.max(np.abs(resid[bright] / true[bright])) < 0.05


def test_multi_frame_groups_and_gaps():
    exp = make_exposure(1, 6, 48, 48, seed=2, nframes=4, groupgap=1, frame_time=2.0, cr_rate=0.0)
    ramp = exp.ramp
    assert ramp.group_time == 10.0 and ramp.meta["READPATT"] == "SHALLOW4"
    times = group_read_times(6, 2.0, 4, 1)
    np.testing.assert_allclose(times, [5.0, 15.0, 25.0, 35.0, 45.0, 55.0])
    clean = clean_pixels(exp)
    resid = ols_slopes(ramp.data[0], times)[clean] - exp.true_rate[clean]
    assert abs(np.median(resid)) < 0.05
    with pytest.raises(InputError, match="group_time=10.737 is inconsistent"):
        make_exposure(1, 6, 8, 8, nframes=4, groupgap=1, frame_time=2.0, group_time=10.737)


def test_zeroframe_matches_first_group(exposure):
    ramp = exposure.ramp
    ok = ramp.zeroframe != 0
    diff = (ramp.zeroframe - ramp.data[:, 0])[ok & (ramp.groupdq[:, 0] == 0)]
    # nframes=1: same charge, two independent reads of noise readnoise/sqrt(2)
    assert abs(np.median(diff)) < 1.0 and 9 < np.std(diff) < 15


def test_zeroframe_is_zero_where_saturated():
    exp = make_exposure(1, 5, 64, 64, seed=4, zeroframe=True, saturation_dn=1500.0)
    ramp = exp.ramp
    bad = ramp.zeroframe[0] == 0
    assert bad.sum() > 5
    # saturated in the first frame implies saturated in group 0 (nframes=1: same read time)
    assert np.all(ramp.groupdq[0, 0][bad] & dq.SATURATED)


def test_integer_dtype():
    exp = make_exposure(1, 4, 16, 16, seed=1, dtype=np.uint16)
    assert exp.ramp.data.dtype == np.uint16 and exp.ramp.data.max() <= 60100
    as_float = make_exposure(1, 4, 16, 16, seed=1).ramp.data
    assert np.max(np.abs(exp.ramp.data.astype(np.float64) - as_float)) <= 0.5 + 1e-3


@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(ngroups=0), "ngroups must be an integer >= 1"), (dict(nx=2.5), "nx must be an integer"),
     (dict(frame_time=-1.0), "frame_time must be a finite number"), (dict(cr_rate=-1.0), "cr_rate"),
     (dict(dtype=bool), "dtype must be a real numeric type")],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        make_exposure(**{"ny": 8, "nx": 8, **kwargs})


# ------------------------------------------------------------------------ files
def test_write_exposure_ramp(tmp_path, exposure):
    files = write_exposure(exposure, tmp_path / "d", name="syn")
    assert set(files) == {"ramp", "gain", "readnoise"}
    assert files["ramp"].name == "syn_ramp.fits" and files["gain"].name == "syn_gain.fits"
    ramp = Ramp.from_fits(files["ramp"])
    assert ramp.meta["R_GAIN"] == "syn_gain.fits" and ramp.meta["R_READNO"] == "syn_readnoise.fits"
    assert "R_GAIN" not in exposure.ramp.meta  # the in-memory exposure is left alone
    for name in ("data", "groupdq", "pixeldq", "zeroframe"):
        np.testing.assert_array_equal(np.asarray(getattr(ramp, name)), getattr(exposure.ramp, name))
    gain_path = files["ramp"].parent / ramp.meta["R_GAIN"]
    np.testing.assert_array_equal(read_gain(gain_path, ramp), exposure.gain)
    np.testing.assert_array_equal(read_readnoise(files["readnoise"], ramp), exposure.readnoise)


def test_write_exposure_uncal(tmp_path):
    exp = make_exposure(1, 5, 32, 40, seed=3)
    files = write_exposure(exp, tmp_path, kind="uncal")
    assert files["uncal"].name == "gpucal_synthetic_uncal.fits"
    with fits.open(files["uncal"]) as hdul:
        assert hdul["SCI"].data.dtype == np.uint16 and "GROUPDQ" not in hdul and "PIXELDQ" not in hdul
        assert hdul[0].header["R_GAIN"] == "gpucal_synthetic_gain.fits"
        expected = np.clip(np.rint(exp.ramp.data), 0, 65535).astype(np.uint16)
        np.testing.assert_array_equal(hdul["SCI"].data, expected)
    with pytest.raises(InputError, match="kind must be"):
        write_exposure(exp, tmp_path, kind="rate")


def test_builtin_exposure_is_cached(tmp_path, monkeypatch):
    files = builtin_exposure(tmp_path)
    assert set(files) == {"ramp", "gain", "readnoise"} and all(p.parent == tmp_path for p in files.values())
    ramp = Ramp.from_fits(files["ramp"])
    assert ramp.shape == (1, 10, 512, 512) and ramp.instrument == "NIRCAM"
    stamps = {k: p.stat().st_mtime_ns for k, p in files.items()}
    content = files["ramp"].read_bytes()

    def no_regeneration(**kwargs):
        raise AssertionError("regenerated although the cache is complete")

    monkeypatch.setattr(synthetic, "make_exposure", no_regeneration)
    assert builtin_exposure(tmp_path) == files
    assert {k: p.stat().st_mtime_ns for k, p in files.items()} == stamps
    monkeypatch.undo()

    files["gain"].unlink()  # incomplete cache -> regenerated, identical bytes
    again = builtin_exposure(tmp_path)
    assert again == files and files["gain"].exists()
    assert files["ramp"].read_bytes() == content


def test_builtin_exposure_uses_gpucal_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUCAL_CACHE", str(tmp_path / "env"))
    assert synthetic.default_cache_dir() == tmp_path / "env"
    monkeypatch.setattr(synthetic, "BUILTIN_PARAMS", {**synthetic.BUILTIN_PARAMS, "ny": 32, "nx": 48})
    files = builtin_exposure()
    assert files["ramp"].parent == tmp_path / "env"
    assert Ramp.from_fits(files["ramp"]).shape == (1, 10, 32, 48)
