"""``--max-memory`` bounds detector1's peak host memory: measured from outside, in a subprocess.

The test samples the anonymous memory (``Pss_Anon`` of ``/proc/<pid>/smaps_rollup``, summed over
the process and its forked workers, so shared copy-on-write pages count once) of
``gpucal detector1`` on a 2x10x512x512 exposure with two budgets, and of a process that only
imports what the run imports (the baseline). Each run must stay within baseline + budget,
the larger budget must be used (more in memory), and the run's own summary must report a peak
within the budget. A budget below the floor is refused before anything is computed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(),
                                reason="needs Linux /proc/<pid>/smaps_rollup")

MiB = 2**20
SHAPE = (2, 10, 512, 512)
IMPORTS = "import gpucal.cli, gpucal.pipeline.detector1, gpucal.ramp_fitting, gpucal.jump_detection, gpucal.steps"


#: A child whose resident and anonymous memory are within this of its parent's shares the
#: parent's memory (see :func:`run_measured`) and is not counted again.
SAME_MEMORY = 1 * MiB


def _tree(pid: int, parent: int | None = None) -> list[tuple[int, int | None]]:
    """``(pid, parent pid)`` of ``pid`` (parent None) and of its descendants."""
    out = [(pid, parent)]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [q for c in fh.read().split() for q in _tree(int(c), pid)]
    except OSError:
        pass
    return out


def _memory(pid: int) -> tuple[int, int]:
    """(Rss, Pss_Anon + Pss_Shmem) of ``pid`` in bytes, from ``/proc/<pid>/smaps_rollup``; (0, 0) when gone."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                    anon += int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, anon


def run_measured(argv: list[str], env: dict) -> tuple[int, int, str]:
    """(exit status, peak anonymous memory of the process tree, stderr) of ``argv``.

    A child made with vfork (how ``subprocess`` and multiprocessing's helper processes start)
    shares its parent's memory until it execs: read a moment apart, the two rollups agree to
    a few KiB, and counting both read a 150 MiB run as 300 MiB for a few milliseconds. Such a
    child (within :data:`SAME_MEMORY` of its parent) is counted once. A just-forked child
    whose pages are all still shared matches too (each holds half of them): it is left out
    only until its first writes, which is never the run's peak.
    """
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        tree = _tree(proc.pid)
        memory = {pid: _memory(pid) for pid, _ in tree}
        peak = max(peak, sum(memory[pid][1] for pid, parent in tree if parent is None or any(
            abs(a - b) > SAME_MEMORY for a, b in zip(memory[pid], memory[parent]))))
        time.sleep(0.002)
    return proc.returncode, peak, proc.stderr.read()


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    from gpucal import Ramp
    from gpucal.io.write_ramp import write_ramp
    from gpucal.refs import make_calib_refs, write_calib_refs
    from gpucal.refs.write import write_reference

    nints, ngroups, ny, nx = SHAPE
    d = tmp_path_factory.mktemp("memory")
    rng = np.random.default_rng(7)
    rate = rng.gamma(2.0, 2.0, (ny, nx)).astype(np.float32)
    steps = (np.arange(1, ngroups + 1, dtype=np.float32) * 10.737)[None, :, None, None]
    data = np.broadcast_to(150.0 + rate[None, None] * steps, SHAPE).astype(np.float32)
    meta = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "SUBARRAY": "GENERIC", "SUBSTRT1": 1, "SUBSTRT2": 1,
            "SUBSIZE1": nx, "SUBSIZE2": ny, "FASTAXIS": -1, "SLOWAXIS": 2, "NOUTPUTS": 4}
    ramp = Ramp(data, np.zeros(SHAPE, np.uint8), np.zeros((ny, nx), np.uint32), group_time=10.737,
                frame_time=10.737, nframes=1, groupgap=0, meta=meta)
    uncal = write_ramp(ramp, d / "jw_mem_nrca1_uncal.fits", level="uncal")
    del data, ramp
    paths = write_calib_refs(make_calib_refs(ny, nx, seed=2, dark_frames=ngroups), d, "m", instrument="NIRCAM",
                             detector="NRCA1")
    for name, value in (("gain", 2.0), ("readnoise", 7.0)):
        paths[name] = write_reference(d / f"m_{name}.fits", name.upper(), np.full((ny, nx), value, np.float32),
                                      instrument="NIRCAM", detector="NRCA1")
    args = [a for key, p in paths.items() for a in (f"--override-{key}", str(p))]
    # glibc's allocator as a user's run has it: dask's Nanny (the clusters of tests/test_batch*.py)
    # leaves MALLOC_TRIM_THRESHOLD_=65536 in this process's environment, which hands freed heap
    # back at once and lowers the peaks measured here by up to 100 MiB
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(GPUCAL_CPU_WORKERS="2", GPUCAL_BACKEND="cpu")
    return uncal, args, env


def _detector1(exposure, out: Path, budget: str) -> list[str]:
    uncal, args, _ = exposure
    return [sys.executable, "-m", "gpucal.cli", "detector1", str(uncal), "-o", str(out), "--max-memory", budget,
            *args]


def test_peak_memory_stays_within_the_budget(exposure, tmp_path):
    _, _, env = exposure
    status, baseline, err = run_measured([sys.executable, "-c", f"{IMPORTS}; import time; time.sleep(1)"], env)
    assert status == 0, err
    peaks = {}
    for budget in (112, 240):
        status, peak, err = run_measured(_detector1(exposure, tmp_path / str(budget), f"{budget}MB"), env)
        assert status == 0, err
        assert (tmp_path / str(budget) / "jw_mem_nrca1_rate.fits").is_file()
        above = peak - baseline
        assert above <= budget * MiB, f"budget {budget} MiB: {above / MiB:.0f} MiB above the baseline"
        reported = re.search(r"peak memory [\d.]+ MiB anonymous \(\+([\d.]+) MiB during the run", err)
        assert reported, err[-2000:]
        assert 0 < float(reported.group(1)) <= budget
        peaks[budget] = above
    # the larger budget holds the calibrated ramp and jump's flags in memory: it is used
    assert peaks[240] > peaks[112] + 25 * MiB, {k: v / MiB for k, v in peaks.items()}


def test_budget_below_the_floor_is_refused(exposure, tmp_path):
    _, _, env = exposure
    status, _, err = run_measured(_detector1(exposure, tmp_path / "o", "64MB"), env)
    assert status == 2
    assert "max_memory 64.0 MiB is below what detector1 needs" in err and "use at least" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
