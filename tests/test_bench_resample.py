"""bench/resample.py runs (smoke): the GPU machine's mode without reference packages, and the
reference mode, on tiny inputs; every row must report bit-identical outputs."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(out: Path, *args: str) -> list[dict]:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "resample.py"), "--quick", "--size", "96",
                           "--kernels", "square", "--backends", "cpu,cpu-numpy", "--json", str(out), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())["rows"]


def test_without_reference_packages_compares_with_the_compiled_cpu_path(tmp_path):
    rows = _run(tmp_path / "rows.json", "--no-reference")
    assert {(r["case"].split()[0], r["backend"]) for r in rows} == {
        (c, b) for c in ("single", "mosaic") for b in ("cpu", "cpu-numpy")}
    assert all(r["reference"] == "gpucal cpu" and r["parity"] == "bit-identical" for r in rows)
    assert all(r["pixmap_s"] is None and r["msamples_s"] > 0 for r in rows)


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("drizzle", "stcal", "gwcs")),
                    reason="drizzle, stcal or gwcs not installed")
def test_against_drizzle_and_stcal_maps(tmp_path):
    rows = _run(tmp_path / "rows.json", "--cases", "single")
    assert [r["backend"] for r in rows] == ["cpu", "cpu-numpy"]
    for r in rows:
        assert r["reference"] == "drizzle" and r["parity"] == "bit-identical"
        assert r["pixmap_max_abs_px"] < 1e-8 and r["total_ratio"] > 0
