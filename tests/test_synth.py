"""`gpucal synth` (gpucal.synthetic_uncal.write_synthetic_uncal) and the README's command-line examples."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

import pytest
from astropy.io import fits

from gpucal import cli
from gpucal.synthetic_uncal import SYNTH_REFERENCES, write_synthetic_uncal

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(autouse=True)
def _no_crds_cache(monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_synth_writes_an_uncal_with_its_references(tmp_path, capsys):
    assert cli.main(["synth", "-o", str(tmp_path / "a"), "--shape", "2", "4", "20", "24", "-q"]) == 0
    assert "try: gpucal detector1" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(["synth_nrca1_uncal.fits"] + [f"synth_nrca1_{k}.fits" for k in SYNTH_REFERENCES])
    with fits.open(tmp_path / "a" / "synth_nrca1_uncal.fits") as hdul:
        header = hdul[0].header
        assert hdul["SCI"].data.shape == (2, 4, 20, 24) and hdul["SCI"].data.dtype.kind == "u"
        assert header["DATAMODL"] == "Level1bModel" and header["DETECTOR"] == "NRCA1"
        for keyword, key in (("R_MASK", "mask"), ("R_SATURA", "saturation"), ("R_SUPERB", "superbias"),
                             ("R_LINEAR", "linearity"), ("R_DARK", "dark"), ("R_GAIN", "gain"),
                             ("R_READNO", "readnoise")):
            assert header[keyword] == f"synth_nrca1_{key}.fits"
    # the same arguments write the same bytes
    assert cli.main(["synth", "-o", str(tmp_path / "b"), "--shape", "2", "4", "20", "24", "-q"]) == 0
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_synth_follows_the_output_rule_and_checks_its_arguments(tmp_path, capsys):
    out = tmp_path / "s"
    assert cli.main(["synth", "-o", str(out), "--shape", "1", "3", "12", "12", "-q"]) == 0
    before = _digests(out)
    assert cli.main(["synth", "-o", str(out), "--shape", "1", "3", "12", "12", "--seed", "1", "-q"]) == 2
    assert "synth_nrca1_uncal.fits exists; pass --overwrite" in capsys.readouterr().err
    assert _digests(out) == before
    assert cli.main(["synth", "-o", str(out), "--shape", "1", "3", "12", "12", "--seed", "1", "--overwrite",
                     "-q"]) == 0
    assert _digests(out) != before
    for argv, message in ((["--instrument", "MIRI", "--detector", "NRCA1"], "NRCA1 is not a MIRI detector"),
                          (["--shape", "1", "0", "12", "12"], "is not usable"),
                          (["--shape", "1", "3", "4", "12"], "is not usable"),
                          (["--name", "../escape"], "must be a file name, not a path")):
        assert cli.main(["synth", "-o", str(tmp_path / "bad"), *argv, "-q"]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("instrument", ["MIRI", "NIRSPEC", "NIRISS"])
def test_detector1_runs_on_every_instrument_synth_makes(tmp_path, instrument):
    files = write_synthetic_uncal(tmp_path, 1, 5, 16, 20, instrument=instrument)
    assert cli.main(["detector1", str(files["uncal"]), "-q", "--backend", "cpu"]) == 0
    header = fits.getheader(files["uncal"].with_name(files["uncal"].name.replace("_uncal", "_rate")))
    assert header["S_RAMP"] == "COMPLETE" and header["INSTRUME"] == instrument


def _readme_commands() -> list[list[str]]:
    """The commands of the README's first command-line block (continuations joined, comments dropped)."""
    text = README.read_text()
    section = text[text.index("## Command line"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands, pending = [], ""
    for line in block.splitlines():
        line = line.split(" #")[0].rstrip() if not line.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            commands.append(shlex.split(line))
    return commands


def test_the_readme_examples_run_as_written(tmp_path, monkeypatch, capsys):
    """Every example of the README's command-line block, from an empty directory (smaller shapes)."""
    commands = _readme_commands()
    assert [c[:2] for c in commands[:3]] == [["gpucal", "synth"], ["gpucal", "detector1"], ["gpucal", "ramp-fit"]]
    monkeypatch.chdir(tmp_path)
    ran = []
    for argv in commands:
        assert argv[0] == "gpucal"
        argv = argv[1:]
        if argv[0] in ("demo", "info", "--version"):  # tested in test_demo.py / test_cli.py
            continue
        if argv[0] == "synth":  # keep the shapes small: the rest of the examples do not depend on them
            i = argv.index("--shape")
            argv[i + 1:i + 5] = ["1", "5", "128", "128"] if argv[i + 3] != "64" else ["1", "5", "32", "36"]
        extra = ["-q"] + ([] if argv[0] == "synth" or "--backend" in argv else ["--backend", "cpu"])
        assert cli.main(argv + extra) == 0, argv
        ran.append(argv[0])
    assert ran.count("ramp-fit") == 3 and {"synth", "detector1", "jump", "extract"} <= set(ran)
    assert (tmp_path / "jumps" / "synth_nrca1_jump.fits").is_file() and (tmp_path / "profile.png").is_file()
    assert (tmp_path / "fit" / "synth_nrca1_fitopt.fits").is_file()
