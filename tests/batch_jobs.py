"""Jobs that misbehave on purpose, for tests/test_batch.py.

They live in a module of their own (not in the test file) so that Dask workers can import
them by name: a worker unpickles a job's functions by importing their module.
Each takes ``options["markers"]``, a directory where it records its attempts.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from gpucal.io.atomic import atomic_write
from gpucal.scaleout.jobs import Job, run_ramp_fit, stem


def _attempt(path: Path, options: dict[str, Any]) -> int:
    """Count this attempt in ``markers/<stem>.attempts`` (one line each: the pid); return its number."""
    log = Path(options.pop("markers")) / f"{stem(path)}.attempts"
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return len(log.read_text().splitlines())


def killed_once(path: Path, out: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """ramp-fit, except that the first attempt on the exposure named ``options['victim']``
    stops half-way through writing its rate file and waits to be killed."""
    victim = options.pop("victim")
    markers = Path(options["markers"])
    if _attempt(path, options) == 1 and stem(path) == victim:
        with atomic_write(out / f"{victim}_rate.fits") as fh:
            fh.write(b"SIMPLE  =                    T" + b" " * 50)  # the start of a FITS file
            fh.flush()
            (markers / f"{victim}.ready").write_text(str(os.getpid()))
            time.sleep(120)  # killed long before this ends
    return run_ramp_fit(path, out, backend, options)


def flaky(path: Path, out: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """ramp-fit that raises an unexpected error on its first attempt."""
    if _attempt(path, options) == 1:
        raise RuntimeError(f"transient failure on {path.name}")
    return run_ramp_fit(path, out, backend, options)


def broken(path: Path, out: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """Always raises an unexpected error."""
    n = _attempt(path, options)
    raise RuntimeError(f"attempt {n} on {path.name} failed")


def crashes(path: Path, out: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """Ends its own process, as the kernel's out-of-memory killer would."""
    os.kill(os.getpid(), signal.SIGKILL)
    return []


def rate_outputs(name: str, options: Any) -> list[str]:
    return [f"{name}_rate.fits", f"{name}_rateints.fits"]


KILLED_ONCE = Job("killed-once", killed_once, outputs=rate_outputs)
FLAKY = Job("flaky", flaky, outputs=rate_outputs)
BROKEN = Job("broken", broken)
CRASHES = Job("crashes", crashes)


def memory_fails_for_victim(path: Path, backend: str, options: dict[str, Any]) -> int:
    """A task-memory estimate that raises an unexpected error for the exposure ``options['victim']``."""
    if stem(path) == options["victim"]:
        raise RuntimeError(f"cannot plan {path.name}")
    return 1 << 20


def ramp_fit_ignoring_victim(path: Path, out: Path, backend: str, options: dict[str, Any]) -> list[Path]:
    """ramp-fit, without the ``victim`` option that :func:`memory_fails_for_victim` takes."""
    options.pop("victim")
    return run_ramp_fit(path, out, backend, options)
