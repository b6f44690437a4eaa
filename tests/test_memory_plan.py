"""The pieces that keep detector1 inside ``max_memory``, each with the same bits as before:
the budget plan and its refusal, jump's scratch flag arrays, refpix's planes per chunk,
gain_scale in place, the peak measurement."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
from steps_cases import raw_exposure, refs_for

import gpucal
from gpucal import steps
from gpucal.errors import InputError
from gpucal.memory_peak import PeakMemory, anonymous_bytes
from gpucal.pipeline.memory_plan import OUTPUT_BYTES_PER_PIXEL, RUN_BYTES, plan_memory, reference_bytes
from gpucal.products import RateProduct
from gpucal.scratch import exposure_array
from gpucal.synthetic import make_exposure


def test_plan_floor_parts_and_refusal(monkeypatch):
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", "1")
    ramp = raw_exposure(nints=3, ngroups=4, ny=32, nx=40)
    refs = refs_for(ramp)
    plan = plan_memory(ramp, refs, "64MB", halo=2, refpix=True)
    assert plan.outputs == OUTPUT_BYTES_PER_PIXEL * 32 * 40 * 4
    assert plan.floor == plan.outputs + plan.references + plan.pixel_arrays + RUN_BYTES
    assert plan.references == reference_bytes(refs) == sum(
        a.nbytes for r in refs.values() for a in (r.data, r.dq) if a is not None)
    assert plan.workers == 0  # one worker: ramp_fit runs in this process
    assert plan.work == int(0.8 * (64 * 2**20 - plan.floor))
    needed = plan.floor + int(np.ceil(plan.minimum_work / 0.8))
    with pytest.raises(InputError, match=rf"use at least {-(-needed // 2**20)}MB"):
        plan_memory(ramp, refs, needed - 1, halo=2, refpix=True)
    assert plan_memory(ramp, refs, None, halo=2, refpix=True).budget == 2 * 1024**3


def test_plan_counts_reference_files_from_their_headers(tmp_path):
    from gpucal.refs import write_calib_refs

    ramp = raw_exposure(nints=1, ngroups=4, ny=16, nx=24)
    refs = refs_for(ramp)
    paths = write_calib_refs(refs, tmp_path, "t", instrument="NIRCAM", detector="NRCA1")
    d1 = importlib.import_module("gpucal.pipeline.detector1")
    assert reference_bytes(paths, ramp) == reference_bytes(d1._load_refs(ramp, paths))


def test_jump_scratch_flag_arrays_give_the_same_result(tmp_path, caplog):
    ex = make_exposure(2, 8, 24, 20, seed=4)
    whole = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu")
    with caplog.at_level("INFO", logger="gpucal.jump_detection"):
        small = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="cpu", max_memory="40KB",
                                    scratch_dir=tmp_path)
    assert "go to a scratch file" in caplog.text
    assert isinstance(small.groupdq, np.memmap) and not isinstance(whole.groupdq, np.memmap)
    np.testing.assert_array_equal(small.groupdq, whole.groupdq)
    np.testing.assert_array_equal(small.pixeldq, whole.pixeldq)
    assert list(tmp_path.iterdir()) == []  # the scratch file is unlinked at once


def test_exposure_array_in_a_scratch_file(tmp_path):
    a = exposure_array((2, 3, 4), np.uint8, in_memory=False, directory=tmp_path)
    a[...] = 7
    assert isinstance(a, np.memmap) and int(a.sum()) == 7 * 24 and list(tmp_path.iterdir()) == []
    assert not isinstance(exposure_array((2,), np.float32, in_memory=True), np.memmap)


def test_refpix_planes_per_chunk_do_not_change_the_result(monkeypatch):
    module = importlib.import_module("gpucal.steps.refpix")
    ramp = raw_exposure(nints=2, ngroups=5, ny=40, nx=48, zeroframe=False)
    ramp.meta.update(FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=4)
    whole = steps.refpix(ramp, backend="cpu")
    original, chunks = module._nir_fullframe_planes, []

    def spy(xp, planes, *args):
        chunks.append(planes.shape[0])
        return original(xp, planes, *args)

    monkeypatch.setattr(module, "_nir_fullframe_planes", spy)
    for budget, most in ((None, 5), (1, 1), (2 * module.BYTES_PER_PLANE_PIXEL * 40 * 48, 2)):
        chunks.clear()
        out = steps.refpix(ramp, backend="cpu", max_memory=budget)
        np.testing.assert_array_equal(out.data, whole.data)
        assert max(chunks) == most, budget


def test_gain_scale_in_place_is_the_same():
    rng = np.random.default_rng(1)
    planes = {k: rng.normal(size=(3, 4, 5)).astype(np.float32) for k in ("data", "err", "var_poisson", "var_rnoise")}
    product = RateProduct(dq=np.zeros((3, 4, 5), np.uint32), **planes)
    copy = dataclasses.replace(product, **{k: v.copy() for k, v in planes.items()})
    out = steps.gain_scale(product, 1.7, backend="cpu")
    inplace = steps.gain_scale(copy, 1.7, backend="cpu", in_place=True)
    assert inplace.data is copy.data
    for key in planes:
        np.testing.assert_array_equal(getattr(out, key), getattr(inplace, key))


@pytest.mark.skipif(anonymous_bytes() is None, reason="needs Linux /proc")
def test_peak_memory_sees_a_short_lived_array():
    import time

    with PeakMemory() as peak:
        block = np.ones(64 * 2**20 // 8)
        deadline = time.monotonic() + 20  # the sampler thread may wait for the GIL on a busy machine
        while peak.sampled - peak.start < 60 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.01)
        del block
    assert peak.peak_above_start >= 60 * 2**20
    assert anonymous_bytes() - peak.start < 30 * 2**20  # gone, but the peak stays
    assert "peak memory" in peak.summary() and "during the run" in peak.summary()


@pytest.mark.parametrize("command", ["ramp-fit", "jump"])
def test_cli_budget_below_products_and_one_row_is_refused(command, tmp_path, capsys):
    from gpucal import cli
    from gpucal.synthetic import write_exposure

    files = write_exposure(make_exposure(1, 6, 32, 40, seed=2), tmp_path, name="m")
    out = tmp_path / "out"
    argv = [command, str(files["ramp"]), "-o", str(out), "--backend", "cpu", "-q", "--max-memory", "8KB"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"--max-memory 8.0 KiB is below what {command} needs" in err and "use at least 1MB" in err
    assert not out.exists()
    assert cli.main(argv[:-1] + ["1MB"]) == 0
