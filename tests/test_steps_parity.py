"""Parity of gpucal.steps with jwst 3.0.0 / stcal 1.20.0 on the same arrays (CPU backend)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from stcal.dark_current import dark_sub
from stcal.dark_current.dark_class import DarkData, ScienceData
from stcal.linearity.linearity import linearity_correction
from stcal.saturation.saturation import flag_saturated_pixels
from steps_cases import DQFLAGS, raw_exposure, refs_for

from gpucal import steps


def _meta(ramp, *models):
    """Full-frame-like subarray metadata so jwst's ref_matches_sci sees matching models."""
    for m in models:
        m.meta.instrument.name = ramp.instrument or "NIRCAM"
        m.meta.instrument.detector = ramp.meta.get("DETECTOR", "NRCA1")
        m.meta.subarray.xstart, m.meta.subarray.ystart = 1, 1
        m.meta.subarray.xsize, m.meta.subarray.ysize = ramp.nx, ramp.ny
    return models


def _arrays(ramp):
    b = ramp.block(0, ramp.ny)
    return b.data, b.groupdq, b.pixeldq, b.zeroframe


def test_dq_init_matches_jwst():
    from stdatamodels.jwst import datamodels
    from jwst.dq_init.dq_initialization import do_dqinit

    ramp = raw_exposure()
    refs = refs_for(ramp)
    out = steps.dq_init(ramp, refs["mask"], backend="cpu")
    data, gdq, pdq, _ = _arrays(ramp)
    model = datamodels.RampModel(data=data.copy(), groupdq=gdq.copy(), pixeldq=pdq.copy())
    mask = datamodels.MaskModel(dq=refs["mask"].dq.copy())
    _meta(ramp, model, mask)
    ref = do_dqinit(model, mask)
    np.testing.assert_array_equal(out.pixeldq, ref.pixeldq)
    np.testing.assert_array_equal(out.groupdq, ref.groupdq)
    np.testing.assert_array_equal(out.data, data)
    assert np.all(ramp.pixeldq == 0)  # input untouched
    user = np.zeros(pdq.shape, np.uint16)
    user[1, 2] = 5
    with_user = steps.dq_init(ramp, refs["mask"], user_dq=user, backend="cpu")
    model = datamodels.RampModel(data=data.copy(), groupdq=gdq.copy(), pixeldq=pdq.copy())
    mask = datamodels.MaskModel(dq=refs["mask"].dq.copy())
    _meta(ramp, model, mask)
    ref = do_dqinit(model, mask, user_dq=user)
    np.testing.assert_array_equal(with_user.pixeldq, ref.pixeldq)
    np.testing.assert_array_equal(with_user.groupdq, ref.groupdq)


@pytest.mark.parametrize("nframes,n_grow", [(1, 1), (4, 1), (2, 2), (1, 0)])
def test_saturation_matches_stcal(nframes, n_grow):
    ramp = raw_exposure(nframes=nframes, ngroups=5)
    refs = refs_for(ramp)
    out = steps.saturation(ramp, refs["saturation"], n_pix_grow_sat=n_grow, superbias_ref=refs["superbias"],
                           backend="cpu")
    data, gdq, pdq, zf = _arrays(ramp)
    read_pattern = [[x + 1 + g * nframes for x in range(nframes)] for g in range(ramp.ngroups)]
    bias = refs["superbias"].data.copy()
    gdq_r, pdq_r, zf_r = flag_saturated_pixels(
        data.copy(), gdq.copy(), pdq.copy(), refs["saturation"].data.copy(), refs["saturation"].dq.copy(),
        65535.0, DQFLAGS, n_pix_grow_sat=n_grow, zframe=zf.copy(), read_pattern=read_pattern, bias=bias)
    np.testing.assert_array_equal(out.groupdq, gdq_r)
    np.testing.assert_array_equal(out.pixeldq, pdq_r)
    np.testing.assert_array_equal(out.zeroframe, zf_r)
    np.testing.assert_array_equal(out.data, data)
    assert (out.groupdq[0, 2:, 7, 7] & 2).all() and (out.groupdq[0, 2:, 6:9, 6:9] & 2).all() == (n_grow > 0)
    assert (out.groupdq[:, :, 3, 5] & 65).all()


def test_saturation_row_blocks_match_whole(monkeypatch):
    from gpucal.steps import _blocks

    ramp = raw_exposure(nframes=2, ngroups=4, ny=30, nx=20)
    refs = refs_for(ramp)
    for step, ref in ((steps.linearity, refs["linearity"]), (steps.superbias, refs["superbias"])):
        whole, rows = step(ramp, ref, backend="cpu"), step(ramp, ref, backend="cpu", max_memory=4 * ramp.nbytes_per_row)
        np.testing.assert_array_equal(whole.data, rows.data)
        np.testing.assert_array_equal(whole.pixeldq, rows.pixeldq)
    refs = refs_for(ramp)
    sat = refs["saturation"].data
    sat[10:20, 5:9] = 1000.0  # a bright region crossing block boundaries
    whole = steps.saturation(ramp, refs["saturation"], n_pix_grow_sat=2, backend="cpu")
    monkeypatch.setattr(_blocks, "DEFAULT_BLOCK_BYTES", 1)
    monkeypatch.setattr(_blocks, "rows_per_block", lambda ny, nx, bpp, budget: 5)
    small = steps.saturation(ramp, refs["saturation"], n_pix_grow_sat=2, backend="cpu")
    np.testing.assert_array_equal(whole.groupdq, small.groupdq)
    np.testing.assert_array_equal(whole.zeroframe, small.zeroframe)


def test_superbias_matches_jwst():
    from stdatamodels.jwst import datamodels
    from jwst.superbias.bias_sub import do_correction

    ramp = raw_exposure()
    refs = refs_for(ramp)
    out = steps.superbias(ramp, refs["superbias"], backend="cpu")
    data, gdq, pdq, zf = _arrays(ramp)
    model = datamodels.RampModel(data=data.copy(), groupdq=gdq.copy(), pixeldq=pdq.copy(), zeroframe=zf.copy())
    model.meta.exposure.zero_frame = True
    bias = datamodels.SuperBiasModel(data=refs["superbias"].data.copy(), dq=refs["superbias"].dq.copy())
    _meta(ramp, model, bias)
    ref = do_correction(model, bias)
    np.testing.assert_array_equal(out.data, ref.data)  # bit-identical: one float32 subtraction
    np.testing.assert_array_equal(out.pixeldq, ref.pixeldq)
    np.testing.assert_array_equal(out.groupdq, ref.groupdq)
    np.testing.assert_array_equal(out.zeroframe, ref.zeroframe)


def test_linearity_matches_stcal():
    ramp = steps.saturation(raw_exposure(), refs_for(raw_exposure())["saturation"], backend="cpu")
    refs = refs_for(ramp)
    out = steps.linearity(ramp, refs["linearity"], backend="cpu")
    data, gdq, pdq, zf = _arrays(ramp)
    d_r, pdq_r, zf_r = linearity_correction(data.copy(), gdq.copy(), pdq.copy(), refs["linearity"].data.copy(),
                                            refs["linearity"].dq.copy(), DQFLAGS, zframe=zf.copy())
    np.testing.assert_array_equal(out.data, d_r)  # bit-identical: same float32 Horner order
    np.testing.assert_array_equal(out.pixeldq, pdq_r)
    np.testing.assert_array_equal(out.zeroframe, zf_r)
    sat = (gdq & 2) != 0
    assert sat.any()
    np.testing.assert_array_equal(out.data[sat], data[sat])
    assert (out.pixeldq & (1 << 20)).sum() > 0


@pytest.mark.parametrize("nframes,ngroups", [(4, 6), (2, 2), (1, 4)])
def test_linearity_read_level_matches_stcal(nframes, ngroups):
    """INV_COEFFS + NFRAMES > 1: stcal's read-level path (NFRAMES = 1 stays classic, as jwst)."""
    raw = raw_exposure(nframes=nframes, ngroups=ngroups)
    ramp = steps.saturation(raw, refs_for(raw)["saturation"], backend="cpu")
    lin = refs_for(ramp)["linearity"]
    inv = lin.data.copy()
    inv[0], inv[1], inv[2:] = -inv[0], 1.0 / inv[1], -inv[2:]
    inv[1][2, 3] = 0.0  # a zero linear term in the inverse flags NO_LIN_CORR too
    lin.inv_coeffs = inv
    out = steps.linearity(ramp, lin, backend="cpu")
    data, gdq, pdq, zf = _arrays(ramp)
    pattern = [[x + 1 + g * nframes for x in range(nframes)] for g in range(ngroups)] if nframes > 1 else None
    d_r, pdq_r, zf_r = linearity_correction(data.copy(), gdq.copy(), pdq.copy(), lin.data.copy(), lin.dq.copy(),
                                            DQFLAGS, zframe=zf.copy(), ilin_coeffs=inv.copy() if pattern else None,
                                            read_pattern=pattern)
    np.testing.assert_array_equal(out.data, d_r)
    np.testing.assert_array_equal(out.pixeldq, pdq_r)
    np.testing.assert_array_equal(out.zeroframe, zf_r)


def _stcal_dark(ramp, ref):
    data, gdq, pdq, _ = _arrays(ramp)
    sci = ScienceData()
    sci.data, sci.groupdq, sci.pixeldq = data.copy(), gdq.copy(), pdq.copy()
    sci.exp_nframes, sci.exp_groupgap, sci.exp_intstart = ramp.nframes, ramp.groupgap, None
    dark = DarkData()
    dark.data, dark.groupdq = ref.data.copy(), ref.dq.copy()
    dark.exp_nframes, dark.exp_groupgap = ref.header["NFRAMES"], ref.header["GROUPGAP"]
    dark.exp_ngroups = ref.data.shape[-3]
    return dark_sub.do_correction_data(sci, dark)


@pytest.mark.parametrize("nframes,groupgap,dark_frames,dark_ints", [
    (1, 0, 20, None), (4, 1, 40, None), (2, 0, 6, None), (1, 0, 20, 3), (2, 1, 20, 1),
    (1, 0, 4, None), (1, 0, 3, 2)])  # the last two: extrapolated darks used directly (float64)
def test_dark_current_matches_stcal(nframes, groupgap, dark_frames, dark_ints):
    ramp = raw_exposure(nframes=nframes, groupgap=groupgap, ngroups=5, zeroframe=False)
    refs = refs_for(ramp, dark_frames=dark_frames, dark_ints=dark_ints)
    res = steps.dark_current(ramp, refs["dark"], backend="cpu")
    ref_out, _ = _stcal_dark(ramp, refs["dark"])
    assert not res.skipped
    np.testing.assert_array_equal(res.ramp.data, ref_out.data)
    np.testing.assert_array_equal(res.ramp.pixeldq, ref_out.pixeldq)
    np.testing.assert_array_equal(res.ramp.groupdq, ramp.block(0, ramp.ny).groupdq)
    assert res.average_dark_current.shape == (ramp.ny, ramp.nx)


def test_dark_current_skips_when_dark_has_more_frames_per_group():
    ramp = raw_exposure(zeroframe=False)
    refs = refs_for(ramp)
    refs["dark"].header["NFRAMES"] = 2
    res = steps.dark_current(ramp, refs["dark"], average_dark_current=0.5, backend="cpu")
    assert res.skipped
    np.testing.assert_array_equal(res.ramp.data, ramp.block(0, ramp.ny).data)
    assert np.all(res.average_dark_current == np.float32(0.5))


def test_group_scale_matches_jwst():
    from stdatamodels.jwst import datamodels
    from jwst.group_scale.group_scale import do_correction

    ramp = raw_exposure(nframes=5, zeroframe=False)
    ramp.meta["FRMDIVSR"] = 4
    out = steps.group_scale(ramp, backend="cpu")
    data, gdq, pdq, _ = _arrays(ramp)
    model = datamodels.RampModel(data=data.copy(), groupdq=gdq.copy(), pixeldq=pdq.copy())
    model.meta.exposure.nframes, model.meta.exposure.frame_divisor = 5, 4
    do_correction(model)
    np.testing.assert_array_equal(out.data, model.data)
    del ramp.meta["FRMDIVSR"]
    np.testing.assert_array_equal(steps.group_scale(ramp, backend="cpu").data, data)


@pytest.mark.parametrize("ngroups", [3, 5])
def test_firstframe_lastframe_match_jwst(ngroups):
    from stdatamodels.jwst import datamodels
    from jwst.firstframe.firstframe_sub import do_correction as first
    from jwst.lastframe.lastframe_sub import do_correction as last

    ramp = raw_exposure(ngroups=ngroups, zeroframe=False, instrument="MIRI", detector="MIRIMAGE")
    ramp = steps.saturation(ramp, refs_for(ramp)["saturation"], backend="cpu")
    data, gdq, pdq, _ = _arrays(ramp)
    cases = [(lambda m: first(m, bright_use_group1=True), lambda r: steps.firstframe(r, backend="cpu")),
             (lambda m: first(m, bright_use_group1=False),
              lambda r: steps.firstframe(r, bright_use_group1=False, backend="cpu")),
             (last, lambda r: steps.lastframe(r, backend="cpu"))]
    for fn, ours in cases:
        model = datamodels.RampModel(data=data.copy(), groupdq=gdq.copy(), pixeldq=pdq.copy())
        ref = fn(model)
        out = ours(ramp)
        np.testing.assert_array_equal(out.groupdq, ref.groupdq)
        np.testing.assert_array_equal(out.pixeldq, ref.pixeldq)


def test_frames_skip_non_miri():
    ramp = raw_exposure(ngroups=5, zeroframe=False)
    np.testing.assert_array_equal(steps.lastframe(ramp).groupdq, ramp.groupdq)
    np.testing.assert_array_equal(steps.firstframe(ramp).groupdq, ramp.groupdq)


def test_gain_scale():
    from gpucal.products import RateProduct

    rng = np.random.default_rng(1)
    arrs = {k: rng.random((4, 5), dtype=np.float32) for k in ("data", "err", "var_poisson", "var_rnoise")}
    prod = RateProduct(dq=np.zeros((4, 5), np.uint32), **copy.deepcopy(arrs))
    out = steps.gain_scale(prod, 1.7, backend="cpu")
    np.testing.assert_array_equal(out.data, arrs["data"] * 1.7)
    np.testing.assert_array_equal(out.var_rnoise, arrs["var_rnoise"] * 1.7**2)
    assert out.meta["GAINFACT"] == 1.7 and steps.gain_scale(prod, None) is prod


def test_average_dark_current_sources(tmp_path):
    from gpucal.refs import read_dark, write_calib_refs

    ramp = raw_exposure(zeroframe=False)
    refs = refs_for(ramp)
    dark = refs["dark"]
    dark.average_dark_current = np.full((ramp.ny, ramp.nx), 0.25, np.float32)
    dark.header["AVDRKCUR"] = 0.125
    back = read_dark(write_calib_refs({"dark": dark}, tmp_path, "a", instrument="NIRCAM", detector="NRCA1")["dark"])
    np.testing.assert_array_equal(back.average_dark_current, dark.average_dark_current)
    assert np.all(steps.dark_current(ramp, back, backend="cpu").average_dark_current == np.float32(0.25))
    assert np.all(steps.dark_current(ramp, back, average_dark_current=2.0, backend="cpu").average_dark_current == 2)
    back.average_dark_current = np.zeros_like(back.average_dark_current)
    assert np.all(steps.dark_current(ramp, back, backend="cpu").average_dark_current == np.float32(0.125))


def test_chain_feeds_ramp_fit():
    """dq_init -> saturation -> superbias -> linearity -> dark_current -> gpucal.ramp_fit runs end to end."""
    from gpucal import ramp_fit
    from gpucal.synthetic import make_exposure

    exp = make_exposure(1, 5, 24, 20, seed=4, saturation_dn=30000.0)
    ramp = raw_exposure(1, 5, 24, 20, seed=4, zeroframe=False)
    refs = refs_for(ramp)
    refs["dark"].header["AVDRKCUR"] = 0.01
    r = steps.dq_init(ramp, refs["mask"], backend="cpu")
    r = steps.saturation(r, refs["saturation"], superbias_ref=refs["superbias"], backend="cpu")
    r = steps.superbias(r, refs["superbias"], backend="cpu")
    r = steps.linearity(r, refs["linearity"], backend="cpu")
    dark = steps.dark_current(r, refs["dark"], backend="cpu")
    result = ramp_fit(dark.ramp, exp.gain, exp.readnoise, backend="cpu",
                      average_dark_current=dark.average_dark_current)
    assert result.rate.data.shape == (24, 20)
    assert np.isfinite(result.rate.data).mean() > 0.9


def test_steps_leave_their_input_untouched():
    ramp = raw_exposure(nframes=2, ngroups=4)
    refs = refs_for(ramp)
    before = [np.array(a, copy=True) for a in _arrays(ramp)]
    ramp.meta["FRMDIVSR"] = 1
    steps.group_scale(ramp, backend="cpu")
    steps.dq_init(ramp, refs["mask"], backend="cpu")
    steps.saturation(ramp, refs["saturation"], superbias_ref=refs["superbias"], backend="cpu")
    steps.superbias(ramp, refs["superbias"], backend="cpu")
    steps.linearity(ramp, refs["linearity"], backend="cpu")
    steps.dark_current(ramp, refs["dark"], backend="cpu")
    for a, b in zip(before, _arrays(ramp)):
        np.testing.assert_array_equal(a, b)
