#!/usr/bin/env python3
"""Benchmark gpucal.batch: 8 exposures one after the other in this process, against a Dask
LocalCluster on this machine's cores (and, on a GPU machine, dask-cuda GPU workers).

    python bench/batch.py                      # 8 exposures of 2x10x512x512, ramp-fit
    python bench/batch.py --case 1x10x1024x1024 --exposures 16
    python bench/batch.py --quick              # 8 tiny exposures: mostly Dask's overhead
    python bench/batch.py --job detector1      # 8 copies of the built-in raw 1x10x512x512

Rows (all with file reading and product writing, as a batch does them):

- ``serial``: the job on each exposure in turn in this process, the CPU paths free to use
  every core internally (what a user's loop over ``ramp_fit`` gets);
- ``serial 1 core``: the same with ``GPUCAL_CPU_WORKERS=1``, the work of one batch task;
- ``LocalCluster``: ``gpucal.batch`` on a LocalCluster with one single-threaded worker
  process per core, started before the clock (start-up time shown separately);

every process (this one, each worker) first runs the job once on one exposure (imports,
tables, kernel compilation), outside the timing;
- ``GPU workers`` / ``CPU workers`` on a GPU machine: a LocalCUDACluster (one worker per
  GPU, backend gpu) and the CPU LocalCluster.

Columns: wall seconds, speed-up over ``serial``, the mean seconds one task spent inside
the job on its worker, and the overhead per task: the busiest worker's wall time not spent
inside tasks, divided by the tasks it ran (scheduling, transfers, the completion record).
Every batch's products are compared byte for byte with the serial run's. Results also go to
bench/out/batch.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT_DIR, environment, parse_case, write_json  # noqa: E402

DEFAULT_CASE = "2x10x512x512"
QUICK_CASE = "1x6x64x64"


def make_inputs(directory: Path, case, count: int, job: str) -> list[Path]:
    from gpucal.synthetic import make_exposure, write_exposure

    shutil.rmtree(directory, ignore_errors=True)
    if job == "detector1":
        return raw_inputs(directory, count)
    return [write_exposure(make_exposure(*case.shape, seed=i), directory, name=f"bench{i:02d}")["ramp"]
            for i in range(count)]


def raw_inputs(directory: Path, count: int) -> list[Path]:
    """Copies of the built-in raw 1x10x512x512 exposure, with its references beside them."""
    from gpucal.synthetic_uncal import builtin_uncal

    source = builtin_uncal()
    directory.mkdir(parents=True)
    for ref in source.parent.glob("*.fits"):
        if not ref.name.endswith(("_uncal.fits", "_ramp.fits")):
            shutil.copy2(ref, directory / ref.name)
    return [Path(shutil.copy2(source, directory / f"bench{i:02d}_uncal.fits")) for i in range(count)]


def warm_up(job, path: Path, scratch: Path, backend: str = "cpu") -> None:
    """One exposure through the job in this process (imports, tables, kernel compilation)."""
    out = scratch / str(os.getpid())
    out.mkdir(parents=True, exist_ok=True)
    job.run(path, out, backend, {})


def run_serial(job, inputs: list[Path], out: Path, one_core: bool) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    previous = os.environ.get("GPUCAL_CPU_WORKERS")
    if one_core:
        os.environ["GPUCAL_CPU_WORKERS"] = "1"
    try:
        start = time.perf_counter()
        for path in inputs:
            job.run(path, out, "cpu", {})
        return time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop("GPUCAL_CPU_WORKERS", None)
        else:
            os.environ["GPUCAL_CPU_WORKERS"] = previous


def run_cluster(kind: str, inputs: list[Path], out: Path, job: str, n_workers: int | None) -> dict[str, Any]:
    from gpucal.scaleout import batch, get_job
    from gpucal.scaleout.cluster import local_client

    backend = "gpu" if kind == "gpu" else "cpu"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    with local_client(backend, n_workers) as client:
        startup = time.perf_counter() - start
        client.run(warm_up, get_job(job), inputs[0], out.parent / "warm", backend)
        start = time.perf_counter()
        report = batch([str(p) for p in inputs], job, output_dir=out, client=client, backend=backend)
        wall = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"batch failed: {[r.error for r in report.failed]}")
    per_worker: dict[str, list[float]] = defaultdict(list)
    for record in report.done:
        per_worker[record.worker].append(record.seconds)
    busiest = max(per_worker.values(), key=sum)
    return {"wall_s": wall, "startup_s": startup, "workers": report.workers,
            "task_s": sum(sum(v) for v in per_worker.values()) / len(report.done),
            "overhead_per_task_s": max(0.0, wall - sum(busiest)) / len(busiest)}


def same_products(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.fits"))
    return bool(names) and names == sorted(p.name for p in b.glob("*.fits")) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=None, help=f"exposure shape NxGxYxX (default {DEFAULT_CASE})")
    parser.add_argument("--quick", action="store_true", help=f"tiny exposures ({QUICK_CASE})")
    parser.add_argument("--exposures", type=int, default=8)
    parser.add_argument("--job", default="ramp-fit", help="batch job (default ramp-fit)")
    parser.add_argument("--workers", type=int, default=None, help="CPU workers (default: one per core)")
    parser.add_argument("--json", type=Path, default=OUT_DIR / "batch.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import distributed  # noqa: F401  (sets its loggers up; quieted next)

    logging.getLogger("distributed").setLevel(logging.WARNING)
    logging.getLogger("gpucal").setLevel(logging.ERROR)  # e.g. the synthetic gains' NaN pixels

    import gpucal
    from gpucal.scaleout import get_job
    from gpucal.scaleout.cluster import local_gpu_count, usable_cores

    case = parse_case(args.case or (QUICK_CASE if args.quick else DEFAULT_CASE))
    job = get_job(args.job)
    work = OUT_DIR / "batch"
    if job.name == "detector1":
        case = parse_case("1x10x512x512")  # the built-in raw exposure
    inputs = make_inputs(work / "in", case, args.exposures, job.name)
    env = environment()
    print(f"# {env['date']}  {env['commit']}  {env['cpu']}  gpu: {env['gpu'] or 'none'}")
    print(f"# {args.exposures} exposures of {case.name}, job {job.name}")

    rows = []
    warm_up(job, inputs[0], work / "warm")
    serial_s = run_serial(job, inputs, work / "serial", one_core=False)
    rows.append({"run": "serial", "wall_s": serial_s})
    rows.append({"run": "serial 1 core", "wall_s": run_serial(job, inputs, work / "serial1", one_core=True),
                 "identical": same_products(work / "serial1", work / "serial")})
    kinds = [("LocalCluster", "cpu")]
    if gpucal.gpu_available() and local_gpu_count():
        kinds.append(("GPU workers (LocalCUDACluster)", "gpu"))
    for name, kind in kinds:
        result = run_cluster(kind, inputs, work / kind, job.name, args.workers if kind == "cpu" else None)
        result.update(run=f"{name}, {result['workers']} workers", identical=same_products(work / kind, work / "serial"))
        rows.append(result)

    print(f"{'run':38s} {'wall s':>8s} {'speed-up':>8s} {'task s':>8s} {'overhead/task s':>16s} "
          f"{'start-up s':>10s}  identical")
    for row in rows:
        print(f"{row['run']:38s} {row['wall_s']:8.2f} {serial_s / row['wall_s']:8.2f} "
              f"{_fmt(row.get('task_s')):>8s} {_fmt(row.get('overhead_per_task_s'), 3):>16s} "
              f"{_fmt(row.get('startup_s')):>10s}  {row.get('identical', '-')}")
    write_json(args.json, {"environment": env, "case": case, "exposures": args.exposures, "job": job.name,
                           "cores": usable_cores(), "rows": rows})
    return 0


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
