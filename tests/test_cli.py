"""The gpucal command line (gpucal.cli) and the progress reporter it uses."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import gpucal
from gpucal import cli
from gpucal.errors import GpucalError
from gpucal.products import RampFitResult, RateProduct
from gpucal.progress import ProgressReporter

SHAPE = (2, 6, 12, 20)  # nints, ngroups, ny, nx


@pytest.fixture(scope="module")
def exposure_dir(tmp_path_factory) -> dict[str, Path]:
    """A small synthetic exposure with its gain/readnoise files, written once per module."""
    from gpucal.synthetic import make_exposure, write_exposure

    exposure = make_exposure(*SHAPE, seed=3)
    directory = tmp_path_factory.mktemp("exposure")
    paths = write_exposure(exposure, directory, name="tiny")
    return {key: Path(value) for key, value in paths.items()}


@pytest.fixture
def exposure(exposure_dir, tmp_path) -> dict[str, Path]:
    """A private copy of the exposure files in tmp_path/in (tests write next to them)."""
    target = tmp_path / "in"
    target.mkdir()
    return {key: Path(shutil.copy2(path, target / path.name)) for key, path in exposure_dir.items()}


def _strip_reference_keywords(ramp_path: Path) -> None:
    with fits.open(ramp_path, mode="update") as hdul:
        for key in ("R_GAIN", "R_READNO"):
            hdul[0].header.remove(key, ignore_missing=True)


def _products(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.name.endswith(("_rate.fits", "_rateints.fits", "_fitopt.fits")))


def _fake_result(ny: int = SHAPE[2], nx: int = SHAPE[3], nints: int = SHAPE[0]) -> RampFitResult:
    def product(shape):
        return RateProduct(
            data=np.full(shape, 1.5, np.float32), err=np.full(shape, 0.1, np.float32),
            dq=np.zeros(shape, np.uint32), var_poisson=np.full(shape, 0.004, np.float32),
            var_rnoise=np.full(shape, 0.006, np.float32),
        )

    return RampFitResult(rate=product((ny, nx)), rateints=product((nints, ny, nx)), backend="cpu", elapsed_s=0.01)


# --------------------------------------------------------------------------- argument handling


def test_bad_max_memory_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["ramp-fit", "x_ramp.fits", "--max-memory", "lots"])
    assert info.value.code == 2
    assert "cannot read a memory size from 'lots'" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gpucal {gpucal.__version__}"


def test_no_command_prints_usage_and_fails(capsys):
    assert cli.main([]) == 2
    assert "ramp-fit" in capsys.readouterr().err


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"gpucal {gpucal.__version__}" in out
    assert f"numpy {np.__version__}" in out
    assert "backend: " in out
    if gpucal.gpu_available():
        assert "gpu: " in out and "free" in out
    else:
        assert "gpu: not available:" in out
        assert "backend: cpu" in out


def test_info_reports_the_device(monkeypatch, capsys):
    """The GPU branch of `gpucal info`, with a stand-in for CuPy and the device."""
    from types import SimpleNamespace

    from gpucal import backend as be

    props = {"name": b"NVIDIA H100 80GB HBM3", "totalGlobalMem": 80 * 2**30}
    fake_cupy = SimpleNamespace(cuda=SimpleNamespace(
        Device=lambda i: SimpleNamespace(id=i, compute_capability="90"),
        runtime=SimpleNamespace(getDeviceProperties=lambda i: props),
    ))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(be, "gpu_unavailable_reason", lambda: None)
    monkeypatch.setattr(be, "free_device_memory", lambda device=0: 70 * 2**30)
    monkeypatch.delenv("GPUCAL_BACKEND", raising=False)
    monkeypatch.setattr(be, "_default", None)
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend: gpu" in out
    assert "gpu: NVIDIA H100 80GB HBM3 (compute capability 9.0, 70.0 GiB free of 80.0 GiB)" in out


def test_info_with_gpu_forced_but_missing(monkeypatch, capsys):
    if gpucal.gpu_available():
        pytest.skip("a GPU works here")
    monkeypatch.setenv("GPUCAL_BACKEND", "gpu")
    assert cli.main(["info"]) == 0
    assert "backend: unavailable" in capsys.readouterr().out


# --------------------------------------------------------------------------- user errors (exit 2)


def test_missing_input_file(tmp_path, capsys):
    missing = tmp_path / "nope_ramp.fits"
    assert cli.main(["ramp-fit", str(missing), "--backend", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and str(missing) in err
    assert "Traceback" not in err


def test_non_ramp_fits_names_the_file(tmp_path, capsys):
    image = tmp_path / "image_cal.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4), np.float32), name="SCI")]).writeto(image)
    assert cli.main(["ramp-fit", str(image), "--backend", "cpu", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "image_cal.fits" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_not_fits_at_all(tmp_path, capsys):
    text = tmp_path / "notes_ramp.fits"
    text.write_text("this is not FITS\n")
    assert cli.main(["ramp-fit", str(text), "--backend", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "notes_ramp.fits" in err and "Traceback" not in err


def test_missing_gain_reference(exposure, capsys):
    _strip_reference_keywords(exposure["ramp"])
    out = exposure["ramp"].parent / "out"
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "--backend", "cpu", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no gain reference: pass --gain" in err
    assert "R_GAIN" in err and "Traceback" not in err
    assert not out.exists()
    assert _products(exposure["ramp"].parent) == []


def test_missing_readnoise_reference_after_explicit_gain(exposure, capsys):
    _strip_reference_keywords(exposure["ramp"])
    code = cli.main(["ramp-fit", str(exposure["ramp"]), "--gain", str(exposure["gain"]), "--backend", "cpu"])
    assert code == 2
    assert "no readnoise reference: pass --readnoise" in capsys.readouterr().err
    assert _products(exposure["ramp"].parent) == []


def test_reference_named_by_header_but_absent(exposure, capsys):
    exposure["gain"].unlink()
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "--backend", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "gain reference file not found" in err and exposure["gain"].name in err
    assert _products(exposure["ramp"].parent) == []


def test_explicit_reference_that_does_not_exist(exposure, tmp_path, capsys):
    bogus = tmp_path / "missing_gain.fits"
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "--gain", str(bogus), "--backend", "cpu"]) == 2
    assert str(bogus) in capsys.readouterr().err


def test_gpu_backend_without_gpu(exposure, capsys):
    if gpucal.gpu_available():
        pytest.skip("a GPU works here")
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "--backend", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "gpu" in err.lower() and "Traceback" not in err
    assert _products(exposure["ramp"].parent) == []


def test_verbose_error_shows_traceback(tmp_path, capsys):
    assert cli.main(["ramp-fit", str(tmp_path / "nope.fits"), "-v"]) == 2
    assert "Traceback" in capsys.readouterr().err


# --------------------------------------------------------------------------- plumbing with a stand-in fit


def test_plumbing_with_stand_in_fit(exposure, monkeypatch, tmp_path):
    calls = {}

    def fake_ramp_fit(ramp, gain, readnoise, **kwargs):
        calls.update(kwargs, ramp=ramp, gain=gain, readnoise=readnoise)
        total = ramp.ny * ramp.nx
        kwargs["progress"](total // 2, total)
        kwargs["progress"](total, total)
        return _fake_result()

    monkeypatch.setattr(cli, "_load_ramp_fit", lambda: fake_ramp_fit)
    out = tmp_path / "products"
    argv = ["ramp-fit", str(exposure["ramp"]), "-o", str(out), "--backend", "cpu", "--max-memory", "64MB",
            "--max-device-memory", "3GB", "--save-opt", "--no-suppress-one-group", "-q"]
    assert cli.main(argv) == 0
    assert calls["backend"] == "cpu"
    assert calls["max_memory"] == 64 * 2**20 and calls["max_device_memory"] == 3 * 2**30
    assert calls["save_opt"] is True and calls["suppress_one_group"] is False
    assert Path(calls["gain"]) == exposure["gain"] and Path(calls["readnoise"]) == exposure["readnoise"]
    assert calls["ramp"].shape == SHAPE
    assert isinstance(calls["progress"], ProgressReporter) and calls["progress"].done == SHAPE[2] * SHAPE[3]
    assert [p.name for p in _products(out)] == ["tiny_rate.fits", "tiny_rateints.fits"]
    with fits.open(out / "tiny_rate.fits") as hdul:
        assert np.all(hdul["SCI"].data == np.float32(1.5))


def test_default_output_dir_is_next_to_the_input(exposure, monkeypatch):
    monkeypatch.setattr(cli, "_load_ramp_fit", lambda: lambda *a, **k: _fake_result())
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "--backend", "cpu", "-q"]) == 0
    assert [p.name for p in _products(exposure["ramp"].parent)] == ["tiny_rate.fits", "tiny_rateints.fits"]


def test_summary_is_logged(exposure, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(cli, "_load_ramp_fit", lambda: lambda *a, **k: _fake_result())
    with caplog.at_level(logging.INFO, logger="gpucal"):
        assert cli.main(["ramp-fit", str(exposure["ramp"]), "-o", str(tmp_path), "--backend", "cpu"]) == 0
    text = caplog.text
    assert "tiny_rate.fits" in text and "tiny_rateints.fits" in text
    samples = np.prod(SHAPE)
    assert f"ramp-fit {'x'.join(map(str, SHAPE))} on cpu: 0.01 s, {samples / 0.01 / 1e6:.1f} Msamples/s" in text


def test_nothing_fitted_exits_1_without_products(exposure, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "_load_ramp_fit", lambda: lambda *a, **k: RampFitResult(rate=None, rateints=None))
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "-o", str(tmp_path / "out"), "--backend", "cpu"]) == 1
    assert "nothing could be fitted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_fit_error_is_reported_without_traceback(exposure, monkeypatch, capsys):
    def failing(*args, **kwargs):
        raise GpucalError("gain has shape (3, 3), expected (12, 20)")

    monkeypatch.setattr(cli, "_load_ramp_fit", lambda: failing)
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "--backend", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "gain has shape (3, 3)" in err and "Traceback" not in err
    assert _products(exposure["ramp"].parent) == []


def test_failed_write_leaves_no_partial_products(exposure, monkeypatch, tmp_path, capsys):
    class HalfWritten:
        rate = object()
        backend, elapsed_s = "cpu", 0.01

        def to_fits(self, prefix, overwrite=True):
            Path(f"{prefix}_rate.fits").write_bytes(b"SIMPLE")
            raise OSError("No space left on device")

    monkeypatch.setattr(cli, "_load_ramp_fit", lambda: lambda *a, **k: HalfWritten())
    out = tmp_path / "out"
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "-o", str(out), "--backend", "cpu"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not out.exists()  # neither the half-written file nor the directory made for it


# --------------------------------------------------------------------------- the real fit


def test_ramp_fit_end_to_end(exposure, tmp_path):
    from gpucal import ramp_fit

    out = tmp_path / "out"
    assert cli.main(["ramp-fit", str(exposure["ramp"]), "-o", str(out), "--backend", "cpu", "-q"]) == 0
    assert [p.name for p in _products(out)] == ["tiny_rate.fits", "tiny_rateints.fits"]
    expected = ramp_fit(exposure["ramp"], exposure["gain"], exposure["readnoise"], backend="cpu")
    nints, _, ny, nx = SHAPE
    with fits.open(out / "tiny_rate.fits") as rate, fits.open(out / "tiny_rateints.fits") as ints:
        for name in ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"):
            assert rate[name].data.shape == (ny, nx)
            assert ints[name].data.shape == (nints, ny, nx)
        np.testing.assert_array_equal(rate["SCI"].data, expected.rate.data)
        np.testing.assert_array_equal(rate["DQ"].data, expected.rate.dq)
        np.testing.assert_array_equal(ints["SCI"].data, expected.rateints.data)
    assert np.isfinite(expected.rate.data).mean() > 0.5


def test_ramp_fit_with_explicit_references_and_fitopt(exposure, tmp_path):
    _strip_reference_keywords(exposure["ramp"])
    argv = ["ramp-fit", str(exposure["ramp"]), "--gain", str(exposure["gain"]), "--readnoise",
            str(exposure["readnoise"]), "-o", str(tmp_path), "--backend", "cpu", "--save-opt", "-q"]
    assert cli.main(argv) == 0
    names = [p.name for p in _products(tmp_path)]
    assert "tiny_rate.fits" in names and "tiny_rateints.fits" in names


# --------------------------------------------------------------------------- the installed command


def _command() -> list[str]:
    script = Path(sys.executable).parent / "gpucal"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gpucal.cli"]


def test_console_script(tmp_path):
    version = subprocess.run([*_command(), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"gpucal {gpucal.__version__}"
    missing = subprocess.run([*_command(), "ramp-fit", str(tmp_path / "x_ramp.fits")], capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.startswith("gpucal ramp-fit: error: no such file")
    assert "Traceback" not in missing.stderr


# --------------------------------------------------------------------------- ProgressReporter


def test_progress_logs_about_every_tenth(caplog):
    reporter = ProgressReporter(total=1000, desc="fit", unit="px", use_tqdm=False)
    with caplog.at_level(logging.INFO, logger="gpucal.progress"):
        for done in range(0, 1001, 7):
            reporter(done, 1000)
        reporter(1000, 1000)
        reporter(1000, 1000)  # repeated: no new line
    lines = [r.getMessage() for r in caplog.records]
    assert 9 <= len(lines) <= 11
    assert lines[-1].startswith("fit: 100% (1000/1000 px")
    assert not reporter.uses_tqdm


def test_progress_disabled_is_silent(caplog):
    reporter = ProgressReporter(total=10, enabled=False)
    with caplog.at_level(logging.DEBUG):
        for done in range(11):
            reporter(done, 10)
    assert caplog.records == [] and reporter.done == 10


def test_progress_takes_total_from_the_call(caplog):
    reporter = ProgressReporter(desc="fit", use_tqdm=False)
    with caplog.at_level(logging.INFO, logger="gpucal.progress"):
        reporter(50, 50)
    assert reporter.total == 50 and "100%" in caplog.text


def test_progress_uses_tqdm_when_asked(capsys):
    pytest.importorskip("tqdm")
    with ProgressReporter(total=100, desc="fit", unit="px", use_tqdm=True) as reporter:
        assert reporter.uses_tqdm
        reporter(40, 100)
        reporter(100, 100)
    assert "fit" in capsys.readouterr().err
    assert not reporter.uses_tqdm  # closed


def test_progress_without_tty_does_not_use_tqdm():
    # pytest captures stderr, so it is not a terminal.
    assert not ProgressReporter(total=10).uses_tqdm
