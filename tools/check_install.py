"""Install gpucal's GPU extras into fresh throwaway venvs and check that they import together.

For each CUDA major (12: ``gpucal[gpu,dask-cuda]``, 13: ``gpucal[gpu-cuda13,dask-cuda-cuda13]``):
a new venv, ``pip install`` of this checkout with those extras, ``pip check``, then, without a
GPU: ``import dask_cuda`` (and its LocalCUDACluster), ``import cupy``, NVRTC of the same CUDA
major loaded and asked its version, the CUDA runtime headers found where CuPy looks for them,
``local_gpu_count()`` warning-free, and ``dask cuda worker --help``. Prints the seconds of each
step; exits non-zero when any variant fails.

    python3 tools/check_install.py              # both variants (make test-install)
    python3 tools/check_install.py --variants 13
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

VARIANTS = {
    "12": "gpu,dask-cuda",
    "13": "gpu-cuda13,dask-cuda-cuda13",
}

# Runs inside the fresh venv; argv[1] is the CUDA major the extras promise.
PROBE = r"""
import logging, sys
major = int(sys.argv[1])
import dask_cuda
from dask_cuda import LocalCUDACluster  # noqa: F401
import cupy
from cupy.cuda import nvrtc
from cuda.pathfinder import find_nvidia_header_directory
version = nvrtc.getVersion()  # loads libnvrtc: CuPy compiles every kernel through it
assert version[0] == major, f"NVRTC {version} for CUDA {major} extras"
headers = find_nvidia_header_directory("cudart")  # where CuPy finds cuda_runtime.h
assert headers, "no CUDA runtime headers: CuPy cannot compile kernels"
records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger("gpucal").addHandler(handler)
logging.getLogger("gpucal").setLevel(logging.DEBUG)
from gpucal.scaleout.cluster import local_gpu_count
count = local_gpu_count()  # 0 here (no driver); must not warn that dask_cuda is broken
warned = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
assert not warned, warned
print(f"dask-cuda {dask_cuda.__version__}, cupy {cupy.__version__}, NVRTC {version[0]}.{version[1]}, "
      f"CUDA headers {headers}, local GPUs {count}")
"""


def _run(label: str, cmd: list[str], times: list[tuple[str, float]], **kwargs) -> str:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    times.append((label, time.perf_counter() - start))
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    return proc.stdout


def check_variant(major: str, root: Path) -> list[tuple[str, float]]:
    """Install and probe one variant in ``root``; returns (step, seconds) pairs."""
    times: list[tuple[str, float]] = []
    venv = root / f"cuda{major}"
    py = venv / "bin" / "python"
    _run("venv", [sys.executable, "-m", "venv", str(venv)], times)
    _run("pip install", [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile",
                         f"{REPO}[{VARIANTS[major]}]"], times)
    _run("pip check", [str(py), "-m", "pip", "check"], times)
    # From a neutral directory, so the installed gpucal is imported, not this checkout.
    print(f"  {_run('imports', [str(py), '-c', PROBE, major], times, cwd=root).strip()}")
    out = _run("dask cuda worker --help", [str(venv / "bin" / "dask"), "cuda", "worker", "--help"], times)
    if "Launch a distributed worker with GPUs" not in out:
        raise RuntimeError(f"`dask cuda worker --help` printed no usage:\n{out[:2000]}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="CUDA majors to check (default 12,13)")
    parser.add_argument("--keep", action="store_true", help="keep the venvs (their folder is printed)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="gpucal-install-"))
    failed = []
    try:
        for major in args.variants.split(","):
            print(f"gpucal[{VARIANTS[major]}] (CUDA {major}) in a fresh venv under {root}", flush=True)
            start = time.perf_counter()
            try:
                times = check_variant(major, root)
            except RuntimeError as exc:
                print(f"  FAILED: {exc}", flush=True)
                failed.append(major)
                continue
            steps = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in times)
            print(f"  ok in {time.perf_counter() - start:.0f} s ({steps})", flush=True)
            if not args.keep:
                shutil.rmtree(root / f"cuda{major}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if failed:
        print(f"install check failed for CUDA {', '.join(failed)}")
        return 1
    print("install check passed: " + ", ".join(f"CUDA {m}" for m in args.variants.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
