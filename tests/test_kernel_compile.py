"""How the kernel sources are compiled at run time (``gpucal/gpu/compile.py``) and what they may use.

* CuPy's ``RawModule`` appends ``-ftz=true`` after the caller's options, and NVRTC takes the
  last ``-ftz``: the runtime path must end with ``-ftz=false`` (float32 denormals kept, as
  numpy keeps them). The host build is checked on denormal inputs; where an NVRTC library is
  installed (the ``nvidia-cuda-nvrtc-cu12`` wheel), the PTX itself is checked.
* CuPy's kernel cache ignores ``#include``d files: what NVRTC compiles must change with any
  header edit.
* ``long`` is 32 bits under NVRTC on Windows: kernels use fixed-width types.
"""

import ctypes
import ctypes.util
import glob
import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import fake_cupy
from gpucal.gpu import compile as gpu_compile
from gpucal.gpu.compile import KERNEL_DIR
from host_build import host_compiler

MODULES = sorted(p.stem for p in KERNEL_DIR.glob("*.cu"))
needs_host_build = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")


def _last_ftz(options) -> str:
    ftz = [o for o in options if o.lstrip("-").startswith("ftz")]
    assert ftz, f"no -ftz option in {options}"
    return ftz[-1]


@needs_host_build
@pytest.mark.parametrize("module", MODULES)
def test_runtime_compile_keeps_denormals(cupy_stand_in, module):
    """What NVRTC receives (ours plus what CuPy appends) ends with -ftz=false, and the source has no includes left."""
    kernel = next(iter(fake_cupy.parse_signatures(gpu_compile.module_source(module))))
    gpu_compile.kernel(module, kernel)
    (compiled,) = cupy_stand_in.compiles
    assert _last_ftz(compiled["options"]) == "-ftz=false"
    assert compiled["options"] == gpu_compile.nvrtc_options(cupy_stand_in.compute_capability)
    assert "#include" not in compiled["source"]
    gpu_compile.kernel(module, kernel)
    assert len(cupy_stand_in.compiles) == 1  # once per process and device


def test_stand_in_models_cupy_appending_ftz(cupy_stand_in):
    """The stand-in's RawModule adds -ftz=true after the caller's -ftz=false, as CuPy does."""
    import cupy

    cupy.RawModule(code=gpu_compile.module_source("ipc"), options=gpu_compile.NVRTC_OPTIONS)
    assert _last_ftz(cupy_stand_in.compiles[-1]["options"]) == "-ftz=true"


@needs_host_build
def test_a_header_edit_changes_what_nvrtc_compiles(cupy_stand_in, tmp_path, monkeypatch):
    kernels = tmp_path / "kernels"
    shutil.copytree(KERNEL_DIR, kernels)
    monkeypatch.setattr(gpu_compile, "KERNEL_DIR", kernels)
    gpu_compile.kernel("ipc", "ipc_2d_kernel")
    header = kernels / "numeric.cuh"
    header.write_text(header.read_text() + "\n#define GPUCAL_EDITED_HEADER 1\n")
    monkeypatch.setattr(gpu_compile, "_LOADED", {})  # a new process
    gpu_compile.kernel("ipc", "ipc_2d_kernel")
    before, after = cupy_stand_in.compiles
    assert (before["source"], before["options"]) != (after["source"], after["options"])
    assert "GPUCAL_EDITED_HEADER" in after["source"]


def test_module_source_inlines_each_header_once():
    text = gpu_compile.module_source("ramp_fit")
    for header in ("dq_flags.cuh", "numeric.cuh"):
        assert text.count(f"// begin {header}") == 1
        assert (KERNEL_DIR / header).read_text().splitlines()[-1] in text
    assert "#pragma once" not in text and "#include" not in text


@pytest.mark.parametrize("path", sorted(KERNEL_DIR.glob("*.cu*")), ids=lambda p: p.name)
def test_kernels_use_fixed_width_integers(path):
    """No `long` (32 bits under NVRTC on Windows, 64 on Linux): `long long` / i64 only."""
    code = re.sub(r"//[^\n]*|/\*.*?\*/", " ", path.read_text(), flags=re.DOTALL)
    bare = re.findall(r"(?<!long )\blong\b(?! long)", code)
    assert not bare, f"{path.name}: {len(bare)} bare `long`"


@pytest.mark.parametrize("module", MODULES)
def test_every_kernel_signature_is_one_the_stand_in_checks(module):
    signatures = fake_cupy.parse_signatures(gpu_compile.module_source(module))
    assert signatures and all(signatures.values())


def test_signature_parser_refuses_long():
    with pytest.raises(TypeError, match="long long"):
        fake_cupy.parse_signatures('extern "C" __global__ void k(const float* a, long n) {}')


# --------------------------------------------------------------------------- denormals on the host build

@needs_host_build
def test_ipc_host_build_keeps_float32_denormals():
    from gpucal.ipc_io import IpcGeometry
    from ipc_runs import host_block, numpy_block

    rng = np.random.default_rng(11)
    tiny = np.finfo(np.float32).tiny
    data = (rng.uniform(-0.9, 0.9, (2, 9, 11)) * tiny).astype(np.float32)  # mostly subnormal
    kernel = np.array([[0.0, 0.25, 0.0], [0.25, 0.5, 0.25], [0.0, 0.25, 0.0]], np.float32)
    g = IpcGeometry(2, 11, 9, 9, 0, 0, 0, 9, 0, 11, 3, 3)
    host, ref = host_block(g, data, kernel), numpy_block(g, data, kernel)
    np.testing.assert_array_equal(host.view(np.uint32), ref.view(np.uint32))
    subnormal = (host != 0) & (np.abs(host) < tiny)
    assert subnormal.sum() > host.size // 2  # flushing to zero would have changed them


@needs_host_build
def test_ramp_fit_host_build_keeps_float32_denormals():
    from kernel_runs import assert_identical, block_problem, run_host, run_numpy
    from ramp_cases import random_case

    case = random_case("denormal", 2, 6, 5, 7, seed=12, flag_rate=0.1)
    case.data[...] = (case.data * np.float32(1e-43)).astype(np.float32)  # subnormal samples
    fp, inputs, table = block_problem(case, save_opt=True)
    host, ref = run_host(fp, inputs, table), run_numpy(fp, inputs, table)
    assert_identical(host, ref, "denormal")
    assert (inputs.data != 0).any() and (np.abs(inputs.data) < np.finfo(np.float32).tiny).all()
    slope = ref.ints_out[0]
    assert ((slope != 0) & (np.abs(slope) < np.finfo(np.float32).tiny)).any()


# --------------------------------------------------------------------------- the PTX, where NVRTC is installed

def _libnvrtc():
    spec = importlib.util.find_spec("nvidia")
    # The NVRTC wheel of this venv, else that of make nvrtc-env's .venv-nvrtc (there in CI).
    nvrtc_venv = Path(__file__).resolve().parent.parent / ".venv-nvrtc"
    roots = list(spec.submodule_search_locations if spec else [])
    roots += sorted(glob.glob(str(nvrtc_venv / "lib" / "python3*" / "site-packages" / "nvidia")))
    for root in roots:
        for path in sorted(glob.glob(str(Path(root) / "cuda_nvrtc" / "lib" / "libnvrtc.so.*"))):
            if "alt" not in path and "builtins" not in path:
                return ctypes.CDLL(path)
    name = ctypes.util.find_library("nvrtc")
    return ctypes.CDLL(name) if name else None


def _ptx(lib, source: str, options, warnings_ok: bool = False) -> str:
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kernel.cu", 0, None, None) == 0
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    rc = lib.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert rc == 0, log.value.decode()
    assert warnings_ok or not log.value.strip(), log.value.decode()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, ptx)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode()


@pytest.mark.parametrize("module", MODULES)
def test_nvrtc_ptx_has_no_flush_to_zero(module):
    lib = _libnvrtc()
    if lib is None:
        pytest.skip("no NVRTC library (pip install nvidia-cuda-nvrtc-cu12)")
    options = [o.replace("-arch=sm_", "-arch=compute_") for o in gpu_compile.nvrtc_options("90")]
    source = gpu_compile.module_source(module)
    assert ".ftz" not in _ptx(lib, source, options)
    if module == "ramp_fit":  # the check can fail: CuPy's RawModule would append -ftz=true
        assert ".ftz" in _ptx(lib, source, options + ["-ftz=true"], warnings_ok=True)
