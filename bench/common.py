"""Helpers shared by the benchmark scripts in bench/: cases, timing, environment,
the stcal reference call, output comparison and the GPU bandwidth probe.

Not part of the installed package; the scripts import it from this directory.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import json
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One exposure shape (nints, ngroups, ny, nx)."""

    nints: int
    ngroups: int
    ny: int
    nx: int

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.nints, self.ngroups, self.ny, self.nx)

    @property
    def samples(self) -> int:
        return self.nints * self.ngroups * self.ny * self.nx

    @property
    def name(self) -> str:
        return "x".join(map(str, self.shape))


def parse_case(text: str) -> Case:
    """``"1x10x1024x1024"`` -> Case(1, 10, 1024, 1024)."""
    parts = re.split(r"[xX,]", text.strip())
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"a case is NINTSxNGROUPSxNYxNX with positive integers, got {text!r}")
    return Case(*(int(p) for p in parts))


def default_repeats(case: Case) -> int:
    """Median of 5 for small cases, 3 for medium, 1 for the large ones."""
    if case.samples <= 20_000_000:
        return 5
    if case.samples <= 100_000_000:
        return 3
    return 1


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, list[float], Any]:
    """Run ``fn`` ``repeats`` times; return (median seconds, all seconds, last result)."""
    times = []
    result = None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


# --------------------------------------------------------------------------- environment


def git_commit() -> str:
    """Short commit of the checkout, with ``+dirty`` when the tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_description() -> str:
    """CPU model and the number of cores this process may use."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return f"{model}, {cores} cores"


def gpu_description() -> str | None:
    """Name of CUDA device 0, or None without a usable GPU."""
    import gpucal

    if not gpucal.gpu_available():
        return None
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def environment() -> dict[str, Any]:
    """What a result line needs to be reproducible: date, commit, versions, devices."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "cpu": cpu_description(),
        "gpu": gpu_description(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "stcal": version("stcal"),
        "gpucal": version("gpucal"),
        "cupy": version("cupy-cuda12x") or version("cupy-cuda13x") or version("cupy"),
    }


# --------------------------------------------------------------------------- reference


def stcal_ols_c(data, groupdq, pixeldq, gain, readnoise, *, frame_time: float, group_time: float,
                nframes: int, groupgap: int, instrument: str, suppress_one_group: bool = True,
                average_dark_current=None):
    """stcal 1.20 ``OLS_C`` ramp fit of plain arrays, as jwst's RampFitStep drives it.

    Returns stcal's ``(image_info, integ_info)`` dicts (or ``(None, None)``). stcal
    changes the group DQ and the read noise in place, so both are copied here; the
    copies are part of the timed work, as they are of stcal's own callers.
    """
    from stcal.ramp_fitting.ramp_fit import ramp_fit_data
    from stcal.ramp_fitting.ramp_fit_class import RampData

    from gpucal import dq as dqflags

    groupdq = np.array(groupdq, dtype=np.uint8, copy=True)
    ny, nx = groupdq.shape[-2:]
    ramp_data = RampData()
    orig_gdq = groupdq.copy() if np.any(groupdq & dqflags.CHARGELOSS) else None
    dark = (np.zeros((ny, nx), np.float32) if average_dark_current is None
            else np.asarray(average_dark_current, np.float32))
    ramp_data.set_arrays(np.asarray(data, np.float32), groupdq, np.asarray(pixeldq, np.uint32), dark,
                         orig_gdq=orig_gdq, zeroframe=None)
    ramp_data.set_meta(name=instrument, frame_time=frame_time, group_time=group_time,
                       groupgap=groupgap, nframes=nframes, drop_frames1=None)
    ramp_data.algorithm = "OLS_C"
    ramp_data.set_dqflags(dqflags.PIXEL)
    ramp_data.start_row = 0
    ramp_data.num_rows = ny
    # As stcal.ramp_fit.ramp_fit: no suppression for one-group exposures.
    ramp_data.suppress_one_group_ramps = bool(suppress_one_group and groupdq.shape[1] > 1)
    image_info, integ_info, _ = ramp_fit_data(
        ramp_data, False, np.array(readnoise, dtype=np.float32, copy=True),
        np.asarray(gain, np.float32), "OLS_C", "optimal", "none",
    )
    return image_info, integ_info


# --------------------------------------------------------------------------- comparison


def max_relative_difference(a, b) -> float:
    """Largest |a-b| / max(|a|,|b|) over elements finite in both (0 where both are 0)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return 0.0
    da, db = a[both], b[both]
    scale = np.maximum(np.abs(da), np.abs(db))
    diff = np.abs(da - db)
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    return float(rel.max())


def compare_products(ref: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """Compare two products given as dicts with ``slope``/``dq`` (rate and rateints).

    ``ref`` and ``got`` map "rate" and "rateints" to dicts {"slope": array, "dq": array}.
    """
    out: dict[str, Any] = {}
    for level in ("rate", "rateints"):
        r, g = ref.get(level), got.get(level)
        if r is None or g is None:
            out[level] = {"both_none": r is None and g is None}
            continue
        rs, gs = np.asarray(r["slope"]), np.asarray(g["slope"])
        out[level] = {
            "max_rel_diff": max_relative_difference(gs, rs),
            "nan_pattern_identical": bool(np.array_equal(np.isnan(rs), np.isnan(gs))),
            "dq_identical": bool(np.array_equal(np.asarray(r["dq"]), np.asarray(g["dq"]))),
            "bit_identical": bool(np.array_equal(rs, gs, equal_nan=True)),
        }
    return out


def stcal_products(image_info, integ_info) -> dict[str, Any]:
    if image_info is None:
        return {"rate": None, "rateints": None}
    return {"rate": {"slope": image_info["slope"], "dq": image_info["dq"]},
            "rateints": {"slope": integ_info["slope"], "dq": integ_info["dq"]}}


def gpucal_products(result) -> dict[str, Any]:
    def pick(product):
        return None if product is None else {"slope": product.data, "dq": product.dq}

    return {"rate": pick(result.rate), "rateints": pick(result.rateints)}


# --------------------------------------------------------------------------- GPU bandwidth


def measure_peak_bandwidth(nbytes: int = 1 << 30, repeats: int = 10) -> float:
    """Device memory bandwidth in bytes/s from the best of ``repeats`` device-to-device copies.

    A copy of n bytes reads n and writes n, so it counts as 2n bytes moved.
    """
    import cupy

    free = cupy.cuda.runtime.memGetInfo()[0]
    n = int(min(nbytes, free // 4)) // 256 * 256
    src = cupy.empty(n, dtype=cupy.uint8)
    dst = cupy.empty_like(src)
    src.fill(1)
    kind = cupy.cuda.runtime.memcpyDeviceToDevice
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    best = float("inf")
    for i in range(repeats + 1):
        start.record()
        cupy.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, n, kind, cupy.cuda.get_current_stream().ptr)
        stop.record()
        stop.synchronize()
        if i:  # the first copy is a warm-up
            best = min(best, cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    del src, dst
    cupy.get_default_memory_pool().free_all_blocks()
    return 2.0 * n / best


class KernelTimer:
    """Times every launch of gpucal's CUDA kernels with CUDA events, while active.

    Wraps ``gpucal.gpu.compile.kernel`` (which the launchers call for each fit) so that
    each launch is bracketed by two events on the current stream. ``seconds`` is the sum
    of those intervals: when launches on the two streams overlap, the sum exceeds the
    time the device was busy, so bandwidths computed from it are lower bounds.
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, Any]] = []
        self._original = None

    def __enter__(self) -> KernelTimer:
        import cupy

        from gpucal.gpu import compile as gpu_compile

        self._module = gpu_compile
        self._original = gpu_compile.kernel
        original, events = self._original, self.events

        def timed_kernel(module: str, function: str):
            launch = original(module, function)

            def run(grid, block, args, **kwargs):
                stream = cupy.cuda.get_current_stream()
                start, stop = cupy.cuda.Event(), cupy.cuda.Event()
                start.record(stream)
                launch(grid, block, args, **kwargs)
                stop.record(stream)
                events.append((start, stop))

            return run

        gpu_compile.kernel = timed_kernel
        return self

    def __exit__(self, *exc: object) -> None:
        self._module.kernel = self._original

    @property
    def seconds(self) -> float:
        import cupy

        total = 0.0
        for start, stop in self.events:
            stop.synchronize()
            total += cupy.cuda.get_elapsed_time(start, stop) / 1e3
        return total


def ramp_fit_bytes(case: Case) -> int:
    """Bytes a ramp fit must at least move: data (float32) and groupdq (uint8) in; gain,
    readnoise (float32) and pixeldq (uint32) in; rate and rateints (slope, err, var_poisson,
    var_rnoise float32, dq uint32) out."""
    pixels = case.ny * case.nx
    return case.samples * (4 + 1) + pixels * 12 + pixels * 20 + case.nints * pixels * 20


def jump_bytes(case: Case) -> int:
    """Bytes a jump detection must at least move: data (float32) in, groupdq (uint8) in and
    out, pixeldq (uint32) in and out, gain and readnoise (float32) in."""
    pixels = case.ny * case.nx
    return case.samples * (4 + 1 + 1) + pixels * (4 + 4 + 4 + 4)


def kernel_seconds(run: Callable[[], Any]) -> tuple[float, str]:
    """Device seconds of the CUDA kernels of one more ``run()`` (events around each launch),
    or its wall time, labelled, when the launcher cannot be instrumented or launched nothing."""
    try:
        with KernelTimer() as timer:
            start = time.perf_counter()
            run()
            wall = time.perf_counter() - start
    except (ImportError, AttributeError):
        start = time.perf_counter()
        run()
        return time.perf_counter() - start, "end-to-end"
    if not timer.events:
        return wall, "end-to-end"
    return timer.seconds, f"kernel, {len(timer.events)} launches"


def bandwidth_row(nbytes: int, seconds: float, basis: str, peak_bw: float) -> dict[str, Any]:
    """The ``bandwidth`` entry of a GPU result row."""
    achieved = nbytes / seconds
    return {"bytes": nbytes, "seconds": seconds, "basis": basis, "achieved_GBps": achieved / 1e9,
            "peak_GBps": peak_bw / 1e9, "fraction_of_peak": achieved / peak_bw}


# --------------------------------------------------------------------------- output


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Case):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def bench_parser(description: str, default_cases: list[str], quick_cases: list[str],
                 json_name: str) -> argparse.ArgumentParser:
    """The command line every benchmark script shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cases", nargs="+", metavar="NxGxYxX",
                        help=f"shapes to run (default: {' '.join(default_cases)})")
    parser.add_argument("--quick", action="store_true", help=f"tiny shapes ({' '.join(quick_cases)})")
    parser.add_argument("--backends", default=None,
                        help="comma-separated gpucal backends (default: cpu, plus gpu when available)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repetitions per case (default: 5 small, 3 medium, 1 large; median reported)")
    parser.add_argument("--no-stcal", dest="stcal", action="store_false", help="skip the stcal reference")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=OUT_DIR / json_name, help="where to write the results")
    return parser


def cases_and_backends(parser: argparse.ArgumentParser, args: argparse.Namespace, default_cases: list[str],
                       quick_cases: list[str]) -> tuple[list[Case], list[str]]:
    """The cases and backends asked for; a usage error when they are bad or the GPU is missing.

    Also sets up logging for the run (warnings only).
    """
    import gpucal

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cases = [parse_case(c) for c in (args.cases or (quick_cases if args.quick else default_cases))]
    except ValueError as exc:
        parser.error(str(exc))
    if args.backends:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    else:
        backends = ["cpu"] + (["gpu"] if gpucal.gpu_available() else [])
    if "gpu" in backends and not gpucal.gpu_available():
        from gpucal.backend import gpu_unavailable_reason

        parser.error(f"--backends gpu: {gpu_unavailable_reason()}")
    return cases, backends
