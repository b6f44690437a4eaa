"""gpucal.detect_jumps: inputs, errors, chunking invariance, progress, and the ``gpucal jump`` CLI."""

from pathlib import Path

import numpy as np
import pytest

import gpucal
from gpucal import dq
from gpucal.cli import main
from gpucal.errors import BackendUnavailableError, InputError
from jump_cases import exposure


@pytest.fixture(scope="module")
def small():
    return exposure(nints=2, ngroups=8, ny=30, nx=22, seed=31, cr_rate=5e-3, dnu_groups=0.02)


def test_exported_lazily():
    assert "detect_jumps" in gpucal.__all__
    from gpucal.jump_detection import detect_jumps

    assert gpucal.detect_jumps is detect_jumps


def test_returns_new_ramp_and_keeps_input(small):
    r = small.ramp
    before = r.groupdq.copy(), r.pixeldq.copy()
    out = gpucal.detect_jumps(r, small.gain, small.readnoise, backend="cpu")
    assert out is not r and out.groupdq is not r.groupdq
    np.testing.assert_array_equal(r.groupdq, before[0])
    np.testing.assert_array_equal(r.pixeldq, before[1])
    assert out.shape == r.shape and out.groupdq.dtype == np.uint8 and out.pixeldq.dtype == np.uint32
    assert out.data is r.data  # science data are shared, never modified
    added = (out.groupdq & dq.JUMP_DET) & ~(r.groupdq & dq.JUMP_DET)
    assert np.count_nonzero(added) > 20
    bad_gain = ~(small.gain > 0)
    assert np.all(out.pixeldq[bad_gain] & (dq.NO_GAIN_VALUE | dq.DO_NOT_USE) == (dq.NO_GAIN_VALUE | dq.DO_NOT_USE))
    assert out.meta["S_JUMP"] == "COMPLETE" and out.meta["JUMPNPRI"] > 0 and out.meta["PRIMECRS"] > 0


@pytest.mark.parametrize("max_memory", ["48KB", "100KB", None])
def test_row_blocks_do_not_change_the_result(small, max_memory):
    ref = gpucal.detect_jumps(small.ramp, small.gain, small.readnoise, backend="cpu")
    out = gpucal.detect_jumps(small.ramp, small.gain, small.readnoise, backend="cpu", max_memory=max_memory,
                              after_jump_flag_dn1=0.0, after_jump_flag_time1=0.0)
    np.testing.assert_array_equal(out.groupdq, ref.groupdq)


def test_progress_reaches_total(small):
    calls = []
    gpucal.detect_jumps(small.ramp, small.gain, small.readnoise, backend="cpu", max_memory="48KB",
                        progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 2
    assert calls[-1][0] == calls[-1][1] == 2 * 30 * 22
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


@pytest.mark.parametrize("kw, match", [
    (dict(rejection_threshold=-1.0), "rejection_threshold"),
    (dict(three_group_rejection_threshold=float("nan")), "three_group_rejection_threshold"),
    (dict(after_jump_flag_time1=-5.0), "after_jump_flag_time1"),
    (dict(min_jump_to_flag_neighbors="10"), "min_jump_to_flag_neighbors"),
    (dict(minimum_sigclip_groups=2.5), "minimum_sigclip_groups"),
    (dict(edge_size=-3.5, expand_large_events=True), "edge_size"),
    (dict(find_showers=True, extend_min_area=-1.0), "extend_min_area"),
    (dict(max_memory="lots"), "memory"),
])
def test_bad_parameters(small, kw, match):
    with pytest.raises(InputError, match=match):
        gpucal.detect_jumps(small.ramp, small.gain, small.readnoise, backend="cpu", **kw)


def test_bad_reference_shapes(small):
    with pytest.raises(InputError, match="gain"):
        gpucal.detect_jumps(small.ramp, small.gain[:-1], small.readnoise, backend="cpu")
    with pytest.raises(InputError, match="readnoise"):
        gpucal.detect_jumps(small.ramp, small.gain, small.readnoise.astype(complex), backend="cpu")


def test_gpu_backend_without_gpu_is_clear(small, monkeypatch):
    from gpucal import backend

    if backend.gpu_unavailable_reason() is None:
        pytest.skip("a GPU is available")
    with pytest.raises(BackendUnavailableError):
        gpucal.detect_jumps(small.ramp, small.gain, small.readnoise, backend="gpu")


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from gpucal.synthetic import make_exposure, write_exposure

    ex = make_exposure(1, 6, 16, 20, seed=4, flag_jumps=False, cr_rate=5e-3)
    directory = tmp_path_factory.mktemp("jump_cli")
    paths = {k: Path(v) for k, v in write_exposure(ex, directory, name="tiny").items()}
    return ex, paths


def test_cli_writes_jump_ramp(written, tmp_path):
    ex, paths = written
    out_dir = tmp_path / "out"
    assert main(["jump", str(paths["ramp"]), "--backend", "cpu", "-o", str(out_dir), "-q"]) == 0
    target = out_dir / "tiny_jump.fits"
    assert target.is_file()
    back = gpucal.Ramp.from_fits(target)
    expected = gpucal.detect_jumps(gpucal.Ramp.from_fits(paths["ramp"]), ex.gain, ex.readnoise, backend="cpu")
    np.testing.assert_array_equal(np.asarray(back.groupdq), expected.groupdq)
    np.testing.assert_array_equal(np.asarray(back.pixeldq), expected.pixeldq)
    np.testing.assert_array_equal(np.asarray(back.data), np.asarray(expected.data))
    assert np.count_nonzero(np.asarray(back.groupdq) & dq.JUMP_DET) > 0
    # a second run refuses to overwrite without --overwrite
    assert main(["jump", str(paths["ramp"]), "--backend", "cpu", "-o", str(out_dir), "-q"]) == 2
    assert main(["jump", str(paths["ramp"]), "--backend", "cpu", "-o", str(out_dir), "-q", "--overwrite",
                 "--no-flag-4-neighbors", "--expand-large-events"]) == 0
    expected = gpucal.detect_jumps(gpucal.Ramp.from_fits(paths["ramp"]), ex.gain, ex.readnoise, backend="cpu",
                                   flag_4_neighbors=False, expand_large_events=True)
    np.testing.assert_array_equal(np.asarray(gpucal.Ramp.from_fits(target).groupdq), expected.groupdq)


def test_cli_user_errors_exit_2(written, tmp_path, capsys):
    _, paths = written
    assert main(["jump", str(tmp_path / "missing_ramp.fits"), "--backend", "cpu"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["jump", str(paths["ramp"]), "--backend", "cpu", "--gain", str(tmp_path / "nope.fits")]) == 2
    err = capsys.readouterr().err
    assert "gain reference file not found" in err and "Traceback" not in err
