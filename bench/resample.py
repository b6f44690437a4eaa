#!/usr/bin/env python3
"""Benchmark drizzle resampling: drizzle 2.2.0 (+ stcal's pixel maps) vs gpucal, same run, same data.

    python bench/resample.py                   # 2048x2048 single image (5 kernels), 10 x 2048x2048 mosaic
    python bench/resample.py --quick           # 512x512, square and turbo, 10 x 256x256
    python bench/resample.py --cases single --kernels square --repeats 3
    python bench/resample.py --backends cpu,cpu-numpy,gpu
    python bench/resample.py --no-reference    # without drizzle/stcal/gwcs (a GPU machine)

Cases (inputs are distorted gwcs imaging WCSs built from astropy models, tests/resample_wcs.py):
* single: one N x N image onto an N x N grid rotated by 30 degrees (scale 1, pixfrac 1).
* mosaic: 10 N x N images on a 2 x 5 dither pattern with overlaps and different roll angles,
  onto one grid covering them all (pixfrac 1, square).

For each, the pixel map (``stcal.resample.utils.calc_pixmap``, the gwcs's own numpy
evaluation, vs ``gpucal.resample.calc_pixmap``) and the drizzle call (drizzle's C
``Drizzle.add_image`` vs ``gpucal.resample.Drizzle.add_image``) are timed separately; both
drizzles get stcal's maps, so ``parity`` compares out_img, out_wht and out_ctx bit for bit
(``max N ulp`` otherwise). Backends: ``cpu`` (the compiled host build of drizzle.cu),
``cpu-numpy`` (the numpy kernels of cpu_fallback, ``GPUCAL_NATIVE=0``) and ``gpu``; the GPU
rows add the fraction of the device's memory bandwidth (measured by a device copy) that the
bytes a drizzle must move (input data, weights and map; output image, weight and context
read and written) represent. ``ratio`` = reference seconds / gpucal seconds (> 1: gpucal
faster); ``total`` includes the pixel maps. Results also go to bench/out/resample.json (``--json``).

Without drizzle, stcal or gwcs installed (or with ``--no-reference``), the maps are numpy
affine maps of the same geometry, no map is timed, and the reference drizzle is gpucal's
compiled CPU path: the GPU rows then read as GPU vs CPU backend, with the same parity check.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import OUT_DIR, environment, write_json  # noqa: E402

KERNELS = ["square", "turbo", "point", "gaussian", "lanczos3"]


def _use_backend(backend: str) -> str:
    """Set the process switches of ``backend``; the gpucal backend name it runs on."""
    os.environ["GPUCAL_NATIVE"] = "0" if backend == "cpu-numpy" else "1"
    return "gpu" if backend == "gpu" else "cpu"


def _clock(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _sync(backend: str) -> None:
    if backend == "gpu":
        import cupy

        cupy.cuda.Device().synchronize()


def _parity(ref, got) -> str:
    from drizzle_cases import ulp_distance

    worst = 0
    for name in ("out_img", "out_wht", "out_ctx"):
        a, b = getattr(ref, name), getattr(got, name)
        if not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
            if a.dtype.kind != "f":
                return f"{name} differs"
            worst = max(worst, int(ulp_distance(a, b).max()))
    return "bit-identical" if worst == 0 else f"max {worst} ulp"


def drizzle_bytes(n_in: int, n_out: int) -> int:
    """Bytes a drizzle must at least move: data, weight (float32) and map (2 x float64) per input
    pixel; image, weight (float32) and context (int32) per output pixel, read and written."""
    return n_in * (4 + 4 + 16) + n_out * 12 * 2


def reference_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("drizzle", "stcal", "gwcs"))


def wcs_scenes(case: str, n: int) -> tuple[list, object, tuple[int, int]]:
    """Input WCSs, output WCS and output shape of a case."""
    from resample_wcs import PIXEL_SCALE, imaging_gwcs

    if case == "single":
        return [imaging_gwcs((n, n), distorted=True, roll=0.0)], imaging_gwcs((n, n), roll=30.0), (n, n)
    step = 0.8 * n * PIXEL_SCALE  # 20% overlap between neighbours
    inputs = [imaging_gwcs((n, n), ra=10.0 + (k % 5 - 2) * step / np.cos(np.radians(30.0)),
                           dec=-30.0 + (k // 5 - 0.5) * step, roll=2.0 * k, distorted=True) for k in range(10)]
    out_shape = (int(2.2 * n), int(4.6 * n))
    return inputs, imaging_gwcs(out_shape, roll=0.0), out_shape


def affine_scenes(case: str, n: int) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Numpy maps with the geometry of :func:`wcs_scenes` (no WCS packages needed)."""
    from drizzle_cases import affine_pixmap

    if case == "single":
        return [affine_pixmap((n, n), 30.0, 1.0, distort=0.002)], (n, n)
    out_shape = (int(2.2 * n), int(4.6 * n))
    centres = [(out_shape[1] / 2 + (k % 5 - 2) * 0.8 * n, out_shape[0] / 2 + (k // 5 - 0.5) * 0.8 * n)
               for k in range(10)]
    return [affine_pixmap((n, n), 2.0 * k, 1.0, centre_out=c, distort=0.002) for k, c in enumerate(centres)], out_shape


def pixel_maps(case: str, n: int, backends: list[str]):
    """stcal's maps of the case, their total seconds, and per backend gpucal's seconds and
    largest difference from stcal's."""
    from stcal.resample.utils import calc_pixmap as stcal_pixmap

    from gpucal.resample import calc_pixmap

    wcs_in, wcs_out, out_shape = wcs_scenes(case, n)
    ref_maps = []
    ref_map_s = 0.0
    for w in wcs_in:
        s, pm = _clock(lambda w=w: stcal_pixmap(w, wcs_out, (n, n)))
        ref_map_s += s
        ref_maps.append(pm)
    map_s, map_err = {}, {}
    for backend in backends:
        name = _use_backend(backend)
        if backend == "cpu-numpy":  # the maps have no numpy/compiled split: same as cpu
            map_s[backend], map_err[backend] = map_s.get("cpu"), map_err.get("cpu")
            continue
        calc_pixmap(wcs_in[0], wcs_out, backend=name)  # warm-up (CuPy compiles)
        total, err = 0.0, 0.0
        for w, ref in zip(wcs_in, ref_maps):
            s, pm = _clock(lambda w=w: calc_pixmap(w, wcs_out, backend=name))
            total += s
            err = max(err, float(np.nanmax(np.abs(pm - ref))))
        map_s[backend], map_err[backend] = total, err
    return ref_maps, out_shape, ref_map_s, map_s, map_err


def run_case(case: str, n: int, kernels: list[str], backends: list[str], repeats: int, peak_bw: float | None,
             with_reference: bool):
    from drizzle_cases import random_image
    from gpucal.resample import Drizzle

    if with_reference:
        from drizzle.resample import Drizzle as Reference

        ref_maps, out_shape, ref_map_s, map_s, map_err = pixel_maps(case, n, backends)
        ref_name = "drizzle"
    else:
        ref_maps, out_shape = affine_scenes(case, n)
        ref_map_s, map_s, map_err = None, dict.fromkeys(backends), dict.fromkeys(backends)
        ref_name = "gpucal cpu"

        def Reference(**kw):  # noqa: N802 (stands in for the reference class)
            _use_backend("cpu")
            return Drizzle(backend="cpu", **kw)

    rng = np.random.default_rng(3)
    images = [random_image((n, n), k) for k in range(len(ref_maps))]
    weights = [(0.5 + 0.5 * rng.random((n, n))).astype(np.float32) for _ in ref_maps]
    label = f"{case} {len(ref_maps)} x {n}x{n} -> {out_shape[0]}x{out_shape[1]}"

    def drizzle_all(cls, kernel, **extra):
        d = cls(kernel=kernel, out_shape=out_shape, **extra)
        start = time.perf_counter()
        for data, wht, pm in zip(images, weights, ref_maps):
            d.add_image(data, exptime=1.0, pixmap=pm, weight_map=wht, pixel_scale_ratio=1.0)
        _sync(extra.get("backend", "cpu"))
        return time.perf_counter() - start, d

    rows = []
    warnings.simplefilter("ignore")
    for kernel in kernels:
        ref_s, ref = min((drizzle_all(Reference, kernel) for _ in range(repeats)), key=lambda r: r[0])
        for backend in backends:
            name = _use_backend(backend)
            if name == "gpu":
                drizzle_all(Drizzle, kernel, backend="gpu")  # compile and warm up
            s, got = min((drizzle_all(Drizzle, kernel, backend=name) for _ in range(repeats)), key=lambda r: r[0])
            n_in = len(images) * n * n
            row = dict(case=label, kernel=kernel, backend=backend, reference=ref_name, drizzle_ref_s=ref_s,
                       drizzle_s=s, drizzle_ratio=ref_s / s, pixmap_ref_s=ref_map_s, pixmap_s=map_s[backend],
                       pixmap_max_abs_px=map_err[backend], msamples_s=n_in / s / 1e6, parity=_parity(ref, got))
            if map_s[backend] is not None:
                row["total_ratio"] = (ref_s + ref_map_s) / (s + map_s[backend])
            if name == "gpu" and peak_bw:
                achieved = drizzle_bytes(n_in, len(images) * out_shape[0] * out_shape[1]) / s
                row["bandwidth_fraction"] = achieved / peak_bw
            rows.append(row)
            extra = f"  bw {row['bandwidth_fraction']:.1%}" if "bandwidth_fraction" in row else ""
            maps = (f"pixmap {ref_map_s:6.2f} s vs {map_s[backend]:6.3f} s  total x{row['total_ratio']:5.2f}"
                    if "total_ratio" in row else "pixmap not timed")
            print(f"{label} {kernel:9s} {backend:9s} {ref_name} {ref_s:7.3f} s vs {s:7.3f} s (x{ref_s / s:5.2f})  "
                  f"{maps}  {row['msamples_s']:6.1f} Msamples/s  {row['parity']}{extra}", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=None, help="input side in pixels (default 2048; --quick 512/256)")
    parser.add_argument("--cases", nargs="+", default=["single", "mosaic"], choices=["single", "mosaic"])
    parser.add_argument("--kernels", nargs="+", default=None, help="single-image kernels (mosaic: square)")
    parser.add_argument("--backends", default=None, help="comma-separated: cpu, cpu-numpy, gpu "
                        "(default: cpu, cpu-numpy, plus gpu when available)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many timed drizzle runs")
    parser.add_argument("--quick", action="store_true", help="512x512 single (square, turbo), 10 x 256x256 mosaic")
    parser.add_argument("--json", type=Path, default=OUT_DIR / "resample.json", help="where the rows go")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="compare with gpucal's compiled CPU path instead of drizzle/stcal (automatic when "
                             "drizzle, stcal or gwcs is not installed)")
    args = parser.parse_args(argv)
    with_reference = args.reference and reference_available()
    from gpucal.backend import gpu_available

    backends = ([b.strip() for b in args.backends.split(",")] if args.backends
                else ["cpu", "cpu-numpy"] + (["gpu"] if gpu_available() else []))
    peak_bw = None
    if "gpu" in backends:
        from common import measure_peak_bandwidth

        peak_bw = measure_peak_bandwidth()
    rows = []
    for case in args.cases:
        n = args.size or ((512 if case == "single" else 256) if args.quick else 2048)
        kernels = ["square"] if case == "mosaic" else (args.kernels or (["square", "turbo"] if args.quick else KERNELS))
        rows += run_case(case, n, kernels, backends, args.repeats, peak_bw, with_reference)
    write_json(args.json, dict(environment=environment(), peak_bandwidth=peak_bw, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
