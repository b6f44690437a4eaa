"""gpucal.ramp_fit (numpy fallback) against stcal 1.20 OLS_C on the same inputs.

Bound: identical. Every float output (rate, rateints, fitopt) equals stcal bit for bit
(any NaN equals any NaN) and DQ is identical; the optimal weights use the C library's
powf through a table, the same function stcal calls.
"""

import numpy as np
import pytest

import gpucal
import gpucal.dq
from ramp_cases import Case, fuzz_case, random_case, standard_cases
from stcal_reference import stcal_ramp_fit

pytest.importorskip("stcal")

PRODUCT_KEYS = [("slope", "data"), ("dq", "dq"), ("var_poisson", "var_poisson"), ("var_rnoise", "var_rnoise"),
                ("err", "err")]
FITOPT_KEYS = ["slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint", "pedestal", "weights", "crmag"]


def assert_same(actual, expected, label):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{label}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{label}: dtype {actual.dtype} != {expected.dtype}"
    if actual.dtype.kind == "f":
        same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    else:
        same = actual == expected
    assert same.all(), f"{label}: {np.count_nonzero(~same)} of {same.size} differ"


def fit_both(case: Case, save_opt=False):
    result = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend="cpu", save_opt=save_opt,
                             suppress_one_group=case.suppress_one_group,
                             average_dark_current=case.average_dark_current)
    reference = stcal_ramp_fit(case.data, case.groupdq, case.pixeldq, case.gain, case.readnoise,
                               group_time=case.group_time, frame_time=case.frame_time, nframes=case.nframes,
                               groupgap=case.groupgap, drop_frames1=case.drop_frames1, zeroframe=case.zeroframe,
                               instrument=case.instrument, suppress_one_group=case.suppress_one_group,
                               save_opt=save_opt, average_dark_current=case.average_dark_current)
    return result, reference


def assert_matches_stcal(result, reference, save_opt=False):
    image, integ, opt = reference
    assert image is not None
    for key, attr in PRODUCT_KEYS:
        assert_same(getattr(result.rate, attr), image[key], f"rate.{key}")
        assert_same(getattr(result.rateints, attr), integ[key], f"rateints.{key}")
    if save_opt:
        for key in FITOPT_KEYS:
            assert_same(getattr(result.fitopt, key), opt[key], f"fitopt.{key}")


@pytest.mark.parametrize("case", standard_cases(), ids=lambda c: c.name)
@pytest.mark.parametrize("save_opt", [False, True], ids=["", "save_opt"])
def test_matches_stcal(case, save_opt):
    result, reference = fit_both(case, save_opt)
    assert_matches_stcal(result, reference, save_opt)
    # the case must exercise something: some valid and some flagged pixels
    assert np.isfinite(result.rate.data).any()


@pytest.mark.parametrize("seed", range(6))
def test_matches_stcal_random(seed):
    case = fuzz_case(100 + seed, ny=9, nx=11, max_groups=14)
    result, reference = fit_both(case, save_opt=True)
    assert_matches_stcal(result, reference, save_opt=True)


def test_synthetic_exposure_matches_stcal():
    """A realistic exposure: Poisson + read noise, cosmic rays, saturating stars, bad pixels."""
    from gpucal.synthetic import make_exposure

    exp = make_exposure(nints=2, ngroups=10, ny=64, nx=64, seed=3)
    ramp = exp.ramp
    case = Case("synthetic", np.asarray(ramp.data), np.asarray(ramp.groupdq), np.asarray(ramp.pixeldq),
                exp.gain, exp.readnoise, group_time=ramp.group_time, frame_time=ramp.frame_time,
                nframes=ramp.nframes, groupgap=ramp.groupgap)
    result, reference = fit_both(case, save_opt=True)
    assert_matches_stcal(result, reference, save_opt=True)
    flags = result.rate.dq
    assert (flags & gpucal.dq.JUMP_DET).any() and (flags & gpucal.dq.SATURATED).any()


def test_all_first_group_saturated_gives_no_products():
    case = random_case("allsat", 2, 5, 4, 4, seed=1)
    case.groupdq[:, 0] |= gpucal.dq.SATURATED
    result, reference = fit_both(case)
    assert reference[0] is None
    assert result.rate is None and result.rateints is None


def test_miri_all_groups_do_not_use_gives_no_products():
    case = random_case("miri-empty", 1, 4, 4, 4, seed=2, instrument="MIRI")
    case.groupdq[:, :3] |= gpucal.dq.DO_NOT_USE
    result, reference = fit_both(case)
    assert reference[0] is None
    assert result.rate is None
