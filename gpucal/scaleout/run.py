""":func:`batch`: many exposures through one job on a Dask cluster, resumably."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.debris import remove_debris
from ..progress import ProgressCallback
from . import cluster as dask_cluster
from . import records
from .inputs import expand_inputs
from .jobs import Job, get_job, stem
from .report import BatchReport, TaskRecord
from .task import run_exposure

log = logging.getLogger("gpucal.batch")

#: Times Dask runs a task again after an unexpected error (input errors are not retried).
DEFAULT_RETRIES = 2
#: Seconds to wait for a first worker of a cluster that has none yet (e.g. queued jobs).
WORKER_WAIT_S = 60


def batch(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    job: str | Job = "detector1",
    *,
    output_dir: str | os.PathLike[str],
    client: Any = None,
    backend: str = "auto",
    overwrite: bool = False,
    retries: int = DEFAULT_RETRIES,
    n_workers: int | None = None,
    report_path: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    **job_options: Any,
) -> BatchReport:
    """Run ``job`` on every exposure, one Dask task per exposure, and report what happened.

    Parameters
    ----------
    inputs
        Exposure paths, glob patterns (``"data/*_uncal.fits"``) and jwst association
        files (``.json``: every member's ``expname``), alone or in a list.
    job
        ``"detector1"``, ``"ramp-fit"``, ``"jump"``, ``"extract"`` (see
        :mod:`gpucal.scaleout.jobs`), or a :class:`~gpucal.scaleout.jobs.Job`.
    output_dir
        Where every product goes (created if missing), and the JSON report.
    client
        A ``dask.distributed.Client`` to submit to. Default: a local cluster started for
        this call and closed after it: dask-cuda's ``LocalCUDACluster`` (one worker per
        GPU) when dask-cuda and a GPU are present and ``backend`` allows the GPU, else a
        ``LocalCluster`` with one single-threaded worker process per core.
    backend
        ``"auto"``, ``"gpu"`` or ``"cpu"``. Decided once for the cluster: with ``"auto"`` the
        tasks run on the GPU when the workers declare GPUs (``GPU=1``), else on the CPU; the
        report's ``cluster_backend`` says which.
    overwrite
        Run exposures that are complete from an earlier run too (default: skip them).
    retries
        How many more times Dask runs a task that raised an unexpected error. A problem
        with the input itself (:class:`~gpucal.errors.GpucalError`, a missing file) fails
        at once; a
        worker that dies is replaced and its task rescheduled by Dask.
    n_workers
        Workers of the local cluster (default: one per core, or one per GPU).
    report_path
        Where to write the JSON report (default ``<output_dir>/batch_<job>_report.json``).
    progress
        ``progress(finished, total)`` after each exposure, e.g. a
        :class:`~gpucal.progress.ProgressReporter`.
    **job_options
        The job's options, e.g. ``gain=``, ``readnoise=``, ``max_memory=`` for ramp-fit.

    Returns
    -------
    BatchReport
        Exposures done, skipped and failed, with timings and errors. Failures do not
        raise: check ``report.ok``.

    Raises
    ------
    InputError
        Unknown job or option, no inputs, a pattern matching nothing, inputs whose
        products would collide; an :class:`~gpucal.io.output_safety.OutputError` when a
        product would be written onto an input (also through a link) or ``output_dir``
        cannot be written. Nothing is run or written then.
    BackendUnavailableError
        ``backend="gpu"`` with no client and no local GPU cluster possible.
    """
    start = time.perf_counter()
    the_job = get_job(job)
    the_job.check_options(job_options)
    if backend not in ("auto", "cpu", "gpu"):
        raise InputError(f"backend must be 'auto', 'cpu' or 'gpu', got {backend!r}")
    if int(retries) < 0:
        raise InputError(f"retries must be >= 0, got {retries}")
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    paths = expand_inputs(inputs)
    out = Path(output_dir)
    _refuse_outputs_onto_inputs(the_job, paths, [Path(i) for i in inputs if Path(i).is_file()], out, job_options)
    out.mkdir(parents=True, exist_ok=True)
    remove_debris(out)  # temporaries and scratch of killed runs (of this host's dead processes)
    report = BatchReport(job=the_job.name, backend=backend, output_dir=str(out),
                         options=records.normalise_options(job_options))

    todo: list[Path] = []
    for path in paths:
        complete = None if overwrite else records.completed_outputs(out, stem(path), the_job.name, job_options,
                                                                    path)
        if complete is None:
            todo.append(path)
        else:
            report.add(TaskRecord(str(path), "skipped", outputs=[str(p) for p in complete]))
    if report.skipped:
        log.info("%d of %d exposure(s) complete from an earlier run: skipped", len(report.skipped), len(paths))
    if progress is not None:
        progress(0, len(todo))

    if todo:
        _require_dask()
        if client is not None:
            client_context = contextlib.nullcontext(client)
        else:
            client_context = dask_cluster.local_client(backend, n_workers)
        with client_context as the_client:
            _run(the_client, the_job, todo, out, backend, job_options, int(retries), report, progress)

    report.wall_s = time.perf_counter() - start
    report.sort([str(p) for p in paths])
    written = report.write_json(report_path if report_path is not None else out / f"batch_{the_job.name}_report.json")
    log.info("%s; report %s", report.summary(), written)
    return report


def _refuse_outputs_onto_inputs(job: Job, paths: list[Path], given: list[Path], out: Path,
                                options: dict[str, Any]) -> None:
    """Before anything runs: no declared product of any exposure may be one of the batch's
    inputs (exposures, association files, reference files in the options), and ``out`` must
    be writable."""
    from ..io.output_safety import check_directory, check_not_inputs

    planned = [out / name for path in paths for name in job.output_names(stem(path), options)]
    references = [Path(v) for k, v in options.items() if k in ("gain", "readnoise", "cubepars")
                  and isinstance(v, (str, os.PathLike))]
    check_not_inputs(planned, [*paths, *given, *references])
    check_directory(out)


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"gpucal.batch needs Dask ({exc}): pip install 'gpucal[dask]'") from exc


def _run(client: Any, job: Job, todo: list[Path], out: Path, backend: str, options: dict[str, Any], retries: int,
         report: BatchReport, progress: ProgressCallback | None) -> None:
    """Submit one task per exposure and file each result as it comes back."""
    from distributed import as_completed

    report.scheduler = client.scheduler.address
    report.dashboard = dask_cluster.dashboard_link(client)
    if report.dashboard:
        log.info("Dask dashboard: %s", report.dashboard)
    workers = dask_cluster.worker_info(client)
    if not workers:
        # Resource requests follow what the workers declare, so wait for a first one.
        log.info("waiting up to %d s for a worker to join %s", WORKER_WAIT_S, report.scheduler)
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            log.warning("no worker joined %s; tasks wait for workers and ask for no resources",
                        report.scheduler)
        workers = dask_cluster.worker_info(client)
    report.workers = len(workers)
    gpu_workers = any(dask_cluster.GPU in (w.get("resources") or {}) for w in workers.values())
    task_backend = report.cluster_backend = dask_cluster.cluster_backend(backend, gpu_workers)
    threads = dask_cluster.host_threads(workers)
    log.info("batch %s: %d exposure(s) on %d worker(s)%s, backend %s", job.name, len(todo), len(workers),
             " with GPUs" if gpu_workers else "", task_backend)

    futures = {}
    run_id = uuid.uuid4().hex[:8]
    finished = 0
    try:
        for path in todo:
            try:
                resources = dask_cluster.task_resources(workers, job.memory_bytes(path, task_backend, options),
                                                        path.name)
            except Exception as exc:  # this exposure's failure, not the batch's
                finished += _file(report, _failure(path, exc, "while planning its task"), path, finished,
                                  len(todo), progress)
                continue
            future = client.submit(
                run_exposure, job, str(path), str(out), task_backend, options, threads,
                key=f"gpucal-{job.name}-{stem(path)}-{run_id}", retries=retries, resources=resources, pure=False,
            )
            futures[future] = path
        for future in as_completed(futures):
            finished += _file(report, _record(future, futures[future]), futures[future], finished, len(todo),
                              progress)
    except BaseException:
        client.cancel(list(futures))
        raise


def _file(report: BatchReport, record: TaskRecord, path: Path, finished: int, total: int,
          progress: ProgressCallback | None) -> int:
    """Add ``record`` to the report, log it and advance the progress; returns 1 (one more finished)."""
    report.add(record)
    if record.status == "failed":
        log.warning("%s failed: %s", path.name, record.error)
    else:
        log.debug("%s done in %.2f s on %s", path.name, record.seconds or 0.0, record.worker)
    if progress is not None:
        progress(finished + 1, total)
    return 1


def _failure(path: Path, exc: BaseException, when: str = "") -> TaskRecord:
    """A failure record of ``path`` from ``exc`` (``when`` is added to the error text)."""
    error = f"{type(exc).__name__}: {exc}" + (f" ({when})" if when else "")
    return TaskRecord(str(path), "failed", error=error,
                      traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def _record(future: Any, path: Path) -> TaskRecord:
    """The task's own record, or a failure record from the exception Dask kept.

    ``future.result()``, not the future's status: a worker that dies after finishing a task but
    before its result was fetched loses that result, and Dask computes it again; the status
    is then briefly not "finished" although the task will succeed.
    """
    try:
        return TaskRecord(**future.result())
    except Exception as exc:
        killed = type(exc).__name__ == "KilledWorker"
        return _failure(path, exc, "each attempt ended its worker process: out of memory? see the worker logs"
                        if killed else "")
