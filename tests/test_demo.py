"""The built-in demo (gpucal.demo.run_demo and `gpucal demo`)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from gpucal import cli
from gpucal.demo import format_summary, write_preview

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEMO_SHAPE = (1, 10, 512, 512)

def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    head = Path(path).read_bytes()[:33]
    assert head[:8] == PNG_MAGIC, "not a PNG signature"
    length, kind = struct.unpack(">I4s", head[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gpucal-cache")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache_dir):
    """run_demo once for the module, with the exposure cached under a private GPUCAL_CACHE."""
    from gpucal.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "demo_out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPUCAL_CACHE", str(cache_dir))
        summary = run_demo(out, backend="cpu")
    return out, summary


def test_demo_writes_a_valid_png(demo):
    out, summary = demo
    png = Path(summary["preview"])
    assert png.parent == out and png.name.endswith("_rate.png")
    width, height = png_size(png)
    assert width >= 300 and height >= 300


def test_demo_writes_rate_products(demo):
    out, summary = demo
    rate = next(Path(p) for p in summary["outputs"] if p.endswith("_rate.fits"))
    rateints = next(Path(p) for p in summary["outputs"] if p.endswith("_rateints.fits"))
    assert rate.parent == out and rateints.parent == out
    with fits.open(rate) as hdul:
        sci = hdul["SCI"].data
        assert sci.shape == DEMO_SHAPE[2:]
        assert hdul["DQ"].data.shape == DEMO_SHAPE[2:]
        finite = np.isfinite(sci)
        assert abs(finite.mean() - summary["valid_fraction"]) < 0.05
    with fits.open(rateints) as hdul:
        assert hdul["SCI"].data.shape == (DEMO_SHAPE[0], *DEMO_SHAPE[2:])


def test_demo_runs_every_default_step_and_recovers_the_rates(demo, cache_dir):
    """The raw demo exposure (bias, dark, amplifier drifts, reference pixels) calibrates back to the
    rates ramp_fit gives on the clean built-in ramp it was made from."""
    from gpucal import Ramp, ramp_fit
    from gpucal.synthetic import builtin_exposure

    out, summary = demo
    rate_path = next(Path(p) for p in summary["outputs"] if p.endswith("_rate.fits"))
    with fits.open(rate_path) as hdul:
        header, rate = hdul[0].header, hdul["SCI"].data
    for key in ("S_DQINIT", "S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR", "S_DARK", "S_JUMP", "S_RAMP"):
        assert header[key] == "COMPLETE", key
    assert header["S_IPC"] == "SKIPPED"
    files = builtin_exposure(cache_dir)
    clean = ramp_fit(Ramp.from_fits(files["ramp"]), files["gain"], files["readnoise"], backend="cpu").rate.data
    inner = (slice(4, None), slice(4, None))
    diff = np.abs(rate[inner] - clean[inner])
    ok = np.isfinite(diff)
    assert ok.mean() > 0.98
    # dark, bias, drifts and uint16 rounding removed to well below the read noise per group time
    assert np.median(diff[ok]) < 0.05


def test_demo_summary(demo, cache_dir):
    out, summary = demo
    assert summary["shape"] == DEMO_SHAPE
    assert summary["backend"] == "cpu"
    assert summary["seconds"] > 0
    expected_rate = np.prod(DEMO_SHAPE) / summary["seconds"] / 1e6
    assert summary["msamples_per_s"] == pytest.approx(expected_rate)
    assert 0.9 < summary["valid_fraction"] <= 1.0
    assert all(Path(p).is_file() for p in summary["outputs"])
    assert len(summary["outputs"]) == 3  # rate, rateints, png
    # The exposure was generated into the GPUCAL_CACHE given, not elsewhere.
    assert Path(summary["input"]).resolve().is_relative_to(cache_dir.resolve())
    text = format_summary(summary)
    assert "512x512" in text and "Msamples/s" in text and summary["preview"] in text


def test_demo_command(demo, cache_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPUCAL_CACHE", str(cache_dir))  # reuses the exposure made above
    out = tmp_path / "cli_demo"
    assert cli.main(["demo", "-o", str(out), "--backend", "cpu", "-q"]) == 0
    stdout = capsys.readouterr().out
    assert "gpucal demo: detector1 calibrated 1x10x512x512" in stdout and "valid pixels" in stdout
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3
    assert any(n.endswith("_rate.fits") for n in names) and any(n.endswith("_rate.png") for n in names)


def test_demo_warns_about_nothing_of_its_own(cache_dir, tmp_path, monkeypatch, caplog):
    """The built-in references' deliberate NaN pixels are noted at INFO, and each step logs once."""
    import logging

    from gpucal.demo import run_demo

    monkeypatch.setenv("GPUCAL_CACHE", str(cache_dir))
    with caplog.at_level(logging.INFO, logger="gpucal"):
        run_demo(tmp_path / "out", backend="cpu")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    nan_notes = [r for r in caplog.records if "NaN" in r.getMessage()]
    assert nan_notes and {r.levelname for r in nan_notes} == {"INFO"}
    assert sum("gain_scale skipped" in r.getMessage() for r in caplog.records) == 1
    # the notes are the demo's own: outside it, the same reader still warns
    from gpucal.refs import read_saturation

    caplog.clear()
    read_saturation(next(cache_dir.glob("*_saturation.fits")))
    assert [r.levelname for r in caplog.records if "NaN" in r.getMessage()] == ["WARNING"]


def test_write_preview_handles_nan_and_flat_images(tmp_path):
    image = np.ones((40, 60), np.float32)
    image[3, 4] = np.nan
    assert write_preview(image, tmp_path / "flat.png", title="flat")
    assert png_size(tmp_path / "flat.png")[0] > 0
    assert write_preview(np.full((8, 8), np.nan), tmp_path / "nan.png")
    assert png_size(tmp_path / "nan.png")[0] > 0
    assert not list(tmp_path.glob("*.tmp"))


def test_write_preview_without_matplotlib(tmp_path, monkeypatch, caplog):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.colors", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    assert write_preview(np.ones((4, 4)), tmp_path / "x.png") is False
    assert not (tmp_path / "x.png").exists()
    assert "matplotlib is not installed" in caplog.text


def test_format_summary_without_preview():
    summary = {"shape": (1, 2, 3, 4), "backend": "cpu", "seconds": 0.5, "msamples_per_s": 0.000048,
               "valid_fraction": 1.0, "outputs": ["a_rate.fits"], "preview": None}
    text = format_summary(summary)
    assert "1x2x3x4" in text and "a_rate.fits" in text and "no PNG preview" in text
