"""CuPy vs numpy identity for every step (runs only with a usable GPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from steps_cases import raw_exposure, refs_for

from gpucal import steps

pytestmark = pytest.mark.gpu


def _same(a, b):
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.groupdq, b.groupdq)
    np.testing.assert_array_equal(a.pixeldq, b.pixeldq)
    if a.zeroframe is not None:
        np.testing.assert_array_equal(a.zeroframe, b.zeroframe)


@pytest.mark.parametrize("nframes", [1, 4])
def test_ramp_steps_gpu_equal_cpu(nframes):
    ramp = raw_exposure(2, 6, 64, 72, nframes=nframes)
    refs = refs_for(ramp)
    with_inverse = copy.deepcopy(refs["linearity"])
    with_inverse.inv_coeffs = with_inverse.data.copy()
    calls = [
        lambda r, b: steps.group_scale(r, backend=b),
        lambda r, b: steps.dq_init(r, refs["mask"], backend=b),
        lambda r, b: steps.saturation(r, refs["saturation"], superbias_ref=refs["superbias"], backend=b),
        lambda r, b: steps.saturation(r, refs["saturation"], n_pix_grow_sat=2, backend=b),
        lambda r, b: steps.superbias(r, refs["superbias"], backend=b),
        lambda r, b: steps.linearity(r, refs["linearity"], backend=b),
        lambda r, b: steps.linearity(r, with_inverse, backend=b),  # read-level path when nframes > 1
        lambda r, b: steps.dark_current(r, refs["dark"], backend=b).ramp,
    ]
    for call in calls:
        _same(call(ramp, "gpu"), call(ramp, "cpu"))


def test_miri_frames_gpu_equal_cpu():
    ramp = raw_exposure(2, 5, 32, 40, zeroframe=False, instrument="MIRI", detector="MIRIMAGE")
    refs = refs_for(ramp, dark_frames=10, dark_ints=2)
    ramp = steps.saturation(ramp, refs["saturation"], backend="cpu")
    for call in (steps.firstframe, steps.lastframe):
        _same(call(ramp, backend="gpu"), call(ramp, backend="cpu"))
    _same(steps.dark_current(ramp, refs["dark"], backend="gpu").ramp,
          steps.dark_current(ramp, refs["dark"], backend="cpu").ramp)


def test_gain_scale_gpu_equal_cpu():
    from gpucal.products import RateProduct

    rng = np.random.default_rng(2)
    arrs = {k: rng.random((8, 9), dtype=np.float32) for k in ("data", "err", "var_poisson", "var_rnoise")}
    prod = RateProduct(dq=np.zeros((8, 9), np.uint32), **arrs)
    a, b = steps.gain_scale(prod, 1.3, backend="gpu"), steps.gain_scale(prod, 1.3, backend="cpu")
    for key in arrs:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
