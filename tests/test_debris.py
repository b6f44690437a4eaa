"""Debris of killed runs (temporary products, scratch directories) is removed by the next run,
never while its process lives (issue 17)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpucal import cli
from gpucal.io import debris
from gpucal.io.atomic import TEMP_SUFFIX, atomic_write, temporary_files


@pytest.fixture(autouse=True)
def _fresh_sweeps(monkeypatch):
    """Each test sweeps its directories anew (a process sweeps a directory once)."""
    monkeypatch.setattr(debris, "_swept", set())


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not debris.process_alive(child.pid)
    return child.pid


@pytest.fixture
def live_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def _debris(directory: Path, pid: int, host: str | None = None, tag: str = "0123456789ab") -> tuple[Path, Path]:
    """A partial product and a scratch directory (with a file) as process ``pid`` leaves them."""
    host = host or debris.host_tag()
    temp = directory / f".x_rate.fits.{host}.{pid}.{tag}{TEMP_SUFFIX}"
    temp.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    scratch = directory / debris.SCRATCH_DIR / f"{host}.{pid}.{tag}"
    scratch.mkdir(parents=True)
    (scratch / "data.f32").write_bytes(bytes(4096))
    return temp, scratch


def test_a_run_removes_the_debris_of_dead_processes_only(tmp_path, dead_pid, live_pid, caplog):
    from gpucal.synthetic import make_exposure, write_exposure

    inputs = write_exposure(make_exposure(1, 4, 8, 10, seed=1), tmp_path / "in", name="x")
    out = tmp_path / "out"
    out.mkdir()
    dead = _debris(out, dead_pid)
    alive = _debris(out, live_pid, tag="ba9876543210")
    elsewhere = _debris(out, dead_pid, host="another-host", tag="00000000beef")
    unknown = out / f".x_rate.fits.0123456789ab{TEMP_SUFFIX}"  # an older gpucal's: owner unknown
    unknown.write_bytes(b"partial")
    with caplog.at_level(logging.INFO, logger="gpucal.io.debris"):
        assert cli.main(["ramp-fit", str(inputs["ramp"]), "-o", str(out), "--backend", "cpu", "-q"]) == 0
    assert not any(p.exists() for p in dead)
    assert all(p.exists() for p in alive + elsewhere + (unknown,))
    for path in dead:
        assert f"removed {path} " in caplog.text and f"left by process {dead_pid} that no longer exists" in caplog.text
    assert sorted(p.name for p in out.glob("*.fits")) == ["x_rate.fits", "x_rateints.fits"]


def test_temporary_names_carry_the_writer(tmp_path):
    target = tmp_path / "y_rate.fits"
    with atomic_write(target) as fh:
        (temp,) = temporary_files(target)
        assert temp.name.startswith(f".y_rate.fits.{debris.host_tag()}.{os.getpid()}.")
        assert debris.temp_target(temp) == "y_rate.fits"
        assert debris.remove_debris(tmp_path) == [] and temp.exists()  # our own: alive
        fh.write(b"x")
    assert target.read_bytes() == b"x" and not temporary_files(target)


_KILLED_MID_RUN = """
import os, signal, sys
from pathlib import Path
import numpy as np
from gpucal.io.atomic import atomic_write
from gpucal.io.debris import scratch_space

out = Path(sys.argv[1])
with scratch_space(out) as scratch:
    np.memmap(scratch.path() / "data.f32", np.float32, "w+", shape=(1024,))[:] = 1
    with atomic_write(out / "z_rate.fits") as fh:
        fh.write(b"SIMPLE  =                    T")
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_leaves_debris_that_the_next_run_removes(tmp_path, caplog):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-c", _KILLED_MID_RUN, str(out)], capture_output=True, timeout=120)
    assert run.returncode == -9, run.stderr
    (temp,) = out.glob(f".z_rate.fits.*{TEMP_SUFFIX}")
    (scratch,) = (out / debris.SCRATCH_DIR).iterdir()
    assert (scratch / "data.f32").stat().st_size == 4096
    with caplog.at_level(logging.INFO, logger="gpucal.io.debris"):
        with atomic_write(out / "z_rate.fits") as fh:
            fh.write(b"done")
    assert not temp.exists() and not scratch.exists() and not (out / debris.SCRATCH_DIR).exists()
    assert caplog.text.count("that no longer exists") == 2
    assert sorted(p.name for p in out.iterdir()) == ["z_rate.fits"]


def test_detector1_scratch_lives_under_the_output_directory_and_goes(tmp_path, caplog, monkeypatch):
    from test_detector1 import _write_inputs, nir_case

    ramp, refs = nir_case(nints=3, ngroups=5, ny=160)
    uncal, paths = _write_inputs(tmp_path, ramp, refs)
    out = tmp_path / "out"
    argv = ["detector1", str(uncal), "-o", str(out), "--backend", "cpu", "-q", "--max-memory", "400000"]
    argv += [a for key, p in paths.items() for a in (f"--override-{key}", str(p))]
    caplog.set_level(logging.INFO, logger="gpucal.pipeline.detector1")
    assert cli.main(argv) == 0
    scratch = out / debris.SCRATCH_DIR / f"{debris.host_tag()}.{os.getpid()}."
    assert f"kept in a memory-mapped file in {scratch}" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["jw_test_nrca1_rate.fits", "jw_test_nrca1_rateints.fits"]

    # A run that fails after filling its scratch leaves nothing, not even the directories it made.
    import importlib

    from gpucal.errors import GpucalError

    d1 = importlib.import_module("gpucal.pipeline.detector1")

    def fails(*args, **kwargs):
        raise GpucalError("ramp_fit failed")

    monkeypatch.setattr(d1, "_tail", fails)
    failed = tmp_path / "failed" / "deeper"
    assert cli.main([a if a != str(out) else str(failed) for a in argv]) == 2
    assert f"kept in a memory-mapped file in {failed / debris.SCRATCH_DIR}" in caplog.text
    assert not (tmp_path / "failed").exists()
