"""One drizzle call (drizzle 2.2.0 ``tdriz``/``dobox``): plan on the host, run on a backend.

The host part (spec sections 2.2-2.4, 3) picks the input pixels with the row scanner and
sets the kernel constants; the pixels then go through ``count -> emit -> sort -> replay``
in blocks (spec section 9, design 1) on numpy (``cpu_fallback/drizzle.py``) or CuPy
(``gpucal/gpu/drizzle.py``). Blocks are replayed in scanner order and records inside a
block are sorted by (output pixel, record), so every output pixel sees its contributions in
drizzle's order and both backends give identical bits.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from cpu_fallback import drizzle as kernels
from cpu_fallback.drizzle import KERNEL_IDS, DrizzleConsts
from gpucal.chunking import cpu_workers
from gpucal.errors import InputError

from .native import native_functions, run_native
from .scanner import estimate_pscale_ratio, scan_rows, shrink_image_section

log = logging.getLogger(__name__)

LUT_DELTA = 0.003
#: Records per numpy block: small enough that the per-record temporaries stay in the
#: core's cache (measured best among 2**13..2**20 for the square and turbo kernels at 512x512).
CPU_BLOCK_RECORDS = 1 << 14
#: Input pixels per CPU block (geometry computed once per block).
CPU_BLOCK_PIXELS = 1 << 15
#: Records replayed together (rank layers over this many records; best of 2**15..2**18 measured).
CPU_REPLAY_RECORDS = 1 << 16


@dataclass
class DrizzleCall:
    """Everything one ``add_image`` hands to a backend."""

    pix: np.ndarray          # int64 linear input indices in scanner order
    consts: DrizzleConsts
    lut: np.ndarray          # float64 lanczos table (one zero entry for other kernels)
    iscale: np.float32
    iscale2: np.float32
    wtscale: np.float32
    bit: int                 # context bit as a signed int32 value


def lanczos_lut(order: int) -> np.ndarray:
    """drizzle's Lanczos table (``create_lanczos_lut``), built once on the host for both backends."""
    nlut = math.ceil(order / LUT_DELTA) + 1
    x = np.arange(nlut, dtype=np.float64) * LUT_DELTA
    with np.errstate(all="ignore"):
        poff = np.pi * x
        r = poff / float(order)
        lut = np.sin(poff) * np.sin(r) / (poff * r)
    lut = np.where(x <= order, lut, 0.0)
    lut[0] = 1.0
    return lut


def kernel_consts(kernel: str, pixfrac: float, psr: float) -> tuple[DrizzleConsts, np.ndarray]:
    """Kernel constants (spec section 4) and the lanczos table."""
    kid = KERNEL_IDS[kernel]
    psr = float(psr)
    if kernel == "square":
        return DrizzleConsts(kid, dh=0.5 * pixfrac), np.zeros(1)
    if kernel == "point":
        return DrizzleConsts(kid), np.zeros(1)
    if kernel == "turbo":
        ac = 1.0 / (pixfrac * pixfrac)
        return DrizzleConsts(kid, pfo=pixfrac / psr / 2.0, scale=ac * psr * psr), np.zeros(1)
    if kernel == "gaussian":
        pfo = 2.5 * pixfrac / 2.3548 / psr
        low = 1.2 / psr
        pfo = low if pfo < low else pfo
        ac = 1.0 / (pixfrac * pixfrac)
        efac = (2.3548 * 2.3548) * (psr * psr) * ac / 2.0
        return DrizzleConsts(kid, pfo=pfo, scale=efac, es=efac / math.pi), np.zeros(1)
    order = 2 if kernel == "lanczos2" else 3
    lut = lanczos_lut(order)
    return DrizzleConsts(kid, pfo=float(order) / psr, sdp=psr / LUT_DELTA, nlut=lut.size), lut


def scanner_pixels(rows: np.ndarray, x1: np.ndarray, x2: np.ndarray, nx: int) -> np.ndarray:
    """Linear input indices of the scanner's rows and column ranges, in visiting order."""
    lengths = np.maximum(x2 - x1 + 1, 0)
    total = int(lengths.sum())
    starts = rows * nx + x1
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def plan_call(kernel: str, pixmap: np.ndarray, out_shape: tuple[int, int], box: tuple[int, int, int, int],
              pixfrac: float, psr: float, iscale: float, wtscale: float, ctx_bit: int) -> DrizzleCall | None:
    """The host half of ``tdriz``: kernel switch, section, scanner, constants (None: nothing to do)."""
    if pixfrac <= 0.001:
        warnings.warn("Kernel reset to 'point' due to input 'pixfrac'  being too small.", stacklevel=3)
        kernel = "point"
    if kernel in ("gaussian", "lanczos2", "lanczos3"):
        warnings.warn(f"Kernel '{kernel}' is not a flux-conserving kernel.", stacklevel=3)
    if kernel.startswith("lanczos") and abs(pixfrac - 1.0) > 1.0e-5:
        warnings.warn("In lanczos kernel, pixel_fraction is ignored and assumed to be 1.0", stacklevel=3)
    section = shrink_image_section(pixmap, *box)
    xmin, xmax, ymin, ymax = section
    if xmin < 0 or ymin < 0:
        raise InputError("xmin and ymin must be >= 0")
    rows, x1, x2, polygon = scan_rows(pixmap, section, out_shape)
    if len(polygon) < 3:
        return None  # no overlap: drizzle returns before estimating the pixel scale
    if kernel in ("turbo", "gaussian", "lanczos2", "lanczos3") and not math.isfinite(psr):
        psr = estimate_pscale_ratio(pixmap, polygon)
    consts, lut = kernel_consts(kernel, float(pixfrac), psr)
    if rows.size == 0:
        return None
    pix = scanner_pixels(rows, x1, x2, pixmap.shape[1])
    f_iscale = np.float32(iscale)
    return DrizzleCall(pix=pix, consts=consts, lut=lut, iscale=f_iscale, iscale2=f_iscale * f_iscale,
                       wtscale=np.float32(wtscale), bit=ctx_bit)


def _emit_block(call: DrizzleCall, pixmap, weights, onx: int, ony: int, pix: np.ndarray) -> list[tuple]:
    """Records of one pixel block, ready to replay: ``[(sorted keys, dows, rec_pixel, pixels)]``.

    Geometry is computed once for the block, records are emitted in cache-sized pieces
    (``CPU_BLOCK_RECORDS``) and grouped by about ``CPU_REPLAY_RECORDS`` so that the rank
    layers of the replay are long enough to amortise numpy's per-call cost. Pure function
    of the block: safe to run in a worker thread.
    """
    nx = pixmap.shape[1]
    sentinel = onx * ony
    bits = kernels.record_bits(sentinel)
    wi = weights.reshape(-1)[pix] * call.wtscale
    geometry = kernels.pixel_geometry(call.consts, pixmap, onx, ony, pix % nx, pix // nx, wi)
    ends = np.cumsum(kernels.box_cells(geometry))
    separable = call.consts.kernel in (kernels.KERNEL_TURBO, kernels.KERNEL_GAUSSIAN, kernels.KERNEL_LANCZOS)
    block_dows = kernels.separable_weights(call.consts, geometry, call.lut) if separable else None
    groups: list[tuple] = []
    pending: list[tuple] = []
    lo = first = npending = 0
    while lo < pix.size:
        base = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, base + CPU_BLOCK_RECORDS, side="right")))
        keys, dows, rec_pixel = kernels.drizzle_emit(pix[lo:hi], pixmap, weights, call.wtscale, onx, ony,
                                                     call.consts, call.lut, kernels.slice_geometry(geometry, lo, hi),
                                                     None if block_dows is None else block_dows[base:ends[hi - 1]],
                                                     bits)
        # records and pixels numbered from the start of the replay group
        pending.append((keys + npending, dows, rec_pixel + (lo - first)))
        npending += keys.size
        lo = hi
        if npending >= CPU_REPLAY_RECORDS or lo == pix.size:
            keys = np.concatenate([p[0] for p in pending])
            if npending >= 1 << bits:
                raise ValueError(f"{npending} drizzle records in one group do not fit {bits}-bit record numbers")
            keys = np.sort(keys[(keys >> bits) != sentinel])  # unique keys: any sort is the stable order
            groups.append((keys, np.concatenate([p[1] for p in pending]), np.concatenate([p[2] for p in pending]),
                           pix[first:lo]))
            pending.clear()
            first, npending = lo, 0
    return groups


def _working(arr: np.ndarray | None, dtype) -> np.ndarray | None:
    """``arr`` when it is C-contiguous of ``dtype`` (updated in place), else a contiguous copy:
    both CPU paths address outputs as flat C arrays."""
    if arr is None or (arr.flags.c_contiguous and arr.dtype == dtype):
        return arr
    return np.ascontiguousarray(arr, dtype=dtype)


def run_cpu(call: DrizzleCall, data, weights, pixmap, data2, dq, out_img, out_wht, out_img2, out_ctx,
            out_dq, workers: int | None = None, shared: list = ()) -> None:
    """Drizzle the planned pixels on the CPU: compiled (:mod:`gpucal.resample.native`) when the
    host build of ``drizzle.cu`` is available, else with numpy (:func:`run_numpy`).

    Outputs that are not C-contiguous of their dtype (a strided or Fortran-ordered ``out_img``
    given to ``Drizzle``) are worked on as contiguous copies and written back.
    """
    outputs = [out_img, out_wht, out_ctx, out_dq, *out_img2]
    dtypes = [np.float32, np.float32, np.int32, np.uint32] + [np.float32] * len(out_img2)
    work = [_working(a, dt) for a, dt in zip(outputs, dtypes)]
    args = (call, data, weights, pixmap, data2, dq, work[0], work[1], work[4:], work[2], work[3])
    native = native_functions()
    if native is not None:
        run_native(native, *args, workers, shared)
    else:
        run_numpy(*args, workers, shared)
    for original, used in zip(outputs, work):
        if used is not original:
            original[...] = used


def run_numpy(call: DrizzleCall, data, weights, pixmap, data2, dq, out_img, out_wht, out_img2, out_ctx,
              out_dq, workers: int | None = None, shared: list = ()) -> None:
    """Drizzle the planned pixels with numpy, blocks of ``CPU_BLOCK_PIXELS`` pixels in scanner order.

    Up to ``workers`` threads (default ``gpucal.chunking.cpu_workers()``) emit and sort the
    records of the next blocks (numpy releases the GIL in its array loops) while this
    thread replays the finished blocks strictly in scanner order, so the output is the
    same bits for any number of workers. At most ``workers + 1`` blocks are in flight.
    ``shared``: ``[(data, out_img, out_wht)]`` replayed with the same records (no context,
    data2 or dq), as ``Drizzle.add_image(also=...)`` documents; with threads each of them is
    replayed on its own thread, in scanner order too.
    """
    ony, onx = out_img.shape
    blocks = [call.pix[s:s + CPU_BLOCK_PIXELS] for s in range(0, call.pix.size, CPU_BLOCK_PIXELS)]
    workers = min(cpu_workers() if workers is None else workers, len(blocks))
    # with threads, each shared image is replayed on its own single-thread lane: FIFO, so its
    # groups still arrive in scanner order, and no other thread touches its outputs
    lanes = [ThreadPoolExecutor(1, thread_name_prefix="gpucal-drizzle-also") for _ in shared] if workers > 1 else []
    waiting: list = []

    def replay(groups):
        nonlocal waiting
        for keys, dows, rec_pixel, pix in groups:
            if keys.size == 0:
                continue
            layers = kernels.replay_layers(keys, dows, rec_pixel, pix, kernels.record_bits(onx * ony))
            jobs = [(kernels.drizzle_replay, keys, dows, rec_pixel, pix, s_data, call.iscale, [], call.iscale2, None,
                     s_img, s_wht, [], None, call.bit, None, layers) for s_data, s_img, s_wht in shared]
            submitted = [lane.submit(*job) for lane, job in zip(lanes, jobs)]
            kernels.drizzle_replay(keys, dows, rec_pixel, pix, data, call.iscale, data2, call.iscale2, dq,
                                   out_img, out_wht, out_img2, out_ctx, call.bit, out_dq, layers)
            if not lanes:
                for fn, *args in jobs:
                    fn(*args)
            for future in waiting:  # at most two groups queued per lane (bounded memory)
                future.result()
            waiting = submitted

    try:
        if workers <= 1:
            for pix in blocks:
                replay(_emit_block(call, pixmap, weights, onx, ony, pix))
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="gpucal-drizzle") as pool:
            inflight: deque = deque()
            for pix in blocks:
                inflight.append(pool.submit(_emit_block, call, pixmap, weights, onx, ony, pix))
                if len(inflight) > workers:
                    replay(inflight.popleft().result())
            while inflight:
                replay(inflight.popleft().result())
        for future in waiting:
            future.result()
    finally:
        for lane in lanes:
            lane.shutdown(wait=True)
