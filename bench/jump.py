#!/usr/bin/env python3
"""Benchmark gpucal.detect_jumps against stcal 1.20 ``detect_jumps_data`` on the same exposures.

    python bench/jump.py                       # 1x10x1024x1024 and the MIRI-TSO-like 50x45x256x256
    python bench/jump.py --cases 1x10x512x512 --repeats 3
    python bench/jump.py --quick               # tiny shapes, a smoke run

Each case is one synthetic exposure from gpucal.synthetic.make_exposure with cosmic rays
and no JUMP_DET set (``flag_jumps=False``); cases with more than 30 groups are generated as
MIRI (TFRAME 2.775 s). stcal runs in this process the way jwst's JumpStep drives it with
default parameters and ``maximum_cores='1'``; gpucal runs with ``backend='cpu'`` (and
``'gpu'`` when a GPU works). One line per case and backend: shape, stcal seconds, gpucal
seconds, ratio stcal/gpucal, gpucal Msamples/s, and whether the whole group DQ and pixel
DQ equal stcal's; GPU rows add the achieved memory bandwidth: the bytes detection must
move (float32 data, uint8 group DQ in and out, pixel DQ, gain, read noise) over the summed
kernel time of one extra run (CUDA events around each launch), as a fraction of the
device's measured copy bandwidth. Results also go to bench/out/jump.json.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import (  # noqa: E402
    Case,
    bandwidth_row,
    bench_parser,
    cases_and_backends,
    default_repeats,
    environment,
    jump_bytes,
    kernel_seconds,
    measure_peak_bandwidth,
    timed,
    write_json,
)

DEFAULT_CASES = ("1x10x1024x1024", "50x45x256x256")
QUICK_CASES = ("1x10x64x64", "5x45x32x32")


def make_case(case: Case, seed: int):
    from gpucal.synthetic import make_exposure

    miri = case.ngroups > 30
    kw = dict(instrument="MIRI", detector="MIRIMAGE", frame_time=2.775) if miri else {}
    return make_exposure(*case.shape, seed=seed, flag_jumps=False, **kw)


def run_stcal(ex):
    from stcal_jump_reference import stcal_detect_jumps

    r = ex.ramp
    return stcal_detect_jumps(r.data, r.groupdq, r.pixeldq, ex.gain, ex.readnoise, group_time=r.group_time,
                              nframes=r.nframes)


def run_case(case: Case, backends: list[str], repeats: int | None, seed: int, with_stcal: bool,
             peak_bw: float | None = None) -> list[dict]:
    import gpucal

    ex = make_case(case, seed)
    n = repeats or default_repeats(case)
    stcal_s = ref = None
    if with_stcal:
        stcal_s, _, ref = timed(lambda: run_stcal(ex), n)
    rows = []
    for backend in backends:
        seconds, times, out = timed(lambda b=backend: gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend=b),
                                    n)
        row: dict[str, Any] = {
            "case": case.name, "shape": list(case.shape), "samples": case.samples, "backend": backend,
            "repeats": n, "stcal_s": stcal_s, "gpucal_s": seconds, "gpucal_times_s": times,
            "ratio": stcal_s / seconds if stcal_s else None, "msamples_per_s": case.samples / seconds / 1e6,
            "jump_samples": int(np.count_nonzero(out.groupdq & 4)),
        }
        if ref is not None:
            row["groupdq_identical"] = bool(np.array_equal(out.groupdq, ref[0]))
            row["pixeldq_identical"] = bool(np.array_equal(out.pixeldq, ref[1]))
            row["n_primary_equal"] = out.meta.get("JUMPNPRI") == ref[2]
        if backend == "gpu" and peak_bw:
            seconds, basis = kernel_seconds(lambda: gpucal.detect_jumps(ex.ramp, ex.gain, ex.readnoise, backend="gpu"))
            row["bandwidth"] = bandwidth_row(jump_bytes(case), seconds, basis, peak_bw)
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row: dict[str, Any]) -> str:
    stcal = "-" if row["stcal_s"] is None else f"{row['stcal_s']:.3f}"
    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
    same = "-"
    if "groupdq_identical" in row:
        same = "yes" if row["groupdq_identical"] and row["pixeldq_identical"] and row["n_primary_equal"] else "NO"
    bw = row.get("bandwidth")
    bw_text = (f"{bw['achieved_GBps']:.0f} GB/s = {100 * bw['fraction_of_peak']:.0f}% of "
               f"{bw['peak_GBps']:.0f} GB/s ({bw['basis']})") if bw else "-"
    return (f"{row['case']:<16} {row['backend']:<7} {stcal:>9} {row['gpucal_s']:9.3f} {ratio:>6} "
            f"{row['msamples_per_s']:8.1f} {row['jump_samples']:>9} {same:>9}  {bw_text}")


HEADER = (f"{'case':<16} {'backend':<7} {'stcal_s':>9} {'gpucal_s':>9} {'ratio':>6} {'Msamp/s':>8} {'jumps':>9} "
          f"{'dq_equal':>9}  bandwidth")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__.split("\n\n")[0], DEFAULT_CASES, QUICK_CASES, "jump.json")
    args = parser.parse_args(argv)
    cases, backends = cases_and_backends(parser, args, DEFAULT_CASES, QUICK_CASES)
    import gpucal

    env = environment()
    print(f"# {env['date']}  commit {env['commit']}  cpu: {env['cpu']}  gpu: {env['gpu'] or 'none'}")
    peak_bw = None
    if "gpu" in backends:
        peak_bw = measure_peak_bandwidth()
        print(f"# device copy bandwidth: {peak_bw / 1e9:.0f} GB/s (best of 10 device-to-device copies)")
    print(HEADER)
    # warm-up (imports, host threads)
    warm = make_case(Case(1, 5, 32, 32), 0)
    gpucal.detect_jumps(warm.ramp, warm.gain, warm.readnoise, backend=backends[0])
    if args.stcal:
        run_stcal(warm)
    rows = []
    for case in cases:
        rows.extend(run_case(case, backends, args.repeats, args.seed, args.stcal, peak_bw))
    write_json(args.json, {"environment": env, "peak_bandwidth_Bps": peak_bw, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
