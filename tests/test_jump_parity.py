"""gpucal.detect_jumps (numpy fallback) against stcal 1.20 ``detect_jumps_data``.

Bound: identical. The whole group DQ (JUMP_DET and every other bit), the pixel DQ and the
primary-CR count equal stcal's, on synthetic exposures with cosmic rays, saturating stars,
DO_NOT_USE groups and NaN/zero gains, for each detection path and non-default settings.
The sigma-clipping path calls astropy's ``sigma_clip`` exactly as stcal does (same
arguments on the same float64 differences), so it is identical too.
"""

import numpy as np
import pytest

import gpucal
from gpucal import dq
from jump_cases import exposure
from stcal_jump_reference import stcal_detect_jumps

pytest.importorskip("stcal")


def run_both(ex, **kw):
    r = ex.ramp
    ours = gpucal.detect_jumps(r, ex.gain, ex.readnoise, backend="cpu", **kw)
    kw.pop("max_memory", None)
    gdq, pdq, n_primary, *_ = stcal_detect_jumps(r.data, r.groupdq, r.pixeldq, ex.gain, ex.readnoise,
                                                 group_time=r.group_time, nframes=r.nframes, **kw)
    return ours, gdq, pdq, n_primary


def assert_parity(ex, *, min_jumps=1, **kw):
    before = (ex.ramp.groupdq.copy(), ex.ramp.pixeldq.copy(), ex.ramp.data.copy())
    ours, gdq, pdq, n_primary = run_both(ex, **kw)
    # the input ramp is never modified
    np.testing.assert_array_equal(ex.ramp.groupdq, before[0])
    np.testing.assert_array_equal(ex.ramp.pixeldq, before[1])
    np.testing.assert_array_equal(ex.ramp.data, before[2])
    diff = np.asarray(ours.groupdq) != gdq
    assert not diff.any(), f"groupdq: {np.count_nonzero(diff)} of {diff.size} samples differ " \
                           f"(first at {np.argwhere(diff)[0]})"
    np.testing.assert_array_equal(ours.pixeldq, pdq)
    assert ours.meta["JUMPNPRI"] == n_primary
    n_jump = np.count_nonzero(gdq & dq.JUMP_DET)
    assert n_jump >= min_jumps, "case too easy: stcal flagged too few jumps to mean anything"
    return ours, gdq


CASES = {
    # name: (exposure arguments, detect_jumps arguments)
    "nir10": (dict(nints=1, ngroups=10, ny=96, nx=80, seed=1), {}),
    "nir10_dnu": (dict(nints=2, ngroups=10, ny=64, nx=64, seed=2, dnu_groups=0.03), {}),
    "nir10_nframes4": (dict(nints=1, ngroups=10, ny=48, nx=48, seed=3, nframes=4), {}),
    "three_groups": (dict(nints=3, ngroups=3, ny=64, nx=64, seed=4, cr_rate=5e-3), {}),
    "four_groups": (dict(nints=2, ngroups=4, ny=64, nx=64, seed=5, cr_rate=5e-3), {}),
    "miri_single_pass": (dict(nints=2, ngroups=35, ny=48, nx=48, seed=6, instrument="MIRI", frame_time=2.775), {}),
    "miri_iterative": (dict(nints=4, ngroups=10, ny=48, nx=48, seed=7, instrument="MIRI", frame_time=2.775,
                            dnu_groups=0.02), {}),
    "sigma_clip_ints": (dict(nints=100, ngroups=4, ny=16, nx=16, seed=8, cr_rate=5e-3), {}),
    "sigma_clip_groups": (dict(nints=30, ngroups=5, ny=12, nx=12, seed=9, cr_rate=5e-3),
                          dict(only_use_ints=False)),
    "no_neighbours": (dict(nints=1, ngroups=10, ny=64, nx=64, seed=10), dict(flag_4_neighbors=False)),
    "after_jump": (dict(nints=2, ngroups=10, ny=64, nx=64, seed=11),
                   dict(after_jump_flag_dn1=10.0, after_jump_flag_time1=25.0, after_jump_flag_dn2=1000.0,
                        after_jump_flag_time2=60.0)),
    "neighbour_window": (dict(nints=1, ngroups=8, ny=64, nx=64, seed=12),
                         dict(min_jump_to_flag_neighbors=5.0, max_jump_to_flag_neighbors=200.0,
                              rejection_threshold=3.5, three_group_rejection_threshold=5.5,
                              four_group_rejection_threshold=4.5)),
    "row_blocks_halo": (dict(nints=2, ngroups=6, ny=40, nx=32, seed=13, cr_rate=1e-2),
                        dict(max_memory=2 * 6 * 64 * 32 * 3)),
}


def test_parity_with_input_jumps_and_nan_data():
    """Input JUMP_DET flags (a second jump pass), NaN science values without flags, and
    JUMP_DET|DO_NOT_USE groups that section 8 clears."""
    from gpucal.synthetic import make_exposure

    ex = make_exposure(2, 9, 64, 64, seed=50, flag_jumps=True, cr_rate=3e-3)
    rng = np.random.default_rng(50)
    r = ex.ramp
    r.data[rng.random(r.data.shape) < 0.005] = np.nan
    r.groupdq[rng.random(r.groupdq.shape) < 0.005] |= np.uint8(dq.JUMP_DET | dq.DO_NOT_USE)
    assert np.count_nonzero(r.groupdq & dq.JUMP_DET) > 50
    assert_parity(ex)


@pytest.mark.parametrize("name", list(CASES))
def test_parity_with_stcal(name):
    exp_args, kw = CASES[name]
    ex = exposure(**exp_args)
    ours, gdq = assert_parity(ex, **kw)


def test_every_path_is_exercised():
    """The cases above cover the iterative, single-pass and sigma-clip paths."""
    from cpu_fallback import jump as cj

    seen = set()
    original = cj.two_point_block

    def spy(fp, *args):
        seen.add(fp.mode)
        return original(fp, *args)

    import gpucal.jump_detection as jd

    jd.two_point_block = spy
    try:
        for name in ("nir10", "miri_single_pass", "sigma_clip_ints"):
            exp_args, kw = CASES[name]
            ex = exposure(**{**exp_args, "ny": 8, "nx": 8})
            gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu", **kw)
    finally:
        jd.two_point_block = original
    assert seen == {cj.MODE_ITERATIVE, cj.MODE_SINGLE_PASS, cj.MODE_NONE}


def test_skipped_when_too_few_usable_groups():
    """Groups 0-1 DO_NOT_USE in every pixel of a 4-group ramp: no detection, n = -99."""
    ex = exposure(nints=1, ngroups=4, ny=32, nx=32, seed=20, cr_rate=1e-2)
    ex.ramp.groupdq[:, :2] |= np.uint8(dq.DO_NOT_USE)
    ex.ramp.groupdq[0, 2, :4, :4] |= np.uint8(dq.JUMP_DET | dq.DO_NOT_USE)  # cleared by section 8
    ex.ramp.groupdq[0, 3, 5, 5] |= np.uint8(dq.JUMP_DET)  # kept
    ours, gdq = assert_parity(ex)
    assert ours.meta["JUMPNPRI"] == -99
    assert gdq[0, 3, 5, 5] & dq.JUMP_DET


def test_two_groups_step_skipped():
    ex = exposure(nints=1, ngroups=2, ny=16, nx=16, seed=21)
    out = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu")
    np.testing.assert_array_equal(out.groupdq, ex.ramp.groupdq)
    np.testing.assert_array_equal(out.pixeldq, ex.ramp.pixeldq)  # not even bad-gain flags


# Spec section 11: 3x3 frame, CR in the centre pixel, gain 1, read noise 1, nframes 1.
# name: (centre ramp, expected centre groupdq, expected groupdq of the pixel above)
EDGE_CASES = {
    "three_groups_small": ([0, 10, 20], [0, 0, 0], [0, 0, 0]),
    "three_groups_jump": ([0, 10, 200], [0, 0, 4], [0, 0, 0]),  # rho ~ 9 vs unclipped median: no spread
    "four_groups": ([0, 10, 20, 200], [0, 0, 0, 4], [0, 0, 0, 4]),
    "all_equal": ([0, 10, 20, 30, 40, 50], [0] * 6, [0] * 6),
    "six_groups": ([0, 10, 20, 30, 40, 400], [0, 0, 0, 0, 0, 4], [0, 0, 0, 0, 0, 4]),
    "negative": ([0, 10, 20, -10, 0, 10], [0, 0, 0, 4, 0, 0], [0, 0, 0, 4, 0, 0]),
    "sign_flip": ([0, 10, 20, 10, 20, 30], [0] * 6, [0] * 6),
    "two_jumps": ([0, 10, 300, 310, 320, 900, 910], [0, 0, 4, 0, 0, 4, 0], [0, 0, 4, 0, 0, 4, 0]),
    "huge": ([0, 10, 20, 30, 40, 50000], [0, 0, 0, 0, 0, 4], [0] * 6),  # rho > 1000: no spread
    "single_pass": ([0, 10, 20, 30, 40, 50, 60, 5000, 5010, 5020, 5030, 5040], [0] * 7 + [4] + [0] * 4, [0] * 12),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_spec_edge_cases(name):
    ramp_values, centre, above = EDGE_CASES[name]
    g = len(ramp_values)
    data = np.zeros((1, g, 3, 3), np.float32) + 10.0 * np.arange(g, dtype=np.float32)[None, :, None, None]
    data[0, :, 1, 1] = ramp_values
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros((3, 3), np.uint32)
    gain = np.ones((3, 3), np.float32)
    rn = np.ones((3, 3), np.float32)
    ramp = gpucal.Ramp(data, gdq, pdq, group_time=10.0, frame_time=10.0, nframes=1)
    ours = gpucal.detect_jumps(ramp, gain, rn, backend="cpu")
    ref, _, _ = stcal_detect_jumps(data, gdq, pdq, gain, rn, group_time=10.0)
    np.testing.assert_array_equal(ours.groupdq, ref)
    np.testing.assert_array_equal(ours.groupdq[0, :, 1, 1], centre)
    np.testing.assert_array_equal(ours.groupdq[0, :, 0, 1], above)


def test_spec_edge_cases_with_flags():
    """Two integrations pooled; JUMP_DET|DO_NOT_USE input cleared but counted; a DO_NOT_USE
    group hides both differences around it; zero read noise (flagged DO_NOT_USE |
    OTHER_BAD_PIXEL in the pixel DQ, group flags as stcal's); skipped 4-group ramp."""
    def run(values, gdq_centre=None, rn=1.0, dnu_groups=None):
        values = np.atleast_2d(np.array(values, np.float32))
        nints, g = values.shape
        data = np.zeros((nints, g, 3, 3), np.float32) + 10.0 * np.arange(g, dtype=np.float32)[None, :, None, None]
        data[:, :, 1, 1] = values
        gdq = np.zeros(data.shape, np.uint8)
        if gdq_centre is not None:
            gdq[0, :, 1, 1] = gdq_centre
        if dnu_groups is not None:
            gdq[:, dnu_groups] |= np.uint8(dq.DO_NOT_USE)
        ones, rns = np.ones((3, 3), np.float32), np.ones((3, 3), np.float32)
        rns[1, 1] = rn  # the centre's alone: a read noise with no usable value is refused
        ramp = gpucal.Ramp(data, gdq, np.zeros((3, 3), np.uint32), group_time=10.0, frame_time=10.0, nframes=1)
        ours = gpucal.detect_jumps(ramp, ones, rns, backend="cpu")
        ref, _, n = stcal_detect_jumps(data, gdq, ramp.pixeldq, ones, rns, group_time=10.0)
        np.testing.assert_array_equal(ours.groupdq, ref)
        assert ours.meta["JUMPNPRI"] == n
        return ref[:, :, 1, 1], n

    flags, _ = run([[0, 10, 20], [0, 10, 300]])
    np.testing.assert_array_equal(flags, [[0, 0, 0], [0, 0, 4]])
    flags, n = run([0, 0, 0, 0, 0, 0], gdq_centre=[0, 0, 5, 0, 0, 0])
    np.testing.assert_array_equal(flags, [[0, 0, 1, 0, 0, 0]])
    assert n == 1
    flags, _ = run([0, 10, 0, 500, 510, 520], gdq_centre=[0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(flags, [[0, 0, 1, 0, 0, 0]])
    flags, _ = run([0, 0, 0, 0, 0, 500], rn=0.0)
    np.testing.assert_array_equal(flags, [[0] * 6])
    flags, n = run([0, 10, 20, 300], dnu_groups=[0, 1])
    np.testing.assert_array_equal(flags, [[1, 1, 0, 0]])
    assert n == -99


def test_after_jump_example_from_spec():
    """n1 = 2, dn1 = 100: the centre gets groups 3, 4, 5; neighbours only group 3."""
    values = [0, 10, 20, 1000, 1010, 1020, 1030]
    data = np.zeros((1, 7, 3, 3), np.float32) + 10.0 * np.arange(7, dtype=np.float32)[None, :, None, None]
    data[0, :, 1, 1] = values
    gdq = np.zeros(data.shape, np.uint8)
    ramp = gpucal.Ramp(data, gdq, np.zeros((3, 3), np.uint32), group_time=10.0, frame_time=10.0, nframes=1)
    ones = np.ones((3, 3), np.float32)
    ours = gpucal.detect_jumps(ramp, ones, ones, backend="cpu", after_jump_flag_dn1=100.0, after_jump_flag_time1=20.0)
    ref, _, _ = stcal_detect_jumps(data, gdq, ramp.pixeldq, ones, ones, group_time=10.0, after_jump_flag_dn1=100.0,
                                   after_jump_flag_time1=20.0)
    np.testing.assert_array_equal(ours.groupdq, ref)
    np.testing.assert_array_equal(np.nonzero(ours.groupdq[0, :, 1, 1])[0], [3, 4, 5])
    np.testing.assert_array_equal(np.nonzero(ours.groupdq[0, :, 0, 1])[0], [3])


@pytest.mark.parametrize("kw", [dict(), dict(sat_required_snowball=False, min_jump_area=8.0),
                                dict(expand_factor=3.0, snowball_time_masked_next_int=50.0, sat_expand=3)],
                         ids=["default", "no_sat_required", "bigger"])
def test_snowball_parity(kw):
    """expand_large_events: snowball discs (saturated core + jump halo) away from the edges and
    the plus-shaped CR+neighbour regions near them; saturated cores grow and persist into the
    next integration."""
    from jump_cases import inject_snowball

    ex = exposure(nints=2, ngroups=8, ny=90, nx=90, seed=40, cr_rate=2e-3)
    inject_snowball(ex, 0, 3, 45, 45)
    inject_snowball(ex, 1, 5, 40, 52, r_core=2.0, r_halo=5.0)
    r = ex.ramp
    ours = gpucal.detect_jumps(r, ex.gain, ex.readnoise, backend="cpu", expand_large_events=True, **kw)
    gdq, pdq, n_primary, n_extended = stcal_detect_jumps(r.data, r.groupdq, r.pixeldq, ex.gain, ex.readnoise,
                                                         group_time=r.group_time, expand_large_events=True, **kw)
    plain = gpucal.detect_jumps(r, ex.gain, ex.readnoise, backend="cpu")
    diff = np.asarray(ours.groupdq) != gdq
    assert not diff.any(), f"{np.count_nonzero(diff)} samples differ"
    np.testing.assert_array_equal(ours.pixeldq, pdq)
    assert ours.meta["JUMPNPRI"] == n_primary and ours.meta["JUMPNEXT"] == n_extended
    assert n_extended > 0
    # the expansion changed flags around the injected events, not just at the edges
    changed = np.asarray(plain.groupdq) != gdq
    assert changed[0, 3, 35:56, 35:56].any()
    if kw.get("sat_required_snowball", True):
        # the grown saturated core is SATURATED beyond the injected r <= 3 disc
        assert np.count_nonzero(gdq[0, 7] & dq.SATURATED) > np.count_nonzero(r.groupdq[0, 7] & dq.SATURATED)


SHOWER_CASES = {
    # name: (nints, ngroups, ny, nx, seed, detect_jumps arguments)
    "miri_12_groups": (2, 12, 80, 80, 1, {}),
    "with_snowballs": (3, 20, 70, 90, 2, dict(expand_large_events=True)),
    "sigma_clipped_stats": (100, 5, 24, 24, 3, {}),
    "just_enough_diffs": (2, 6, 60, 60, 4, dict(time_masked_after_shower=30.0, extend_min_area=60.0)),
}


@pytest.mark.parametrize("name", list(SHOWER_CASES))
def test_shower_parity(name):
    """find_showers: faint extended discs become ellipses flagged for following groups;
    reference pixels are masked; the slope-change guard restores some pixels."""
    from jump_cases import inject_shower

    nints, ngroups, ny, nx, seed, kw = SHOWER_CASES[name]
    ex = exposure(nints=nints, ngroups=ngroups, ny=ny, nx=nx, seed=seed, instrument="MIRI", frame_time=2.775,
                  cr_rate=1e-3)
    inject_shower(ex, 0, ngroups // 2, ny // 2, nx // 2, radius=min(12, ny // 3))
    inject_shower(ex, 1, 2, ny // 3, nx // 2, radius=min(10, ny // 3), step=40.0)
    ex.ramp.pixeldq[:, :4] |= np.uint32(dq.PIXEL["REFERENCE_PIXEL"])
    r = ex.ramp
    ours = gpucal.detect_jumps(r, ex.gain, ex.readnoise, backend="cpu", find_showers=True, **kw)
    gdq, pdq, n_primary, n_extended = stcal_detect_jumps(r.data, r.groupdq, r.pixeldq, ex.gain, ex.readnoise,
                                                         group_time=r.group_time, find_showers=True, **kw)
    diff = np.asarray(ours.groupdq) != gdq
    assert not diff.any(), f"{np.count_nonzero(diff)} samples differ"
    np.testing.assert_array_equal(ours.pixeldq, pdq)
    assert ours.meta["JUMPNPRI"] == n_primary and ours.meta["JUMPNEXT"] == n_extended
    assert n_extended > 0
    plain = gpucal.detect_jumps(r, ex.gain, ex.readnoise, backend="cpu", **kw)
    assert np.count_nonzero(np.asarray(plain.groupdq) != gdq) > 100  # showers changed the flags


def test_showers_need_ten_differences():
    """Fewer than 10 usable differences: find_showers changes nothing."""
    from jump_cases import inject_shower

    ex = exposure(nints=1, ngroups=8, ny=40, nx=40, seed=5, instrument="MIRI", frame_time=2.775, cr_rate=1e-3)
    inject_shower(ex, 0, 4, 20, 20)
    with_showers = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu", find_showers=True)
    without = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu")
    np.testing.assert_array_equal(with_showers.groupdq, without.groupdq)
    assert with_showers.meta["JUMPNEXT"] == 0
    ours, gdq = assert_parity(ex, find_showers=True)


@pytest.mark.parametrize("first_pass", [False, True], ids=["median_rounding", "excess_rounding"])
def test_float32_roundings_of_the_iterative_search(first_pass):
    """Pixels on the 4-sigma boundary where stcal's float32 median (second pass on) decides."""
    from jump_cases import rounding_frame

    data, rn = rounding_frame(first_pass)
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros(data.shape[2:], np.uint32)
    gain = np.ones(data.shape[2:], np.float32)
    ramp = gpucal.Ramp(data, gdq, pdq, group_time=10.0, frame_time=10.0, nframes=1)
    ours = gpucal.detect_jumps(ramp, gain, rn, backend="cpu", flag_4_neighbors=False)
    ref, _, _ = stcal_detect_jumps(data, gdq, pdq, gain, rn, group_time=10.0, flag_4_neighbors=False)
    np.testing.assert_array_equal(ours.groupdq, ref)
    x_group = ref.shape[1] - 1 - (not first_pass)
    flagged = np.count_nonzero(ref[0, x_group] & dq.JUMP_DET)
    assert 0 < flagged < ref[0, x_group].size  # the boundary runs through the frame
