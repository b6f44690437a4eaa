"""The Dask side of a batch: a local cluster when none is given, and what each task asks for.

Worker resources are how a node never runs more than fits:

- ``GPU``: GPU workers declare ``GPU=1`` (one worker per GPU: dask-cuda's
  ``LocalCUDACluster``, or ``dask cuda worker ... --resources GPU=1``); every task then
  asks for ``GPU=1``, so one exposure at a time owns a device.
- ``MEMORY`` (bytes): workers that declare it (the local CPU cluster declares its memory
  limit; ``dask worker --resources MEMORY=64e9`` on a cluster) run tasks only while
  the tasks' estimates, from their job's chunk plan, fit.

Tasks ask only for resources some worker declares; a request bigger than every worker's
capacity is cut to the largest (the task then runs alone there) with a warning, rather
than waiting forever.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..errors import BackendUnavailableError

log = logging.getLogger(__name__)

GPU = "GPU"
MEMORY = "MEMORY"
#: Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536. Any explicit value stops
#: glibc from raising its mmap threshold, so every large numpy temporary is mapped afresh
#: and page-faulted in: ramp fitting ran 2.2x slower (1.68 s against 0.78 s an exposure of
#: 2x10x512x512). The local clusters do without it; see the README for other clusters.
NANNY_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def local_gpu_count() -> int:
    """GPUs a local dask-cuda cluster can use (0 without dask-cuda, CuPy or a device).

    dask-cuda installed but failing to import (a broken install, such as dask-cuda 25.10+
    without the cuda-bindings of its cu12/cu13 extra) is logged as a warning with the reason:
    the batch then runs on CPU workers, which the user did not ask for.
    """
    if importlib.util.find_spec("dask_cuda") is None or importlib.util.find_spec("cupy") is None:
        return 0
    try:
        from dask_cuda.utils import get_n_gpus
    except Exception as exc:  # ImportError, or whatever a broken dependency raises at import
        log.warning("dask-cuda is installed but `import dask_cuda` failed (%s: %s); no GPU workers. "
                    "Reinstall with pip install 'gpucal[gpu,dask-cuda]' (CUDA 12) or "
                    "'gpucal[gpu-cuda13,dask-cuda-cuda13]' (CUDA 13)", type(exc).__name__, exc)
        return 0
    try:
        return int(get_n_gpus())
    except Exception as exc:  # NVML missing or no driver: a machine without GPUs
        log.debug("no GPUs for dask-cuda: %s", exc)
        return 0


@contextlib.contextmanager
def local_client(backend: str, n_workers: int | None = None) -> Iterator[Any]:
    """A client of a local cluster started for one batch, closed on exit.

    ``LocalCUDACluster`` (one single-threaded worker per GPU, ``GPU=1``) when the backend
    allows the GPU and dask-cuda finds devices; else ``LocalCluster`` with one
    single-threaded worker process per core (``n_workers`` overrides either count).
    """
    import dask
    from distributed import Client

    gpus = local_gpu_count() if backend in ("auto", "gpu") else 0
    if backend == "gpu" and not gpus:
        raise BackendUnavailableError(
            "backend='gpu' for a local cluster needs dask-cuda, CuPy and a CUDA device "
            "(pip install 'gpucal[gpu,dask-cuda]'); or pass a client of a cluster with GPU workers"
        )
    with dask.config.set({NANNY_MALLOC_TRIM: None}):
        cluster = _start_local_cluster(gpus, n_workers)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _start_local_cluster(gpus: int, n_workers: int | None) -> Any:
    from distributed import LocalCluster

    if gpus:
        from dask_cuda import LocalCUDACluster

        workers = min(n_workers or gpus, gpus)
        cluster = LocalCUDACluster(n_workers=workers, threads_per_worker=1, resources={GPU: 1})
        log.info("started a LocalCUDACluster: %d GPU worker(s)", workers)
    else:
        from distributed.system import MEMORY_LIMIT

        workers = n_workers or usable_cores()
        # Each worker's share of the host's memory: its Dask memory limit and its MEMORY resource.
        memory = int(MEMORY_LIMIT // workers)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               memory_limit=memory, resources={MEMORY: memory})
        log.info("started a LocalCluster: %d worker process(es), one thread each", workers)
    return cluster


def cluster_backend(backend: str, gpu_workers: bool) -> str:
    """The backend every task of a batch runs with, decided once for the cluster.

    ``"gpu"`` when asked for, or when ``backend`` is ``"auto"`` and the workers declare GPUs;
    otherwise ``"cpu"``. Never ``"auto"``: each process of a CPU cluster would otherwise find
    the node's GPU on its own and open a context on GPU 0, all of them on the same device.
    """
    if backend == "gpu" or (backend == "auto" and gpu_workers):
        return "gpu"
    if backend == "auto":
        log.info("no worker declares a GPU resource: the tasks run on the CPU (GPU workers declare GPU=1)")
    return "cpu"


def worker_info(client: Any) -> dict[str, dict[str, Any]]:
    """The scheduler's view of each worker (address -> info with resources, host, nthreads)."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before 2025 lists every worker without being asked
        info = client.scheduler_info()
    return dict(info["workers"])


def host_threads(workers: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Worker address -> threads of all workers on that worker's host."""
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info.get("host", "")] = per_host.get(info.get("host", ""), 0) + int(info.get("nthreads", 1))
    return {address: per_host[info.get("host", "")] for address, info in workers.items()}


def task_resources(workers: dict[str, dict[str, Any]], memory: int | None, label: str) -> dict[str, float] | None:
    """Resources one task asks for (None: none), given the workers and its memory estimate."""
    declared: dict[str, float] = {}
    for info in workers.values():
        for name, amount in (info.get("resources") or {}).items():
            declared[name] = max(declared.get(name, 0.0), float(amount))
    wanted: dict[str, float] = {}
    if GPU in declared:
        wanted[GPU] = 1
    if MEMORY in declared and memory:
        if memory > declared[MEMORY]:
            log.warning("%s needs about %.1f GiB, more than any worker declares (%.1f GiB); "
                        "it runs alone on the largest", label, memory / 1024**3, declared[MEMORY] / 1024**3)
        wanted[MEMORY] = min(float(memory), declared[MEMORY])
    return wanted or None


def dashboard_link(client: Any) -> str | None:
    """The dashboard's address, when the scheduler serves one."""
    try:
        if "dashboard" not in client.scheduler_info().get("services", {}):
            return None
        return client.dashboard_link
    except Exception:  # an old or unusual scheduler
        return None
