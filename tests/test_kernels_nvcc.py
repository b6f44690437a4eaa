"""Every CUDA source compiles with nvcc for Ampere and Hopper, without FMA contraction."""

import shutil
import subprocess

import pytest

from gpucal.gpu.compile import KERNEL_DIR

NVCC = shutil.which("nvcc")
SOURCES = sorted(KERNEL_DIR.glob("*.cu"))


def test_there_are_kernel_sources():
    assert (KERNEL_DIR / "ramp_fit.cu") in SOURCES


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_nvcc_compiles(source, arch, tmp_path):
    out = tmp_path / f"{source.stem}.{arch}.cubin"
    cmd = [NVCC, f"-arch={arch}", "--cubin", "--fmad=false", "-std=c++17", "-Werror", "all-warnings",
           f"-I{KERNEL_DIR}", str(source), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
