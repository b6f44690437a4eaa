"""Drizzle on a real GPU against the numpy backend: identical bits, NaN positions included
(``pytest -m gpu``; needs no drizzle, astropy or jwst)."""

import warnings

import numpy as np
import pytest

from drizzle_cases import KERNELS, add_nan_islands, affine_pixmap, outputs, random_image, run
from gpucal.resample import Drizzle

pytestmark = pytest.mark.gpu


def _calls(shape, n, **extra):
    dq = np.random.default_rng(7).integers(0, 16, shape).astype(np.uint32)
    calls = []
    for s in range(n):
        pm = affine_pixmap(shape, 17 * s, 0.6 + 0.25 * (s % 6), flip=s % 2 == 1, shift=(0.3 * (s % 3), -0.7 * (s % 2)),
                           distort=0.03)
        weights = np.random.default_rng(s).random(shape).astype(np.float32)
        weights[weights < 0.1] = 0
        calls.append(dict(data=random_image(shape, s, nan_fraction=0.01), exptime=1.0 + s,
                          pixmap=add_nan_islands(pm, seed=s), weight_map=weights, dq=dq,
                          data2=[random_image(shape, 50 + s), None], pixfrac=[1.0, 0.7, 0.5, 0.1][s % 4], **extra))
    return calls


def _assert_identical(calls, **init):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpu = outputs(run(Drizzle, calls, backend="gpu", **init))
        cpu = outputs(run(Drizzle, calls, backend="cpu", **init))
    assert gpu.keys() == cpu.keys()
    for name in cpu:
        np.testing.assert_array_equal(gpu[name].view(np.uint8), cpu[name].view(np.uint8), err_msg=name)


@pytest.mark.parametrize("kernel", KERNELS)
def test_var_variant_identical(kernel):
    _assert_identical(_calls((61, 57), 5), kernel=kernel, out_shape=(70, 66), fillval="NaN", fillval2=0)


@pytest.mark.parametrize("kernel", KERNELS)
def test_plain_many_images_identical(kernel):
    calls = [dict(c, dq=None, data2=None) for c in _calls((23, 25), 40)]
    _assert_identical(calls, kernel=kernel, out_shape=(30, 30))


def test_large_image_identical():
    shape = (512, 512)
    calls = [dict(data=random_image(shape, 1), exptime=1.0, pixmap=affine_pixmap(shape, 30, 1.0, distort=0.01))]
    _assert_identical(calls, kernel="square", out_shape=(700, 700))
