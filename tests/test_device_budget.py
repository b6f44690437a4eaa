"""Device and host memory of the GPU path, on tests/fake_devices.py's model of CUDA devices.

The model counts every device array the launchers allocate (CuPy's 512-byte rounding, a pool
that caches freed bytes, OutOfMemoryError when an allocation does not fit) and every pinned
host buffer, and knows ``CUDA_VISIBLE_DEVICES``, MIG instances and NVML's own numbering. Each
launcher's plan (:func:`gpucal.gpu.budget.plan_rows`) is recorded so that the peaks measured
can be held against what was planned.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import fake_cupy
import gpucal
from fake_devices import Devices, Gpu, h100s, visible
from gpucal import backend
from gpucal.gpu import budget
from host_build import host_compiler

GiB, MiB = 2**30, 2**20

needs_host_build = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


def _install(monkeypatch, devices: Devices, launches: list | None = None):
    """The CuPy stand-in on ``devices`` (and ``pynvml`` on its GPUs); ``launches`` gets the
    stand-in's runtime (its log has the kernel launches)."""
    runtime = fake_cupy.install(monkeypatch, devices=devices)
    monkeypatch.setitem(sys.modules, "pynvml", devices.nvml())
    if launches is not None:
        launches.append(runtime)
    return sys.modules["cupy"]


@pytest.fixture
def plans(monkeypatch) -> list[dict]:
    """Every plan_rows call: its budgets, rows, blocks, and the device peak it planned for."""
    seen: list[dict] = []
    plan_rows = budget.plan_rows

    def spy(ny, nx, cost, *, device, host, resident=0, halo=0, in_flight=budget.BLOCKS_IN_FLIGHT):
        rows = plan_rows(ny, nx, cost, device=device, host=host, resident=resident, halo=halo, in_flight=in_flight)
        peak = resident + in_flight * ((rows + 2 * halo) * nx * cost.device + cost.arrays * budget.ALLOCATION_UNIT)
        seen.append(dict(rows=rows, blocks=-(-ny // rows), device=device, host=host, peak=peak, in_flight=in_flight))
        return rows

    monkeypatch.setattr(budget, "plan_rows", spy)
    return seen


# --------------------------------------------------------------------------- free memory (defect 4)


def test_free_memory_is_read_from_the_current_device(monkeypatch):
    """Under dask-cuda's LocalCUDACluster worker i sees CUDA_VISIBLE_DEVICES="i,i+1,...": its device
    0 is physical GPU i, whose free memory it must plan with. NVML's index 0 is physical GPU 0
    whatever CUDA_VISIBLE_DEVICES says (the stand-in pynvml is installed, so reading it fails here)."""
    free = [70 * GiB, 10 * GiB, 40 * GiB, 5 * GiB]
    devices = Devices(h100s(free))
    cupy = _install(monkeypatch, devices)
    n = len(free)
    for worker in range(n):
        with visible(monkeypatch, devices, ",".join(str((worker + k) % n) for k in range(n))):
            assert backend.free_device_memory() == free[worker]
            assert backend.free_device_memory(1) == free[(worker + 1) % n]
            with cupy.cuda.Device(2):
                assert backend.free_device_memory() == free[(worker + 2) % n]
    with visible(monkeypatch, devices, devices.gpus[3].uuid + ",1"):  # by UUID
        assert backend.free_device_memory() == free[3]


def test_free_memory_of_a_mig_instance(monkeypatch):
    gpus = h100s([80 * GiB]) + [Gpu(uuid="MIG-5f1c0c6a-2d1b-5b8f-9f3a-0c2f0b9e1a77", pci_bus_id="00000000:19:00.0",
                                    total=10 * GiB, other_used=GiB, mig_of=0)]
    devices = Devices(gpus)
    _install(monkeypatch, devices)
    with visible(monkeypatch, devices, gpus[1].uuid):
        assert backend.free_device_memory() == 9 * GiB
        nvml = sys.modules["pynvml"]
        nvml.nvmlInit()
        whole = nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(0))
        assert whole.total == 80 * GiB  # what NVML's index 0 would have said


def test_free_memory_counts_the_pool_cache_within_its_limit(monkeypatch):
    devices = Devices(h100s([64 * MiB], total=80 * MiB))
    cupy = _install(monkeypatch, devices)
    block = cupy.empty(10 * MiB, dtype=np.uint8)
    assert backend.free_device_memory() == 54 * MiB
    del block  # back in CuPy's pool, not in CUDA's free memory
    assert cupy.cuda.runtime.memGetInfo()[0] == 54 * MiB
    assert backend.free_device_memory() == 64 * MiB
    cupy.get_default_memory_pool().set_limit(size=32 * MiB)
    kept = cupy.empty(8 * MiB, dtype=np.uint8)
    assert backend.free_device_memory() == 24 * MiB
    with pytest.raises(MemoryError):
        cupy.empty(30 * MiB, dtype=np.uint8)
    del kept


# --------------------------------------------------------------------------- blocks in flight (defect 1)


def _jump(backend_name: str, **kw):
    from jump_cases import exposure

    ex = exposure(nints=2, ngroups=10, ny=64, nx=48, seed=7, cr_rate=5e-3)
    out = gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend=backend_name, **kw)
    return out.groupdq, out.pixeldq


def _ramp_fit(backend_name: str, **kw):
    from ramp_cases import random_case

    case = random_case("budget", 2, 10, 64, 48, seed=5, flag_rate=0.1, suppress=False, zeroframe=True)
    result = gpucal.ramp_fit(case.ramp(), case.gain, case.readnoise, backend=backend_name, **kw)
    return result.rate.data, result.rate.dq, result.rateints.data


def _ipc(backend_name: str, **kw):
    from gpucal.refs.ipc import synthetic_ipc_kernel
    from gpucal.steps import ipc
    from gpucal.synthetic import make_exposure

    ramp = make_exposure(2, 3, 64, 48, seed=2, flag_jumps=False).ramp
    ramp.meta.update(SUBSTRT1=1, SUBSTRT2=1, SUBSIZE1=48, SUBSIZE2=64)
    return (ipc(ramp, synthetic_ipc_kernel(None), backend=backend_name, **kw).data,)


#: step -> (run, free device bytes that leave room for about 16 of its 64 rows per block)
STEPS = {"jump": (_jump, 700_000), "ramp_fit": (_ramp_fit, 600_000), "ipc": (_ipc, 140_000)}


@needs_host_build
@pytest.mark.parametrize("step", list(STEPS))
def test_blocks_in_flight_fit_the_free_device_memory(monkeypatch, plans, step):
    """Every block in flight and every block-sized temporary is planned for: the device peak stays
    within the plan, the plan within the free memory, for an exposure that needs several blocks.
    (Jump once sized each of its two blocks in flight to 0.7 x the free memory: out of memory.)"""
    run, free = STEPS[step]
    devices = Devices(h100s([free]))
    launches: list = []
    _install(monkeypatch, devices, launches)
    gpu = run("gpu")
    launches[0].finish()
    assert devices.peak > 0 and launches[0].ops("kernel")
    assert min(p["blocks"] for p in plans if p["in_flight"] == 2) >= 3
    assert devices.peak <= max(p["peak"] for p in plans) <= budget.DEVICE_FRACTION * free
    assert devices.pinned.held == 0 and devices.pinned.n_free_blocks() == 0  # staging released after the run
    assert devices.pinned.peak_held <= min(p["host"] for p in plans)
    for a, b in zip(gpu, run("cpu")):
        np.testing.assert_array_equal(a, b)


@needs_host_build
def test_max_device_memory_is_a_bound_and_never_more_than_is_free(monkeypatch, plans):
    devices = Devices(h100s([8 * MiB]))
    _install(monkeypatch, devices)
    _ramp_fit("gpu", max_device_memory="400KB")
    assert plans[-1]["device"] == 400 * 1024 and plans[-1]["blocks"] >= 3
    assert devices.peak <= 400 * 1024
    # 200 GB asked of a device with 700 kB free: planned for what is free, no out-of-memory
    devices = Devices(h100s([700_000]))
    _install(monkeypatch, devices)
    _jump("gpu", max_device_memory="200GB")
    assert plans[-2]["device"] == 700_000 and plans[-2]["blocks"] >= 2
    assert devices.peak <= 700_000


@needs_host_build
def test_max_memory_bounds_the_pinned_staging(monkeypatch, plans):
    """On the GPU, max_memory is the host budget: the blocks' host copies and pinned buffers."""
    devices = Devices(h100s([8 * GiB]))
    _install(monkeypatch, devices)
    _ramp_fit("gpu", max_memory="150KB")
    assert plans[-1]["host"] == 150 * 1024 and plans[-1]["blocks"] >= 3
    assert 0 < devices.pinned.peak_held <= 150 * 1024
    assert devices.pinned.held == 0


def test_a_budget_that_cannot_hold_one_row_names_itself():
    from gpucal.errors import InputError

    cost = budget.BlockCost(device=1000, host=2000, arrays=2)
    assert budget.plan_rows(64, 10, cost, device=10**9, host=10**9) == 64
    assert budget.plan_rows(64, 10, cost, device=2 * 10 * 1000 * 5 + 2 * 2 * 512, host=10**9) == 5
    with pytest.raises(InputError, match="device memory budget .* raise max_device_memory"):
        budget.plan_rows(64, 10, cost, device=2 * 10 * 1000, host=10**9)
    with pytest.raises(InputError, match="host memory budget .* raise max_memory"):
        budget.plan_rows(64, 10, cost, device=10**9, host=2 * 10 * 2000 - 1)


def test_gpu_host_staging_costs_less_per_sample_than_the_cpu_working_set():
    """The batch estimate bounds a GPU task's host blocks with the CPU's bytes per sample."""
    from types import SimpleNamespace

    from gpucal import jump_detection, ramp_fitting
    from gpucal.gpu.jump import two_point_cost
    from gpucal.gpu.ramp_fit import block_cost

    for nints in (1, 3, 50):
        for ngroups in (2, 3, 10, 70):
            samples = nints * ngroups
            fp = SimpleNamespace(nints=nints, ngroups_raw=ngroups, ngroups=ngroups, save_opt=False)
            assert block_cost(fp).host <= samples * ramp_fitting.CPU_BYTES_PER_SAMPLE
            assert two_point_cost(fp).host <= samples * jump_detection.CPU_BYTES_PER_SAMPLE


# --------------------------------------------------------------------------- two budgets (defect 10)


@needs_host_build
def test_detector1_never_takes_the_host_budget_for_the_device(monkeypatch, plans):
    """max_memory="200GB" (host) on a device with 700 kB free: jump and ramp_fit plan their blocks
    from the device's memory (detector1 once gave them max_memory // 2 as their device budget)."""
    from steps_cases import raw_exposure, refs_for

    from gpucal.pipeline import detector1_result
    from gpucal.synthetic import make_exposure

    free = 700_000
    devices = Devices(h100s([free]))
    _install(monkeypatch, devices)
    ramp = raw_exposure(nints=2, ngroups=10, ny=64, nx=48)
    ramp.meta.update(FASTAXIS=-1, SLOWAXIS=2, NOUTPUTS=4)
    refs = refs_for(ramp)
    exp = make_exposure(2, 10, 64, 48, seed=3, saturation_dn=30000.0)
    refs.update(gain=exp.gain, readnoise=exp.readnoise)
    gpu = detector1_result(ramp, refs=refs, backend="gpu", max_memory="200GB")
    assert len(plans) == 3  # jump (two passes), ramp_fit
    assert all(p["device"] <= budget.DEVICE_FRACTION * free for p in plans)  # their default: not max_memory
    assert devices.peak <= free
    cpu = detector1_result(ramp, refs=refs, backend="cpu")
    for a, b in ((gpu.rate, cpu.rate), (gpu.rateints, cpu.rateints)):
        for attr in ("data", "dq", "err", "var_poisson", "var_rnoise"):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))


@needs_host_build
def test_gpu_task_estimate_includes_the_pinned_staging(monkeypatch, tmp_path):
    """gpucal.batch's host-memory estimate of a GPU task covers the pinned buffers it really uses."""
    from gpucal.scaleout.jobs import JOBS
    from gpucal.synthetic import make_exposure, write_exposure

    nints, ngroups, ny, nx = 2, 6, 40, 32
    path = write_exposure(make_exposure(nints, ngroups, ny, nx, seed=1), tmp_path, name="e")["ramp"]
    devices = Devices(h100s([8 * GiB]))
    _install(monkeypatch, devices)
    JOBS["ramp-fit"].run(path, tmp_path, "gpu", {})
    assert devices.pinned.peak_held > 0
    held = ny * nx * (1 + nints) * 20  # the rate products
    assert JOBS["ramp-fit"].memory_bytes(path, "gpu", {}) - held >= devices.pinned.peak_held
