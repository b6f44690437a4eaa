"""Drizzle on the CPU through the host build of ``gpucal/kernels/drizzle.cu``.

``drizzle_sequential`` walks the scanner's pixels in order and applies each record where it
falls, which is the order the numpy emit/sort/replay path reconstructs: both give the same
bits (tested), this one at compiled speed. Threads split the output rows into bands with
about equal numbers of pixel centres; every thread walks all pixels but writes only its
band, so each output pixel still sees its records in order, for any thread count.
ctypes releases the GIL for the call.
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gpucal.chunking import cpu_workers
from gpucal.native import native_library

#: Pixel centres sampled to place the row bands.
_BAND_SAMPLES = 4096

_P = ctypes.c_void_p
_ARGTYPES = (
    _P, ctypes.c_int64, _P, _P, ctypes.c_float, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,  # pixels, map
    ctypes.c_int, ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double,    # consts
    ctypes.c_int, _P, ctypes.c_int, ctypes.c_int,                                                          # lut, band
    _P, ctypes.c_float, _P, _P, ctypes.c_int, ctypes.c_float, _P, ctypes.c_int,                           # inputs
    _P, _P, _P, _P, ctypes.c_int, ctypes.c_int, _P,                                                        # outputs
    ctypes.c_int, _P, _P, _P,                                                                              # shared
)


def sequential_function():
    """``drizzle_sequential`` of the host library, or None when the CPU backend runs numpy."""
    lib = native_library("drizzle")
    if lib is None:
        return None
    fn = lib.drizzle_sequential
    fn.argtypes = _ARGTYPES
    fn.restype = None
    return fn


def _ptr(array: np.ndarray | None) -> int | None:
    return None if array is None else array.ctypes.data


def row_bands(pixmap: np.ndarray, pix: np.ndarray, ony: int, nbands: int) -> list[tuple[int, int]]:
    """``nbands`` contiguous output row ranges covering ``[0, ony)`` with about equal shares of
    the pixels' mapped centres (a sample of them)."""
    if nbands <= 1:
        return [(0, ony)]
    sample = pix[:: max(1, pix.size // _BAND_SAMPLES)]
    y = pixmap.reshape(-1, 2)[sample, 1]
    y = y[np.isfinite(y)]
    if y.size == 0:
        return [(0, ony)]
    cuts = np.clip(np.round(np.quantile(y, np.arange(1, nbands) / nbands)), 0, ony).astype(int)
    edges = [0, *sorted(set(cuts.tolist()) - {0, ony}), ony]
    return list(zip(edges[:-1], edges[1:]))


def run_native(fn, call, data, weights, pixmap, data2, dq, out_img, out_wht, out_img2, out_ctx, out_dq,
               workers: int | None = None, shared: list = ()) -> None:
    """Drizzle the planned pixels of ``call`` with ``fn`` (:func:`sequential_function`).

    Arguments as :func:`gpucal.resample.engine.run_cpu`; outputs are updated in place.
    """
    c = call.consts
    ny, nx = data.shape
    ony, onx = out_img.shape
    pix = np.ascontiguousarray(call.pix, dtype=np.int64)
    lut = np.ascontiguousarray(call.lut, dtype=np.float64)
    pixmap = np.ascontiguousarray(pixmap, dtype=np.float64)
    ndata2 = len(data2)
    stack2 = img2 = present = None
    if ndata2:
        present = np.array([p is not None for p in data2], dtype=np.int32)
        stack2 = np.stack([np.zeros_like(data) if p is None else p for p in data2])
        img2 = np.stack(out_img2)
    nshared = len(shared)
    s_data = (ctypes.c_void_p * max(nshared, 1))(*[s[0].ctypes.data for s in shared])
    s_img = (ctypes.c_void_p * max(nshared, 1))(*[s[1].ctypes.data for s in shared])
    s_wht = (ctypes.c_void_p * max(nshared, 1))(*[s[2].ctypes.data for s in shared])

    def band(rows: tuple[int, int]) -> None:
        fn(_ptr(pix), pix.size, _ptr(pixmap), _ptr(weights), call.wtscale, nx, ny, onx, ony, c.kernel, c.dh, c.pfo,
           c.scale, c.es, c.sdp, c.nlut, _ptr(lut), rows[0], rows[1], _ptr(data), call.iscale, _ptr(stack2),
           _ptr(present), ndata2, call.iscale2, _ptr(dq), int(dq is not None), _ptr(out_img), _ptr(out_wht),
           _ptr(img2), _ptr(out_ctx), int(out_ctx is not None), call.bit, _ptr(out_dq), nshared, s_data, s_img,
           s_wht)

    bands = row_bands(pixmap, pix, ony, cpu_workers() if workers is None else workers)
    if len(bands) == 1:
        band(bands[0])
    else:
        with ThreadPoolExecutor(len(bands), thread_name_prefix="gpucal-drizzle") as pool:
            for _ in pool.map(band, bands):  # re-raises a band's error
                pass
    for q in range(ndata2):
        out_img2[q][...] = img2[q]
