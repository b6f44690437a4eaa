"""clean_flicker_noise: column medians over background pixels, per group (notebook) or per difference (jwst)."""

from __future__ import annotations

import numpy as np
import pytest

from gpucal import Ramp
from gpucal.errors import InputError
from gpucal.steps import clean_flicker_noise
from gpucal.steps.clean_flicker_noise import source_mask

NINTS, NGROUPS, NY, NX = 2, 4, 12, 10


def make_ramp(data, groupdq=None, pixeldq=None, zeroframe=None, **meta):
    data = np.asarray(data, np.float32)
    nints, ngroups, ny, nx = data.shape
    gdq = np.zeros(data.shape, np.uint8) if groupdq is None else groupdq
    pdq = np.zeros((ny, nx), np.uint32) if pixeldq is None else pixeldq
    return Ramp(data, gdq, pdq, group_time=10.0, frame_time=10.0, nframes=1, groupgap=0,
                zeroframe=zeroframe, meta=dict({"SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": nx, "SUBSIZE2": ny}, **meta))


def striped_exposure(seed=0):
    """Integer-valued (exact in float32) ramps: a sky ramp, a bright source block, and a 1/f
    offset per (integration, group, column)."""
    rng = np.random.default_rng(seed)
    g = np.arange(NGROUPS, dtype=np.float32)[None, :, None, None]
    data = np.broadcast_to(20.0 * g, (NINTS, NGROUPS, NY, NX)).copy()
    source = np.zeros((NY, NX), bool)
    source[4:8, 3:7] = True
    data[:, :, source] += (500.0 * (g + 1)).reshape(1, NGROUPS, 1)
    stripes = rng.integers(-30, 30, size=(NINTS, NGROUPS, 1, NX)).astype(np.float32)
    return data + stripes, stripes, source


def notebook_correction(image, nanmask):
    """The TSO notebook's group_level_1f_correction (nanmask: 1 background, NaN source)."""
    return image - np.nanmedian(image * nanmask, axis=0)


def test_stripes_removed_exactly_and_source_kept():
    data, stripes, source = striped_exposure()
    out = clean_flicker_noise(make_ramp(data), mask=source, backend="cpu")
    expected = data - stripes - 20.0 * np.arange(NGROUPS, dtype=np.float32)[None, :, None, None]
    np.testing.assert_array_equal(out.data, expected)
    # background pixels end at 0 in every group; the source keeps its own signal
    assert np.all(out.data[:, :, ~source] == 0.0)
    np.testing.assert_array_equal(out.data[0, 2][source], np.full(source.sum(), 1500.0, np.float32))


def test_equals_the_notebook_function_bit_for_bit():
    rng = np.random.default_rng(4)
    data = rng.normal(100.0, 7.0, size=(NINTS, NGROUPS, NY, NX)).astype(np.float32)
    source = rng.random((NY, NX)) < 0.3
    source[:, 2] = False
    source[:5, 2] = True  # column 2: an odd number of background rows; others mostly even/odd mixes
    # float32 mask: the notebook's float64 mask would move the arithmetic to float64
    nanmask = np.where(source, np.nan, 1.0).astype(np.float32)
    out = clean_flicker_noise(make_ramp(data), mask=source, backend="cpu")
    for i in range(NINTS):
        for g in range(NGROUPS):
            ref = notebook_correction(data[i, g], nanmask)
            assert ref.dtype == np.float32
            np.testing.assert_array_equal(out.data[i, g], ref)


def test_even_count_median_is_midpoint_and_axis_one():
    data = np.zeros((1, 1, 4, 3), np.float32)
    data[0, 0, :, 0] = [1.0, 2.0, 4.0, 8.0]     # median 3.0
    data[0, 0, :, 1] = [5.0, 1.0, 3.0, 100.0]   # row 3 masked: median 3.0
    data[0, 0, :, 2] = [0.1, 0.2, 0.3, 0.4]     # median (0.2 + 0.3) / 2 in float32
    mask = np.zeros((4, 3), bool)
    mask[3, 1] = True
    out = clean_flicker_noise(make_ramp(data), mask=mask, backend="cpu")
    med = np.array([3.0, 3.0, (np.float32(0.2) + np.float32(0.3)) / np.float32(2)], np.float32)
    np.testing.assert_array_equal(out.data[0, 0], data[0, 0] - med)
    rows = clean_flicker_noise(make_ramp(data), mask=mask, axis=1, backend="cpu")
    row_med = np.ma.median(np.ma.array(data[0, 0], mask=mask), axis=1).astype(np.float32)
    np.testing.assert_array_equal(rows.data[0, 0], data[0, 0] - row_med[:, None])


def test_nan_dq_and_fully_masked_columns():
    data, stripes, source = striped_exposure(1)
    data[0, 1, 0, 0] = np.nan
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 1, 1:, 0] = 1              # column 0 of (0, 1): only row 0 left, and it is NaN
    gdq[1, 2, 0, 1] = 4               # a jump pixel drops out of the median
    data[1, 2, 0, 1] += 900.0
    out = clean_flicker_noise(make_ramp(data, gdq), mask=source, backend="cpu")
    assert np.isnan(out.data[0, 1, 0, 0])
    np.testing.assert_array_equal(out.data[0, 1, 1:, 0], data[0, 1, 1:, 0])   # nothing usable: 0 subtracted
    assert out.data[1, 2, 1, 1] == 40.0 - 40.0 and out.data[1, 2, 0, 1] == 900.0


def test_dq_zeroframe_copied_and_input_untouched():
    data, _, source = striped_exposure()
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 3, 2, 2] = 2
    pdq = np.zeros((NY, NX), np.uint32)
    pdq[1, 1] = 1 << 31
    zf = np.full((NINTS, NY, NX), 7.0, np.float32)
    ramp = make_ramp(data, gdq, pdq, zf)
    before = [np.array(a, copy=True) for a in (ramp.data, ramp.groupdq, ramp.pixeldq, ramp.zeroframe)]
    out = clean_flicker_noise(ramp, mask=source, backend="cpu")
    for a, b in zip((ramp.data, ramp.groupdq, ramp.pixeldq, ramp.zeroframe), before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out.groupdq, gdq)
    np.testing.assert_array_equal(out.pixeldq, pdq)
    np.testing.assert_array_equal(out.zeroframe, zf)
    assert out.data.dtype == np.float32 and out.data is not ramp.data


def test_source_mask_from_threshold():
    data, stripes, source = striped_exposure(2)
    rng = np.random.default_rng(5)
    data += rng.normal(0.0, 1.0, data.shape).astype(np.float32)
    pdq = np.zeros((NY, NX), np.uint32)
    pdq[0, 9] = 1
    ramp = make_ramp(data, pixeldq=pdq)
    found = source_mask(ramp, 5.0, backend="cpu")
    expected = source.copy()
    expected[0, 9] = True
    np.testing.assert_array_equal(found, expected)
    auto = clean_flicker_noise(ramp, mask_threshold=5.0, backend="cpu")
    given = clean_flicker_noise(ramp, mask=expected, backend="cpu")
    np.testing.assert_array_equal(auto.data, given.data)


def test_differences_rebuild_the_ramp():
    data, stripes, source = striped_exposure(3)
    out = clean_flicker_noise(make_ramp(data), mask=source, differences=True, backend="cpu")
    np.testing.assert_array_equal(out.data[:, 0], data[:, 0])
    # each difference loses its column offset (and the sky step): background stays at group 0
    bkg = np.broadcast_to(~source, (NINTS, NGROUPS, NY, NX))
    np.testing.assert_array_equal(out.data[bkg].reshape(NINTS, NGROUPS, -1),
                                  np.repeat(data[:, :1][bkg[:, :1]].reshape(NINTS, 1, -1), NGROUPS, axis=1))


def test_blocks_of_integrations_match_whole():
    data, _, source = striped_exposure(6)
    ramp = make_ramp(data)
    for differences in (False, True):
        whole = clean_flicker_noise(ramp, mask=source, differences=differences, backend="cpu")
        seen = []
        blocked = clean_flicker_noise(ramp, mask=source, differences=differences, backend="cpu",
                                      max_memory=1, progress=lambda d, t: seen.append((d, t)))
        np.testing.assert_array_equal(whole.data, blocked.data)
        assert seen == [(1, NINTS), (2, NINTS)]


@pytest.mark.parametrize("kwargs, match", [
    ({"mask": np.zeros((NY, NX + 1), bool)}, "mask must be a bool array"),
    ({"mask": np.zeros((NY, NX), np.uint8)}, "mask must be a bool array"),
    ({"axis": 2}, "axis must be 0"),
    ({"mask_threshold": -1.0}, "mask_threshold"),
    ({"mask_threshold": float("nan")}, "mask_threshold"),
])
def test_bad_arguments(kwargs, match):
    data, _, _ = striped_exposure()
    with pytest.raises(InputError, match=match):
        clean_flicker_noise(make_ramp(data), backend="cpu", **kwargs)


def test_bad_inputs():
    with pytest.raises(InputError, match="gpucal.Ramp"):
        clean_flicker_noise(np.zeros((1, 2, 3, 4), np.float32), backend="cpu")
    one_group = make_ramp(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(InputError, match="ngroups >= 2"):
        clean_flicker_noise(one_group, backend="cpu")
    nan_ramp = make_ramp(np.full((1, 2, 4, 4), np.nan, np.float32))
    with pytest.raises(InputError, match="no finite pixel"):
        clean_flicker_noise(nan_ramp, backend="cpu")


@pytest.mark.parametrize("fastaxis, slowaxis", [(2, 1), (-1, 2)])
def test_differences_match_jwst(tmp_path, fastaxis, slowaxis):
    pytest.importorskip("jwst")
    from stdatamodels.jwst import datamodels

    from jwst.clean_flicker_noise.clean_flicker_noise import do_correction
    from tests.jwst_models import ramp_model

    rng = np.random.default_rng(8)
    data = rng.normal(1000.0, 12.0, (NINTS, NGROUPS, NY, NX)).astype(np.float32)
    data += np.cumsum(rng.normal(0.0, 4.0, (NINTS, NGROUPS, 1, NX)), axis=1).astype(np.float32)
    data[1, 2, 3, 4] = np.nan
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 2, 5, 5] = 4
    gdq[1, 1, 0, :] = 1
    gdq[0, 3] = 1                      # a plane with no usable pixel is left alone
    source = np.zeros((NY, NX), bool)
    source[3:9, 2:6] = True
    ramp = make_ramp(data, gdq, INSTRUME="NIRSPEC", DETECTOR="NRS1", EXP_TYPE="NRS_BRIGHTOBJ", SUBARRAY="SUB32")
    model = ramp_model(ramp, fastaxis=fastaxis, slowaxis=slowaxis)
    path = tmp_path / "mask.fits"
    datamodels.ImageModel(data=(~source).astype(np.float32)).save(path)
    ref, *_, status = do_correction(model, fit_method="median", background_method=None, user_mask=str(path))
    assert status == "COMPLETE"
    out = clean_flicker_noise(ramp, mask=source, differences=True, axis=abs(slowaxis) - 1, backend="cpu")
    np.testing.assert_array_equal(out.data, ref.data)
    assert np.isnan(out.data[1, 2:, 3, 4]).all()   # jwst carries a NaN difference into later groups


@pytest.mark.gpu
@pytest.mark.parametrize("differences", [False, True])
def test_gpu_equals_cpu(differences):
    pytest.importorskip("cupy")
    rng = np.random.default_rng(9)
    data = rng.normal(50.0, 9.0, (3, 5, 64, 48)).astype(np.float32)
    data[0, 1, 2, 3] = np.nan
    gdq = (rng.random(data.shape) < 0.02).astype(np.uint8) * 4
    data[:, :, 20:30, 10:20] += 5000.0
    ramp = make_ramp(data, gdq)
    for axis in (0, 1):
        cpu = clean_flicker_noise(ramp, differences=differences, axis=axis, backend="cpu")
        gpu = clean_flicker_noise(ramp, differences=differences, axis=axis, backend="gpu")
        np.testing.assert_array_equal(cpu.data, gpu.data)
    np.testing.assert_array_equal(source_mask(ramp, 3.0, backend="cpu"), source_mask(ramp, 3.0, backend="gpu"))
