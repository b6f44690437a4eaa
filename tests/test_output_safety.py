"""No command writes onto one of its inputs; one overwrite rule; output directories checked first
(gpucal.io.output_safety and every command that writes: issue 17 items 1 and 9)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from gpucal import cli
from gpucal.io import output_safety
from gpucal.io.output_safety import OutputError, OutputExistsError, check_outputs, same_file

SHAPE = (1, 5, 24, 32)


@pytest.fixture(autouse=True)
def _no_crds_cache(monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A synthetic uncal with its references, and detector1's calibrated _ramp of it, made once."""
    from gpucal.synthetic_uncal import write_synthetic_uncal

    directory = tmp_path_factory.mktemp("made")
    files = write_synthetic_uncal(directory, *SHAPE, name="m", seed=5)
    assert cli.main(["detector1", str(files["uncal"]), "--save-calibrated-ramp", "-q", "--backend", "cpu"]) == 0
    return {**files, "ramp": directory / "m_ramp.fits", "rate": directory / "m_rate.fits"}


@pytest.fixture
def here(made, tmp_path) -> dict[str, Path]:
    """A private copy of every made file in tmp_path/in (tests write next to them)."""
    target = tmp_path / "in"
    target.mkdir()
    return {key: Path(shutil.copy2(path, target / path.name)) for key, path in made.items()}


def _state(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``directory``: content digest and mtime (symlinks by their target)."""
    out = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(directory))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                     path.stat().st_mtime_ns)
    return out


def _refused(argv: list[str], directory: Path, capsys, *expected: str) -> str:
    """Run the command; it must exit 2 with one error line containing ``expected`` and change nothing."""
    before = _state(directory)
    assert cli.main([*argv, "-q", "--backend", "cpu"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    assert _state(directory) == before
    return err


# --------------------------------------------------------------------------- the helper


def test_same_file_sees_links(tmp_path):
    a = tmp_path / "a.fits"
    a.write_bytes(b"x")
    (tmp_path / "sym.fits").symlink_to(a)
    os.link(a, tmp_path / "hard.fits")
    assert same_file(a, tmp_path / "sym.fits") and same_file(a, tmp_path / "hard.fits")
    assert same_file(a, tmp_path / "sub" / ".." / "a.fits")
    assert not same_file(a, tmp_path / "b.fits")


def test_check_outputs_rule(tmp_path):
    a, b = tmp_path / "a.fits", tmp_path / "b.fits"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    with pytest.raises(OutputError, match="is an input of this run"):
        check_outputs([a], [a], overwrite=True)
    with pytest.raises(OutputExistsError, match="pass overwrite=True"):
        check_outputs([b], [a], overwrite=False)
    check_outputs([b], [a], overwrite=True)
    b.chmod(0o444)
    with pytest.raises(OutputError, match="read-only"):
        check_outputs([b], [a], overwrite=True)
    with pytest.raises(OutputError, match="two outputs of this run are the same file"):
        check_outputs([tmp_path / "c.fits", tmp_path / "." / "c.fits"], [a], overwrite=True)
    with pytest.raises(OutputError, match="a.fits is not a directory"):
        check_outputs([a / "x.fits"], [], overwrite=True)


# --------------------------------------------------------------------------- item 1: never onto an input


def test_detector1_save_calibrated_ramp_on_a_ramp_refuses_its_input(here, capsys):
    _refused(["detector1", str(here["ramp"]), "--save-calibrated-ramp"], here["ramp"].parent, capsys,
             "m_ramp.fits is an input of this run")


def test_ramp_fit_of_a_file_named_rate_refuses_its_input(here, capsys):
    disguised = here["ramp"].with_name("x_rate.fits")
    here["ramp"].rename(disguised)
    _refused(["ramp-fit", str(disguised), "--overwrite"], disguised.parent, capsys, "x_rate.fits is an input")


def test_detector1_of_a_file_named_rate_refuses_its_input(here, capsys):
    disguised = here["uncal"].with_name("y_rate.fits")
    shutil.copy2(here["uncal"], disguised)
    _refused(["detector1", str(disguised), "--overwrite"], disguised.parent, capsys, "y_rate.fits is an input")


def test_jump_with_overwrite_refuses_its_input(here, capsys):
    disguised = here["ramp"].with_name("z_jump.fits")
    here["ramp"].rename(disguised)
    _refused(["jump", str(disguised), "--overwrite"], disguised.parent, capsys, "z_jump.fits is an input")


def test_an_output_linked_to_the_input_is_refused(here, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "m_jump.fits").symlink_to(here["ramp"])
    _refused(["jump", str(here["ramp"]), "-o", str(out), "--overwrite"], tmp_path, capsys,
             "the same file as the input")
    (out / "m_jump.fits").unlink()
    os.link(here["ramp"], out / "m_rate.fits")
    _refused(["ramp-fit", str(here["ramp"]), "-o", str(out), "--overwrite"], tmp_path, capsys,
             "the same file as the input")


def test_a_reference_file_is_an_input_too(here, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    gain_there = Path(shutil.copy2(here["gain"], out / "m_rate.fits"))
    _refused(["ramp-fit", str(here["ramp"]), "-o", str(out), "--gain", str(gain_there), "--overwrite"],
             tmp_path, capsys, "m_rate.fits is an input")
    dark_there = Path(shutil.copy2(here["dark"], out / "m_rateints.fits"))
    _refused(["detector1", str(here["uncal"]), "-o", str(out), "--override-dark", str(dark_there), "--overwrite"],
             tmp_path, capsys, "m_rateints.fits is an input")
    # a reference named by the exposure's R_* header keyword, not given on the command line
    named = here["uncal"].with_name("r_uncal.fits")
    here["uncal"].rename(named)
    here["mask"].rename(here["mask"].with_name("r_rate.fits"))
    from astropy.io import fits

    with fits.open(named, mode="update") as hdul:
        hdul[0].header["R_MASK"] = "r_rate.fits"
    _refused(["detector1", str(named), "--overwrite"], tmp_path, capsys, "r_rate.fits is an input")


def test_extract_and_resample_refuse_their_inputs(here, tmp_path, capsys):
    os.link(here["ramp"], tmp_path / "profile.fits")
    _refused(["extract", str(here["ramp"]), "-o", str(tmp_path / "profile.fits"), "--overwrite"], tmp_path, capsys,
             "the same file as the input")
    plot_here = Path(shutil.copy2(here["gain"], here["gain"].with_name("gain.png")))
    _refused(["extract", str(here["ramp"]), "--gain", str(plot_here), "--plot", str(plot_here), "--overwrite"],
             tmp_path, capsys, "gain.png is an input")
    _refused(["extract", str(here["ramp"]), "--plot", str(tmp_path / "p.fits")], tmp_path, capsys,
             "cannot tell the plot format")
    _refused(["resample", str(here["rate"]), "-o", str(tmp_path / "profile.fits"), "--overwrite"], tmp_path, capsys)


def test_batch_refuses_outputs_onto_inputs_before_running(here, tmp_path, capsys):
    out = here["ramp"].parent
    _refused(["batch", str(here["ramp"]), "--job", "detector1", "-o", str(out), "--option",
              "save_calibrated_ramp=true"], tmp_path, capsys, "m_ramp.fits is an input of this run")
    disguised = here["ramp"].with_name("x_rate.fits")
    here["ramp"].rename(disguised)
    _refused(["batch", str(disguised), "--job", "ramp-fit", "-o", str(out)], tmp_path, capsys,
             "x_rate.fits is an input of this run")
    asn = out / "asn.json"  # an association member
    asn.write_text(json.dumps({"products": [{"name": "p", "members": [{"expname": "x_rate.fits"}]}]}))
    _refused(["batch", str(asn), "--job", "ramp-fit", "-o", str(out), "--overwrite"], tmp_path, capsys,
             "x_rate.fits is an input of this run")


def test_the_api_refuses_too(here):
    from gpucal.pipeline import detector1

    before = _state(here["ramp"].parent)
    with pytest.raises(OutputError, match="is an input of this run"):
        detector1(here["ramp"], backend="cpu", output_dir=here["ramp"].parent, save_calibrated_ramp=True)
    assert _state(here["ramp"].parent) == before


# --------------------------------------------------------------------------- item 9: one overwrite rule


@pytest.mark.parametrize("command", ["ramp-fit", "detector1"])
def test_an_existing_product_needs_overwrite(here, tmp_path, capsys, command):
    source = here["ramp"] if command == "ramp-fit" else here["uncal"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "m_rate.fits").write_bytes(b"an earlier product")
    _refused([command, str(source), "-o", str(out)], tmp_path, capsys, "m_rate.fits exists; pass --overwrite")
    assert cli.main([command, str(source), "-o", str(out), "--overwrite", "-q", "--backend", "cpu"]) == 0
    assert (out / "m_rate.fits").read_bytes()[:6] == b"SIMPLE"


def test_a_read_only_product_is_never_replaced(here, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "m_rate.fits").write_bytes(b"keep me")
    (out / "m_rate.fits").chmod(0o444)
    _refused(["ramp-fit", str(here["ramp"]), "-o", str(out), "--overwrite"], tmp_path, capsys, "read-only")
    _refused(["detector1", str(here["uncal"]), "-o", str(out), "--overwrite"], tmp_path, capsys, "read-only")


def test_the_output_directory_is_checked_before_any_work(here, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "_load_ramp_fit", lambda: lambda *a, **k: calls.append(a))
    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"")
    _refused(["ramp-fit", str(here["ramp"]), "-o", str(blocker / "out")], tmp_path, capsys,
             f"cannot write into {blocker / 'out'}: {blocker} is not a directory")
    # a directory without write permission (faked: this suite may run as root, for whom access() is always true)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(output_safety.os, "access",
                        lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw))
    err = _refused(["ramp-fit", str(here["ramp"]), "-o", str(locked)], tmp_path, capsys,
                   f"cannot write into the output directory {locked}: permission denied")
    assert "gpucal-tmp" not in err
    _refused(["detector1", str(here["uncal"]), "-o", str(locked / "new")], tmp_path, capsys,
             f"cannot create the output directory {locked / 'new'}: {locked} is not writable")
    assert calls == []  # nothing was computed


def test_skip_and_run_take_one_step_each_and_conflicts_are_errors(here, tmp_path, capsys):
    from astropy.io import fits

    out = tmp_path / "out"
    _refused(["detector1", str(here["uncal"]), "-o", str(out), "--skip", "jump", "--run", "jump"], tmp_path, capsys,
             "--skip and --run both name jump")
    _refused(["detector1", str(here["uncal"]), "-o", str(out), "--skip", "jump", "--param",
              "jump.rejection_threshold=5"], tmp_path, capsys, "--skip jump skips")
    # FILE after --skip STEP is the file, not a second step
    assert cli.main(["detector1", "--skip", "jump", "--skip", "refpix", str(here["uncal"]), "-o", str(out), "-q",
                     "--backend", "cpu"]) == 0
    header = fits.getheader(out / "m_rate.fits")
    assert header["S_JUMP"] == header["S_REFPIX"] == "SKIPPED" and header["S_DARK"] == "COMPLETE"
