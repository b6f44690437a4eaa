"""``make gpu-check``: everything a first GPU must show, in one run of a few minutes.

Made for a lent GPU machine with little time (a few minutes of a 15-minute lease), Python 3.12,
CuPy, numpy, scipy and pytest, and nothing to download: no astropy, stcal, jwst, drizzle or
dask unless carried as wheels in ``.whl/`` (``make gpu-check-wheels`` fetches them here). In
order, each phase in its own processes, under its own time limit and the run's budget:

1. ``setup``: the wheels of ``.whl/`` installed offline into a temporary folder (nothing else
   is installed; gpucal runs from this checkout); a fresh, empty CuPy kernel cache.
2. ``device``: the device (from CuPy), its memory and the versions, as ``gpucal info`` reads them.
3. ``kernel-compile``: gpucal's modules compiled in a fresh process (NVRTC, in memory, as
   every gpucal process does on first use), timed.
4. ``pytest``: ``pytest -m gpu`` (the CuPy paths against ``cpu_fallback``), on every test file
   with GPU tests; files whose imports are missing skip with the reason.
5. the benchmarks, each with ``--backends cpu,gpu`` and without stcal/jwst/drizzle references.

Writes into ``--out`` (default ``$OUT`` when set, else ``bench/out/gpu-check``):
``gpu-check.md`` (device, date, commit, the test counts and one table per benchmark: the
fragment for ``bench/RESULTS.md``), ``gpu-check.json`` (every figure) and ``gpu-check.log``
(everything printed). Exits non-zero when a GPU test fails or a phase breaks.

``--rehearsal`` runs the same on this machine against the CuPy stand-in
(``tools/gpu_check/rehearsal``), with tiny cases: every step but the hardware.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REHEARSAL = Path(__file__).resolve().parent / "rehearsal"
WHEELS = REPO / ".whl"


# (name, arguments, modules it cannot run without, seconds allowed) per profile. The device
# profile is sized for an H100/H200 inside the run's budget; the rehearsal one for the stand-in.
BENCHES: dict[str, list[tuple[str, list[str], list[str], int]]] = {
    "device": [
        ("ramp_fit", ["--cases", "1x10x2048x2048", "8x20x512x2048", "--no-stcal", "--repeats", "3"], [], 100),
        ("jump", ["--cases", "1x10x2048x2048", "--no-stcal", "--repeats", "3"], [], 90),
        ("detector1", ["--cases", "1x10x2048x2048", "--no-stcal", "--no-memory", "--repeats", "1"], ["astropy"], 120),
        ("resample", ["--size", "2048", "--kernels", "square", "turbo", "--no-reference"], [], 90),
        ("cube", ["--dithers", "1", "--no-reference"], ["astropy"], 60),
        ("batch", ["--quick", "--exposures", "4"], ["distributed", "astropy"], 90),
        ("resample_mosaic", ["--quick"], ["gwcs", "jwst"], 60),
    ],
    "rehearsal": [
        ("ramp_fit", ["--cases", "1x4x32x64", "--no-stcal", "--repeats", "1"], [], 60),
        ("jump", ["--cases", "1x6x32x64", "--no-stcal", "--repeats", "1"], [], 60),
        ("detector1", ["--cases", "1x4x32x2048", "--no-stcal", "--no-memory", "--repeats", "1"], ["astropy"], 120),
        ("resample", ["--quick", "--size", "64", "--kernels", "square", "--no-reference"], [], 60),
        ("cube", ["--quick", "--weightings", "emsm", "--no-reference"], ["astropy"], 60),
        ("batch", ["--quick", "--exposures", "2"], ["distributed", "astropy"], 120),
        ("resample_mosaic", ["--quick"], ["gwcs", "jwst"], 60),
    ],
}
# Benchmarks whose --backends means gpucal backends (batch picks its clusters itself).
NO_BACKENDS = {"batch", "resample_mosaic"}
# GPU tests that need the hardware itself, not the stand-in: left out of a rehearsal.
REHEARSAL_DESELECT = {
    "tests/test_batch.py::test_one_dask_cuda_worker_per_gpu": "dask-cuda counts GPUs through NVML",
}

DEVICE_PROBE = r"""
import json, platform, sys
import numpy, cupy
import gpucal
from gpucal.backend import free_device_memory, gpu_unavailable_reason
reason = gpu_unavailable_reason()
out = {"python": platform.python_version(), "numpy": numpy.__version__, "cupy": cupy.__version__,
       "gpu_unavailable_reason": reason}
if reason is None:
    device = cupy.cuda.Device(0)
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    out.update(name=name.decode() if isinstance(name, bytes) else str(name),
               compute_capability=str(device.compute_capability), total_bytes=int(props["totalGlobalMem"]),
               free_bytes=int(free_device_memory(0)),
               runtime=cupy.cuda.runtime.runtimeGetVersion(), driver=cupy.cuda.runtime.driverGetVersion())
    try:
        out["nvrtc"] = ".".join(map(str, cupy.cuda.nvrtc.getVersion()))
    except Exception as exc:
        out["nvrtc"] = f"unavailable ({exc})"
print("GPUCHECK-JSON " + json.dumps(out))
"""

# Compiles every kernel module in a fresh process, as each gpucal process does on first use.
COMPILE_PROBE = r"""
import json, re, time
from gpucal.gpu.compile import KERNEL_DIR, kernel
start, per_module, kernels = time.perf_counter(), {}, 0
for path in sorted(KERNEL_DIR.glob("*.cu")):
    t = time.perf_counter()
    for function in re.findall(r"__global__\s+void\s+(\w+)\s*\(", path.read_text()):
        kernel(path.stem, function)
        kernels += 1
    per_module[path.stem] = time.perf_counter() - t
print("GPUCHECK-JSON " + json.dumps({"modules": len(per_module), "kernels": kernels,
                                     "seconds": time.perf_counter() - start, "per_module": per_module}))
"""


class Check:
    """One run: the environment for its processes, the log, the results and the budget."""

    def __init__(self, out: Path, budget: float, rehearsal: bool, pytest_args: list[str], benches: list[str] | None,
                 wheels: Path = WHEELS):
        self.out = out
        self.wheels = wheels
        self.deadline = time.monotonic() + budget
        self.rehearsal = rehearsal
        self.pytest_args = pytest_args
        self.only_benches = benches
        self.tmp = Path(tempfile.mkdtemp(prefix="gpucal-gpu-check-"))
        self.log = open(out / "gpu-check.log", "a", buffering=1)
        self.results: dict[str, Any] = {"rehearsal": rehearsal, "phases": {}, "benches": {}}
        self.failed: list[str] = []
        self.env = dict(os.environ)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env["CUPY_CACHE_DIR"] = str(self.tmp / "cupy-cache")  # cold: compile times are part of the run
        paths = [str(REPO)]
        if rehearsal:
            paths.insert(0, str(REHEARSAL))
        self.site = self.tmp / "site"
        paths.append(str(self.site))
        self.env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])

    # ----------------------------------------------------------------------------- helpers

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, label: str, cmd: list[str], limit: float, env: dict[str, str] | None = None) -> dict[str, Any]:
        """Run ``cmd`` under min(limit, budget left); its output goes to the log."""
        limit = min(limit, self.remaining())
        self.say(f"\n## {label}: {shlex.join(cmd)}  (limit {limit:.0f} s)")
        if limit < 5:
            self.say("   not run: the run's time budget is spent")
            return {"status": "not run (budget)", "seconds": 0.0, "output": ""}
        start = time.monotonic()
        # A session of its own, so that a timeout ends its workers and compilers too.
        proc = subprocess.Popen(cmd, cwd=REPO, env=env or self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=limit)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            status = f"timed out after {limit:.0f} s"
        seconds = time.monotonic() - start
        self.log.write(output)
        tail = "\n".join(output.strip().splitlines()[-12:])
        print(tail, flush=True)
        self.say(f"   -> {status} in {seconds:.1f} s")
        return {"status": status, "seconds": seconds, "output": output}

    @staticmethod
    def probe_json(output: str) -> dict[str, Any] | None:
        for line in output.splitlines():
            if line.startswith("GPUCHECK-JSON "):
                return json.loads(line[len("GPUCHECK-JSON "):])
        return None

    def importable(self, modules: list[str]) -> dict[str, bool]:
        code = ("import importlib.util, json, sys; print('GPUCHECK-JSON ' + json.dumps("
                "{m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))")
        proc = subprocess.run([sys.executable, "-c", code, *modules], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=60)
        return self.probe_json(proc.stdout) or {m: False for m in modules}

    # ----------------------------------------------------------------------------- phases

    def setup(self) -> None:
        wheels = sorted(self.wheels.glob("*.whl")) if self.wheels.is_dir() else []
        info: dict[str, Any] = {"wheels": [w.name for w in wheels]}
        if wheels:
            r = self.run("setup: carried wheels", [sys.executable, "-m", "pip", "install", "-q", "--no-index",
                                                   "--no-deps", "--no-compile", "--no-cache-dir", "--target",
                                                   str(self.site), *map(str, wheels)], 180)
            info["status"] = r["status"]
            if r["status"] != "ok":
                self.failed.append("setup")
        else:
            self.say("\n## setup: no wheels in .whl/ (make gpu-check-wheels fetches astropy and dask for the device)")
            info["status"] = "ok"
        self.results["phases"]["setup"] = info

    def device(self) -> None:
        r = self.run("device", [sys.executable, "-c", DEVICE_PROBE], 120)
        info = self.probe_json(r["output"]) or {"status": r["status"]}
        self.results["device"] = info
        if info.get("gpu_unavailable_reason") or r["status"] != "ok":
            self.failed.append("device")
            self.say(f"   no usable GPU: {info.get('gpu_unavailable_reason') or r['status']}")

    def kernel_compile(self) -> None:
        r = self.run("kernel-compile: every module in a fresh process", [sys.executable, "-c", COMPILE_PROBE], 120)
        info = self.probe_json(r["output"]) or {}
        info["status"] = r["status"]
        if r["status"] != "ok":
            self.failed.append("kernel-compile")
        self.results["phases"]["kernel-compile"] = info

    def pytest(self) -> None:
        files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                       if re.search(r"^(@pytest\.mark\.gpu|pytestmark = pytest\.mark\.gpu)", p.read_text(), re.M))
        junit = self.tmp / "junit.xml"
        deselect = [f"--deselect={test}" for test in REHEARSAL_DESELECT] if self.rehearsal else []
        r = self.run("pytest -m gpu", [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                                       "-rfEs", f"--junitxml={junit}", *deselect, *self.pytest_args, *files], 300)
        info: dict[str, Any] = {"status": r["status"], "seconds": r["seconds"], "files": len(files)}
        if self.rehearsal:
            info["deselected"] = [f"{test} ({why})" for test, why in REHEARSAL_DESELECT.items()]
        if junit.is_file():
            info.update(_junit_counts(junit))
        else:
            info.update(_summary_counts(r["output"]))
        if r["status"] != "ok" or info.get("failed") or info.get("errors") or not info.get("passed"):
            self.failed.append("pytest")
        self.results["phases"]["pytest"] = info

    def benches(self) -> None:
        profile = BENCHES["rehearsal" if self.rehearsal else "device"]
        needs = sorted({m for _, _, mods, _ in profile for m in mods})
        available = self.importable(needs)
        for name, args, modules, limit in profile:
            if self.only_benches is not None and name not in self.only_benches:
                continue
            missing = [m for m in modules if not available.get(m)]
            if missing:
                self.say(f"\n## bench {name}: skipped, needs {', '.join(missing)} (not installed)")
                self.results["benches"][name] = {"status": f"skipped: needs {', '.join(missing)}"}
                continue
            out = self.tmp / f"{name}.json"
            backends = [] if name in NO_BACKENDS else ["--backends", "cpu,gpu"]
            r = self.run(f"bench {name}", [sys.executable, str(REPO / "bench" / f"{name}.py"), *args, *backends,
                                           "--json", str(out)], limit)
            info: dict[str, Any] = {"status": r["status"], "seconds": r["seconds"], "args": args + backends}
            if out.is_file():
                info["result"] = json.loads(out.read_text())
            elif r["status"] == "ok":
                info["status"] = "no results written"
            if info["status"] != "ok":
                self.failed.append(f"bench {name}")
            self.results["benches"][name] = info

    # ----------------------------------------------------------------------------- report

    def write(self) -> None:
        self.results["failed"] = self.failed
        (self.out / "gpu-check.json").write_text(json.dumps(self.results, indent=1, default=str) + "\n")
        (self.out / "gpu-check.md").write_text(markdown(self.results))


def _junit_counts(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    skipped = sorted({_skip_reason(s) for s in suite.iter("skipped")})
    return {"passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": counts["failures"], "errors": counts["errors"], "skipped": counts["skipped"],
            "failed_tests": failed, "skip_reasons": skipped}


def _skip_reason(element: ET.Element) -> str:
    """A skip's reason (a module's importorskip: "collection skipped", the reason in the text)."""
    text = element.get("message") or ""
    if text == "collection skipped" and element.text:
        text = element.text
    match = re.search(r"Skipped: (.*?)['\"]?\)?$", text.strip())
    return (match.group(1) if match else text).strip()[:160]


def _summary_counts(output: str) -> dict[str, Any]:
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output)}
    return {"passed": counts.get("passed", 0), "failed": counts.get("failed", 0),
            "errors": counts.get("errors", counts.get("error", 0)), "skipped": counts.get("skipped", 0)}


def _git_commit() -> str:
    """The checkout's commit; ``GPUCAL_COMMIT`` where the tree came without git (a device call)."""
    if os.environ.get("GPUCAL_COMMIT"):
        return os.environ["GPUCAL_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, dict):
        if "achieved_GBps" in value:  # a bandwidth entry
            return f"{value['achieved_GBps']:.0f} GB/s ({100 * value['fraction_of_peak']:.0f}%)"
        return "; ".join(f"{k} {_cell(v)}" for k, v in value.items() if not isinstance(v, (dict, list)))
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value).replace("|", "/")


# Columns shown per benchmark row: the keys that say what the row is and what it measured.
_KEYS = ("case", "step", "weighting", "kernel", "run", "impl", "backend", "reference", "ref_s", "drizzle_ref_s",
         "gpucal_s", "drizzle_s", "seconds", "wall_s", "gpu_vs_cpu", "ratio", "total_ratio", "msamples_per_s",
         "msamples_s", "mpoints_s",
         "parity", "agreement", "identical", "outputs", "bandwidth")


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return result.get("results") or result.get("rows") or []


_IDENTITY = ("case", "step", "weighting", "kernel")
_TIMES = ("gpucal_s", "drizzle_s", "seconds")


def _with_speedup(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ``gpu_vs_cpu``: the CPU backend's seconds over this row's, same case (GPU rows)."""
    def key(row):
        return tuple(row.get(k) for k in _IDENTITY)

    def seconds(row):
        return next((row[k] for k in _TIMES if isinstance(row.get(k), (int, float))), None)

    cpu = {key(r): seconds(r) for r in rows if r.get("backend") == "cpu"}
    out = []
    for row in rows:
        row = dict(row)
        if row.get("backend") == "gpu" and cpu.get(key(row)) and seconds(row):
            row["gpu_vs_cpu"] = cpu[key(row)] / seconds(row)
        out.append(row)
    return out


def markdown(results: dict[str, Any]) -> str:
    device = results.get("device", {})
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    name = device.get("name", "no device")
    lines = [f"## gpu-check: {name}, {date}, commit {_git_commit()}", ""]
    if results["rehearsal"]:
        lines += ["**Rehearsal on the CuPy stand-in (host build of the kernels): no GPU figures.**", ""]
    cc = device.get("compute_capability", "")
    lines += [f"- device: {name}" + (f", compute capability {cc[:-1]}.{cc[-1:]}" if cc else "")
              + (f", {device['total_bytes'] / 1024**3:.0f} GiB ({device['free_bytes'] / 1024**3:.0f} GiB free)"
                 if "total_bytes" in device else ""),
              f"- CuPy {device.get('cupy', '-')}, CUDA runtime {device.get('runtime', '-')}, driver "
              f"{device.get('driver', '-')}, NVRTC {device.get('nvrtc', '-')}; Python {device.get('python', '-')}, "
              f"numpy {device.get('numpy', '-')}"]
    compiled = results["phases"].get("kernel-compile", {})
    lines.append(f"- kernel compile in a fresh process (NVRTC, in memory, as every gpucal process does): "
                 f"{compiled.get('modules', '?')} modules, {compiled.get('kernels', '?')} kernels in "
                 f"{_cell(compiled.get('seconds'))} s ({compiled.get('status', 'not run')})")
    t = results["phases"].get("pytest", {})
    lines.append(f"- `pytest -m gpu` ({t.get('files', '?')} files): {t.get('passed', 0)} passed, "
                 f"{t.get('failed', 0)} failed, {t.get('errors', 0)} errors, {t.get('skipped', 0)} skipped "
                 f"in {_cell(t.get('seconds'))} s ({t.get('status', 'not run')})")
    for test in t.get("deselected", []):
        lines.append(f"  - left out of the rehearsal: {test}")
    for test in t.get("failed_tests", []):
        lines.append(f"  - FAILED {test}")
    for reason in t.get("skip_reasons", []):
        lines.append(f"  - skipped: {reason}")
    if results["failed"]:
        lines.append(f"- failed phases: {', '.join(results['failed'])}")
    for bench, info in results["benches"].items():
        lines += ["", f"### bench/{bench}.py {' '.join(info.get('args', []))}", ""]
        if "result" not in info:
            lines.append(f"{info['status']}")
            continue
        rows = _with_speedup(_rows(info["result"]))
        keys = [k for k in _KEYS if any(row.get(k) is not None for row in rows)]
        if not rows or not keys:
            lines.append(f"{info['status']}: no rows")
            continue
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for row in rows:
            lines.append("| " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
        if info["status"] != "ok":
            lines.append(f"\n{info['status']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT")
                        else REPO / "bench" / "out" / "gpu-check", help="folder for gpu-check.{md,json,log}")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run (default 450)")
    parser.add_argument("--rehearsal", action="store_true", help="on the CuPy stand-in, tiny cases (no GPU)")
    parser.add_argument("--pytest-args", default="", help="more pytest arguments, e.g. '-k ipc'")
    parser.add_argument("--benches", default=None, help="comma-separated subset of the benchmarks")
    parser.add_argument("--wheels", type=Path, default=None,
                        help="wheels to install offline first (default .whl/; none in a rehearsal)")
    args = parser.parse_args(argv)
    if args.wheels is None:
        args.wheels = Path(os.devnull) if args.rehearsal else WHEELS
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu-check.log").write_text("")
    check = Check(args.out, args.budget, args.rehearsal, shlex.split(args.pytest_args),
                  args.benches.split(",") if args.benches else None, args.wheels)
    start = time.monotonic()
    try:
        check.setup()
        check.device()
        if "device" not in check.failed:
            check.kernel_compile()
            check.pytest()
            check.benches()
    finally:
        check.write()
    check.say(f"\ngpu-check {'rehearsal ' if args.rehearsal else ''}finished in {time.monotonic() - start:.0f} s; "
              f"{'failed: ' + ', '.join(check.failed) if check.failed else 'all phases passed'}; "
              f"wrote {args.out / 'gpu-check.md'}")
    print("\n" + (args.out / "gpu-check.md").read_text())
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
