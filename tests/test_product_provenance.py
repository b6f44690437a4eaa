"""What products record (S_* step statuses, R_* reference paths) and what detector1 does with it;
the command line's messages and progress (issue 17 item 8 and its "smaller" list)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from gpucal import cli
from gpucal.errors import InputError

RAMP_STEPS = {"S_GRPSCL": "SKIPPED", "S_DQINIT": "COMPLETE", "S_SATURA": "COMPLETE", "S_IPC": "SKIPPED",
              "S_SUPERB": "COMPLETE", "S_REFPIX": "COMPLETE", "S_LINEAR": "COMPLETE", "S_DARK": "COMPLETE",
              "S_JUMP": "COMPLETE", "S_CLNFNS": "SKIPPED", "S_CHGMIG": "SKIPPED", "S_PCTFRM": "SKIPPED",
              "S_PERSIS": "SKIPPED"}


@pytest.fixture(autouse=True)
def _no_crds_cache(monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)


@pytest.fixture
def uncal(tmp_path) -> dict[str, Path]:
    from gpucal.synthetic_uncal import write_synthetic_uncal

    return write_synthetic_uncal(tmp_path / "in", 1, 6, 24, 32, name="s", seed=9)


def _run(*argv: str) -> int:
    return cli.main([*map(str, argv), "--backend", "cpu"])


# --------------------------------------------------------------------------- item 8


def test_saved_ramp_records_every_step_and_a_rerun_skips_them(uncal, tmp_path, caplog):
    one, two = tmp_path / "one", tmp_path / "two"
    assert _run("detector1", uncal["uncal"], "-o", one, "--save-calibrated-ramp", "-q") == 0
    ramp_header = fits.getheader(one / "s_ramp.fits")
    assert {k: ramp_header.get(k) for k in RAMP_STEPS} == RAMP_STEPS
    assert "S_RAMP" not in ramp_header and "S_GANSCL" not in ramp_header  # not run yet when it was saved
    rate_header = fits.getheader(one / "s_rate.fits")
    assert {k: rate_header.get(k) for k in RAMP_STEPS} == RAMP_STEPS
    assert rate_header["S_RAMP"] == "COMPLETE" and rate_header["S_GANSCL"] == "SKIPPED"

    with caplog.at_level(logging.INFO, logger="gpucal"):
        assert _run("detector1", one / "s_ramp.fits", "-o", two) == 0
    for step, keyword in (("dq_init", "S_DQINIT"), ("saturation", "S_SATURA"), ("superbias", "S_SUPERB"),
                          ("refpix", "S_REFPIX"), ("linearity", "S_LINEAR"), ("dark_current", "S_DARK"),
                          ("jump", "S_JUMP")):
        assert f"detector1: {step} skipped: the input records it COMPLETE ({keyword})" in caplog.text
    assert {k: fits.getheader(two / "s_rate.fits").get(k) for k in RAMP_STEPS} == RAMP_STEPS
    # nothing applied twice: only ramp fitting ran, on the same calibrated ramp
    for name in ("s_rate.fits", "s_rateints.fits"):
        with fits.open(one / name) as a, fits.open(two / name) as b:
            for ext in ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"):
                np.testing.assert_array_equal(a[ext].data, b[ext].data, err_msg=f"{name} {ext}")

    # asked for, a COMPLETE step runs again (with a warning)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gpucal"):
        assert _run("detector1", one / "s_ramp.fits", "-o", tmp_path / "three", "--run", "superbias",
                    "--override-superbias", uncal["superbias"]) == 0
    assert "superbias runs again although the input records it COMPLETE" in caplog.text
    with fits.open(one / "s_rate.fits") as a, fits.open(tmp_path / "three" / "s_rate.fits") as b:
        assert not np.array_equal(a["SCI"].data, b["SCI"].data)


# --------------------------------------------------------------------------- references carried by products


def test_chained_commands_find_the_references_from_another_directory(tmp_path):
    from gpucal.synthetic import make_exposure, write_exposure

    files = write_exposure(make_exposure(1, 6, 16, 20, seed=4), tmp_path / "in", name="x")
    assert fits.getheader(files["ramp"])["R_GAIN"] == "x_gain.fits"  # relative to the exposure's directory
    assert _run("jump", files["ramp"], "-o", tmp_path / "out", "-q") == 0
    jumped = tmp_path / "out" / "x_jump.fits"
    header = fits.getheader(jumped)
    assert header["R_GAIN"] == str(files["gain"].resolve()) and header["R_READNO"] == str(files["readnoise"].resolve())
    assert _run("ramp-fit", jumped, "-q") == 0
    rate = fits.getheader(tmp_path / "out" / "x_rate.fits")
    assert rate["S_RAMP"] == "COMPLETE" and rate["S_JUMP"] == "COMPLETE"
    assert rate["R_GAIN"] == str(files["gain"].resolve())


def test_detector1_products_name_their_references_absolutely(uncal, tmp_path):
    assert _run("detector1", uncal["uncal"], "-o", tmp_path / "out", "-q") == 0
    header = fits.getheader(tmp_path / "out" / "s_rate.fits")
    for keyword, key in (("R_MASK", "mask"), ("R_DARK", "dark"), ("R_GAIN", "gain"), ("R_READNO", "readnoise")):
        assert header[keyword] == str(uncal[key].resolve())


def test_missing_reference_message_speaks_the_callers_language(uncal, capsys):
    from gpucal.pipeline import detector1

    with fits.open(uncal["uncal"], mode="update") as hdul:
        del hdul[0].header["R_DARK"]
    assert _run("detector1", uncal["uncal"], "-q") == 2
    err = capsys.readouterr().err
    assert "no DARK reference" in err and "pass --override-dark PATH" in err and "refs=" not in err
    with pytest.raises(InputError, match=r"pass refs=\{'dark': path\}") as info:
        detector1(uncal["uncal"], backend="cpu")
    assert "--override" not in str(info.value)


# --------------------------------------------------------------------------- progress, logs


def test_progress_runs_through_jump_and_ramp_fit(uncal):
    from gpucal.pipeline import detector1_result

    class Recorder:
        def __init__(self):
            self.calls, self.stages = [], []

        def __call__(self, done, total):
            self.calls.append((done, total, self.stages[-1]))

        def stage(self, name):
            self.stages.append(name)

    rec = Recorder()
    detector1_result(uncal["uncal"], backend="cpu", progress=rec)
    assert rec.stages == ["group-level steps", "jump", "ramp_fit"]
    total = 3 * 24 * 32
    assert {t for _, t, _ in rec.calls} == {total}
    done = [d for d, _, _ in rec.calls]
    assert done == sorted(done) and done[-1] == total
    for stage, (low, high) in zip(rec.stages, [(0, total // 3), (total // 3, 2 * total // 3), (2 * total // 3, total)]):
        seen = [d for d, _, s in rec.calls if s == stage]
        assert min(seen) == low and max(seen) == high, stage  # each stage reports from its start to its end


def test_quiet_row_block_run_says_nothing_about_memory(uncal, tmp_path, caplog):
    # a budget below one integration: streamed in row blocks, as a full frame is with the default budget
    assert _run("detector1", uncal["uncal"], "-o", tmp_path / "out", "-q", "--max-memory", "128KiB") == 0
    assert not [r.getMessage() for r in caplog.records if "row blocks" in r.getMessage()]
    assert _run("detector1", uncal["uncal"], "-o", tmp_path / "out", "--overwrite", "--max-memory", "128KiB") == 0
    said = [r for r in caplog.records if "streaming row blocks" in r.getMessage()]
    assert [r.levelname for r in said] == ["INFO"]  # said without -q, as information


def test_extract_prints_clean_times(tmp_path, capsys):
    from gpucal.extraction import group_mid_times
    from gpucal.ramp import Ramp
    from gpucal.synthetic import make_exposure, write_exposure

    files = write_exposure(make_exposure(1, 8, 10, 12, seed=2), tmp_path, name="t")
    times = group_mid_times(Ramp.from_fits(files["ramp"]))
    ugly = [t for t in times if len(repr(float(t))) > 12]
    assert ugly  # e.g. 75.15899999999999: the case the table must not print
    assert _run("extract", files["ramp"], "--aperture", "3,4", "-q") == 0
    out = capsys.readouterr().out
    for t in ugly:
        assert repr(float(t)) not in out and f"{t:.10g}" in out


def test_copied_products_keep_working(uncal, tmp_path):
    """A saved ramp moved to a new directory still finds its references (absolute R_* paths)."""
    assert _run("detector1", uncal["uncal"], "-o", tmp_path / "out", "--save-calibrated-ramp", "-q") == 0
    moved = Path(shutil.copy2(tmp_path / "out" / "s_ramp.fits", tmp_path / "elsewhere_ramp.fits"))
    assert _run("ramp-fit", moved, "-q") == 0
