"""Compile every gpucal kernel module as it is compiled at run time, then report ptxas's resources.

Runs in a venv with CuPy and NVIDIA's NVRTC/nvcc wheels but no GPU (``make nvrtc-env``
makes one: ``.venv-nvrtc``). For each ``gpucal/kernels/*.cu`` and each architecture:

1. ``gpucal.gpu.compile.raw_module`` itself, with real CuPy: only what needs a device is
   answered here (the current device, the architecture CuPy picks from it, loading the
   cubin), so NVRTC gets what it gets on a GPU of that architecture, options appended by
   CuPy included. The options NVRTC received, its log and the cubin are recorded.
2. The same with CuPy's PTX route (``CUPY_COMPILE_WITH_PTX``; also what CuPy does for a
   device newer than its NVRTC), and that PTX through ``ptxas -v -arch=sm_XX`` of the nvcc
   wheel: registers, stack, spills and warnings per ``__global__`` function.

    .venv-nvrtc/bin/python tools/nvrtc_kernels.py --json -            # the figures, as JSON
    .venv-nvrtc/bin/python tools/nvrtc_kernels.py --markdown docs/kernels_registers.md
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ARCHS = ("80", "90")

# A fresh kernel cache, so every module is compiled here rather than found from an earlier run.
os.environ["CUPY_CACHE_DIR"] = tempfile.mkdtemp(prefix="gpucal-nvrtc-cache-")
sys.path.insert(0, str(REPO))


def ptxas_path() -> Path:
    """ptxas of the nvidia-cuda-nvcc wheel in this environment."""
    import nvidia.cuda_nvcc  # noqa: F401  (namespace package of the wheel)

    for base in nvidia.cuda_nvcc.__path__:
        candidate = Path(base) / "bin" / "ptxas"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("ptxas is not in the nvidia-cuda-nvcc wheel of this environment")


class NvrtcRecorder:
    """Records every NVRTC compile CuPy runs: options, method, program log and output."""

    def __init__(self) -> None:
        from cupy.cuda import compiler

        self.calls: list[dict[str, Any]] = []
        self._program = compiler._NVRTCProgram
        self._real = self._program.compile
        recorder = self

        def compile(program, options=(), log_stream=None):  # noqa: A001 (CuPy's method name)
            own_log = io.StringIO()
            result = recorder._real(program, options, own_log)
            if log_stream is not None:
                log_stream.write(own_log.getvalue())
            recorder.calls.append({"source": program.src, "options": list(options), "method": program.method,
                                   "log": own_log.getvalue(), "output": result[0]})
            return result

        self._program.compile = compile

    def close(self) -> None:
        self._program.compile = self._real


def _kernel_call(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The compile of the module itself (CuPy's cache path also compiles an empty source)."""
    real = [c for c in calls if c["source"].strip()]
    if len(real) != 1:
        raise RuntimeError(f"expected one NVRTC compile of the module, saw {len(real)}")
    return real[0]


_PTXAS_FUNCTION = re.compile(r"Compiling entry function '(\w+)' for '(sm_\d+)'")
_PTXAS_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")


def parse_ptxas(text: str) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Per function: registers, stack, spill stores/loads, shared memory; and the warnings."""
    kernels: dict[str, dict[str, int]] = {}
    warnings = [ln.strip() for ln in text.splitlines() if "warning" in ln.lower()]
    current = None
    for line in text.splitlines():
        if m := _PTXAS_FUNCTION.search(line):
            current = kernels.setdefault(m.group(1), {})
        elif current is not None and (m := _PTXAS_STACK.search(line)):
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        elif current is not None and (m := _PTXAS_USED.search(line)):
            current.update(registers=int(m.group(1)), shared=int(m.group(3) or 0))
    return kernels, warnings


class DeviceAnswers:
    """What gpucal's compile path asks of a device, answered for architecture ``arch``: the
    current device (0), the ``-arch`` CuPy picks (CuPy's own rule, given the architecture
    instead of reading it from a device) and a ``Module`` that keeps the binary unloaded."""

    def __init__(self, arch: str, ptx: bool) -> None:
        import cupy
        from cupy.cuda import compiler

        self.binaries: list[bytes] = []
        answers = self

        class Module:
            def load(self, binary) -> None:
                answers.binaries.append(binary)

            def get_function(self, name):
                raise RuntimeError("no device: the module is compiled, not loaded")

        def arch_option(requested=None):
            if not ptx and int(arch) <= int(compiler._get_max_compute_capability()):
                return f"-arch=sm_{arch}", "cubin"
            return f"-arch=compute_{arch}", "ptx"

        self._patches = [(cupy.cuda.runtime, "getDevice", lambda: 0), (cupy.cuda.function, "Module", Module),
                         (compiler, "_get_arch_for_options_for_nvrtc", arch_option)]
        self._saved = [(owner, name, getattr(owner, name)) for owner, name, _ in self._patches]

    def __enter__(self) -> DeviceAnswers:
        for owner, name, value in self._patches:
            setattr(owner, name, value)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, value in self._saved:
            setattr(owner, name, value)


def compile_as_at_run_time(name: str, arch: str, ptx: bool = False) -> dict[str, Any]:
    """One NVRTC compile of module ``name`` through ``gpucal.gpu.compile.raw_module``."""
    from gpucal.gpu import compile as gpu_compile

    recorder = NvrtcRecorder()
    try:
        with DeviceAnswers(arch, ptx):
            gpu_compile._LOADED.clear()  # compiled once per process and device: compile again
            gpu_compile.raw_module(name)
    finally:
        recorder.close()
        gpu_compile._LOADED.clear()
    return _kernel_call(recorder.calls)


def check_module(name: str, arch: str, ptxas: Path, workdir: Path) -> dict[str, Any]:
    """Both compiles of one module for one architecture (see the module docstring)."""
    result: dict[str, Any] = {}
    cubin = compile_as_at_run_time(name, arch)  # 1. as on an sm_<arch> device: a cubin
    ptx = compile_as_at_run_time(name, arch, ptx=True)  # 2. CuPy's PTX route, for ptxas
    if cubin["method"] != "cubin" or f"-arch=sm_{arch}" not in cubin["options"]:
        raise RuntimeError(f"CuPy did not build a cubin for sm_{arch}: {cubin['method']} {cubin['options']}")
    result["nvrtc_options"] = cubin["options"]
    result["nvrtc_log"] = cubin["log"].strip()
    result["nvrtc_ptx_log"] = ptx["log"].strip()
    ptx_file = workdir / f"{name}.compute_{arch}.ptx"
    ptx_file.write_bytes(ptx["output"] if isinstance(ptx["output"], bytes) else ptx["output"].encode())
    proc = subprocess.run([str(ptxas), "-v", f"-arch=sm_{arch}", "--fmad=false", "--warn-on-spills",
                           str(ptx_file), "-o", str(ptx_file.with_suffix(".cubin"))], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed on {name} sm_{arch}:\n{proc.stderr}")
    result["kernels"], result["ptxas_warnings"] = parse_ptxas(proc.stdout + proc.stderr)
    return result


def run(archs: tuple[str, ...] = ARCHS) -> dict[str, Any]:
    import cupy
    from cupy.cuda import nvrtc

    from gpucal.gpu.compile import KERNEL_DIR

    ptxas = ptxas_path()
    version = subprocess.run([str(ptxas), "--version"], capture_output=True, text=True).stdout
    report: dict[str, Any] = {
        "cupy": cupy.__version__,
        "nvrtc": ".".join(map(str, nvrtc.getVersion())),
        "ptxas": (re.search(r"V(\d+\.\d+\.\d+)", version) or [None, "?"])[1],
        "archs": list(archs),
        "modules": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(p.stem for p in KERNEL_DIR.glob("*.cu")):
            report["modules"][name] = {}
            for arch in archs:
                try:
                    report["modules"][name][arch] = check_module(name, arch, ptxas, Path(tmp))
                except Exception as exc:  # reported per module: one broken kernel must not hide the others
                    report["modules"][name][arch] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def _portable(option: str) -> str:
    """An option with this machine's paths replaced by placeholders."""
    site = sysconfig.get_paths()["purelib"]
    return option.replace(site, "<site-packages>").replace(str(REPO), "<repo>")


def markdown(report: dict[str, Any]) -> str:
    archs = report["archs"]
    errors = [f"{name} sm_{a}: {r['error']}" for name, per_arch in report["modules"].items()
              for a, r in per_arch.items() if "error" in r]
    if errors:
        raise RuntimeError("not writing a registers table of kernels that do not compile:\n" + "\n".join(errors))
    lines = [
        "# Kernel registers and spills (NVRTC as CuPy runs it, then ptxas)",
        "",
        "Generated by `make kernels-registers` (`tools/nvrtc_kernels.py` in `.venv-nvrtc`); do not edit.",
        f"CuPy {report['cupy']}, NVRTC {report['nvrtc']}, ptxas {report['ptxas']} (CUDA 12 wheels), no GPU.",
        "",
        "Each module is compiled by `gpucal.gpu.compile.raw_module` itself with real CuPy, only the",
        "device queries answered for the architecture, so NVRTC gets what it gets on such a GPU",
        "(`gpucal.gpu.compile.nvrtc_options`: ours, then the `-arch=sm_XX` and",
        "`--device-as-default-execution-space` CuPy appends). The figures come from ptxas on the",
        "PTX of CuPy's PTX route for the same options (`ptxas -v --fmad=false`);",
        "`tests/test_kernels_nvrtc.py` checks that no module has a compile warning or a spill.",
        "Registers are per thread; stack and spills in bytes.",
        "",
        "| module | kernel | " + " | ".join(f"sm_{a} registers | sm_{a} stack | sm_{a} spills" for a in archs) + " |",
        "|---|---|" + "---|---|---|" * len(archs),
    ]
    for name, per_arch in report["modules"].items():
        kernels = sorted({k for a in archs for k in per_arch[a]["kernels"]})
        for kernel in kernels:
            cells = []
            for a in archs:
                k = per_arch[a]["kernels"].get(kernel, {})
                spills = k.get("spill_stores", 0) + k.get("spill_loads", 0)
                cells += [str(k.get("registers", "?")), str(k.get("stack", "?")), str(spills)]
            lines.append(f"| {name} | `{kernel}` | " + " | ".join(cells) + " |")
    first = next(iter(report["modules"].values()))[archs[-1]]["nvrtc_options"]
    lines += ["", f"NVRTC options of a module for sm_{archs[-1]} (paths shortened):", "",
              "    " + " ".join(_portable(o) for o in first), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the report as JSON here ('-': stdout)")
    parser.add_argument("--markdown", type=Path, help="write the registers table here")
    args = parser.parse_args(argv)
    report = run()
    if args.json == "-":
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(report))
    if not args.json:
        for name, per_arch in report["modules"].items():
            for arch, r in per_arch.items():
                if "error" in r:
                    print(f"{name} sm_{arch}: {r['error']}")
                    continue
                regs = ", ".join(f"{k} {v.get('registers')}r" for k, v in sorted(r["kernels"].items()))
                print(f"{name} sm_{arch}: {regs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
