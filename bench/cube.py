"""Benchmark IFU cube sums: jwst 3.0.0's C extensions vs gpucal (cpu, and gpu when present).

A MIRI channel-1A-like point cloud per dither: 21 slices x 1024 detector rows x ~21 pixels
along each slice (about 0.45 M points), rotated and dithered on a 0.13" x 0.0008 um grid of
about 41 x 45 x 1050 voxels. Each dither is one call (jwst calls its C per file); the time is
the sum over dithers. One line per weighting and backend: jwst seconds, gpucal seconds,
ratio jwst/gpucal, Mpoints/s, and the agreement (counts and drizzle sums bitwise, msm/emsm
sums in ulp).

    python bench/cube.py                 # 4 dithers x 0.45 M points, emsm and drizzle
    python bench/cube.py --quick         # 1 dither x 0.11 M points
    python bench/cube.py --no-reference  # against gpucal's CPU backend, without jwst (a GPU machine)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import OUT_DIR, environment, timed, write_json  # noqa: E402

from gpucal.cube import drizzle_sums, pointcloud_sums  # noqa: E402

CDELT = 0.13
CDELT3 = 0.0008
LAM0, LAM1 = 4.90, 5.74


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


def run_pointcloud(impl, d, g, weighting, backend):
    xc, yc, zc, c3 = g
    n = d["wave"].size
    rois, roiw, srad = np.full(n, 0.1), np.full(n, 0.0016), np.full(n, 0.1)
    pw, soft = np.full(n, 2.0), np.full(n, 0.01)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 dither of ~0.11 M points")
    parser.add_argument("--dithers", type=int, default=4)
    parser.add_argument("--along", type=int, default=21, help="pixels along a slice per row (21: ~0.45 M points)")
    parser.add_argument("--weightings", default="emsm,drizzle")
    parser.add_argument("--backends", default="cpu,gpu")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="time and compare against gpucal's CPU backend instead of jwst's C "
                             "(automatic when jwst is not installed)")
    parser.add_argument("--json", type=Path, default=OUT_DIR / "cube.json", help="where the rows go")
    args = parser.parse_args(argv)
    reference = "jwst" if args.reference and importlib.util.find_spec("jwst") is not None else "gpucal cpu"
    if args.quick:
        args.dithers, args.along = 1, 5
    import gpucal
    backends = [b for b in args.backends.split(",") if b == "cpu" or gpucal.gpu_available()]
    env = environment()
    g = grid()
    data = [dither(i, args.along) for i in range(args.dithers)]
    npts = sum(d["wave"].size for d in data)
    print(f"# {env['date']}  commit {env['commit']}  cpu: {env['cpu']}  gpu: {env['gpu'] or 'none'}")
    print(f"# grid {g[0].size}x{g[1].size}x{g[2].size} voxels, {args.dithers} dithers, {npts} points")
    print(f"# reference: {'jwst ' + version('jwst') if reference == 'jwst' else 'gpucal cpu backend'}")
    print("weighting | backend | ref s | gpucal s | ratio | Mpoints/s | agreement")
    rows = []
    for weighting in args.weightings.split(","):
        def call(impl, backend=None, weighting=weighting):
            if weighting == "drizzle":
                return [run_drizzle(impl, d, g, backend) for d in data]
            return [run_pointcloud(impl, d, g, weighting, backend) for d in data]
        if reference == "jwst":
            t_ref, _, refs = timed(lambda: call("jwst"))
        else:
            t_ref, _, refs = timed(lambda: call("gpucal", "cpu"))
        for backend in backends:
            if backend == "gpu":
                call("gpucal", "gpu")  # warm-up: compile, allocate
            t, _, gots = timed(lambda: call("gpucal", backend))
            row = dict(weighting=weighting, backend=backend, reference=reference, ref_s=t_ref, gpucal_s=t,
                       ratio=t_ref / t, mpoints_s=npts / t / 1e6, agreement=agreement(refs, gots), points=npts)
            rows.append(row)
            print(f"{weighting} | {backend} | {t_ref:.3f} | {t:.3f} | {t_ref / t:.2f} | {npts / t / 1e6:.2f} | "
                  f"{row['agreement']}", flush=True)
    write_json(args.json, dict(environment=env, rows=rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
