"""CPU steps run their row blocks on several threads: the result must not depend on how
many, nor on the block size (halo rows included)."""

from __future__ import annotations

import numpy as np
import pytest

from gpucal import steps
from gpucal.refs import make_calib_refs
from gpucal.synthetic import make_exposure

SHAPE = (2, 5, 37, 24)  # an odd row count, so the last block is short


@pytest.fixture(scope="module")
def inputs():
    ramp = make_exposure(*SHAPE, seed=3, saturation_dn=20000.0).ramp
    return ramp, make_calib_refs(SHAPE[2], SHAPE[3], seed=4, saturation_dn=20000.0)


def _chain(ramp, refs, max_memory):
    kw = {"backend": "cpu", "max_memory": max_memory}
    r = steps.dq_init(ramp, refs["mask"], **kw)
    r = steps.saturation(r, refs["saturation"], n_pix_grow_sat=2, **kw)
    r = steps.superbias(r, refs["superbias"], **kw)
    r = steps.linearity(r, refs["linearity"], **kw)
    return steps.dark_current(r, refs["dark"], **kw).ramp


@pytest.mark.parametrize("workers, max_memory", [(2, None), (3, 64 * 1024), (5, 20 * 1024)])
def test_thread_count_and_block_size_do_not_change_the_result(inputs, monkeypatch, workers, max_memory):
    ramp, refs = inputs
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", "1")
    one = _chain(ramp, refs, None)
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", str(workers))
    many = _chain(ramp, refs, max_memory)
    # Saturation growth reached across block edges: some pixels were flagged by neighbours.
    assert (many.groupdq & 2).any()
    np.testing.assert_array_equal(many.data, one.data)
    np.testing.assert_array_equal(many.groupdq, one.groupdq)
    np.testing.assert_array_equal(many.pixeldq, one.pixeldq)
