"""``make gpu-check`` rehearsed on the CuPy stand-in, so that on a lent GPU only the hardware is new.

tools/gpu_check/run.py --rehearsal runs every phase the device run does (device query through
CuPy, ``pytest -m gpu``, the benchmarks with ``--backends cpu,gpu`` and no reference packages,
the summary for bench/RESULTS.md) in processes of their own that import the stand-in as
``cupy``. Here with a narrow test selection and tiny cases, to keep the suite short.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "tools" / "gpu_check" / "run.py"
BENCHES = ("ramp_fit", "jump", "detector1", "resample", "cube")


def _rehearse(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN), "--rehearsal", "--out", str(out), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_the_rehearsal_runs_every_phase_and_writes_the_results_fragment(tmp_path):
    done = _rehearse(tmp_path, "--pytest-args", "-k 'ipc and 3x3'", "--benches", ",".join(BENCHES))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-check.json", "gpu-check.log", "gpu-check.md"]
    results = json.loads((tmp_path / "gpu-check.json").read_text())
    assert results["rehearsal"] and results["failed"] == []
    assert results["device"]["name"].startswith("CuPy stand-in")  # the stand-in can never pass for a GPU
    tests = results["phases"]["pytest"]
    assert tests["passed"] >= 2 and tests["failed"] == tests["errors"] == 0
    assert set(results["benches"]) == set(BENCHES)
    for name, bench in results["benches"].items():
        assert bench["status"] == "ok", (name, bench["status"])
        assert "--backends" in bench["args"] and "cpu,gpu" in bench["args"]
        rows = bench["result"].get("results") or bench["result"].get("rows")
        assert {r["backend"] for r in rows} == {"cpu", "gpu"}, name
    md = (tmp_path / "gpu-check.md").read_text()
    assert md.startswith("## gpu-check: CuPy stand-in")
    assert "**Rehearsal on the CuPy stand-in" in md
    assert all(f"### bench/{name}.py" in md for name in BENCHES)
    # The GPU row of each case carries the speed-up over the CPU row of the same case.
    assert re.search(r"^\| 1x4x32x64 \| gpu \| [0-9.e-]+ \| [0-9.e-]+ \|", md, re.M), md


def test_a_failing_gpu_test_fails_the_check(tmp_path):
    failing = tmp_path / "test_fails_on_the_device.py"
    failing.write_text("import pytest\n\n\n@pytest.mark.gpu\ndef test_fails_on_purpose():\n    assert False\n")
    out = tmp_path / "out"
    done = _rehearse(out, "--pytest-args", f"{failing} -k fails_on_purpose", "--benches", "none")
    assert done.returncode == 1, done.stdout[-4000:]
    results = json.loads((out / "gpu-check.json").read_text())
    assert results["failed"] == ["pytest"]
    assert results["phases"]["pytest"]["failed"] == 1
    assert "FAILED" in (out / "gpu-check.md").read_text() and "test_fails_on_purpose" in (out / "gpu-check.md").read_text()
