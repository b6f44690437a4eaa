"""Benchmark pixel maps and image mosaics: gpucal vs the WCS's own evaluation and jwst's ResampleStep.

Cases:
* pixmap: one distorted gwcs image of N x N pixels onto a rotated output grid; the gwcs's own
  numpy evaluation (what stcal/jwst run) vs gpucal's compiled map on each backend.
* mosaic: K overlapping synthetic ``_cal`` files of N x N pixels: jwst 3.0.0 ResampleStep vs
  ``gpucal.resample_images`` (compiled maps); the drizzle core is whatever ``gpucal.resample.Drizzle``
  is in this checkout.

    python bench/resample_mosaic.py            # 2048x2048 map, 4 x 1024x1024 mosaic
    python bench/resample_mosaic.py --quick    # 512x512 map, 3 x 256x256 mosaic
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np  # noqa: E402
from common import OUT_DIR, environment, timed, write_json  # noqa: E402


def pixmap_case(n: int, backends: list[str], repeats: int) -> list[dict]:
    from resample_wcs import imaging_gwcs
    from stcal.resample.utils import calc_pixmap as stcal_pixmap

    from gpucal.resample import calc_pixmap

    wcs_in = imaging_gwcs((n, n), distorted=True)
    wcs_out = imaging_gwcs((n, n), ra=10.0001, roll=50.0)
    ref_s, _, ref = timed(lambda: stcal_pixmap(wcs_in, wcs_out, (n, n)), repeats)
    rows = [dict(case=f"pixmap {n}x{n}", impl="stcal/gwcs (numpy)", seconds=ref_s)]
    for backend in backends:
        calc_pixmap(wcs_in, wcs_out, backend=backend)  # warm-up (CuPy kernels compile)
        s, _, got = timed(lambda: calc_pixmap(wcs_in, wcs_out, backend=backend), repeats)
        rows.append(dict(case=f"pixmap {n}x{n}", impl=f"gpucal {backend}", seconds=s, speedup=ref_s / s,
                         max_abs_px=float(np.nanmax(np.abs(got - ref)))))
    return rows


def mosaic_case(n: int, k: int, backends: list[str], repeats: int) -> list[dict]:
    from resample_models import write_cal_files

    from gpucal.resample import resample_images

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_cal_files(Path(tmp), n=k, shape=(n, n))
        case = f"mosaic {k} x {n}x{n}"
        try:
            from jwst.resample import ResampleStep

            def run_jwst():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return ResampleStep().run([str(p) for p in paths])

            ref_s, _, ref = timed(run_jwst, repeats)
            rows.append(dict(case=case, impl="jwst ResampleStep", seconds=ref_s, shape=ref.data.shape))
        except ImportError:
            ref_s, ref = None, None
        for backend in backends:
            s, _, got = timed(lambda: resample_images(paths, backend=backend), repeats)
            row = dict(case=case, impl=f"gpucal {backend}", seconds=s, shape=got.shape)
            if ref is not None:
                row["speedup"] = ref_s / s
                finite = np.isfinite(got.data) & np.isfinite(ref.data)
                row["max_rel_data"] = float(np.max(np.abs(got.data[finite] - ref.data[finite])
                                                   / np.maximum(np.abs(ref.data[finite]), 1e-30)))
            rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--backends", default=None, help="comma-separated (default: cpu, plus gpu when available)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, default=OUT_DIR / "resample_mosaic.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import gpucal

    backends = ([b.strip() for b in args.backends.split(",")] if args.backends
                else ["cpu"] + (["gpu"] if gpucal.gpu_available() else []))
    map_n, mosaic_n, k = (512, 256, 3) if args.quick else (2048, 1024, 4)
    rows = pixmap_case(map_n, backends, args.repeats) + mosaic_case(mosaic_n, k, backends, args.repeats)
    for row in rows:
        extra = "  ".join(f"{key}={value:.3g}" for key, value in row.items()
                          if key in ("speedup", "max_abs_px", "max_rel_data"))
        print(f"{row['case']:<22} {row['impl']:<20} {row['seconds']:8.3f} s  {extra}")
    write_json(args.json, {"environment": environment(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
