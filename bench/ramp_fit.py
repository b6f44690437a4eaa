#!/usr/bin/env python3
"""Benchmark gpucal.ramp_fit against stcal 1.20 OLS_C on the same synthetic exposures.

    python bench/ramp_fit.py                      # the three standard cases
    python bench/ramp_fit.py --cases 1x10x1024x1024 --repeats 3
    python bench/ramp_fit.py --quick              # tiny shapes, a smoke run

For each case, one exposure is generated with gpucal.synthetic.make_exposure; stcal
(single process, maximum_cores 'none') and gpucal (backend 'cpu', and 'gpu' when a GPU
works) fit it in this process, after a warm-up fit of a small exposure. One line is printed
per case and backend: shape, stcal seconds, gpucal seconds, ratio stcal/gpucal,
Msamples/s of gpucal, the largest relative difference of the rate (and rateints) slopes,
whether DQ and NaN patterns are identical, and, on the GPU, the memory bandwidth its
kernels achieved (timed with CUDA events in one extra fit) as a fraction of the device's
measured copy bandwidth. Results also go to bench/out/ramp_fit.json.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Case,
    KernelTimer,
    bench_parser,
    cases_and_backends,
    compare_products,
    default_repeats,
    environment,
    gpucal_products,
    measure_peak_bandwidth,
    ramp_fit_bytes,
    stcal_ols_c,
    stcal_products,
    timed,
    write_json,
)

DEFAULT_CASES = ("1x10x1024x1024", "1x10x2048x2048", "200x20x32x2048")
QUICK_CASES = ("1x10x64x64", "3x8x16x256")
WARMUP_CASE = Case(1, 5, 32, 32)

log = logging.getLogger("bench.ramp_fit")


def ramp_inputs(exposure) -> dict[str, Any]:
    """Plain native arrays and timing metadata of a SyntheticExposure, for stcal."""
    ramp = exposure.ramp
    block = ramp.block(0, ramp.ny)  # fresh float32 / uint8 / uint32 copies
    return {
        "data": block.data,
        "groupdq": block.groupdq,
        "pixeldq": block.pixeldq,
        "gain": np.asarray(exposure.gain, dtype=np.float32),
        "readnoise": np.asarray(exposure.readnoise, dtype=np.float32),
        "frame_time": ramp.frame_time,
        "group_time": ramp.group_time,
        "nframes": ramp.nframes,
        "groupgap": ramp.groupgap,
        "instrument": ramp.instrument or "NIRCAM",
    }


def run_stcal(inputs: dict[str, Any]):
    """stcal's OLS_C on the arrays of :func:`ramp_inputs`."""
    return stcal_ols_c(
        inputs["data"], inputs["groupdq"], inputs["pixeldq"], inputs["gain"], inputs["readnoise"],
        frame_time=inputs["frame_time"], group_time=inputs["group_time"], nframes=inputs["nframes"],
        groupgap=inputs["groupgap"], instrument=inputs["instrument"],
    )


def kernel_seconds(fit) -> tuple[float, str]:
    """Device seconds of the kernels of one more ``fit()`` (CUDA events around each launch),
    or the fit's wall time, labelled, when the launcher cannot be instrumented."""
    try:
        with KernelTimer() as timer:
            result = fit()
    except (ImportError, AttributeError):
        return float(fit().elapsed_s), "end-to-end"
    if not timer.events:
        return float(result.elapsed_s), "end-to-end"
    return timer.seconds, f"kernel, {len(timer.events)} launches"


def run_case(case: Case, backends: list[str], *, repeats: int | None, seed: int, with_stcal: bool,
             peak_bw: float | None) -> list[dict[str, Any]]:
    from gpucal import ramp_fit
    from gpucal.synthetic import make_exposure

    exposure = make_exposure(*case.shape, seed=seed)
    inputs = ramp_inputs(exposure)
    n = repeats or default_repeats(case)

    stcal_s = None
    ref = None
    if with_stcal:
        stcal_s, _, (image_info, integ_info) = timed(lambda: run_stcal(inputs), n)
        ref = stcal_products(image_info, integ_info)

    rows = []
    first_result = None
    for backend in backends:
        gpucal_s, times, result = timed(
            lambda b=backend: ramp_fit(exposure.ramp, exposure.gain, exposure.readnoise, backend=b), n
        )
        row: dict[str, Any] = {
            "case": case.name,
            "shape": list(case.shape),
            "samples": case.samples,
            "backend": backend,
            "repeats": n,
            "stcal_s": stcal_s,
            "gpucal_s": gpucal_s,
            "gpucal_times_s": times,
            "gpucal_elapsed_s": float(result.elapsed_s),
            "ratio": (stcal_s / gpucal_s) if stcal_s else None,
            "msamples_per_s": case.samples / gpucal_s / 1e6,
            "vs_stcal": compare_products(ref, gpucal_products(result)) if ref is not None else None,
        }
        if first_result is None:
            first_result = result
        else:  # every backend after the first is compared with the first (cpu)
            row["vs_" + backends[0]] = compare_products(gpucal_products(first_result), gpucal_products(result))
        if backend == "gpu" and peak_bw:
            seconds, basis = kernel_seconds(
                lambda: ramp_fit(exposure.ramp, exposure.gain, exposure.readnoise, backend="gpu"))
            achieved = ramp_fit_bytes(case) / seconds
            row["bandwidth"] = {"bytes": ramp_fit_bytes(case), "seconds": seconds, "basis": basis,
                                "achieved_GBps": achieved / 1e9, "peak_GBps": peak_bw / 1e9,
                                "fraction_of_peak": achieved / peak_bw}
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


HEADER = (f"{'case':<16} {'backend':<7} {'stcal_s':>8} {'gpucal_s':>9} {'ratio':>6} {'Msamp/s':>8} "
          f"{'maxrel_rate':>11} {'maxrel_ints':>11} {'dq_equal':>8} {'nan_equal':>9}  bandwidth")


def format_row(row: dict[str, Any]) -> str:
    cmp = row.get("vs_stcal") or {}
    rate, ints = cmp.get("rate") or {}, cmp.get("rateints") or {}
    dq_equal = nan_equal = None
    if rate and "dq_identical" in rate:
        dq_equal = "yes" if rate["dq_identical"] and ints.get("dq_identical") else "NO"
        nan_equal = "yes" if rate["nan_pattern_identical"] and ints.get("nan_pattern_identical") else "NO"
    bw = row.get("bandwidth")
    bw_text = (f"{bw['achieved_GBps']:.0f} GB/s = {100 * bw['fraction_of_peak']:.0f}% of "
               f"{bw['peak_GBps']:.0f} GB/s ({bw['basis']})") if bw else "-"
    return (f"{row['case']:<16} {row['backend']:<7} {_fmt(row['stcal_s'], '8.3f'):>8} "
            f"{row['gpucal_s']:9.3f} {_fmt(row['ratio'], '6.2f'):>6} {row['msamples_per_s']:8.1f} "
            f"{_fmt(rate.get('max_rel_diff'), '11.2e'):>11} {_fmt(ints.get('max_rel_diff'), '11.2e'):>11} "
            f"{dq_equal or '-':>8} {nan_equal or '-':>9}  {bw_text}")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__.split("\n\n")[0], DEFAULT_CASES, QUICK_CASES, "ramp_fit.json")
    args = parser.parse_args(argv)
    cases, backends = cases_and_backends(parser, args, DEFAULT_CASES, QUICK_CASES)

    env = environment()
    print(f"# {env['date']}  commit {env['commit']}  cpu: {env['cpu']}  gpu: {env['gpu'] or 'none'}")
    print(f"# numpy {env['numpy']}  stcal {env['stcal']}  gpucal {env['gpucal']}  cupy {env['cupy'] or '-'}")

    peak_bw = None
    if "gpu" in backends:
        peak_bw = measure_peak_bandwidth()
        print(f"# device copy bandwidth: {peak_bw / 1e9:.0f} GB/s (best of 10 device-to-device copies)")

    _warm_up(backends, args.stcal)  # imports, kernel compilation, first allocations

    print(HEADER)
    rows = []
    for case in cases:
        rows += run_case(case, backends, repeats=args.repeats, seed=args.seed, with_stcal=args.stcal,
                         peak_bw=peak_bw)
    path = write_json(args.json, {"environment": env, "peak_bandwidth_Bps": peak_bw, "results": rows})
    print(f"# wrote {path}")
    return 0


def _warm_up(backends: list[str], with_stcal: bool) -> None:
    from gpucal import ramp_fit
    from gpucal.synthetic import make_exposure

    exposure = make_exposure(*WARMUP_CASE.shape, seed=0)
    if with_stcal:
        run_stcal(ramp_inputs(exposure))
    for backend in backends:
        ramp_fit(exposure.ramp, exposure.gain, exposure.readnoise, backend=backend)


if __name__ == "__main__":
    sys.exit(main())
