#!/usr/bin/env python3
"""Benchmark the detector1 group-level steps of gpucal against jwst 3.0.0 / stcal 1.20, step by step.

    python bench/detector1.py                  # full frame 1x10x2048x2048 and TSO-like 200x20x32x2048
    python bench/detector1.py --quick          # 1x10x256x2048 and 8x10x32x2048
    python bench/detector1.py --cases 1x10x2048x2048 --no-memory

Each case is one synthetic raw exposure (gpucal.synthetic.make_exposure with cosmic rays, bias
included, DQ cleared as in an _uncal file; NIRCam, FASTAXIS -1 / SLOWAXIS 2, 4 outputs) and a
matching synthetic reference set (gpucal.refs.make_calib_refs). Both chains run in this process
on the same arrays: dq_init, saturation, superbias, refpix, linearity, dark_current,
clean_flicker_noise (difference mode with a fixed source mask, the one jwst mode gpucal
reproduces; off by default in detector1, timed here because TSO users turn it on), jump,
ramp_fit. The reference chain calls jwst's do_dqinit, bias_sub.do_correction,
reference_pixels.correct_model and clean_flicker_noise.do_correction, and stcal's
flag_saturated_pixels, linearity_correction, dark_sub.do_correction_data, detect_jumps_data
and OLS_C ramp fitting, each on the previous reference output; gpucal.steps run on the
previous gpucal output. After every step the two outputs are compared (data bit-identical,
DQ identical; the rate slopes by their largest relative difference).

Per step and backend: reference seconds, gpucal seconds, ratio reference/gpucal, gpucal
Msamples/s and, unless --no-memory, the peak of new host allocations during the step, from
tracemalloc in one extra untimed run of each chain (numpy and CuPy-pinned host buffers are
traced; device memory is not). On a GPU: the step's minimum device traffic (data and group DQ
in and out) over its wall time, which includes the host<->device copies, as a fraction of
the measured device copy bandwidth. Results also go to bench/out/detector1.json.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
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
    max_relative_difference,
    measure_peak_bandwidth,
    ramp_fit_bytes,
    stcal_ols_c,
    timed,
    write_json,
)

DEFAULT_CASES = ("1x10x2048x2048", "200x20x32x2048")
QUICK_CASES = ("1x10x256x2048", "8x10x32x2048")
STEPS = ("dq_init", "saturation", "superbias", "refpix", "linearity", "dark_current",
         "clean_flicker_noise", "jump", "ramp_fit")
DQFLAGS = {"DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4, "AD_FLOOR": 64, "NO_SAT_CHECK": 1 << 21,
           "NO_LIN_CORR": 1 << 20, "GOOD": 0}
SLOWAXIS = 2


# --------------------------------------------------------------------------- inputs


def make_inputs(case: Case, seed: int, workdir: Path, with_ref: bool = True) -> dict[str, Any]:
    """Raw exposure, references, gain/readnoise and the source mask shared by both chains
    (the mask's file, for jwst's clean_flicker_noise, only ``with_ref``: it needs stdatamodels)."""
    from gpucal import Ramp
    from gpucal.refs import make_calib_refs
    from gpucal.synthetic import make_exposure

    ex = make_exposure(*case.shape, seed=seed, saturation_dn=30000.0, bad_pixel_fraction=0.0,
                       flag_jumps=False, detector="NRCA1")
    r = ex.ramp
    meta = dict(r.meta, SUBSTRT1=1, SUBSTRT2=1, SUBSIZE1=case.nx, SUBSIZE2=case.ny, FASTAXIS=-1,
                SLOWAXIS=SLOWAXIS, NOUTPUTS=4, EXP_TYPE="NRC_TSGRISM" if case.nints > 1 else "NRC_IMAGE",
                SUBARRAY="FULL" if case.ny == case.nx == 2048 else "GENERIC")
    raw = Ramp(np.asarray(r.data, np.float32), np.zeros(case.shape, np.uint8), np.zeros((case.ny, case.nx), np.uint32),
               group_time=r.group_time, frame_time=r.frame_time, nframes=r.nframes, groupgap=r.groupgap,
               meta=meta)
    refs = make_calib_refs(case.ny, case.nx, seed=seed + 10, saturation_dn=30000.0,
                           dark_frames=max(20, case.ngroups))
    # Illuminated pixels: a fixed band, as a spectral trace would be.
    mask = np.zeros((case.ny, case.nx), bool)
    mask[case.ny // 4: case.ny // 4 + max(1, case.ny // 8)] = True
    mask_path = None
    if with_ref:
        from stdatamodels.jwst import datamodels

        mask_path = workdir / "background_mask.fits"
        datamodels.ImageModel(data=(~mask).astype(np.float32)).save(mask_path)
    return {"raw": raw, "refs": refs, "gain": np.asarray(ex.gain, np.float32),
            "readnoise": np.asarray(ex.readnoise, np.float32), "mask": mask, "mask_path": mask_path and str(mask_path)}


# --------------------------------------------------------------------------- gpucal chain


def gpucal_steps(inp: dict[str, Any], backend: str, dark_avg: dict[str, Any]) -> dict[str, Any]:
    """step name -> function(state) -> state, for gpucal; the state is a Ramp (ramp_fit: a result).

    dark_current stores the average dark current in ``dark_avg``; both ramp fits use it.
    """
    import gpucal
    from gpucal import steps

    refs = inp["refs"]

    def dark(ramp):
        res = steps.dark_current(ramp, refs["dark"], backend=backend)
        dark_avg["value"] = res.average_dark_current
        return res.ramp

    return {
        "dq_init": lambda r: steps.dq_init(r, refs["mask"], backend=backend),
        "saturation": lambda r: steps.saturation(r, refs["saturation"], superbias_ref=refs["superbias"],
                                                 backend=backend),
        "superbias": lambda r: steps.superbias(r, refs["superbias"], backend=backend),
        "refpix": lambda r: steps.refpix(r, backend=backend),
        "linearity": lambda r: steps.linearity(r, refs["linearity"], backend=backend),
        "dark_current": dark,
        "clean_flicker_noise": lambda r: steps.clean_flicker_noise(r, mask=inp["mask"], differences=True,
                                                                   axis=SLOWAXIS - 1, backend=backend),
        "jump": lambda r: gpucal.detect_jumps(r, inp["gain"], inp["readnoise"], backend=backend),
        "ramp_fit": lambda r: gpucal.ramp_fit(r, inp["gain"], inp["readnoise"], backend=backend,
                                              average_dark_current=dark_avg.get("value")),
    }


# --------------------------------------------------------------------------- reference chain


def _model(ramp):
    from jwst_models import ramp_model

    m = ramp_model(ramp, fastaxis=ramp.meta["FASTAXIS"], slowaxis=ramp.meta["SLOWAXIS"],
                   noutputs=ramp.meta["NOUTPUTS"])
    m.meta.subarray.name = ramp.meta["SUBARRAY"]
    return m


def reference_steps(inp: dict[str, Any], dark_avg: dict[str, Any]) -> dict[str, Any]:
    """step name -> function(model) -> model for jwst/stcal (a RampModel carried along; ramp_fit:
    stcal's (image_info, integ_info))."""
    from stcal.dark_current import dark_sub
    from stcal.dark_current.dark_class import DarkData, ScienceData
    from stcal.linearity.linearity import linearity_correction
    from stcal.saturation.saturation import flag_saturated_pixels
    from stcal_jump_reference import stcal_detect_jumps
    from stdatamodels.jwst import datamodels

    from jwst.clean_flicker_noise.clean_flicker_noise import do_correction as cfn
    from jwst.dq_init.dq_initialization import do_dqinit
    from jwst.refpix import reference_pixels as rp
    from jwst.superbias.bias_sub import do_correction as bias_sub

    raw = inp["raw"]

    class Fresh:
        """Reference arrays copied at each use: jwst/stcal may change them in place (jwst reads
        them from disk in every step), so the copies are part of the timed work."""

        def __getitem__(self, key):
            import copy

            return copy.deepcopy(inp["refs"][key])

    refs = Fresh()

    def sized(model):
        model.meta.instrument.name, model.meta.instrument.detector = "NIRCAM", "NRCA1"
        model.meta.subarray.xstart, model.meta.subarray.ystart = 1, 1
        model.meta.subarray.xsize, model.meta.subarray.ysize = raw.nx, raw.ny
        return model

    def dq_init(m):
        return do_dqinit(m, sized(datamodels.MaskModel(dq=refs["mask"].dq)))

    def saturation(m):
        nf = raw.nframes
        pattern = [[x + 1 + g * nf for x in range(nf)] for g in range(raw.ngroups)]
        sat = refs["saturation"]
        gdq, pdq, _ = flag_saturated_pixels(m.data, m.groupdq, m.pixeldq, sat.data, sat.dq, 65535.0, DQFLAGS,
                                            n_pix_grow_sat=1, zframe=None, read_pattern=pattern,
                                            bias=refs["superbias"].data)
        m.groupdq, m.pixeldq = gdq, pdq
        return m

    def superbias(m):
        bias = refs["superbias"]
        return bias_sub(m, sized(datamodels.SuperBiasModel(data=bias.data, dq=bias.dq)))

    def refpix(m):
        conv = dict(refpix_algorithm="median", sirs_kernel_model=None, sigreject=4.0, gaussmooth=1.0, halfwidth=30)
        rp.correct_model(m, True, True, 11, 1.0, True, conv, 3.0)
        return m

    def linearity(m):
        lin = refs["linearity"]
        d, pdq, _ = linearity_correction(m.data, m.groupdq, m.pixeldq, lin.data, lin.dq, DQFLAGS, zframe=None)
        m.data, m.pixeldq = d, pdq
        return m

    def dark(m):
        sci = ScienceData()
        sci.data, sci.groupdq, sci.pixeldq = m.data, m.groupdq, m.pixeldq
        sci.exp_nframes, sci.exp_groupgap, sci.exp_intstart = raw.nframes, raw.groupgap, None
        ref = refs["dark"]
        d = DarkData()
        d.data, d.groupdq = ref.data, ref.dq
        d.exp_nframes, d.exp_groupgap = ref.header["NFRAMES"], ref.header["GROUPGAP"]
        d.exp_ngroups = ref.data.shape[-3]
        out, _ = dark_sub.do_correction_data(sci, d)
        m.data, m.pixeldq = out.data, out.pixeldq
        return m

    def clean(m):
        m.meta.exposure.type = raw.meta["EXP_TYPE"]
        out, *_, status = cfn(m, fit_method="median", background_method=None, user_mask=inp["mask_path"])
        assert status == "COMPLETE", status
        return out

    def jump(m):
        gdq, pdq, _ = stcal_detect_jumps(m.data, m.groupdq, m.pixeldq, inp["gain"], inp["readnoise"],
                                         group_time=raw.group_time, nframes=raw.nframes)
        m.groupdq, m.pixeldq = gdq, pdq
        return m

    def ramp_fit(m):
        return stcal_ols_c(m.data, m.groupdq, m.pixeldq, inp["gain"], inp["readnoise"], frame_time=raw.frame_time,
                           group_time=raw.group_time, nframes=raw.nframes, groupgap=raw.groupgap,
                           instrument="NIRCAM", average_dark_current=dark_avg.get("value"))

    return {"dq_init": dq_init, "saturation": saturation, "superbias": superbias, "refpix": refpix,
            "linearity": linearity, "dark_current": dark, "clean_flicker_noise": clean, "jump": jump,
            "ramp_fit": ramp_fit}


def timed_reference(fn, model, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``fn`` on a fresh copy of ``model`` per repetition (jwst and stcal write
    in place; the copies are made outside the timed region), and the last result."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        arg = model.copy()
        start = time.perf_counter()
        result = fn(arg)
        times.append(time.perf_counter() - start)
        del arg
    return statistics.median(times), result


# --------------------------------------------------------------------------- comparison


def agree(name: str, ref: Any, got: Any) -> dict[str, Any]:
    """Cheap equality check of one step's outputs."""
    if name == "ramp_fit":
        image_info, integ_info = ref
        return {"rate_max_rel_diff": max_relative_difference(got.rate.data, image_info["slope"]),
                "rate_dq_identical": bool(np.array_equal(got.rate.dq, image_info["dq"])),
                "rateints_dq_identical": bool(np.array_equal(got.rateints.dq, integ_info["dq"]))}
    return {"data_identical": bool(np.array_equal(np.asarray(got.data), ref.data, equal_nan=True)),
            "groupdq_identical": bool(np.array_equal(np.asarray(got.groupdq), ref.groupdq)),
            "pixeldq_identical": bool(np.array_equal(np.asarray(got.pixeldq), ref.pixeldq))}


def verdict(check: dict[str, Any] | None) -> str:
    if not check:
        return "-"
    if "rate_max_rel_diff" in check:
        dq = check["rate_dq_identical"] and check["rateints_dq_identical"]
        return f"rel {check['rate_max_rel_diff']:.1e}{'' if dq else ' DQ-DIFF'}"
    return "identical" if all(check.values()) else "DIFFER " + ",".join(k for k, v in check.items() if not v)


# --------------------------------------------------------------------------- running


def step_bytes(name: str, case: Case) -> int:
    """Minimum device traffic of one step: data (float32) and group DQ (uint8) read and written."""
    if name == "ramp_fit":
        return ramp_fit_bytes(case)
    if name == "jump":
        return jump_bytes(case)
    return case.samples * (4 + 1) * 2


def traced(fn, arg) -> tuple[int, Any]:
    """(peak bytes of new host allocations during fn(arg), result)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = fn(arg)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, result


def run_case(case: Case, backends: list[str], *, repeats: int | None, seed: int, with_ref: bool,
             memory: bool, peak_bw: float | None) -> list[dict[str, Any]]:
    n = repeats or default_repeats(case)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inp = make_inputs(case, seed, Path(tmp), with_ref)
        dark_avg: dict[str, Any] = {}
        ref_fns = reference_steps(inp, dark_avg) if with_ref else None
        chains = {b: gpucal_steps(inp, b, dark_avg) for b in backends}
        ref_state = _model(inp["raw"]) if with_ref else None
        states = {b: inp["raw"] for b in backends}
        for name in STEPS:
            ref_s = ref_mem = ref_out = None
            if with_ref:
                ref_s, ref_out = timed_reference(ref_fns[name], ref_state, n)
                if memory:
                    ref_mem = traced(ref_fns[name], ref_state.copy())[0]
            for backend in backends:
                fn = chains[backend][name]
                seconds, times, out = timed(lambda: fn(states[backend]), n)
                mem = traced(fn, states[backend])[0] if memory else None
                row: dict[str, Any] = {
                    "case": case.name, "shape": list(case.shape), "samples": case.samples, "step": name,
                    "backend": backend, "repeats": n, "reference_s": ref_s, "gpucal_s": seconds,
                    "gpucal_times_s": times, "ratio": ref_s / seconds if ref_s else None,
                    "msamples_per_s": case.samples / seconds / 1e6,
                    "reference_peak_alloc_bytes": ref_mem, "gpucal_peak_alloc_bytes": mem,
                    "vs_reference": agree(name, ref_out, out) if ref_out is not None else None,
                }
                if backend == "gpu" and peak_bw:
                    row["bandwidth"] = bandwidth_row(step_bytes(name, case), seconds,
                                                     "wall time incl. host<->device copies", peak_bw)
                rows.append(row)
                print(format_row(row), flush=True)
                if name != "ramp_fit":
                    states[backend] = out
            if with_ref and name != "ramp_fit":
                ref_state = ref_out
            gc.collect()
        totals = {b: sum(r["gpucal_s"] for r in rows if r["backend"] == b) for b in backends}
        ref_total = sum(r["reference_s"] for r in rows if r["backend"] == backends[0]) if with_ref else None
        for b in backends:
            print(f"{case.name:<16} {'TOTAL':<20} {b:<4} "
                  f"{'-' if ref_total is None else f'{ref_total:9.3f}':>9} {totals[b]:9.3f} "
                  f"{'-' if ref_total is None else f'{ref_total / totals[b]:6.2f}':>6} "
                  f"{case.samples / totals[b] / 1e6:8.1f}", flush=True)
    return rows


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024**2:.0f}"


def format_row(row: dict[str, Any]) -> str:
    ref = "-" if row["reference_s"] is None else f"{row['reference_s']:.3f}"
    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
    bw = row.get("bandwidth")
    bw_text = f"  {bw['achieved_GBps']:.0f} GB/s = {100 * bw['fraction_of_peak']:.0f}% of {bw['peak_GBps']:.0f}" \
        if bw else ""
    return (f"{row['case']:<16} {row['step']:<20} {row['backend']:<4} {ref:>9} {row['gpucal_s']:9.3f} {ratio:>6} "
            f"{row['msamples_per_s']:8.1f} {_mib(row['reference_peak_alloc_bytes']):>8} "
            f"{_mib(row['gpucal_peak_alloc_bytes']):>8}  {verdict(row['vs_reference'])}{bw_text}")


HEADER = (f"{'case':<16} {'step':<20} {'be':<4} {'ref_s':>9} {'gpucal_s':>9} {'ratio':>6} {'Msamp/s':>8} "
          f"{'refMiB':>8} {'gpuMiB':>8}  outputs")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__.split("\n\n")[0], DEFAULT_CASES, QUICK_CASES, "detector1.json")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the extra tracemalloc run of each step")
    args = parser.parse_args(argv)
    cases, backends = cases_and_backends(parser, args, DEFAULT_CASES, QUICK_CASES)
    env = environment()
    print(f"# {env['date']}  commit {env['commit']}  cpu: {env['cpu']}  gpu: {env['gpu'] or 'none'}")
    print("# ref = jwst 3.0.0 / stcal 1.20 chain; MiB = peak new host allocations (tracemalloc) in the step")
    peak_bw = None
    if "gpu" in backends:
        peak_bw = measure_peak_bandwidth()
        print(f"# device copy bandwidth: {peak_bw / 1e9:.0f} GB/s (best of 10 device-to-device copies)")
    print(HEADER)
    # warm-up: imports, compiled kernels, worker processes
    run_case(Case(2, 4, 32, 2048), backends, repeats=1, seed=0, with_ref=args.stcal, memory=False, peak_bw=None)
    print("# (above: warm-up)")
    rows = []
    for case in cases:
        rows.extend(run_case(case, backends, repeats=args.repeats, seed=args.seed, with_ref=args.stcal,
                             memory=args.memory, peak_bw=peak_bw))
    write_json(args.json, {"environment": env, "peak_bandwidth_Bps": peak_bw, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
