"""One exposure, on a Dask worker: run the job, then record that its products are complete."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..chunking import CPU_WORKERS_ENV
from ..errors import GpucalError
from . import records
from .identity import file_identity
from .jobs import Job, stem

log = logging.getLogger(__name__)


def run_exposure(job: Job, input_path: str, output_dir: str, backend: str, options: Mapping[str, Any],
                 host_threads: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Run ``job`` on one exposure and return its record (a dict, see :class:`TaskRecord`).

    A :class:`~gpucal.errors.GpucalError` or ``FileNotFoundError`` (a problem with this
    input: not a ramp file, a missing file or reference, nothing to fit) comes back as a
    ``failed`` record, since running it again cannot help. Any other exception propagates,
    so Dask retries the task.
    """
    path, out = Path(input_path), Path(output_dir)
    name = stem(path)
    _share_cores(host_threads or {})
    started = time.time()
    start = time.perf_counter()
    where = _where()
    records.forget(out, name, job.name)
    records.remove_stale_temporaries(out, name, job.name, job.output_names(name, options))
    try:
        identity = file_identity(path)  # before the job reads it: a change meanwhile reruns it next time
    except OSError:
        identity = None  # the job reports the missing or unreadable input
    try:
        written = job.run(path, out, backend, dict(options))
    except (GpucalError, FileNotFoundError) as exc:
        log.warning("%s: %s failed: %s", path.name, job.name, exc)
        return dict(input=str(path), status="failed", seconds=time.perf_counter() - start, started=started,
                    error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(), **where)
    records.write_record(out, name, job.name, path, options, list(written), identity)
    return dict(input=str(path), status="done", outputs=[str(p) for p in written],
                seconds=time.perf_counter() - start, started=started, **where)


def _where() -> dict[str, Any]:
    """The worker address (when on a Dask worker), host and process id."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        from distributed import get_worker

        info["worker"] = get_worker().address
    except (ImportError, ValueError):  # not running on a Dask worker
        info["worker"] = None
    return info


def _share_cores(host_threads: Mapping[str, int]) -> None:
    """Cap the CPU paths' threads at this worker's share of its node's cores, so the
    workers of one node together use each core once (``GPUCAL_CPU_WORKERS``, unless the
    worker's environment already sets it)."""
    if os.environ.get(CPU_WORKERS_ENV):
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    threads = host_threads.get(worker.address) or worker.state.nthreads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    os.environ[CPU_WORKERS_ENV] = str(max(1, cores // max(1, threads)))
