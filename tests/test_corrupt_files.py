"""Damaged files through every command line reader: a clean refusal or a valid run, never a crash.

A seeded fuzz over every file kind gpucal reads from the command line: raw and ramp
exposures, a ``_jump`` product, every detector1 reference (MASK ... READNOISE, IPC), an
imaging ``_cal`` (resample), an IFU ``_cal`` and a CUBEPAR file (cube), and an association
(batch). Each file is damaged once per case (emptied, truncated at an offset, one byte
changed in a header or in the data, or the BITPIX of one extension changed) and the command
runs in-process. A case passes when the command exits 2 with one error line that names the
damaged file, no traceback, no warning, and nothing written; or, only for a byte changed in
a header or in the data, when the damage left a valid file and the command exits 0.

The arrays are small but each over half a 2880-byte block, so that a BITPIX of another
width always changes the number of blocks or leaves data in the fill, which the layout
check sees (a real exposure is many blocks long).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from gpucal import cli

SEED = 20240517
_BITPIX = (8, 16, 32, 64, -32, -64)


@dataclass(frozen=True)
class Target:
    """One file to damage, and the command line that reads it (``{file}`` is the damaged copy)."""

    command: str
    name: str  # the key of the file in the fixture's dict
    argv: tuple[str, ...]
    kinds: tuple[str, ...]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """One small valid file of each kind (all in one directory)."""
    from test_detector1 import _write_inputs, nir_case

    from gpucal import detect_jumps
    from gpucal.cube import write_synthetic_cubepars
    from gpucal.refs.ipc import synthetic_ipc_kernel, write_ipc
    from gpucal.synthetic import make_exposure, write_exposure

    d = tmp_path_factory.mktemp("valid")
    ramp, refs = nir_case(nints=1, ngroups=4, ny=20, nx=20)
    uncal, paths = _write_inputs(d, ramp, refs)
    out = {"uncal": uncal, **{k: Path(v) for k, v in paths.items()}}
    out["ipc"] = write_ipc(d / "t_ipc.fits", synthetic_ipc_kernel((20, 20)), instrument="NIRCAM", detector="NRCA1")
    exp = write_exposure(make_exposure(1, 4, 20, 20, seed=3), d / "exp", name="tiny")
    out.update({f"exp_{k}": Path(v) for k, v in exp.items()})
    jumped = detect_jumps(str(exp["ramp"]), exp["gain"], exp["readnoise"], backend="cpu")
    out["jump"] = Path(jumped.to_fits(d / "exp" / "tiny2_jump.fits"))

    from cube_cases import miri_cal
    from resample_models import write_cal_files

    out["cal"] = write_cal_files(d, n=1, shape=(20, 34))[0]
    out["ifu"] = miri_cal(d / "ifu_cal.fits")
    out["cubepar"] = write_synthetic_cubepars(d / "cubepar.fits", "MIRI")
    asn = {"asn_type": "image2", "products": [{"name": "p", "members": [
        {"expname": "tiny_ramp.fits", "exptype": "science"}]}]}
    out["asn"] = d / "exp" / "asn.json"
    out["asn"].write_text(json.dumps(asn))
    return out


# A changed byte often leaves a valid file, which then runs to the end: fewer of those where runs are slow.
FITS_KINDS = ("empty",) + ("truncate",) * 4 + ("header",) * 4 + ("data",) * 2 + ("bitpix",) * 2
D1_KINDS = ("empty",) + ("truncate",) * 4 + ("header",) * 3 + ("data",) + ("bitpix",) * 2
SLOW_KINDS = ("empty",) + ("truncate",) * 3 + ("header",) * 2 + ("data",) + ("bitpix",) * 2
_D1 = ("detector1", "{uncal}", "--backend", "cpu", "-q", "--run", "ipc", "-o", "{out}") + tuple(
    a for key in ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise", "ipc")
    for a in (f"--override-{key}", "{" + key + "}"))
_RF = ("ramp-fit", "{exp_ramp}", "--gain", "{exp_gain}", "--readnoise", "{exp_readnoise}", "--backend", "cpu",
       "-q", "-o", "{out}")
_CUBE = ("cube", "{ifu}", "--cubepars", "{cubepar}", "--channel", "1", "--band", "short", "--backend", "cpu",
         "-q", "-o", "{out}")
TARGETS = [Target("detector1", key, _D1, D1_KINDS)
           for key in ("uncal", "mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise", "ipc")]
TARGETS += [Target("ramp-fit", key, _RF, FITS_KINDS) for key in ("exp_ramp", "exp_gain", "exp_readnoise")]
TARGETS += [
    Target("ramp-fit", "jump", ("ramp-fit", "{jump}", "--gain", "{exp_gain}", "--readnoise", "{exp_readnoise}",
                                "--backend", "cpu", "-q", "-o", "{out}"), FITS_KINDS),
    Target("jump", "exp_ramp", ("jump", "{exp_ramp}", "--gain", "{exp_gain}", "--readnoise", "{exp_readnoise}",
                                "--backend", "cpu", "-q", "-o", "{out}"), FITS_KINDS),
    Target("extract", "exp_ramp", ("extract", "{exp_ramp}", "--aperture", "10,10,3", "--backend", "cpu", "-q",
                                   "-o", "{out}/profile.ecsv"), FITS_KINDS),
    Target("resample", "cal", ("resample", "{cal}", "--backend", "cpu", "-q", "-o", "{out}/m_i2d.fits"),
           SLOW_KINDS),
    Target("cube", "ifu", _CUBE, SLOW_KINDS),
    Target("cube", "cubepar", _CUBE, SLOW_KINDS),
    Target("batch", "asn", ("batch", "{asn}", "--job", "ramp-fit", "-q", "-o", "{out}"),
           ("empty",) + ("truncate",) * 6 + ("not-utf8",) * 3),
]


def _layout(path: Path) -> list[tuple[int, int, int, int]]:
    """(header offset, data offset, data bytes, BITPIX) of each HDU, as astropy sees the valid file."""
    with fits.open(path) as hdul:
        return [(hdul.fileinfo(i)["hdrLoc"], hdul.fileinfo(i)["datLoc"], hdu.size, hdu.header["BITPIX"])
                for i, hdu in enumerate(hdul)]


def damage(data: bytes, kind: str, layout: list, rng: np.random.Generator) -> tuple[bytes, str]:
    """A damaged copy of ``data`` and a description of the damage."""
    buf = bytearray(data)
    with_data = [h for h in layout if h[2]]
    if kind == "empty":
        return b"", "emptied"
    if kind == "truncate":
        choice = int(rng.integers(4))
        cut = [len(buf) - 1, int(rng.integers(1, len(buf))),
               with_data[int(rng.integers(len(with_data)))][1] if with_data else 1,  # just after a header
               int(rng.integers(1, 2880))][choice]
        cut = min(cut, len(buf) - 1)
        return bytes(buf[:cut]), f"truncated to {cut} bytes"
    if kind in ("header", "data"):
        hdu = layout[int(rng.integers(len(layout)))] if kind == "header" else with_data[int(rng.integers(len(with_data)))]
        lo, hi = (hdu[0], hdu[1]) if kind == "header" else (hdu[1], hdu[1] + hdu[2])
        pos = int(rng.integers(lo, hi))
        buf[pos] ^= int(rng.integers(1, 256))
        return bytes(buf), f"byte {pos} changed ({kind})"
    if kind == "bitpix":
        hdr, dat, _, bitpix = with_data[int(rng.integers(len(with_data)))]
        new = int(rng.choice([b for b in _BITPIX if b != bitpix]))
        at = bytes(buf[hdr:dat]).index(b"BITPIX  =") + hdr
        buf[at:at + 80] = f"BITPIX  = {new:>20}".ljust(80).encode()
        return bytes(buf), f"BITPIX {bitpix} -> {new} at byte {at}"
    if kind == "not-utf8":
        pos = int(rng.integers(len(buf)))
        buf[pos] = 0xFF
        return bytes(buf), f"byte {pos} -> 0xff"
    raise AssertionError(kind)


def _cases():
    rng = np.random.default_rng(SEED)
    for target in TARGETS:
        for i, kind in enumerate(target.kinds):
            yield pytest.param(target, kind, int(rng.integers(2**31)), id=f"{target.command}-{target.name}-{kind}-{i}")


def _files_under(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*")} if directory.exists() else set()


@pytest.mark.parametrize("target,kind,seed", list(_cases()))
def test_damaged_file(files, tmp_path, capsys, target, kind, seed):
    source = files[target.name]
    case = {k: v for k, v in files.items()}
    damaged = tmp_path / source.name
    data = source.read_bytes()
    if target.name == "asn":
        data = data.rstrip()  # a proper prefix of a JSON object never parses
        for member in json.loads(data)["products"][0]["members"]:
            (tmp_path / member["expname"]).symlink_to(source.parent / member["expname"])
        layout = []
    else:
        layout = _layout(source)
    bad, what = damage(data, kind, layout, np.random.default_rng(seed))
    damaged.write_bytes(bad)
    case[target.name] = damaged
    out = tmp_path / "out"
    argv = [a.format(out=out, **case) for a in target.argv]
    before = _files_under(tmp_path)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = cli.main(argv)
    err = capsys.readouterr().err
    label = f"{target.command} on {source.name} {what}: exit {status}\n{err}"
    assert "Traceback" not in err, label
    if status == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"gpucal {target.command}: error: "), label
        assert damaged.name in lines[0], label
        assert _files_under(tmp_path) == before, label
        assert not [str(w.message) for w in caught], label
    else:
        assert status == 0 and kind in ("header", "data"), label


def _edit(data: bytes, key: bytes, card: str) -> bytes:
    """``data`` with the first header card called ``key`` replaced by ``card``."""
    at = data.index(key.ljust(8) + b"=")
    return data[:at] + card.ljust(80).encode() + data[at + 80:]


@pytest.mark.parametrize("damage_it,message", [
    (lambda d: b"", "is empty"),
    (lambda d: b"\x89PNG" + d[4:], "does not start with SIMPLE = T"),
    (lambda d: d[:-1], "truncated: the file has 8639 bytes, its headers need 8640"),
    (lambda d: d[:7000], "truncated: the file has 7000 bytes, its headers need 8640 (HDU 1 (SCI): 20x20 values"),
    (lambda d: d[:2000], "truncated: the header of HDU 0 is cut off"),
    (lambda d: d[:2880] + d[2880:].replace(b"NAXIS ", b"NAX\x07S ", 1), "non-text byte 0x07 at byte"),
    (lambda d: _edit(d[:2880], b"BITPIX", "BITPIX  =                   12") + d[2880:], "BITPIX = 12"),
    (lambda d: d[:2880] + _edit(d[2880:], b"NAXIS1", "NAXIS1  =                   2x"), "NAXIS1 = '2x' is not an integer"),
    (lambda d: d[:2880] + _edit(d[2880:], b"NAXIS1", "NAXIS1  =                   10"), "the fill after them"),
    (lambda d: d + b"garbage", "are not a FITS extension"),
    (lambda d: d[:2880] + d[2880:5760].replace(b"END" + b" " * 77, b" " * 80, 1), "cut off at byte 5760 (no END"),
])
def test_layout_faults_are_named(files, tmp_path, damage_it, message):
    from gpucal.errors import FileFormatError
    from gpucal.io.fits_open import open_fits

    damaged = tmp_path / "t_gain.fits"
    damaged.write_bytes(damage_it(files["gain"].read_bytes()))
    with pytest.raises(FileFormatError, match=re.escape(message)) as info:
        open_fits(damaged)
    assert str(damaged) in str(info.value)


def test_zero_fill_after_the_last_hdu_is_accepted(files, tmp_path):
    from gpucal.io.fits_open import open_fits

    padded = tmp_path / "t_gain.fits"
    padded.write_bytes(files["gain"].read_bytes() + bytes(2880))
    with open_fits(padded) as hdul:
        assert len(hdul) == 2


@pytest.mark.parametrize("which", ["ramp-fit-truncated", "detector1-bad-header-card"])
def test_a_real_process_prints_one_line(files, tmp_path, which):
    """Without pytest's capture of warnings and logs, a refused file still gives one error line."""
    if which == "ramp-fit-truncated":
        damaged = tmp_path / "tiny_ramp.fits"
        damaged.write_bytes(files["exp_ramp"].read_bytes()[:-3000])
        argv = ["ramp-fit", str(damaged), "--gain", str(files["exp_gain"]), "--readnoise",
                str(files["exp_readnoise"]), "-q", "-o", str(tmp_path / "out")]
    else:
        data = bytearray(files["dark"].read_bytes())
        at = bytes(data[:2880]).index(b"GROUPGAP=")
        data[at + 8] = ord("s")  # 'GROUPGAPs ...': astropy warns, then cannot parse the card
        damaged = tmp_path / "t_dark.fits"
        damaged.write_bytes(bytes(data))
        argv = ["detector1", str(files["uncal"]), "-q", "-o", str(tmp_path / "out"), "--override-dark",
                str(damaged)] + [a for key in ("mask", "saturation", "superbias", "linearity", "gain", "readnoise")
                                 for a in (f"--override-{key}", str(files[key]))]
    run = subprocess.run([sys.executable, "-m", "gpucal.cli", *argv], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    *others, last = run.stderr.strip().splitlines()
    assert last.startswith(f"gpucal {argv[0]}: error: {damaged}"), run.stderr
    # Before it, at most gpucal's own warnings about the other (valid) files: no astropy or
    # Python warning, no traceback.
    assert all(re.match(r"\d\d:\d\d:\d\d WARNING gpucal\.", line) and damaged.name not in line
               for line in others), run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content,message", [
    ({"products": [{"name": "p", "members": 5}]}, "'members' is not a list"),
    ({"products": ["p"]}, "'members' is not a list"),
    ({"products": [{"name": "p", "members": [{"expname": 3}]}]}, "has no 'expname'"),
    ([1, 2], "not a jwst association"),
])
def test_association_of_the_wrong_structure(tmp_path, content, message):
    from gpucal.errors import FileFormatError
    from gpucal.scaleout.inputs import expand_inputs

    asn = tmp_path / "x_asn.json"
    asn.write_text(json.dumps(content))
    with pytest.raises(FileFormatError, match=message):
        expand_inputs(asn)
