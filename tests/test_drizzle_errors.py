"""Bad input to gpucal.resample.Drizzle: clear errors (ValueError subclasses, as drizzle raises)."""

import numpy as np
import pytest

from drizzle_cases import affine_pixmap, random_image
from gpucal.errors import InputError
from gpucal.resample import Drizzle

SHAPE = (10, 12)


def _drizzle(**kw):
    return Drizzle(out_shape=SHAPE, backend="cpu", **kw)


def test_unknown_kernel():
    with pytest.raises(ValueError, match="Kernel 'sinc' is not supported"):
        _drizzle(kernel="sinc")


@pytest.mark.parametrize("bad, match", [
    (dict(pixmap=affine_pixmap((9, 12))), "'pixmap' shape"),
    (dict(weight_map=np.ones((10, 11), np.float32)), "'weight_map' shape"),
    (dict(dq=np.zeros((9, 12), np.uint32)), "'dq' shape"),
    (dict(exptime=0.0), "exptime"),
    (dict(iscale=-1.0), "iscale"),
    (dict(pixel_scale_ratio=0.0), "pscale_ratio"),
    (dict(wht_scale=0.0), "weight scale"),
    (dict(in_units="electrons"), "units"),
])
def test_bad_add_image_arguments(bad, match):
    kw = dict(data=random_image(SHAPE), exptime=1.0, pixmap=affine_pixmap(SHAPE))
    kw.update(bad)
    d = _drizzle()
    with pytest.raises(ValueError, match=match):
        d.add_image(**kw)


def test_dq_must_be_a_small_integer_type():
    with pytest.raises(TypeError, match="'dq' must be of an unsigned integer type"):
        _drizzle().add_image(random_image(SHAPE), 1.0, affine_pixmap(SHAPE), dq=np.zeros(SHAPE, np.float32))


def test_all_nan_pixmap():
    pm = np.full(SHAPE + (2,), np.nan)
    pm[3, 4] = (1.0, 1.0)
    with pytest.raises(InputError, match="too few valid pixels"):
        _drizzle().add_image(random_image(SHAPE), 1.0, pm)


def test_inconsistent_outputs():
    with pytest.raises(ValueError, match="Inconsistent data shapes"):
        Drizzle(out_shape=SHAPE, out_img=np.zeros((3, 3), np.float32), backend="cpu")
    with pytest.raises(ValueError, match="Exposure time must be 0.0"):
        Drizzle(out_shape=SHAPE, exptime=1.0, backend="cpu")


def test_scanner_survives_a_zero_length_edge():
    """A polygon whose inverted vertices coincide has a 0/0 edge slope; drizzle 2.2.0 turns the
    NaN column limit into an int (undefined behaviour, a segfault in practice); gpucal skips
    those rows instead of failing."""
    from gpucal.resample import scanner

    poly = [(-0.4874375031483963, -0.4874375031483963), (4.487437503148397, -0.4874375031483963),
            (4.487437503148397, 0.3078307530853054), (-0.4874375031483963, -0.4874375031483963)]
    rows = list(scanner._scanlines(poly, (0, 4, 0, 4)))
    assert all(0 <= lo <= hi <= 4 for _, lo, hi in rows)
