"""gpucal.batch on Dask: products equal the serial run bit for bit, killed workers and bad
inputs, resuming, retries, the JSON report and the command line.

One LocalCluster (2 single-threaded worker processes) serves the module; exposures are
tiny, so the time goes to Dask's round trips.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import gpucal  # noqa: E402
from gpucal import cli  # noqa: E402
from gpucal.io.atomic import TEMP_SUFFIX  # noqa: E402
from gpucal.scaleout import BatchReport, batch, records  # noqa: E402
from gpucal.scaleout.cluster import usable_cores  # noqa: E402
from gpucal.scaleout.jobs import JOBS, Job, run_ramp_fit  # noqa: E402
from gpucal.synthetic import make_exposure, write_exposure  # noqa: E402

import batch_jobs  # noqa: E402

SHAPE = (2, 6, 24, 32)  # nints, ngroups, ny, nx
N_EXPOSURES = 6
RATE_NAMES = ("_rate.fits", "_rateints.fits")


@pytest.fixture(scope="module")
def exposures(tmp_path_factory) -> list[Path]:
    directory = tmp_path_factory.mktemp("batch_in")
    return [write_exposure(make_exposure(*SHAPE, seed=i), directory, name=f"exp{i}")["ramp"]
            for i in range(N_EXPOSURES)]


@pytest.fixture(scope="module")
def serial(exposures, tmp_path_factory) -> Path:
    """The ramp-fit products of a plain in-process loop over the exposures."""
    out = tmp_path_factory.mktemp("serial")
    for path in exposures:
        run_ramp_fit(path, out, "cpu", {})
    return out


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           resources={"MEMORY": 2**30})
    with Client(cluster) as c:
        yield c
    cluster.close()


def _stem(path: Path) -> str:
    return path.name.removesuffix("_ramp.fits")


def _assert_same_products(out: Path, serial: Path, exposures: list[Path], moved: bool = False) -> None:
    """Products byte for byte equal to the serial run's; ``moved``: the inputs were copied to another
    directory, so the products' R_* cards (absolute reference paths) differ and all else must not."""
    from astropy.io import fits

    for path in exposures:
        for suffix in RATE_NAMES:
            name = _stem(path) + suffix
            if not moved:
                assert (out / name).read_bytes() == (serial / name).read_bytes(), name
                continue
            with fits.open(out / name) as got, fits.open(serial / name) as want:
                assert [h.name for h in got] == [h.name for h in want], name
                for a, b in zip(got, want):
                    keep = [k for k in b.header if not k.startswith("R_")]
                    assert [(k, a.header[k]) for k in keep] == [(k, b.header[k]) for k in keep], name
                    assert [k for k in a.header if k.startswith("R_")] == [k for k in b.header if k.startswith("R_")]
                    if b.data is not None:
                        assert a.data.tobytes() == b.data.tobytes(), (name, b.name)


def _temporaries(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


# --------------------------------------------------------------------------- cluster runs


def test_two_workers_give_the_serial_products_bit_for_bit(client, exposures, serial, tmp_path):
    out = tmp_path / "out"
    report = batch([str(p) for p in exposures], "ramp-fit", output_dir=out, client=client, backend="cpu")
    assert report.ok and len(report.done) == N_EXPOSURES and not report.skipped
    _assert_same_products(out, serial, exposures)
    # Both workers took exposures, none of them in this process.
    assert len({r.worker for r in report.done}) == 2
    assert all(r.pid != os.getpid() for r in report.done)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(
        [_stem(p) + s for p in exposures for s in RATE_NAMES] + ["batch_ramp-fit_report.json"])
    # Each worker caps the CPU paths at its share of the node's cores.
    shares = client.run(lambda: os.environ.get("GPUCAL_CPU_WORKERS"))
    assert set(shares.values()) == {str(max(1, usable_cores() // 2))}


def test_report_json(client, exposures, tmp_path):
    out = tmp_path / "out"
    report = batch(exposures[:2], "ramp-fit", output_dir=out, client=client, backend="cpu")
    path = out / "batch_ramp-fit_report.json"
    assert report.report_path == str(path)
    payload = json.loads(path.read_text())
    assert payload["job"] == "ramp-fit" and payload["backend"] == "cpu"
    assert payload["summary"] == {"done": 2, "skipped": 0, "failed": 0}
    assert payload["scheduler"] == client.scheduler.address and payload["workers"] == 2
    assert payload["wall_s"] > 0
    workers = set(client.scheduler_info()["workers"])
    for record, exposure in zip(payload["done"], exposures[:2]):
        assert record["input"] == str(exposure) and record["status"] == "done"
        assert record["outputs"] == [str(out / (_stem(exposure) + s)) for s in RATE_NAMES]
        assert record["seconds"] > 0 and record["started"] <= time.time()
        assert record["worker"] in workers and record["error"] is None
    again = BatchReport.read_json(path)
    assert again.done == report.done and again.summary() == report.summary()


def test_rerun_skips_what_is_complete(client, exposures, serial, tmp_path):
    out = tmp_path / "out"
    first = batch(exposures, "ramp-fit", output_dir=out, client=client, backend="cpu")
    assert len(first.done) == N_EXPOSURES
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.fits")}

    second = batch(exposures, "ramp-fit", output_dir=out, client=client, backend="cpu")
    assert len(second.skipped) == N_EXPOSURES and not second.done and second.scheduler is None
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.fits")} == stamps
    assert second.skipped[0].outputs == first.done[0].outputs

    # A product that is not the one recorded (truncated, replaced) makes its exposure run again.
    victim = out / (_stem(exposures[3]) + "_rateints.fits")
    victim.write_bytes(victim.read_bytes()[:2880])
    third = batch(exposures, "ramp-fit", output_dir=out, client=client, backend="cpu")
    assert [r.input for r in third.done] == [str(exposures[3])]
    _assert_same_products(out, serial, exposures)

    # Other options are another result; overwrite runs everything.
    changed = batch(exposures[:1], "ramp-fit", output_dir=out, client=client, backend="cpu", save_opt=True)
    assert len(changed.done) == 1 and (out / (_stem(exposures[0]) + "_fitopt.fits")).is_file()
    forced = batch(exposures, "ramp-fit", output_dir=out, client=client, backend="cpu", overwrite=True)
    assert len(forced.done) == N_EXPOSURES


def test_rerun_redoes_a_regenerated_input_and_a_product_zero_filled(client, exposures, serial, tmp_path):
    import shutil

    here = tmp_path / "in"
    here.mkdir()
    inputs = []
    for path in exposures[:3]:
        for part in path.parent.glob(f"{_stem(path)}_*.fits"):
            shutil.copy2(part, here / part.name)
        inputs.append(here / path.name)
    out = tmp_path / "out"
    assert len(batch(inputs, "ramp-fit", output_dir=out, client=client, backend="cpu").done) == 3

    write_exposure(make_exposure(*SHAPE, seed=99), here, name=_stem(inputs[0]))  # regenerated, same size
    assert inputs[0].stat().st_size == exposures[0].stat().st_size
    zeroed = out / (_stem(inputs[1]) + "_rate.fits")
    zeroed.write_bytes(bytes(zeroed.stat().st_size))
    again = batch(inputs, "ramp-fit", output_dir=out, client=client, backend="cpu")
    assert sorted(r.input for r in again.done) == [str(inputs[0]), str(inputs[1])]
    assert [r.input for r in again.skipped] == [str(inputs[2])]
    _assert_same_products(out, serial, exposures[1:3], moved=True)
    fresh = tmp_path / "fresh"
    run_ramp_fit(inputs[0], fresh, "cpu", {})
    for suffix in RATE_NAMES:
        name = _stem(inputs[0]) + suffix
        assert (out / name).read_bytes() == (fresh / name).read_bytes() != (serial / name).read_bytes()


def test_bad_inputs_fail_clearly_and_the_others_finish(client, exposures, serial, tmp_path):
    garbage = tmp_path / "garbage_ramp.fits"
    garbage.write_text("not a FITS file")
    missing = tmp_path / "missing_ramp.fits"
    out = tmp_path / "out"
    inputs = [exposures[0], garbage, exposures[1], missing]
    report = batch(inputs, "ramp-fit", output_dir=out, client=client, backend="cpu")
    assert not report.ok
    assert [r.input for r in report.done] == [str(exposures[0]), str(exposures[1])]
    errors = {Path(r.input).name: r.error for r in report.failed}
    assert errors["garbage_ramp.fits"].startswith("FileFormatError: ")
    assert "not a readable FITS file" in errors["garbage_ramp.fits"]
    assert errors["missing_ramp.fits"].startswith("FileNotFoundError: ")
    assert str(missing) in errors["missing_ramp.fits"]
    assert all(r.traceback and not r.outputs for r in report.failed)
    assert all(r.worker in client.scheduler_info()["workers"] for r in report.failed)  # reported by the task
    _assert_same_products(out, serial, exposures[:2])
    assert not list(out.glob("garbage*")) and not list(out.glob("missing*")) and not _temporaries(out)


def test_truncated_and_non_fits_inputs_fail_and_the_others_finish(client, exposures, serial, tmp_path, capsys):
    """The command line: a truncated exposure and a text file among good ones; exit 3, the good
    ones are done, the report names both failures (the truncated file once crashed planning)."""
    truncated = tmp_path / "short_ramp.fits"
    truncated.write_bytes(exposures[2].read_bytes()[:20000])
    text = tmp_path / "text_ramp.fits"
    text.write_text("SIMPLE? no: a text file\n" * 100)
    out = tmp_path / "out"
    inputs = [exposures[0], truncated, exposures[1], text]
    status = cli.main(["batch", *map(str, inputs), "--job", "ramp-fit", "-o", str(out), "--scheduler",
                       client.scheduler.address, "-q", "--backend", "cpu"])
    assert status == 3
    printed = capsys.readouterr().out
    assert f"failed: {truncated}: FileFormatError: {truncated}: truncated: the file has 20000 bytes" in printed
    assert f"failed: {text}: FileFormatError: {text} is not a readable FITS file" in printed
    report = json.loads((out / "batch_ramp-fit_report.json").read_text())
    assert [r["input"] for r in report["done"]] == [str(exposures[0]), str(exposures[1])]
    assert sorted(r["input"] for r in report["failed"]) == sorted([str(truncated), str(text)])
    _assert_same_products(out, serial, exposures[:2])
    assert not list(out.glob("short*")) and not list(out.glob("text*")) and not _temporaries(out)


def test_an_error_while_planning_is_that_exposures_failure(client, exposures, serial, tmp_path):
    job = Job("plan-fails", batch_jobs.ramp_fit_ignoring_victim, memory=batch_jobs.memory_fails_for_victim)
    victim = _stem(exposures[1])
    out = tmp_path / "out"
    report = batch(exposures[:3], job, output_dir=out, client=client, backend="cpu", victim=victim)
    assert [r.input for r in report.done] == [str(exposures[0]), str(exposures[2])]
    (failed,) = report.failed
    assert failed.input == str(exposures[1]) and failed.worker is None
    assert failed.error == f"RuntimeError: cannot plan {exposures[1].name} (while planning its task)"
    assert "memory_fails_for_victim" in failed.traceback
    _assert_same_products(out, serial, [exposures[0], exposures[2]])
    assert not list(out.glob(f"{victim}*"))


def test_unexpected_errors_are_retried_then_reported(client, exposures, serial, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "out"
    report = batch(exposures[:2], batch_jobs.FLAKY, output_dir=out, client=client, backend="cpu", retries=1,
                   markers=str(markers))
    assert len(report.done) == 2
    assert all(len((markers / f"{_stem(p)}.attempts").read_text().split()) == 2 for p in exposures[:2])
    _assert_same_products(out, serial, exposures[:2])

    report = batch(exposures[2:3], batch_jobs.BROKEN, output_dir=out, client=client, retries=2,
                   markers=str(markers))
    assert [r.error for r in report.failed] == [f"RuntimeError: attempt 3 on {exposures[2].name} failed"]
    assert len((markers / f"{_stem(exposures[2])}.attempts").read_text().split()) == 3


def test_a_worker_killed_mid_write_leaves_no_partial_file(client, exposures, serial, tmp_path):
    """The first attempt on one exposure stops inside an atomic write; the test kills that
    worker process by its pid. Dask reruns the exposure on a live worker; the batch ends
    with every product correct and no temporary file left."""
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "out"
    victim = _stem(exposures[2])
    killed: list[int] = []

    def kill_when_ready() -> None:
        ready = markers / f"{victim}.ready"
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if ready.exists():
            pid = int(ready.read_text())
            assert _temporaries(out), "the attempt should be inside its write"
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_when_ready, daemon=True)
    killer.start()
    report = batch(exposures, batch_jobs.KILLED_ONCE, output_dir=out, client=client, backend="cpu",
                   markers=str(markers), victim=victim)
    killer.join(timeout=5)
    assert killed, "the victim never started"
    assert report.ok and len(report.done) == N_EXPOSURES
    record = next(r for r in report.done if r.input == str(exposures[2]))
    assert record.pid != killed[0]
    assert len((markers / f"{victim}.attempts").read_text().split()) == 2
    _assert_same_products(out, serial, exposures)
    assert not _temporaries(out)
    client.wait_for_workers(2, timeout=30)  # the nanny restarts the killed worker


def test_a_task_that_kills_every_worker_is_reported(exposures, tmp_path):
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster, \
                Client(cluster) as own:
            report = batch(exposures[:1], batch_jobs.CRASHES, output_dir=tmp_path, client=own)
    (record,) = report.failed
    assert record.error.startswith("KilledWorker: ") and "out of memory?" in record.error


def test_jump_and_extract_jobs(client, exposures, tmp_path):
    out = tmp_path / "out"
    report = batch(exposures[:2], "jump", output_dir=out, client=client, backend="cpu")
    assert len(report.done) == 2
    for path in exposures[:2]:
        direct = gpucal.detect_jumps(path, path.parent / f"{_stem(path)}_gain.fits",
                                     path.parent / f"{_stem(path)}_readnoise.fits", backend="cpu")
        written = gpucal.Ramp.from_fits(out / f"{_stem(path)}_jump.fits")
        np.testing.assert_array_equal(np.asarray(written.groupdq), direct.groupdq)
        np.testing.assert_array_equal(np.asarray(written.data), np.asarray(direct.data))

    report = batch(exposures[:2], "extract", output_dir=out, client=client, backend="cpu",
                   aperture=[5, 6, 3], function="median")
    assert len(report.done) == 2
    from astropy.table import Table

    table = Table.read(out / f"{_stem(exposures[0])}_profile.ecsv")
    direct = gpucal.extract_ramp(exposures[0], (5, 6, 3), "median", backend="cpu").to_table()
    np.testing.assert_array_equal(table["value"], direct["value"])


def test_detector1_job(client, tmp_path, monkeypatch):
    import shutil

    from gpucal.synthetic_uncal import builtin_uncal

    monkeypatch.delenv("CRDS_PATH", raising=False)
    source = builtin_uncal()  # 1x10x512x512 with every reference next to it (R_* keywords)
    raw = tmp_path / "raw"
    raw.mkdir()
    for ref in source.parent.glob("*.fits"):
        if not ref.name.endswith(("_uncal.fits", "_ramp.fits")):
            shutil.copy2(ref, raw / ref.name)
    paths = [Path(shutil.copy2(source, raw / f"d{i}_uncal.fits")) for i in range(2)]
    serial = tmp_path / "serial"
    for path in paths:
        gpucal.detector1(path, backend="cpu", output_dir=serial)
    out = tmp_path / "out"
    report = batch([str(raw / "*_uncal.fits")], "detector1", output_dir=out, client=client, backend="cpu")
    assert report.ok and len(report.done) == 2
    for path in paths:
        for suffix in RATE_NAMES:
            name = path.name.removesuffix("_uncal.fits") + suffix
            assert (out / name).read_bytes() == (serial / name).read_bytes(), name
    assert [r.outputs for r in report.done] == [[str(out / f"d{i}{s}") for s in RATE_NAMES] for i in range(2)]
    assert len(batch(paths, "detector1", output_dir=out, client=client, backend="cpu").skipped) == 2


def test_a_cluster_without_workers_yet_is_waited_for(monkeypatch, exposures, serial, tmp_path):
    """Queued clusters (dask-jobqueue) have no workers at first: tasks go out when one joins."""
    from distributed import Client, LocalCluster

    from gpucal.scaleout import run

    monkeypatch.setattr(run, "WORKER_WAIT_S", 30)
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", "1")  # the in-process worker would set it here
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, Client(cluster) as empty:
        threading.Timer(0.5, cluster.scale, args=(1,)).start()
        report = batch(exposures[:1], "ramp-fit", output_dir=tmp_path, client=empty, backend="cpu")
    assert report.ok and report.workers == 1
    _assert_same_products(tmp_path, serial, exposures[:1])


def test_a_cpu_cluster_runs_its_tasks_on_the_cpu(monkeypatch, exposures, serial, tmp_path):
    """A cluster without GPU workers decides the backend once: its tasks get backend="cpu", never
    "auto" (with which every worker process on a node with a GPU would open a context on GPU 0).
    The GPU is tests/fake_devices.py's, seen by the in-process workers of this cluster."""
    from distributed import LocalCluster

    import fake_cupy
    from fake_devices import Devices, h100s
    from gpucal import backend
    from gpucal.scaleout import cluster as dask_cluster

    devices = Devices(h100s([8 * 2**30]))
    fake_cupy.install(monkeypatch, devices=devices)
    assert backend.resolve_backend("auto") == "gpu"
    monkeypatch.setattr(dask_cluster, "_start_local_cluster", lambda gpus, n_workers: LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
        resources={dask_cluster.MEMORY: 2**30}))
    report = batch(exposures[:2], "ramp-fit", output_dir=tmp_path, backend="auto")
    assert report.ok and report.cluster_backend == "cpu" and report.summary().endswith("on the CPU")
    assert BatchReport.read_json(report.report_path).cluster_backend == "cpu"
    assert devices.pools[0].allocations == 0 and devices.pinned.peak_held == 0  # the GPU was never touched
    _assert_same_products(tmp_path, serial, exposures[:2])


def test_the_local_cluster(monkeypatch):
    from gpucal.scaleout.cluster import MEMORY, local_client, worker_info

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with local_client("cpu", 1) as local:
        (info,) = worker_info(local).values()
        assert info["nthreads"] == 1 and info["resources"][MEMORY] > 0
        # Without Dask's default MALLOC_TRIM_THRESHOLD_, which slows numpy code down 2x.
        assert list(local.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == [None]
        assert list(local.run(lambda: multiprocessing.current_process().daemon).values()) == [True]


# --------------------------------------------------------------------------- command line


def test_cli_batch_on_a_scheduler_and_on_a_local_cluster(client, exposures, serial, tmp_path, capsys):
    out = tmp_path / "out"
    pattern = str(exposures[0].parent / "exp[0-2]_ramp.fits")
    status = cli.main(["batch", pattern, "--job", "ramp-fit", "-o", str(out), "--scheduler",
                       client.scheduler.address, "--backend", "cpu", "-q"])
    assert status == cli.EXIT_OK
    printed = capsys.readouterr().out
    assert "batch ramp-fit: 3 done, 0 skipped, 0 failed of 3" in printed
    assert f"report: {out / 'batch_ramp-fit_report.json'}" in printed
    _assert_same_products(out, serial, exposures[:3])

    garbage = tmp_path / "garbage_ramp.fits"
    garbage.write_text("not FITS")
    status = cli.main(["batch", pattern, str(garbage), "--job", "ramp-fit", "-o", str(out), "--workers", "1",
                       "--backend", "cpu", "-q"])
    assert status == cli.EXIT_BATCH_FAILED
    printed = capsys.readouterr().out
    assert "0 done, 3 skipped, 1 failed of 4" in printed
    assert f"failed: {garbage}: FileFormatError" in printed


def test_cli_batch_usage_errors(tmp_path, capsys):
    status = cli.main(["batch", str(tmp_path / "none*_ramp.fits"), "--job", "ramp-fit", "-o", str(tmp_path)])
    assert status == cli.EXIT_USAGE
    assert "no file matches" in capsys.readouterr().err
    status = cli.main(["batch", "x_ramp.fits", "--job", "ramp-fit", "-o", str(tmp_path), "--option", "bogus=1"])
    assert status == cli.EXIT_USAGE
    assert "job 'ramp-fit' does not take option(s) bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["batch", "x_ramp.fits", "--job", "ramp-fit", "-o", str(tmp_path), "--option", "no-equals"])


def test_cli_options_reach_the_job(monkeypatch, tmp_path):
    seen = {}

    def fake_batch(inputs, job, **kwargs):
        seen.update(kwargs, inputs=inputs, job=job)
        return BatchReport(job=job, backend="cpu", output_dir=str(tmp_path), report_path="r.json")

    monkeypatch.setattr(gpucal, "batch", fake_batch, raising=False)
    status = cli.main(["batch", "a_ramp.fits", "b_ramp.fits", "--job", "jump", "-o", str(tmp_path), "--gain",
                       "g.fits", "--max-memory", "1GB", "--max-device-memory", "2GB", "--option",
                       "rejection_threshold=5.5", "--option", "find_showers=true", "--retries", "0", "--overwrite",
                       "-q"])
    assert status == cli.EXIT_OK
    assert seen["inputs"] == ["a_ramp.fits", "b_ramp.fits"] and seen["job"] == "jump"
    assert seen["gain"] == Path("g.fits") and seen["max_memory"] == 2**30 and seen["max_device_memory"] == 2 * 2**30
    assert seen["rejection_threshold"] == 5.5 and seen["find_showers"] is True
    assert seen["retries"] == 0 and seen["overwrite"] is True and seen["client"] is None


# --------------------------------------------------------------------------- on a GPU machine


@pytest.mark.gpu
def test_one_dask_cuda_worker_per_gpu(exposures, serial, tmp_path):
    pytest.importorskip("dask_cuda")
    from dask_cuda.utils import get_n_gpus

    from gpucal.scaleout.cluster import local_client, worker_info

    with local_client("gpu") as gpu_client:
        workers = worker_info(gpu_client)
        assert len(workers) == get_n_gpus()
        assert all(w["resources"] == {"GPU": 1} and w["nthreads"] == 1 for w in workers.values())
        devices = gpu_client.run(lambda: os.environ["CUDA_VISIBLE_DEVICES"].split(",")[0])
        assert len(set(devices.values())) == len(workers)
        report = batch(exposures, "ramp-fit", output_dir=tmp_path / "out", client=gpu_client, backend="gpu")
    assert report.ok and len(report.done) == N_EXPOSURES
    _assert_same_products(tmp_path / "out", serial, exposures)


# --------------------------------------------------------------------------- no cluster needed


def test_records_detect_changed_products_and_options(tmp_path):
    product = tmp_path / "x_rate.fits"
    product.write_bytes(b"0" * 2880)
    source = tmp_path / "x_ramp.fits"
    source.write_bytes(b"ramp" * 720)
    records.write_record(tmp_path, "x", "ramp-fit", source, {"gain": Path("g.fits")}, [product])
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", {"gain": "g.fits"}, source) == [product]
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", {}, source) is None
    assert records.completed_outputs(tmp_path, "x", "jump", {"gain": "g.fits"}, source) is None
    product.write_bytes(b"0" * 5760)
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", {"gain": "g.fits"}, source) is None
    records.record_path(tmp_path, "x", "ramp-fit").write_text("{not json")
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", {"gain": "g.fits"}, source) is None


def test_records_detect_a_changed_input_and_a_product_changed_in_place(tmp_path):
    product = tmp_path / "x_rate.fits"
    product.write_bytes(b"1" * 2880)
    source = tmp_path / "x_ramp.fits"
    source.write_bytes(b"ramp" * 720)
    options = {"gain": "g.fits"}
    records.write_record(tmp_path, "x", "ramp-fit", source, options, [product])
    record = json.loads(records.record_path(tmp_path, "x", "ramp-fit").read_text())
    assert record["input_identity"]["bytes"] == 2880 and not record["input_identity"]["sampled"]
    assert record["outputs"][0]["sha256"] != record["input_identity"]["sha256"]

    stamp = product.stat().st_mtime_ns
    product.write_bytes(b"\0" * 2880)  # same size, zero-filled, even with its old time
    os.utime(product, ns=(stamp, stamp))
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", options, source) is None
    product.write_bytes(b"1" * 2880)  # the recorded content again: complete
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", options, source) == [product]
    source.write_bytes(b"RAMP" * 720)  # regenerated: same name and size, new content
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", options, source) is None
    source.unlink()
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", options, source) is None

    # A record of an older gpucal (sizes only) is not trusted.
    product.write_bytes(b"1" * 2880)
    source.write_bytes(b"ramp" * 720)
    records.record_path(tmp_path, "x", "ramp-fit").write_text(json.dumps(
        {"job": "ramp-fit", "options": options, "outputs": [{"name": product.name, "bytes": 2880}]}))
    assert records.completed_outputs(tmp_path, "x", "ramp-fit", options, source) is None


def test_sampled_identity_of_large_files(tmp_path, monkeypatch):
    from gpucal.scaleout import identity

    monkeypatch.setattr(identity, "FULL_DIGEST_BYTES", 1 << 16)
    monkeypatch.setattr(identity, "SAMPLES", 4)
    monkeypatch.setattr(identity, "SAMPLE_BYTES", 1024)
    path = write_exposure(make_exposure(1, 4, 64, 128, seed=1), tmp_path, name="big")["ramp"]
    data = bytearray(path.read_bytes())
    assert len(data) > 1 << 16
    recorded = identity.file_identity(path)
    assert recorded["sampled"] and identity.unchanged(recorded, path)
    stamp = path.stat().st_mtime_ns

    def rewrite(offset: int) -> None:
        changed = bytearray(data)
        changed[offset] ^= 1
        path.write_bytes(bytes(changed))
        os.utime(path, ns=(stamp, stamp))

    header = bytes(data).index(b"NGROUPS")  # in a header: always hashed
    rewrite(header + 30)
    assert not identity.unchanged(recorded, path)
    between = len(data) // 4 + 2048  # between two windows: missed by the digest...
    rewrite(between)
    assert identity.unchanged(recorded, path)
    os.utime(path, ns=(stamp + 1, stamp + 1))  # ... so a sampled file with a new time counts as changed
    assert not identity.unchanged(recorded, path)


def test_stale_temporaries_of_this_exposure_only_are_removed(tmp_path):
    mine = [tmp_path / f".x_rate.fits.0123456789ab{TEMP_SUFFIX}", tmp_path / f".x_rateints.fits.ba9876543210{TEMP_SUFFIX}"]
    others = [tmp_path / f".x_2_rate.fits.0123456789ab{TEMP_SUFFIX}", tmp_path / "x_rate.fits"]
    for path in mine + others:
        path.write_bytes(b"partial")
    assert records.remove_stale_temporaries(tmp_path, "x", "ramp-fit", ["x_rate.fits", "x_rateints.fits"]) == 2
    assert not any(p.exists() for p in mine) and all(p.exists() for p in others)


def test_inputs_paths_globs_and_associations(tmp_path):
    from gpucal.errors import InputError
    from gpucal.scaleout.inputs import expand_inputs

    for name in ("b_uncal.fits", "a_uncal.fits", "c_uncal.fits"):
        (tmp_path / name).write_bytes(b"")
    asn = tmp_path / "jw_asn.json"
    asn.write_text(json.dumps({"asn_type": "image2", "products": [
        {"name": "p1", "members": [{"expname": "c_uncal.fits", "exptype": "science"},
                                   {"expname": "d_uncal.fits", "exptype": "background"}]}]}))
    got = expand_inputs([str(tmp_path / "*_uncal.fits"), asn, tmp_path / "a_uncal.fits"])
    assert [p.name for p in got] == ["a_uncal.fits", "b_uncal.fits", "c_uncal.fits", "d_uncal.fits"]
    assert got[3] == tmp_path / "d_uncal.fits"
    with pytest.raises(InputError, match="no file matches"):
        expand_inputs(str(tmp_path / "*_ramp.fits"))
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match="same base name 'a'"):
        expand_inputs([tmp_path / "a_uncal.fits", tmp_path / "sub" / "a_ramp.fits"])
    asn.write_text(json.dumps({"products": [{"name": "p", "members": [{"exptype": "science"}]}]}))
    with pytest.raises(InputError, match="has no 'expname'"):
        expand_inputs(asn)
    asn.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a jwst association"):
        expand_inputs(asn)


def test_jobs_registry_and_options():
    from gpucal.errors import InputError
    from gpucal.scaleout import get_job, register_job

    assert {"detector1", "ramp-fit", "jump", "extract"} <= set(JOBS)
    with pytest.raises(InputError, match="unknown job 'nope'"):
        get_job("nope")
    with pytest.raises(InputError, match="already registered"):
        register_job(JOBS["jump"])
    JOBS["jump"].check_options({"rejection_threshold": 5, "gain": "g.fits", "max_memory": "1GB"})
    with pytest.raises(InputError, match="does not take option"):
        JOBS["detector1"].check_options({"gain": "g.fits"})
    with pytest.raises(InputError, match="does not take option"):
        batch(["x.fits"], "ramp-fit", output_dir="unused", bogus=1)


def test_task_memory_follows_the_chunk_plan(exposures):
    nints, ngroups, ny, nx = SHAPE
    samples = nints * ngroups * ny * nx
    fit = JOBS["ramp-fit"]
    from gpucal.ramp_fitting import CPU_BYTES_PER_SAMPLE

    held = ny * nx * (1 + nints) * 20
    assert fit.memory_bytes(exposures[0], "cpu", {}) == held + samples * CPU_BYTES_PER_SAMPLE
    assert fit.memory_bytes(exposures[0], "cpu", {"max_memory": "1KB"}) == held + 1024
    # on a GPU the host working set is the blocks' host copies and pinned staging, in the same budget
    assert fit.memory_bytes(exposures[0], "gpu", {}) == held + samples * CPU_BYTES_PER_SAMPLE
    assert fit.memory_bytes(exposures[0], "gpu", {"max_memory": "1KB"}) == held + 1024
    assert fit.memory_bytes(Path("missing_ramp.fits"), "cpu", {}) is None


def test_task_resources(caplog):
    from gpucal.scaleout.cluster import host_threads, task_resources

    cpu = {"w1": {"host": "a", "nthreads": 1, "resources": {"MEMORY": 100.0}},
           "w2": {"host": "a", "nthreads": 1, "resources": {"MEMORY": 100.0}},
           "w3": {"host": "b", "nthreads": 4, "resources": {}}}
    assert host_threads(cpu) == {"w1": 2, "w2": 2, "w3": 4}
    assert task_resources(cpu, 40, "x") == {"MEMORY": 40.0}
    assert task_resources(cpu, None, "x") is None
    with caplog.at_level("WARNING", logger="gpucal.scaleout.cluster"):
        assert task_resources(cpu, 400, "big_ramp.fits") == {"MEMORY": 100.0}
    assert "big_ramp.fits needs about" in caplog.text
    gpu = {"g0": {"host": "a", "nthreads": 1, "resources": {"GPU": 1}}}
    assert task_resources(gpu, 40, "x") == {"GPU": 1}
    assert task_resources({"w": {"host": "a", "nthreads": 2}}, 40, "x") is None


def test_ramp_fit_in_a_daemonic_process_uses_threads(monkeypatch, exposures):
    """Dask's worker processes are daemonic and may not start the fit's process pool."""
    from gpucal import ramp_fitting

    expected = gpucal.ramp_fit(gpucal.Ramp.from_fits(exposures[0]), *_refs(exposures[0]), backend="cpu")
    # A budget of a few rows gives several row blocks, which go to the pool.
    monkeypatch.setattr(ramp_fitting, "PROCESS_MIN_SAMPLES", 0)
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", "2")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fit_in_child, args=(exposures[0], queue), daemon=True)
    child.start()
    result = queue.get(timeout=60)
    child.join(timeout=10)
    assert not isinstance(result, BaseException), result
    np.testing.assert_array_equal(result, expected.rate.data)


def _refs(path: Path) -> tuple[Path, Path]:
    return path.parent / f"{_stem(path)}_gain.fits", path.parent / f"{_stem(path)}_readnoise.fits"


def _fit_in_child(path: Path, queue) -> None:
    try:
        result = gpucal.ramp_fit(gpucal.Ramp.from_fits(path), *_refs(path), backend="cpu", max_memory="200KB")
        queue.put(result.rate.data)
    except BaseException as exc:  # sent back to the test
        queue.put(exc)


def test_cpu_workers_setting(monkeypatch):
    from gpucal.chunking import cpu_workers
    from gpucal.errors import InputError

    monkeypatch.delenv("GPUCAL_CPU_WORKERS", raising=False)
    assert cpu_workers() == max(1, os.cpu_count() or 1)
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", "3")
    assert cpu_workers() == 3
    monkeypatch.setenv("GPUCAL_CPU_WORKERS", "0")
    with pytest.raises(InputError, match="GPUCAL_CPU_WORKERS must be a positive integer"):
        cpu_workers()


def test_a_result_lost_with_its_worker_is_waited_for_not_failed():
    """A worker killed after finishing a task but before its result was fetched: Dask computes
    the task again and the future's status is briefly not "finished". That is no failure (it
    was filed as "NoneType: None" when the status was read instead of the result)."""
    from gpucal.scaleout.run import _record

    class Recomputed:
        status = "lost"

        def result(self):
            return dict(input="in/x_ramp.fits", status="done", outputs=["out/x_rate.fits"], seconds=1.5)

        def exception(self):
            return None

        def traceback(self):
            return None

    record = _record(Recomputed(), Path("in/x_ramp.fits"))
    assert record.status == "done" and record.outputs == ["out/x_rate.fits"] and record.error is None
