"""Benchmark IFU cubes: jwst 3.0.0's C sums and CubeBuildStep vs gpucal, per weighting.

Sums: a MIRI channel-1A-like point cloud per dither: 21 slices x 1024 detector rows x ~21
pixels along each slice (about 0.45 M points), rotated and dithered on a 0.13" x 0.0008 um
grid of about 41 x 45 x 1050 voxels. Each dither is one call (jwst calls its C per file); a
time is the sum over dithers, the best of ``--repeats`` runs. One line per weighting (msm,
emsm, drizzle) and gpucal backend: ``cpu`` (the CPU backend: the host build of cube.cu on
GPUCAL_CPU_WORKERS threads), ``numpy`` (the CPU backend with GPUCAL_NATIVE=0) and ``gpu`` (when
a GPU answers), with the reference's seconds (jwst's ``cube_wrapper`` / ``cube_wrapper_driz``;
gpucal's CPU backend with ``--no-reference`` or without jwst), gpucal seconds, the ratio
reference/gpucal, Mpoints/s of both, and the agreement (counts and drizzle sums bitwise against
jwst, msm/emsm sums in ulp).

End to end (``--build``): 4 synthetic MIRI channel-1 short ``_cal`` files of 1024 x 512 pixels
(tests/cube_cases.py) with a synthetic CUBEPAR, ``gpucal.build_cube`` against jwst's
``CubeBuildStep`` (in memory, no files written), per weighting; ``identical`` compares SCI, ERR,
DQ and WMAP (needs jwst).

    python bench/cube.py                       # sums: msm, emsm, drizzle; cpu, numpy (and gpu)
    python bench/cube.py --build               # and build_cube end to end
    python bench/cube.py --quick               # 1 dither of ~0.11 M points, 1 repeat
    python bench/cube.py --no-reference        # against gpucal's CPU backend, without jwst (a GPU machine)
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import OUT_DIR, environment, write_json  # noqa: E402

from gpucal.chunking import cpu_workers  # noqa: E402
from gpucal.cube import drizzle_sums, pointcloud_sums  # noqa: E402

CDELT = 0.13
CDELT3 = 0.0008
LAM0, LAM1 = 4.90, 5.74
#: gpucal backend name -> (backend, GPUCAL_NATIVE)
BACKENDS = {"cpu": ("cpu", "1"), "numpy": ("cpu", "0"), "gpu": ("gpu", "1")}


def grid():
    n = 20
    xc = (np.arange(2 * n + 1) - n) * CDELT
    yc = (np.arange(2 * n + 5) - n - 2) * CDELT
    nz = int(np.ceil((LAM1 - LAM0) / CDELT3))
    zc = np.arange(LAM0 + CDELT3 / 2, LAM0 + nz * CDELT3, CDELT3)[:nz]
    c3 = np.diff(zc)
    return xc, yc, zc, np.append(c3, c3[-1])


def dither(seed: int, along: int):
    """Pixel centres, corners and wavelengths of one MIRI-like exposure (detector order)."""
    rng = np.random.default_rng(seed)
    nslice, nrow = 21, 1024
    dalpha, dbeta = 3.2 / along, 0.177
    s, row, col = np.meshgrid(np.arange(nslice), np.arange(nrow), np.arange(along), indexing="ij")
    s, row, col = s.ravel(), row.ravel(), col.ravel()
    alpha = (col - along / 2 + 0.5) * dalpha + 0.01 * np.sin(row / 150.0)
    beta = (s - nslice / 2 + 0.5) * dbeta
    wave = LAM0 + (row + 0.5) * (LAM1 - LAM0) / nrow + 0.0002 * (s - 10) / 10
    dwave = np.full(wave.size, (LAM1 - LAM0) / nrow)
    ang = np.deg2rad(8.0)
    off = rng.uniform(-0.3, 0.3, 2)

    def sky(a, b):
        return a * np.cos(ang) - b * np.sin(ang) + off[0], a * np.sin(ang) + b * np.cos(ang) + off[1]

    xi, eta = sky(alpha, beta)
    corners = [sky(alpha + sa * dalpha / 2, beta + sb * dbeta / 2) for sa, sb in ((-1, -1), (-1, 1), (1, 1), (1, -1))]
    order = np.lexsort((col, s, row))  # detector row-major order
    flux = rng.uniform(0.5, 2.0, wave.size)
    err = 0.05 * flux
    pick = lambda a: np.ascontiguousarray(a[order])  # noqa: E731
    return dict(xi=pick(xi), eta=pick(eta), wave=pick(wave), dwave=pick(dwave), flux=pick(flux), err=pick(err),
                slice_no=pick(101.0 + s), corners=[(pick(x), pick(y)) for x, y in corners])


def run_pointcloud(impl, d, g, weighting, backend, power=2.0):
    xc, yc, zc, c3 = g
    n = d["wave"].size
    rois, roiw, srad = np.full(n, 0.1), np.full(n, 0.0016), np.full(n, 0.1)
    pw, soft = np.full(n, power), np.full(n, 0.01)
    if impl == "jwst":
        from jwst.cube_build.cube_match_sky_pointcloud import cube_wrapper
        return cube_wrapper(0, 1, 0 if weighting == "emsm" else 1, 101, 121, 4, 2, xc, yc, zc, d["xi"], d["eta"],
                            d["wave"], d["flux"], d["err"], d["slice_no"], rois, roiw, srad, pw, soft, c3,
                            0.0016, CDELT, CDELT)
    return pointcloud_sums("MIRI", weighting, 101, 121, xc, yc, zc, d["xi"], d["eta"], d["wave"], d["flux"],
                           d["err"], d["slice_no"], rois, roiw, srad, pw, soft, c3, 0.0016, CDELT, CDELT,
                           backend=backend)


def run_drizzle(impl, d, g, backend):
    xc, yc, zc, c3 = g
    (x1, e1), (x2, e2), (x3, e3), (x4, e4) = d["corners"]
    det = np.zeros(d["wave"].size)
    if impl == "jwst":
        from jwst.cube_build.cube_match_sky_driz import cube_wrapper_driz
        return cube_wrapper_driz(0, 1, 101, 121, 4, 2, xc, yc, zc, d["xi"], d["eta"], d["wave"], d["flux"],
                                 d["err"], d["slice_no"], x1, e1, x2, e2, x3, e3, x4, e4, d["dwave"], c3, CDELT,
                                 CDELT, float(c3.mean()), 1, det, det, -1)
    return drizzle_sums("MIRI", 101, 121, xc, yc, zc, d["xi"], d["eta"], d["wave"], d["flux"], d["err"],
                        d["slice_no"], x1, e1, x2, e2, x3, e3, x4, e4, d["dwave"], c3, CDELT, CDELT,
                        float(c3.mean()), True, det, det, backend=backend)


def agreement(refs, gots) -> str:
    worst = 0.0
    for ref, got in zip(refs, gots):
        if not (np.array_equal(ref[3], got[3]) and np.array_equal(ref[4], got[4])):
            return "COUNTS/DQ DIFFER"
        for i in range(3):
            scale = np.spacing(np.maximum(np.abs(ref[i]), np.finfo(float).tiny))
            worst = max(worst, float((np.abs(ref[i] - got[i]) / scale).max()))
    return "bitwise" if worst == 0 else f"<= {worst:.0f} ulp"


def best_of(fn, repeats: int):
    """(best seconds, last result) of ``repeats`` runs."""
    best, result = np.inf, None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def with_backend(name: str, fn):
    """Run ``fn(backend)`` on a gpucal backend of :data:`BACKENDS` (GPUCAL_NATIVE set for its duration)."""
    backend, native = BACKENDS[name]
    saved = os.environ.get("GPUCAL_NATIVE")
    os.environ["GPUCAL_NATIVE"] = native
    try:
        return fn(backend)
    finally:
        if saved is None:
            os.environ.pop("GPUCAL_NATIVE", None)
        else:
            os.environ["GPUCAL_NATIVE"] = saved


def bench_sums(args, backends, reference, rows):
    g = grid()
    data = [dither(i, args.along) for i in range(args.dithers)]
    npts = sum(d["wave"].size for d in data)
    print(f"# sums: grid {g[0].size}x{g[1].size}x{g[2].size} voxels, {args.dithers} dithers, {npts} points, "
          f"best of {args.repeats}")
    print(f"# reference: {'jwst ' + version('jwst') if reference == 'jwst' else 'gpucal cpu backend'}")
    print("weighting | backend | ref s | gpucal s | ratio | ref Mpoints/s | gpucal Mpoints/s | agreement")
    for weighting in args.weightings.split(","):
        name, power = weighting, 2.0
        if weighting.startswith("msm-p"):  # e.g. msm-p1.5: a non-integer power
            weighting, power = "msm", float(weighting[5:])

        def call(impl, backend=None, weighting=weighting, power=power, dithers=data):
            if weighting == "drizzle":
                return [run_drizzle(impl, d, g, backend) for d in dithers]
            return [run_pointcloud(impl, d, g, weighting, backend, power) for d in dithers]

        def ref_call(dithers=data):
            if reference == "jwst":
                return call("jwst", dithers=dithers)
            return with_backend("cpu", lambda backend: call("gpucal", backend, dithers=dithers))

        ref_call(data[:1])  # warm-up (imports, host build, first touch of the outputs)
        t_ref, refs = best_of(ref_call, args.repeats)
        for name_b in backends:
            with_backend(name_b, lambda backend: call("gpucal", backend, dithers=data[:1]))  # warm-up: compile
            repeats = args.repeats if name_b != "numpy" else min(args.repeats, args.numpy_repeats)
            t, gots = with_backend(name_b, lambda backend: best_of(lambda: call("gpucal", backend), repeats))
            row = dict(kind="sums", weighting=name, backend=name_b, reference=reference, ref_s=t_ref, gpucal_s=t,
                       ratio=t_ref / t, ref_mpoints_s=npts / t_ref / 1e6, mpoints_s=npts / t / 1e6,
                       agreement=agreement(refs, gots), points=npts, repeats=repeats)
            rows.append(row)
            print(f"{name} | {name_b} | {t_ref:.3f} | {t:.3f} | {t_ref / t:.2f} | {npts / t_ref / 1e6:.2f} | "
                  f"{npts / t / 1e6:.2f} | {row['agreement']}", flush=True)


def _cal_files(directory: Path, nfiles: int, nrows: int):
    """``nfiles`` synthetic MIRI ch1 short dithers of ``nrows`` x 512 pixels and a CUBEPAR covering them."""
    import cube_cases
    from astropy.io import fits

    from gpucal.cube import write_synthetic_cubepars

    cube_cases.NROWS = nrows
    cube_cases.DLAM_DY = (LAM1 - LAM0) / nrows  # channel 1A's range over the detector rows
    files = cube_cases.miri_dithers(directory, nfiles, lam0=LAM0)
    cubepar = write_synthetic_cubepars(directory / "cubepar.fits", "MIRI")
    with fits.open(cubepar, mode="update") as hdul:
        table = hdul["CUBEPAR"].data
        row = (table["CHANNEL"] == "1") & (table["BAND"] == "SHORT")
        table["WAVEMIN"][row], table["WAVEMAX"][row] = LAM0, LAM1
        table["SPECTRALSTEP"][row] = CDELT3
        for ext in ("CUBEPAR_MSM", "CUBEPAR_EMSM"):
            hdul[ext].data["ROISPECTRAL"][row] = 2 * CDELT3
    return files, cubepar, nfiles * nrows * cube_cases.NSLICE * cube_cases.WIDTH


def bench_build(args, backends, rows):
    import stpipe.crds_client
    from jwst.cube_build import CubeBuildStep

    from gpucal.cube import build_cube

    for name in ("stpipe", "jwst", "stcal", "gwcs", "asdf"):
        logging.getLogger(name).setLevel(logging.ERROR)
    stpipe.crds_client.get_context_used = lambda observatory: "jwst_0000.pmap"  # no CRDS here
    with tempfile.TemporaryDirectory() as tmp:
        files, cubepar, npix = _cal_files(Path(tmp), args.build_files, args.build_rows)
        print(f"# build_cube: {len(files)} MIRI ch1-short _cal files of {args.build_rows}x512 ({npix} slice pixels), "
              f"best of {args.build_repeats}")
        print("weighting | backend | CubeBuildStep s | build_cube s | ratio | step Mpix/s | gpucal Mpix/s | identical")
        for weighting in [w for w in args.weightings.split(",") if not w.startswith("msm-p")]:
            def jwst_run(weighting=weighting):
                step = CubeBuildStep()
                step.override_cubepar = str(cubepar)
                step.channel, step.band, step.weighting = "1", "short", weighting
                return step.run([str(f) for f in files])

            t_ref, ref = best_of(jwst_run, args.build_repeats)
            ref = ref[0]  # the step returns a container of one cube
            for name_b in backends:
                def ours(backend, weighting=weighting):
                    return build_cube(files, channel="1", band="short", cubepars=cubepar, weighting=weighting,
                                      backend=backend)[0]

                with_backend(name_b, ours)  # warm-up
                t, got = with_backend(name_b, lambda backend: best_of(lambda: ours(backend), args.build_repeats))
                same = all(np.array_equal(getattr(got, a), getattr(ref, b), equal_nan=True)
                           for a, b in (("data", "data"), ("err", "err"), ("dq", "dq"), ("wmap", "weightmap")))
                row = dict(kind="build_cube", weighting=weighting, backend=name_b, reference="CubeBuildStep",
                           ref_s=t_ref, gpucal_s=t, ratio=t_ref / t, ref_mpoints_s=npix / t_ref / 1e6,
                           mpoints_s=npix / t / 1e6, agreement="identical" if same else "DIFFER", points=npix,
                           repeats=args.build_repeats)
                rows.append(row)
                print(f"{weighting} | {name_b} | {t_ref:.2f} | {t:.2f} | {t_ref / t:.2f} | {npix / t_ref / 1e6:.3f} | "
                      f"{npix / t / 1e6:.3f} | {row['agreement']}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 dither of ~0.11 M points, 1 repeat")
    parser.add_argument("--dithers", type=int, default=4)
    parser.add_argument("--along", type=int, default=21, help="pixels along a slice per row (21: ~0.45 M points)")
    parser.add_argument("--weightings", default="msm,emsm,drizzle",
                        help="comma-separated: msm, emsm, drizzle, msm-pX (msm with power X, sums only)")
    parser.add_argument("--backends", default="cpu,numpy,gpu",
                        help="gpucal backends: cpu (compiled when a C++ compiler is present), numpy "
                             "(the CPU backend with GPUCAL_NATIVE=0), gpu (when a GPU answers)")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="time and compare against gpucal's CPU backend instead of jwst's C "
                             "(automatic when jwst is not installed; no build_cube run)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--numpy-repeats", type=int, default=1, help="at most this many runs of the numpy backend")
    parser.add_argument("--no-sums", dest="sums", action="store_false", help="skip the sums")
    parser.add_argument("--build", action="store_true", help="also build_cube against CubeBuildStep (needs jwst)")
    parser.add_argument("--build-files", type=int, default=4)
    parser.add_argument("--build-rows", type=int, default=1024)
    parser.add_argument("--build-repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, default=OUT_DIR / "cube.json", help="where the rows go")
    args = parser.parse_args(argv)
    if args.quick:
        args.dithers, args.along, args.repeats, args.build_rows = 1, 5, 1, 256
    reference = "jwst" if args.reference and importlib.util.find_spec("jwst") is not None else "gpucal cpu"
    import gpucal
    backends = [b for b in args.backends.split(",") if b != "gpu" or gpucal.gpu_available()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}: choose from {sorted(BACKENDS)}")
    env = environment()
    load = os.getloadavg()
    print(f"# {env['date']}  commit {env['commit']}  cpu: {env['cpu']}  gpu: {env['gpu'] or 'none'}  "
          f"threads: {cpu_workers()}  load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows = []
    if args.sums:
        bench_sums(args, backends, reference, rows)
    if args.build:
        if reference == "jwst":
            bench_build(args, backends, rows)
        else:
            print("# build_cube: skipped (needs jwst's CubeBuildStep as the reference)")
    load_after = os.getloadavg()
    print(f"# load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    write_json(args.json, dict(environment=env, threads=cpu_workers(), load_before=load, load_after=load_after,
                               rows=rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
