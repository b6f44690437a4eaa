"""refpix bad input: clear errors, the input ramp untouched."""

import numpy as np
import pytest

from gpucal import dq as dqflags
from gpucal.errors import InputError
from gpucal.steps import refpix
from refpix_cases import structured


@pytest.fixture
def ramp():
    return structured("NIRCAM", 1, 2, 32, 48, 1, 1, FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=1)


def test_missing_keywords(ramp):
    bad = dict(ramp.meta)
    ramp.meta.pop("FASTAXIS")
    with pytest.raises(InputError, match="FASTAXIS/SLOWAXIS"):
        refpix(ramp, backend="cpu")
    ramp.meta.update(bad)
    ramp.meta.pop("SUBSTRT2")
    with pytest.raises(InputError, match="SUBSTRT1/2"):
        refpix(ramp, backend="cpu")
    ramp.meta.update(bad, SUBSIZE1=47)
    with pytest.raises(InputError, match="disagree"):
        refpix(ramp, backend="cpu")


@pytest.mark.parametrize("kw, match", [(dict(refpix_algorithm="sirs"), "not supported"),
                                       (dict(side_smoothing_length=0), "positive"),
                                       (dict(siglimit=0.0), "siglimit")])
def test_bad_parameters(ramp, kw, match):
    with pytest.raises(InputError, match=match):
        refpix(ramp, backend="cpu", **kw)


def test_single_parity_reference_set(ramp):
    """jwst crashes (empty index arrays); gpucal says why."""
    ramp.pixeldq[:4, 0:48:2] |= dqflags.REFERENCE_PIXEL
    before = ramp.data.copy()
    with pytest.raises(InputError, match="only in"):
        refpix(ramp, backend="cpu")
    np.testing.assert_array_equal(ramp.data, before)
    out = refpix(ramp, backend="cpu", odd_even_columns=False)
    assert out.meta["S_REFPIX"] == "COMPLETE"


def test_no_reference_pixels_leaves_data(ramp):
    out = refpix(ramp, backend="cpu")
    np.testing.assert_array_equal(out.data, ramp.data)
    assert out.meta["S_REFPIX"] == "COMPLETE"


def test_not_a_ramp():
    with pytest.raises(InputError, match="gpucal.Ramp"):
        refpix(np.zeros((1, 1, 4, 4)))
