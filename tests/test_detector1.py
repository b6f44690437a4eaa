"""gpucal.detector1 end to end: parity with the jwst/stcal chain, skip defaults, overrides, streaming, errors."""

from __future__ import annotations

import importlib
import logging

import numpy as np
import pytest
from steps_cases import raw_exposure, refs_for

import gpucal
from gpucal.errors import FileFormatError, InputError
from gpucal.pipeline import default_skips, detector1, detector1_result
from gpucal.synthetic import make_exposure

PRODUCT_KEYS = [("slope", "data"), ("dq", "dq"), ("var_poisson", "var_poisson"), ("var_rnoise", "var_rnoise"),
                ("err", "err")]


@pytest.fixture(autouse=True)
def _no_crds_cache(monkeypatch):
    """References come from the test, never from a CRDS cache the environment may name."""
    monkeypatch.delenv("CRDS_PATH", raising=False)


def nir_case(nints=2, ngroups=6, ny=40, nx=48):
    ramp = raw_exposure(nints=nints, ngroups=ngroups, ny=ny, nx=nx)
    ramp.meta.update(FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=4)
    refs = refs_for(ramp)
    exp = make_exposure(nints, ngroups, ny, nx, seed=3, saturation_dn=30000.0)
    refs.update(gain=exp.gain, readnoise=exp.readnoise)
    return ramp, refs


def assert_same(actual, expected, label):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, label
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected)) if actual.dtype.kind == "f" \
        else actual == expected
    assert same.all(), f"{label}: {np.count_nonzero(~same)} of {same.size} differ"


def assert_products_equal(a, b):
    for p, q in ((a.rate, b.rate), (a.rateints, b.rateints)):
        for _, attr in PRODUCT_KEYS:
            assert_same(getattr(p, attr), getattr(q, attr), attr)


@pytest.mark.parametrize("max_memory", [None, 300_000], ids=["whole", "one-int-blocks"])
def test_nir_chain_matches_jwst_and_stcal(max_memory):
    pytest.importorskip("jwst")
    from detector1_reference import reference_chain

    ramp, refs = nir_case()
    res = detector1_result(ramp, refs=refs, backend="cpu", max_memory=max_memory)
    image, integ, _, _ = reference_chain(ramp, refs, refs["gain"], refs["readnoise"])
    for key, attr in PRODUCT_KEYS:  # bit-identical, DQ included
        assert_same(getattr(res.rate, attr), image[key], f"rate.{key}")
        assert_same(getattr(res.rateints, attr), integ[key], f"rateints.{key}")
    meta = res.rate.meta
    assert meta["S_DQINIT"] == meta["S_SATURA"] == meta["S_REFPIX"] == meta["S_JUMP"] == "COMPLETE"
    assert meta["S_IPC"] == meta["S_GRPSCL"] == meta["S_CLNFNS"] == "SKIPPED"
    assert np.isfinite(res.rate.data).mean() > 0.9


def test_miri_chain_matches_jwst_and_stcal():
    pytest.importorskip("jwst")
    from detector1_reference import reference_chain

    ramp = raw_exposure(nints=2, ngroups=5, ny=32, nx=40, instrument="MIRI", detector="MIRIMAGE", zeroframe=False)
    refs = refs_for(ramp)
    exp = make_exposure(2, 5, 32, 40, seed=3, instrument="MIRI", detector="MIRIMAGE")
    refs.update(gain=exp.gain, readnoise=exp.readnoise)
    res = detector1_result(ramp, refs=refs, backend="cpu", max_memory=200_000)
    image, integ, _, _ = reference_chain(ramp, refs, exp.gain, exp.readnoise)
    for key, attr in PRODUCT_KEYS:
        assert_same(getattr(res.rate, attr), image[key], f"rate.{key}")
        assert_same(getattr(res.rateints, attr), integ[key], f"rateints.{key}")
    assert res.rate.meta["S_LASTFR"] == "COMPLETE"
    assert res.rate.meta["S_REFPIX"] == res.rate.meta["S_FRSTFR"] == "SKIPPED"
    assert "S_SUPERB" not in res.rate.meta


def test_skip_defaults_follow_the_table():
    nir = raw_exposure(nints=2, ngroups=4, ny=12, nx=12)
    miri = raw_exposure(nints=2, ngroups=4, ny=12, nx=12, instrument="MIRI", detector="MIRIMAGE")
    s = default_skips(nir)
    assert list(s) == ["group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
                       "dark_current", "jump", "clean_flicker_noise", "ramp_fit", "gain_scale"]
    assert s["ipc"] and s["clean_flicker_noise"] and not s["refpix"] and not s["superbias"]
    nir.meta["TSOVISIT"] = True
    assert default_skips(nir) == s  # near-IR TSO and non-TSO run the same steps
    m = default_skips(miri)
    assert list(m)[:9] == ["group_scale", "dq_init", "saturation", "ipc", "firstframe", "lastframe", "linearity",
                           "dark_current", "refpix"]
    assert m["refpix"] and m["firstframe"] and m["ipc"] and not m["lastframe"]
    miri.meta["TSOVISIT"] = "T"
    assert default_skips(miri)["lastframe"]


def test_overrides():
    ramp, refs = nir_case(nints=1, ngroups=5)
    base = detector1_result(ramp, refs=refs, backend="cpu")
    no_ref = detector1_result(ramp, refs=refs, backend="cpu", steps={"refpix": {"skip": True}})
    assert no_ref.rate.meta["S_REFPIX"] == "SKIPPED"
    assert not np.array_equal(base.rate.data, no_ref.rate.data, equal_nan=True)
    strict = detector1_result(ramp, refs=refs, backend="cpu", steps={"jump": {"rejection_threshold": 50.0}})
    assert strict.rate.meta["JUMPNPRI"] < base.rate.meta["JUMPNPRI"]
    with pytest.raises(InputError, match="rejection_threshold"):
        detector1_result(ramp, refs=refs, backend="cpu", steps={"jump": {"rejection_treshold": 5}})
    with pytest.raises(InputError, match="unknown step 'superbia'"):
        detector1_result(ramp, refs=refs, backend="cpu", steps={"superbia": {"skip": True}})
    with pytest.raises(InputError, match="not ported"):
        detector1_result(ramp, refs=refs, backend="cpu", steps={"persistence": {"skip": False}})
    # a skipped step needs no reference
    no_dark = {k: v for k, v in refs.items() if k != "dark"}
    out = detector1_result(ramp, refs=no_dark, backend="cpu", steps={"dark_current": {"skip": True}})
    assert out.rate.meta["S_DARK"] == "SKIPPED"


def _write_inputs(tmp_path, ramp, refs):
    from gpucal.refs import write_calib_refs
    from gpucal.refs.write import write_reference

    paths = write_calib_refs({k: refs[k] for k in ("mask", "saturation", "superbias", "linearity", "dark")},
                             tmp_path / "refs", "t", instrument=ramp.instrument, detector=ramp.meta["DETECTOR"])
    paths["gain"] = write_reference(tmp_path / "refs" / "t_gain.fits", "GAIN", refs["gain"], instrument="NIRCAM",
                                    detector="NRCA1")
    paths["readnoise"] = write_reference(tmp_path / "refs" / "t_rn.fits", "READNOISE", refs["readnoise"],
                                         instrument="NIRCAM", detector="NRCA1")
    uncal = ramp.to_fits(tmp_path / "jw_test_nrca1_uncal.fits")
    return uncal, paths


def test_file_larger_than_budget_streams_to_the_same_result(tmp_path, caplog):
    ramp, refs = nir_case(nints=3, ngroups=5, ny=160)
    uncal, paths = _write_inputs(tmp_path, ramp, refs)
    whole = detector1_result(uncal, refs=paths, backend="cpu", output_dir=tmp_path / "a",
                             save_calibrated_ramp=True)
    budget = 400_000  # half of it is below the calibrated ramp's 576 kB: memmap, one integration per block
    seen = []
    with caplog.at_level(logging.INFO, logger="gpucal.pipeline.detector1"):
        small = detector1_result(uncal, refs=paths, backend="cpu", output_dir=tmp_path / "b", max_memory=budget,
                                 save_calibrated_ramp=True, progress=lambda d, t: seen.append((d, t)))
    assert "memory-mapped" in caplog.text
    npix = 160 * 48  # progress in three equal stages: group-level steps (one integration a block), jump, ramp_fit
    assert {t for _, t in seen} == {3 * npix}
    done = [d for d, _ in seen]
    assert done[:4] == [0, npix // 3, 2 * npix // 3, npix] and done == sorted(done) and done[-1] == 3 * npix
    assert_products_equal(whole, small)
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == ["jw_test_nrca1_ramp.fits", "jw_test_nrca1_rate.fits", "jw_test_nrca1_rateints.fits"]
    a = gpucal.Ramp.from_fits(tmp_path / "a" / "jw_test_nrca1_ramp.fits")
    b = gpucal.Ramp.from_fits(tmp_path / "b" / "jw_test_nrca1_ramp.fits")
    assert_same(np.asarray(a.data[:]), np.asarray(b.data[:]), "ramp data")
    assert_same(np.asarray(a.groupdq[:]), np.asarray(b.groupdq[:]), "ramp groupdq")


def test_header_named_references(tmp_path):
    from gpucal.refs.resolve import resolve_references

    ramp, refs = nir_case(nints=1, ngroups=4)
    uncal, paths = _write_inputs(tmp_path, ramp, refs)
    ramp2 = gpucal.Ramp.from_fits(uncal)
    ramp2.meta["R_MASK"] = "refs/" + paths["mask"].name
    ramp2.meta["R_DARK"] = "crds://jwst_nircam_dark_0001.fits"  # not a local name: ignored
    found = resolve_references(ramp2, ["mask"], input_path=uncal)
    assert found["mask"].resolve() == paths["mask"].resolve()
    with pytest.raises(InputError, match=r"no DARK reference.*refs=\{'dark': path\}"):  # Python syntax from Python
        resolve_references(ramp2, ["mask", "dark"], input_path=uncal)


def test_crds_lookup_with_a_fake_crds(tmp_path, monkeypatch):
    import sys
    import types

    from gpucal.refs.resolve import resolve_references

    ramp, refs = nir_case(nints=1, ngroups=4)
    _, paths = _write_inputs(tmp_path, ramp, refs)
    calls = []

    def getreferences(params, reftypes, observatory):
        import os

        calls.append((params, list(reftypes), os.environ.get("CRDS_MODE")))
        if "linearity" in reftypes:
            raise RuntimeError("no rules for linearity in the local cache")
        if "dark" in reftypes:
            return {"dark": "NOT FOUND No match found: READPATT=RAPID"}
        return {"mask": str(paths["mask"]), "ipc": "NOT FOUND n/a"}

    monkeypatch.setitem(sys.modules, "crds", types.SimpleNamespace(getreferences=getreferences))
    monkeypatch.delenv("CRDS_MODE", raising=False)
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "crds_cache"))
    found = resolve_references(ramp, ["mask", "ipc"])
    assert str(found["mask"]) == str(paths["mask"]) and found["ipc"] is None
    params, types_, mode = calls[0]
    assert params["meta.instrument.detector"] == "NRCA1" and types_ == ["mask", "ipc"] and mode == "local"
    with pytest.raises(InputError, match="CRDS lookup of LINEARITY failed.*no rules"):
        resolve_references(ramp, ["linearity"])
    with pytest.raises(InputError, match="CRDS found no DARK reference.*READPATT=RAPID"):
        resolve_references(ramp, ["dark"])
    # an N/A reference skips its step
    res = detector1_result(ramp, refs={k: v for k, v in refs.items()}, backend="cpu", steps={"ipc": {"skip": False}})
    assert res.rate.meta["S_IPC"] == "SKIPPED"


@pytest.mark.parametrize("problem", ["wrong_reftype", "wrong_shape", "nan_ref", "missing_keyword"])
def test_bad_input_raises_and_writes_nothing(tmp_path, problem):
    from gpucal.refs import CalibReference, write_calib_reference

    ramp, refs = nir_case(nints=1, ngroups=4)
    uncal, paths = _write_inputs(tmp_path, ramp, refs)
    out = tmp_path / "out"
    out.mkdir()
    kw = {}
    if problem == "wrong_reftype":
        paths["mask"], err, match = paths["saturation"], FileFormatError, "REFTYPE 'SATURATION', expected 'MASK'"
    elif problem == "wrong_shape":
        big = CalibReference("SATURATION", np.full((20, 20), 5e4, np.float32), np.zeros((20, 20), np.uint32))
        paths["saturation"] = write_calib_reference(tmp_path / "s.fits", "SATURATION", data=big.data, dq=big.dq,
                                                    instrument="NIRCAM", detector="NRCA1")
        err, match = InputError, "does not match the exposure"
    elif problem == "nan_ref":
        nan = np.full((ramp.ny, ramp.nx), np.nan, np.float32)
        paths["superbias"] = write_calib_reference(tmp_path / "b.fits", "SUPERBIAS", data=nan,
                                                   dq=np.zeros(nan.shape, np.uint32), instrument="NIRCAM",
                                                   detector="NRCA1")
        err, match = InputError, "no finite value"
    else:
        r = gpucal.Ramp.from_fits(uncal)
        del r.meta["FASTAXIS"]
        uncal, err, match = r, InputError, "FASTAXIS"
        kw["steps"] = {}
    with pytest.raises(err, match=match):
        detector1(uncal, refs=paths, backend="cpu", output_dir=out, save_calibrated_ramp=True, **kw)
    assert list(out.iterdir()) == []


def test_clean_flicker_noise_hook(monkeypatch):
    from gpucal import steps

    ramp, refs = nir_case(nints=1, ngroups=4)
    seen = []

    def fake(r, *, backend=None, n_sigma=2.0):
        seen.append((r.shape, backend, n_sigma))
        return r

    monkeypatch.setattr(steps, "clean_flicker_noise", fake, raising=False)
    res = detector1_result(ramp, refs=refs, backend="cpu",
                           steps={"clean_flicker_noise": {"skip": False, "n_sigma": 3.0}})
    assert seen == [(ramp.shape, "cpu", 3.0)] and res.rate.meta["S_CLNFNS"] == "COMPLETE"


def test_missing_step_function_fails_before_any_work(monkeypatch):
    from gpucal import steps

    ramp, refs = nir_case(nints=1, ngroups=4)
    monkeypatch.delattr(steps, "clean_flicker_noise", raising=False)
    with pytest.raises(InputError, match="clean_flicker_noise is not available|'clean_flicker_noise' is not"):
        detector1_result(ramp, refs=refs, backend="cpu", steps={"clean_flicker_noise": {"skip": False}})


def test_gain_scale_uses_gainfact(tmp_path):
    ramp, refs = nir_case(nints=1, ngroups=4)
    base = detector1_result(ramp, refs=refs, backend="cpu")
    ramp.meta["GAINFACT"] = 2.0
    scaled = detector1_result(ramp, refs=refs, backend="cpu")
    np.testing.assert_array_equal(scaled.rate.data, base.rate.data * np.float32(2.0))
    assert scaled.rate.meta["S_GANSCL"] == "COMPLETE" and base.rate.meta["S_GANSCL"] == "SKIPPED"


@pytest.mark.gpu
def test_gpu_equals_cpu():
    ramp, refs = nir_case(nints=3, ngroups=6)
    cpu = detector1_result(ramp, refs=refs, backend="cpu")
    gpu = detector1_result(ramp, refs=refs, backend="gpu", max_memory=300_000)
    assert_products_equal(cpu, gpu)


@pytest.mark.gpu
def test_gpu_row_block_chain_equals_cpu(row_blocks):
    """The device chain in row blocks (split at refpix), ipc on: same bits as the CPU run."""
    ramp, refs = nir_case(nints=2, ngroups=5)
    refs["ipc"] = IPC_KERNEL
    steps = {"ipc": {"skip": False}, "saturation": {"n_pix_grow_sat": 2}}
    cpu = detector1_result(ramp, refs=refs, backend="cpu", steps=steps)
    gpu = detector1_result(ramp, refs=refs, backend="gpu", steps=steps)
    assert gpu.rate.meta["S_IPC"] == gpu.rate.meta["S_REFPIX"] == "COMPLETE"
    assert_products_equal(cpu, gpu)


def test_gpu_path_with_the_cupy_stand_in(cupy_stand_in):
    """The whole chain on backend="gpu" with tests/fake_cupy.py (array code on numpy, kernels from the host build)."""
    ramp, refs = nir_case(nints=2, ngroups=5)
    steps = {"ipc": {"skip": False}}
    refs["ipc"] = np.array([[0.0, 0.01, 0.0], [0.01, 0.96, 0.01], [0.0, 0.01, 0.0]], np.float32)
    gpu = detector1_result(ramp, refs=refs, backend="gpu", steps=steps, max_memory=300_000)
    cpu = detector1_result(ramp, refs=refs, backend="cpu", steps=steps)
    assert gpu.backend == "gpu" and gpu.rate.meta["S_IPC"] == "COMPLETE"
    assert_products_equal(cpu, gpu)


IPC_KERNEL = np.array([[0.0, 0.01, 0.0], [0.01, 0.96, 0.01], [0.0, 0.01, 0.0]], np.float32)


@pytest.fixture
def chain_cupy(cupy_stand_in, monkeypatch):
    """tests/fake_cupy.py's device stand-in, which records each host<->device copy of a ramp
    block; returns ``(transfers, at_tail)``: ``at_tail`` gets the transfers made before
    jump/ramp_fit (the group-level chain's)."""
    transfers = cupy_stand_in.transfers
    mod = importlib.import_module("gpucal.pipeline.detector1")
    at_tail: dict = {}
    tail = mod._tail

    def snapshot(*args, **kwargs):
        at_tail.update(uploads=list(transfers.uploads), downloads=list(transfers.downloads))
        return tail(*args, **kwargs)

    monkeypatch.setattr(mod, "_tail", snapshot)
    return transfers, at_tail


def _by_dtype(copies: list, dtype: str) -> list:
    return [shape for kind, shape in copies if kind == dtype]


def test_gpu_chain_moves_each_integration_block_once(chain_cupy):
    """On the GPU every integration block goes up once (data, groupdq), all group-level steps
    (ipc and refpix included) run on the device, and it comes down once; same bits as the CPU."""
    _, at_tail = chain_cupy
    ramp, refs = nir_case(nints=4, ngroups=5)
    refs["ipc"] = IPC_KERNEL
    steps = {"ipc": {"skip": False}}
    gpu = detector1_result(ramp, refs=refs, backend="gpu", steps=steps, max_memory=600_000)  # 2 integrations a block
    block = (2, 5, ramp.ny, ramp.nx)
    for copies in (at_tail["uploads"], at_tail["downloads"]):
        assert _by_dtype(copies, "float32") == [block, block]
        assert _by_dtype(copies, "uint8") == [block, block]
        assert len(copies) == 4
    cpu = detector1_result(ramp, refs=refs, backend="cpu", steps=steps, max_memory=600_000)
    assert gpu.rate.meta["S_IPC"] == "COMPLETE" and gpu.rate.meta["S_REFPIX"] == "COMPLETE"
    assert_products_equal(cpu, gpu)


def test_gpu_chain_in_row_blocks_moves_each_row_block_once(chain_cupy, row_blocks):
    """One integration in row blocks: each row block goes up and down once before refpix and
    once after it (refpix needs whole planes and corrects the host buffer in between)."""
    _, at_tail = chain_cupy
    ramp, refs = nir_case(nints=2, ngroups=5)
    gpu = detector1_result(ramp, refs=refs, backend="gpu")
    blocks = -(-ramp.ny // 3)
    for copies in (at_tail["uploads"], at_tail["downloads"]):
        shapes = _by_dtype(copies, "float32")
        assert len(shapes) == ramp.nints * 2 * blocks and len(copies) == 2 * len(shapes)
        assert all(s[0] == 1 and s[2] <= 3 + 2 * 2 for s in shapes)  # one integration, 3 rows + halo
    assert_products_equal(detector1_result(ramp, refs=refs, backend="cpu"), gpu)


@pytest.fixture
def row_blocks(monkeypatch):
    """Force streaming in row blocks of 3 rows inside each integration (whatever the budget)."""
    import importlib

    mod = importlib.import_module("gpucal.pipeline.detector1")
    monkeypatch.setattr(mod, "integrations_per_block", lambda ramp, budget: 0)
    monkeypatch.setattr(mod, "rows_per_block", lambda ramp, budget, halo: 3)


def test_row_blocks_inside_an_integration_match_jwst_and_stcal(row_blocks, caplog):
    pytest.importorskip("jwst")
    from detector1_reference import reference_chain

    ramp, refs = nir_case()
    with caplog.at_level(logging.INFO, logger="gpucal.pipeline.detector1"):
        res = detector1_result(ramp, refs=refs, backend="cpu")
    # normal operation, not a warning: a full-frame run with -q prints nothing about it
    assert [r.levelname for r in caplog.records if "streaming row blocks of 3 rows (halo 2)" in r.message] == ["INFO"]
    image, integ, _, _ = reference_chain(ramp, refs, refs["gain"], refs["readnoise"])
    for key, attr in PRODUCT_KEYS:
        assert_same(getattr(res.rate, attr), image[key], f"rate.{key}")
        assert_same(getattr(res.rateints, attr), integ[key], f"rateints.{key}")


@pytest.mark.parametrize("case", ["nir_ipc", "miri"])
def test_row_blocks_equal_the_whole_run(case):
    import importlib

    mod = importlib.import_module("gpucal.pipeline.detector1")
    if case == "miri":
        ramp = raw_exposure(nints=2, ngroups=5, ny=32, nx=40, instrument="MIRI", detector="MIRIMAGE")
        refs = refs_for(ramp)
        exp = make_exposure(2, 5, 32, 40, seed=3, instrument="MIRI", detector="MIRIMAGE")
        refs.update(gain=exp.gain, readnoise=exp.readnoise)
        steps = {"firstframe": {"skip": False}}
    else:
        ramp, refs = nir_case(ngroups=5)
        refs["ipc"] = np.array([[0.0, 0.01, 0.0], [0.01, 0.96, 0.01], [0.0, 0.01, 0.0]], np.float32)
        steps = {"ipc": {"skip": False}, "saturation": {"n_pix_grow_sat": 2}}
    whole = detector1_result(ramp, refs=refs, backend="cpu", steps=steps)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mod, "integrations_per_block", lambda ramp, budget: 0)
        mp.setattr(mod, "rows_per_block", lambda ramp, budget, halo: 4)
        rows = detector1_result(ramp, refs=refs, backend="cpu", steps=steps)
    assert_products_equal(whole, rows)


@pytest.mark.parametrize("instrument", ["NIRCAM", "MIRI"])
def test_refpix_in_place_on_a_memory_map(tmp_path, instrument):
    """refpix(out=ramp.data) on a memory map, as the pipeline streams it, equals the copying call."""
    from refpix_cases import structured

    from gpucal.steps import refpix

    if instrument == "MIRI":
        ramp = structured("MIRI", 2, 3, 1024, 1032, 1, 1, seed=6)
    else:
        ramp = structured("NIRCAM", 2, 3, 64, 80, 1, 1, seed=4, FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=4)
    expected = refpix(ramp, backend="cpu")
    mm = np.memmap(tmp_path / "d.f32", np.float32, "w+", shape=ramp.shape)
    mm[...] = ramp.data
    shared = gpucal.Ramp(mm, ramp.groupdq, ramp.pixeldq, group_time=ramp.group_time, frame_time=ramp.frame_time,
                         nframes=ramp.nframes, zeroframe=ramp.zeroframe, meta=ramp.meta)
    out = refpix(shared, backend="cpu", out=mm)
    assert out.data is mm and out.groupdq is ramp.groupdq
    assert_same(np.asarray(mm), expected.data, "refpix data")
    assert out.meta["S_REFPIX"] == expected.meta["S_REFPIX"] == "COMPLETE"
