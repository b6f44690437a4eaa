"""gpucal.steps.refpix against jwst 3.0.0 reference_pixels.correct_model: identical bits.

gpucal computes the reference statistics with the same numpy reductions in the same dtype as
jwst (float32 for the exposure's first plane when side pixels are used, float64 afterwards:
jwst's reused work buffer), so every case here is bit-identical, not just within ulps.
Exposures come from ``gpucal.synthetic.make_exposure`` with added reference-pixel structure
(per-amplifier and odd/even-column offsets, row noise, DO_NOT_USE reference pixels, a NaN).
Sizes: one NIR full frame of 1x2 groups; other NIR cases are 2048-wide strips or small
subarrays placed against the detector edges; MIRI is full frame (1024x1032), 2x3 groups.
"""

import numpy as np
import pytest

from gpucal import dq as dqflags
from gpucal.steps import refpix
from jwst_models import ramp_model
from refpix_cases import structured

rp = pytest.importorskip("jwst.refpix.reference_pixels")

JWST_DEFAULTS = dict(odd_even_columns=True, use_side_ref_pixels=True, side_smoothing_length=11, side_gain=1.0,
                     odd_even_rows=True, siglimit=3.0)


def jwst_refpix(ramp, **kw):
    params = dict(JWST_DEFAULTS, **kw)
    model = ramp_model(ramp, fastaxis=ramp.meta.get("FASTAXIS"), slowaxis=ramp.meta.get("SLOWAXIS"),
                       noutputs=ramp.meta.get("NOUTPUTS"))
    model.meta.subarray.name = ramp.meta.get("SUBARRAY", "GENERIC")
    conv = dict(refpix_algorithm="median", sirs_kernel_model=None, sigreject=4.0, gaussmooth=1.0, halfwidth=30)
    status = rp.correct_model(model, params["odd_even_columns"], params["use_side_ref_pixels"],
                              params["side_smoothing_length"], params["side_gain"], params["odd_even_rows"], conv,
                              params["siglimit"])
    zf = np.array(model.zeroframe) if ramp.zeroframe is not None else None
    return np.array(model.data), zf, status


def assert_identical(a, b):
    np.testing.assert_array_equal(a, b)
    finite = ~np.isnan(b)
    np.testing.assert_array_equal(a.view(np.uint32)[finite], b.view(np.uint32)[finite])


def check(ramp, **kw):
    before = np.array(ramp.data, copy=True)
    ref, ref_zf, status = jwst_refpix(ramp, **kw)
    out = refpix(ramp, backend="cpu", **kw)
    assert_identical(out.data, ref)
    if ref_zf is not None:
        assert_identical(out.zeroframe, ref_zf)
    np.testing.assert_array_equal(ramp.data, before)
    return out, status


def test_nir_full_frame():
    ramp = structured("NIRCAM", 1, 2, 2048, 2048, 1, 1, FASTAXIS=-1, SLOWAXIS=2)
    out, status = check(ramp)
    assert status == rp.REFPIX_OK and out.meta["S_REFPIX"] == "COMPLETE"
    assert np.count_nonzero(out.data != ramp.data) > 0.9 * ramp.data.size


STRIP = dict(NOUTPUTS=4)


@pytest.mark.parametrize("axes", [(-1, 2), (2, 1), (-2, -1), (1, -2)], ids=lambda a: f"fast{a[0]}slow{a[1]}")
def test_nir_four_output_strips(axes):
    """2048-wide strips at the bottom (or, transposed, the left) of the detector: one edge, side medians."""
    ramp = structured("NIRCAM", 2, 2, 40, 2048, 1, 1, seed=1, FASTAXIS=axes[0], SLOWAXIS=axes[1], **STRIP)
    check(ramp)


@pytest.mark.parametrize("kw", [dict(odd_even_columns=False), dict(use_side_ref_pixels=False),
                                dict(side_smoothing_length=10, side_gain=0.5), dict(siglimit=2.0)],
                         ids=["no_odd_even", "no_side", "even_length_gain", "siglimit"])
def test_nir_non_default_parameters(kw):
    ramp = structured("NIRCAM", 2, 2, 36, 2048, 1, 2013, seed=2, FASTAXIS=1, SLOWAXIS=-2, **STRIP)
    check(ramp, **kw)


@pytest.mark.parametrize("odd_even", [True, False])
def test_nir_single_output_subarray_with_zeroframe(odd_even):
    ramp = structured("NIRCAM", 2, 3, 64, 64, 1, 1, seed=3, FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=1, SUBARRAY="SUB64P")
    ramp.pixeldq[:4, :] |= dqflags.REFERENCE_PIXEL
    ramp.pixeldq[:, :4] |= dqflags.REFERENCE_PIXEL
    zf = np.array(ramp.data[:, 0], copy=True)
    zf[0, 10:12, 20] = 0.0
    ramp.zeroframe = zf
    ramp.meta["ZEROFRAM"] = True
    out, _ = check(ramp, odd_even_columns=odd_even)
    assert out.zeroframe[0, 10, 20] == 0.0


def test_nir_zeroframe_four_outputs():
    ramp = structured("NIRCAM", 2, 2, 32, 2048, 1, 2017, seed=4, FASTAXIS=-1, SLOWAXIS=2, **STRIP)
    ramp.zeroframe = np.array(ramp.data[:, 0], copy=True)
    ramp.zeroframe[1, 5, 6] = 0.0
    ramp.meta["ZEROFRAM"] = True
    check(ramp)


def test_nirspec_edgeless_subarray():
    ramp = structured("NIRSPEC", 1, 2, 32, 64, 1000, 500, seed=5, detector="NRS1", FASTAXIS=2, SLOWAXIS=1,
                      NOUTPUTS=1, SUBARRAY="SUB32")
    check(ramp)


@pytest.mark.parametrize("odd_even_rows", [True, False])
def test_miri_full_frame(odd_even_rows):
    ramp = structured("MIRI", 2, 3, 1024, 1032, 1, 1, seed=6)
    check(ramp, odd_even_rows=odd_even_rows)


def test_miri_bad_reference_column_stops_correction():
    ramp = structured("MIRI", 2, 3, 1024, 1032, 1, 1, seed=7)
    ramp.pixeldq[1::2, 1029] |= dqflags.DO_NOT_USE
    out, _ = check(ramp)
    assert out.meta["S_REFPIX"] == "COMPLETE"


def test_skips():
    miri = structured("MIRI", 1, 2, 64, 72, 1, 1)
    out = refpix(miri, backend="cpu")
    assert out.meta["S_REFPIX"] == "SKIPPED"
    np.testing.assert_array_equal(out.data, miri.data)
    _, _, status = jwst_refpix(miri)
    assert status == rp.SUBARRAY_SKIPPED
    outside = structured("NIRCAM", 1, 2, 32, 64, 2000, 1, FASTAXIS=-1, SLOWAXIS=2)
    assert refpix(outside, backend="cpu").meta["S_REFPIX"] == "SKIPPED"
    assert jwst_refpix(outside)[2] == rp.SUBARRAY_DOESNTFIT


def test_one_plane_at_a_time(monkeypatch):
    """Chunking the planes (the work-buffer precision state carries over) changes nothing."""
    import importlib

    monkeypatch.setattr(importlib.import_module("gpucal.steps.refpix"), "PLANES_PER_CHUNK", 1)
    check(structured("MIRI", 2, 3, 1024, 1032, 1, 1, seed=8))
    ramp = structured("NIRCAM", 2, 3, 24, 2048, 1, 2025, seed=9, FASTAXIS=-1, SLOWAXIS=2, **STRIP)
    check(ramp)


@pytest.mark.parametrize("plane", [0, 1], ids=["first_plane_float32", "later_plane_float64"])
def test_constant_reference_box_takes_float64_mean(plane):
    """All-equal good values: jwst's float64 mean, mixed into float32 or float64 work."""
    ramp = structured("NIRCAM", 1, 2, 24, 2048, 1, 1, seed=10, FASTAXIS=1, SLOWAXIS=2, **STRIP)
    ramp.data[0, plane, :4, 512:1024:2] = np.float32(1234.567)
    ramp.data[0, plane, :4, 1:512:2] = np.float32(-3.3)
    check(ramp)
