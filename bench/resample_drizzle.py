#!/usr/bin/env python3
"""Benchmark gpucal.resample.Drizzle.add_image against drizzle 2.2.0 in the same process.

    python bench/resample_drizzle.py                  # 2048x2048 input onto a 2048x2048 grid
    python bench/resample_drizzle.py --size 1024 --kernels square turbo --repeats 3
    python bench/resample_drizzle.py --quick          # 512x512, a smoke run

The pixel map is realistic for JWST imaging: rotated 30 degrees, scaled by 1.05 (output
pixels per input pixel) with a mild polynomial distortion, centred on the output grid;
weights are random in [0.5, 1]. One line per kernel and backend: drizzle seconds, gpucal
seconds, ratio drizzle/gpucal, input Mpixels/s, and whether out_img, out_wht and out_ctx
are bit-identical to drizzle's (else the largest float32 ulp distance). The pixel map is
built before timing (this measures the drizzle call only). Results also go to
bench/out/drizzle.json.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# this script's name shadows the drizzle package: keep its directory at the end of the path
_HERE = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]
sys.path.insert(0, str(_HERE.parent / "tests"))

from common import OUT_DIR, environment, write_json  # noqa: E402
from drizzle_cases import affine_pixmap, random_image, ulp_distance  # noqa: E402

from gpucal.backend import gpu_available  # noqa: E402
from gpucal.resample import Drizzle  # noqa: E402


def one_call(cls, kernel, data, pixmap, weights, out_shape, **extra):
    d = cls(kernel=kernel, out_shape=out_shape, **extra)
    start = time.perf_counter()
    d.add_image(data, exptime=1.0, pixmap=pixmap, weight_map=weights, pixel_scale_ratio=1.05)
    return time.perf_counter() - start, d


def compare(ref, got) -> str:
    worst = 0
    for name in ("out_img", "out_wht", "out_ctx"):
        a, b = getattr(ref, name), getattr(got, name)
        if not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
            if a.dtype.kind != "f":
                return f"{name} differs"
            worst = max(worst, int(ulp_distance(a, b).max()))
    return "bit-identical" if worst == 0 else f"max {worst} ulp"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="input and output side in pixels")
    parser.add_argument("--kernels", nargs="+", default=["square", "turbo", "point", "gaussian", "lanczos3"])
    parser.add_argument("--repeats", type=int, default=1, help="median of this many timed calls")
    parser.add_argument("--quick", action="store_true", help="512x512, square and turbo")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.kernels = 512, ["square", "turbo"]
    from drizzle.resample import Drizzle as Reference

    n = args.size
    shape = (n, n)
    pixmap = affine_pixmap(shape, 30.0, 1.05, distort=0.002)
    data = random_image(shape, 1)
    weights = (0.5 + 0.5 * np.random.default_rng(2).random(shape)).astype(np.float32)
    backends = ["cpu"] + (["gpu"] if gpu_available() else [])
    rows = []
    warnings.simplefilter("ignore")
    for kernel in args.kernels:
        t_ref, ref = min((one_call(Reference, kernel, data, pixmap, weights, shape) for _ in range(args.repeats)),
                         key=lambda r: r[0])
        for backend in backends:
            if backend == "gpu":
                one_call(Drizzle, kernel, data, pixmap, weights, shape, backend="gpu")  # compile and warm up
            t, got = min((one_call(Drizzle, kernel, data, pixmap, weights, shape, backend=backend)
                          for _ in range(args.repeats)), key=lambda r: r[0])
            row = dict(size=n, kernel=kernel, backend=backend, drizzle_s=t_ref, gpucal_s=t, ratio=t_ref / t,
                       mpix_s=n * n / t / 1e6, parity=compare(ref, got))
            rows.append(row)
            print(f"{n}x{n} {kernel:9s} {backend}: drizzle {t_ref:7.3f} s  gpucal {t:7.3f} s  "
                  f"ratio {t_ref / t:5.2f}  {row['mpix_s']:6.1f} Mpix/s  {row['parity']}", flush=True)
    write_json(OUT_DIR / "drizzle.json", dict(environment=environment(), rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
