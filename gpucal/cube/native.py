"""IFU cube sums on the CPU through the host build of ``gpucal/kernels/cube.cu``.

The points are taken in chunks, in input order. For each chunk, ``cube_*_ranges`` computes
every point's candidate voxel ranges (threads split the points), then ``cube_*_apply`` walks
the chunk's points in order and adds each weight straight onto the running sums (threads split
the wavelength planes into bands holding about equal shares of the chunk's points: each band is
written by one thread only, and chunks follow each other, so every voxel still receives its
contributions in increasing point index). That is the order of the GPU's sorted segments and of
numpy's ``add.at``, so all three give the same bits, for any thread count (tested), this one
without records or a sort. ctypes releases the GIL for each call.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..chunking import cpu_workers
from ..native import native_library

#: Points per chunk (their ranges: 6 MB); each chunk costs two thread barriers.
CHUNK_POINTS = 1 << 18
#: Points sampled to place the plane bands.
_BAND_SAMPLES = 1024

_P, _I, _L, _D = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_double
_SIGNATURES = {
    "cube_pointcloud_ranges": (_L, _L, _P, _I, _P, _I, _P, _I, _P, _P, _P, _P, _P, _P),
    "cube_pointcloud_apply": (_L, _I, _P, _I, _P, _I, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _D, _D, _P,
                              _I, _I, _P, _P, _P, _P),
    "cube_drizzle_ranges": (_L, _L, _P, _I, _P, _I, _P, _I, _P, _P, _P, _P, _D, _D, _D, _P),
    "cube_drizzle_apply": (_L, _P, _I, _P, _I, _P, _P, _P, _P, _P, _P, _P, _P, _D, _D, _P, _I, _I, _P, _P, _P,
                           _P),
}

Sums = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def native_functions() -> dict | None:
    """The host library's cube functions, or None when the CPU backend runs numpy."""
    lib = native_library("cube")
    if lib is None:
        return None
    out = {}
    for name, args in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, None
        out[name] = fn
    return out


def _ptr(array: np.ndarray, offset: int = 0) -> int:
    return array.ctypes.data + offset * array.itemsize


def plane_bands(ranges: np.ndarray, nz: int, nbands: int) -> list[tuple[int, int]]:
    """``nbands`` contiguous plane ranges covering ``[0, nz)`` with about equal shares of the
    points' plane ranges (``ranges[:, 4:6]``, a sample of them); fewer when they coincide."""
    if nbands <= 1:
        return [(0, nz)]
    sample = ranges[:: max(1, len(ranges) // _BAND_SAMPLES)]
    sample = sample[sample[:, 5] > sample[:, 4]]
    if sample.size == 0:
        return [(0, nz)]
    mid = (sample[:, 4] + sample[:, 5]) / 2.0
    cuts = np.round(np.quantile(mid, np.arange(1, nbands) / nbands)).astype(int)
    edges = [0, *sorted(set(cuts.tolist()) - {0, nz}), nz]
    return list(zip(edges[:-1], edges[1:]))


def _run(npt: int, nz: int, ranges_fn: Callable, apply_fn: Callable, workers: int | None, progress) -> None:
    """Chunks of points: ranges split by points, then the sums split by plane bands."""
    nthreads = max(1, cpu_workers() if workers is None else workers)
    chunk = max(1, min(CHUNK_POINTS, npt))
    ranges = np.empty((chunk, 6), dtype=np.int32)
    with ThreadPoolExecutor(nthreads, thread_name_prefix="gpucal-cube") as pool:
        for start in range(0, npt, chunk):
            n = min(chunk, npt - start)
            cuts = np.linspace(0, n, min(nthreads, n) + 1).astype(int)
            for _ in pool.map(lambda t: ranges_fn(start, int(cuts[t]), int(cuts[t + 1]), ranges),
                              range(len(cuts) - 1)):
                pass  # re-raises a thread's error
            bands = plane_bands(ranges[:n], nz, nthreads)
            for _ in pool.map(lambda band: apply_fn(start, n, band, ranges), bands):
                pass
            if progress is not None:
                progress(start + n, npt)


def pointcloud_match_native(fns: dict, msm: bool, xc, yc, zc, coord1, coord2, wave, flux, err, rois, roiw,
                            scalerad, power, softrad, zcdelt3, cdelt1: float, cdelt2: float,
                            workers: int | None = None, progress=None) -> Sums:
    """Compiled twin of :func:`cpu_fallback.cube.pointcloud_match` (same arguments, same bits);
    ``fns`` from :func:`native_functions`, ``workers`` threads (default ``GPUCAL_CPU_WORKERS``)."""
    xc, yc, zc, zcdelt3 = (np.ascontiguousarray(a, dtype=np.float64) for a in (xc, yc, zc, zcdelt3))
    pts = [np.ascontiguousarray(a, dtype=np.float64) for a in (coord1, coord2, wave, flux, err, rois, roiw,
                                                               scalerad, power, softrad)]
    coord1, coord2, wave, flux, err, rois, roiw, scalerad, power, softrad = pts
    nx, ny, nz = xc.size, yc.size, zc.size
    acc = tuple(np.zeros(nx * ny * nz) for _ in range(4))

    def ranges_fn(start, k0, k1, ranges):
        fns["cube_pointcloud_ranges"](k0, k1, _ptr(xc), nx, _ptr(yc), ny, _ptr(zc), nz, _ptr(coord1, start),
                                      _ptr(coord2, start), _ptr(wave, start), _ptr(rois, start), _ptr(roiw, start),
                                      _ptr(ranges))

    def apply_fn(start, n, band, ranges):
        fns["cube_pointcloud_apply"](n, int(msm), _ptr(xc), nx, _ptr(yc), ny, _ptr(zc), *(_ptr(a, start) for a in (
            coord1, coord2, wave, flux, err, rois, scalerad, power, softrad)), _ptr(zcdelt3), cdelt1, cdelt2,
            _ptr(ranges), band[0], band[1], *(_ptr(a) for a in acc))

    _run(coord1.size, nz, ranges_fn, apply_fn, workers, progress)
    return acc


def drizzle_match_native(fns: dict, xc, yc, zc, wave, flux, err, xi, eta, dwave, cdelt3, cdelt1: float,
                         cdelt2: float, workers: int | None = None, progress=None) -> Sums:
    """Compiled twin of :func:`cpu_fallback.cube.drizzle_match` (same arguments, same bits)."""
    xc, yc, zc, cdelt3 = (np.ascontiguousarray(a, dtype=np.float64) for a in (xc, yc, zc, cdelt3))
    wave, flux, err, dwave = (np.ascontiguousarray(a, dtype=np.float64) for a in (wave, flux, err, dwave))
    xi, eta = (np.ascontiguousarray(a, dtype=np.float64).reshape(-1, 4) for a in (xi, eta))
    nx, ny, nz = xc.size, yc.size, zc.size
    acc = tuple(np.zeros(nx * ny * nz) for _ in range(4))
    max_c3 = float(np.abs(cdelt3).max()) if cdelt3.size else 0.0

    def ranges_fn(start, k0, k1, ranges):
        fns["cube_drizzle_ranges"](k0, k1, _ptr(xc), nx, _ptr(yc), ny, _ptr(zc), nz, _ptr(wave, start),
                                   _ptr(xi, 4 * start), _ptr(eta, 4 * start), _ptr(dwave, start), max_c3, cdelt1,
                                   cdelt2, _ptr(ranges))

    def apply_fn(start, n, band, ranges):
        fns["cube_drizzle_apply"](n, _ptr(xc), nx, _ptr(yc), ny, _ptr(zc), _ptr(wave, start), _ptr(flux, start),
                                  _ptr(err, start), _ptr(xi, 4 * start), _ptr(eta, 4 * start), _ptr(dwave, start),
                                  _ptr(cdelt3), cdelt1, cdelt2, _ptr(ranges), band[0], band[1],
                                  *(_ptr(a) for a in acc))

    _run(wave.size, nz, ranges_fn, apply_fn, workers, progress)
    return acc
