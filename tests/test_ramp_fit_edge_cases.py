"""The hand-checkable cases of spec ramp_fit.md section 11, with their expected numbers.

Single pixel, 6 groups, y_k = 10k + 5 DN, t_g = t_f = 10 s, nframes 1, gain 1,
readnoise 10 DN (so the group read-noise variance is 50). Each case is also compared with
stcal bit for bit, so a wrong expectation here cannot hide a parity break.
"""

import numpy as np
import pytest

import gpucal
from gpucal import dq
from ramp_cases import Case
from stcal_reference import stcal_ramp_fit
from test_ramp_fit_parity import assert_matches_stcal, fit_both

NAN = np.nan


def pixel_case(gdq, *, values=None, nints=1, gain=1.0, readnoise=10.0, suppress=True, zeroframe=None):
    """The case's pixel at (0, 0); a second pixel (0, 1), the same ramp with gain 1 and read noise
    10, keeps a gain or read noise with no usable value from being refused as a whole."""
    gdq = np.asarray(gdq, dtype=np.uint8).reshape(nints, -1)
    ngroups = gdq.shape[1]
    y = np.arange(ngroups) * 10.0 + 5.0 if values is None else np.asarray(values, dtype=np.float64)
    data = np.broadcast_to(y, (nints, ngroups)).astype(np.float32).reshape(nints, ngroups, 1, 1)
    data = np.repeat(data, 2, axis=3)
    return Case("pixel", data, np.repeat(gdq.reshape(nints, ngroups, 1, 1), 2, axis=3), np.zeros((1, 2), np.uint32),
                np.array([[gain, 1.0]], np.float32), np.array([[readnoise, 10.0]], np.float32),
                group_time=10.0, frame_time=10.0, suppress_one_group=suppress,
                zeroframe=None if zeroframe is None else np.repeat(zeroframe, 2, axis=-1))


def stcal_plain(case):
    """stcal on the case without gpucal's flags for unusable calibration."""
    return stcal_ramp_fit(case.data, case.groupdq, case.pixeldq, case.gain, case.readnoise, group_time=case.group_time,
                          frame_time=case.frame_time, nframes=case.nframes, zeroframe=case.zeroframe,
                          suppress_one_group=case.suppress_one_group, gpucal_flags=False)


def rate_of(result):
    r = result.rate
    return (float(r.data[0, 0]), float(r.var_poisson[0, 0]), float(r.var_rnoise[0, 0]), float(r.err[0, 0]),
            int(r.dq[0, 0]))


CASES = {
    # name: (case, slope, var_poisson, var_rnoise, err, dq); None = not checked
    "clean": (pixel_case([0] * 6), 1.0, 0.02, 0.0285714, 0.220389, 0),
    "jump": (pixel_case([0, 0, 0, 4, 0, 0]), 1.0, 0.025, 0.125, None, 4),
    "jump+dnu": (pixel_case([0, 0, 0, 5, 0, 0]), 1.0, 0.0333333, 0.2, 0.483046, 4),
    "dnu middle": (pixel_case([0, 0, 1, 0, 0, 0]), 1.0, 0.0333333, 0.2, 0.483046, 0),
    "jump first": (pixel_case([4, 0, 0, 0, 0, 0]), 1.0, 0.02, 0.0285714, 0.220389, 4),
    "sat from group 2": (pixel_case([0, 0, 2, 2, 2, 2]), 1.0, 0.1, 1.0, None, 2),
    "sat from group 1": (pixel_case([0, 2, 2, 2, 2, 2]), NAN, 0.0, 0.0, 0.0, 3),
    "sat from group 1, no suppression": (pixel_case([0, 2, 2, 2, 2, 2], suppress=False), 0.5, 0.05, 1.0, None, 2),
    "only group 0 good": (pixel_case([0, 1, 1, 1, 1, 1]), NAN, 0.0, 0.0, 0.0, 1),
    "only group 0 good, no suppression": (pixel_case([0, 1, 1, 1, 1, 1], suppress=False), 0.5, None, None, None, 0),
    "jump-only group then sat": (pixel_case([4, 0, 2, 2, 2, 2]), NAN, 0.0, 0.0, 0.0, 7),
    "isolated groups, no suppression": (pixel_case([0, 1, 0, 1, 0, 1], suppress=False), 0.5, 0.05, None, None, 0),
    "negative ramp": (pixel_case([0] * 6, values=100.0 - 10.0 * np.arange(6)), -1.0, 0.0, None, 0.169031, 0),
    "NaN in unflagged group": (pixel_case([0] * 6, values=[5, 15, NAN, 35, 45, 55]), 1.0399629, None, None,
                               None, 0),
    "all JUMP_DET": (pixel_case([4] * 6), 0.0, 0.0, 0.0, 0.0, 4),
    "gain 0": (pixel_case([0] * 6, gain=0.0), NAN, 0.0, 0.0, 0.0, 524289),
    "gain NaN": (pixel_case([0] * 6, gain=NAN), NAN, 0.0, 0.0, 0.0, 524289),
    "gain -1": (pixel_case([0] * 6, gain=-1.0), NAN, 0.0, 0.0, 0.0, 524289),
    "gain inf": (pixel_case([0] * 6, gain=np.inf), NAN, 0.0, 0.0, 0.0, 524289),
    "readnoise 1e5": (pixel_case([0] * 6, readnoise=1e5), 0.0, None, 0.0, 0.141421, 0),
    "one group, no suppression": (pixel_case([0], values=[50.0]), 5.0, 0.5, 1.0, None, 0),
    "second integration saturated": (pixel_case([[0] * 6, [2] * 6], nints=2), 1.0, 0.01, None, None, 2),
    "chargeloss": (pixel_case([0, 0, 0, 129, 129, 129]), 1.0, None, 0.0285714, 0.547723, 0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_spec_case(name):
    case, slope, var_p, var_r, err, flags = CASES[name]
    result, reference = fit_both(case)
    assert_matches_stcal(result, reference)
    got = rate_of(result)
    for label, expected, value in zip(("slope", "var_poisson", "var_rnoise", "err"), (slope, var_p, var_r, err),
                                      got[:4]):
        if expected is None:
            continue
        if np.isnan(expected):
            assert np.isnan(value), f"{label}: expected NaN, got {value}"
        else:
            assert value == pytest.approx(expected, rel=1e-5, abs=1e-12), label
    assert got[4] == flags


def test_rateints_err_differs_from_rate_err_with_two_segments():
    result, _ = fit_both(pixel_case([0, 0, 0, 5, 0, 0]))
    assert float(result.rate.err[0, 0]) == pytest.approx(0.483046, rel=1e-5)
    assert float(result.rateints.err[0, 0, 0]) == pytest.approx(0.485504, rel=1e-5)


def test_saturated_second_integration_rateints():
    result, _ = fit_both(pixel_case([[0] * 6, [2] * 6], nints=2))
    assert np.isnan(result.rateints.data[1, 0, 0])
    assert int(result.rateints.dq[1, 0, 0]) == dq.DO_NOT_USE | dq.SATURATED


def test_readnoise_zero_and_nan():
    """stcal gives these pixels a NaN rate with DQ 0 (and a NaN or non-zero variance); gpucal
    flags them DO_NOT_USE | OTHER_BAD_PIXEL, so they are any DO_NOT_USE pixel's products."""
    for readnoise in (0.0, NAN, -5.0, np.inf):
        case = pixel_case([0] * 6, readnoise=readnoise)
        result, reference = fit_both(case)
        assert_matches_stcal(result, reference)
        assert rate_of(result) == pytest.approx((NAN, 0.0, 0.0, 0.0, dq.DO_NOT_USE | dq.PIXEL["OTHER_BAD_PIXEL"]),
                                                nan_ok=True)
        assert rate_of(result) != rate_of(fit_both(pixel_case([0] * 6))[0])  # the good neighbour's
        image, _, _ = reference
        if readnoise != -5.0:  # stcal squares a negative read noise; the others are NaN, unflagged
            plain = stcal_plain(case)[0]
            assert np.isnan(plain["slope"][0, 0]) and plain["dq"][0, 0] == 0


def test_does_not_modify_inputs():
    case = pixel_case([0, 1, 0, 0, 4, 0])
    ramp = case.ramp()
    before = [np.array(a, copy=True) for a in (ramp.data, ramp.groupdq, ramp.pixeldq)]
    gpucal.ramp_fit(ramp, case.gain, case.readnoise, backend="cpu")
    for a, b in zip(before, (ramp.data, ramp.groupdq, ramp.pixeldq)):
        np.testing.assert_array_equal(a, b)


def test_chargeloss_of_suppressed_single_integration():
    """Regression: with one integration the fallback once ORed the suppression's DO_NOT_USE
    into its input flags, so the CHARGELOSS re-segmentation (which reads the original
    flags) lost its segments and var_rnoise came out twice stcal's."""
    case = pixel_case([4, 129, 4, 4, 5, 0, 4, 129, 4], values=np.arange(9) * 10.0 + 5.0)
    result, reference = fit_both(case)
    assert_matches_stcal(result, reference)
    # two 2-group segments [0,2) and [6,8) after the CHARGELOSS groups are reopened
    two_group = (12 * (10.0 / np.sqrt(2) / 10.0) ** 2) / 6.0
    assert float(result.rate.var_rnoise[0, 0]) == pytest.approx(two_group / 2, rel=1e-6)
