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


def test_tso_shapes_run_in_integration_blocks_with_the_same_result(monkeypatch, caplog):
    """Few rows, many integrations, small cache blocks: whole-integration blocks (no halo rows,
    pixel DQ OR-ed across blocks, the MIRI dark picked by the exposure's integration index)
    give the bits of one whole-exposure block."""
    import logging

    from steps_cases import raw_exposure, refs_for

    from gpucal import chunking

    shape = (7, 4, 10, 300)
    ramp = make_exposure(*shape, seed=5, saturation_dn=20000.0).ramp
    refs = make_calib_refs(shape[2], shape[3], seed=6, saturation_dn=20000.0)
    miri = raw_exposure(5, 4, 10, 300, zeroframe=False, instrument="MIRI", detector="MIRIMAGE")
    miri_refs = refs_for(miri, dark_frames=10, dark_ints=3)
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", "1")
    whole = _chain(ramp, refs, None)
    whole_miri = steps.dark_current(miri, miri_refs["dark"], backend="cpu").ramp
    monkeypatch.setattr(chunking, "CPU_BLOCK_SAMPLES", 2000)
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", "3")
    with caplog.at_level(logging.DEBUG, logger="gpucal.steps._blocks"):
        blocked = _chain(ramp, refs, None)
        blocked_miri = steps.dark_current(miri, miri_refs["dark"], backend="cpu").ramp
    assert "blocks of 1 integration(s)" in caplog.text and "row blocks" not in caplog.text
    assert (blocked.groupdq & 2).any() and blocked.pixeldq.any()
    for got, expected in ((blocked, whole), (blocked_miri, whole_miri)):
        for key in ("data", "groupdq", "pixeldq", "zeroframe"):
            a, b = getattr(got, key), getattr(expected, key)
            if b is None:
                assert a is None
                continue
            np.testing.assert_array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8), err_msg=key)
    # the per-integration dark really differs between integrations, so the index mattered
    assert not np.array_equal(whole_miri.data[0] - miri.data[0], whole_miri.data[1] - miri.data[1])
