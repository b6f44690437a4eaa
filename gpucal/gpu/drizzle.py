"""CuPy launcher of the drizzle kernels (``gpucal/kernels/drizzle.cu``).

One ``add_image`` call: the inputs and the output state go to the device once; the
scanner's pixels run through ``drizzle_count`` -> cumsum -> ``drizzle_emit`` -> sort of the
unique keys -> ``drizzle_replay`` in blocks, in scanner order, and the outputs come back.
The keys ``(out_index << bits) | record`` are unique, so any sort gives the stable order and
the result is deterministic and equal to ``cpu_fallback/drizzle.py``. The device works on
C-ordered copies of every array (the kernels index in C order; ``cupy.asarray`` keeps a
Fortran order), and the results are written back into the caller's arrays whatever their
layout.
"""

from __future__ import annotations

import numpy as np

from cpu_fallback.drizzle import record_bits

THREADS_PER_BLOCK = 128
#: Input pixels per device block.
GPU_BLOCK_PIXELS = 1 << 22
#: Records per device block (16 B each); keys hold the record number in 32 bits.
GPU_BLOCK_RECORDS = 1 << 26


def _grid(n: int) -> int:
    return int(max(1, min((n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, 1 << 16)))


def key_layout(nout: int) -> tuple[int, np.int64, int]:
    """``(bits, sentinel_key, max_records)`` of the sort keys for ``nout`` output pixels: the
    record number takes ``bits`` bits (fewer than 32 from 2**31 output pixels on), the key of
    a zero-weight record is ``nout << bits``, and a block keys at most ``max_records`` records."""
    bits = record_bits(nout)
    return bits, np.int64(nout << bits), min(GPU_BLOCK_RECORDS, 1 << bits)


def run_gpu(call, data, weights, pixmap, data2, dq, out_img, out_wht, out_img2, out_ctx, out_dq) -> None:
    """Drizzle the planned pixels of ``call`` (``gpucal.resample.engine.DrizzleCall``) on the GPU.

    Arguments as ``gpucal.resample.engine.run_cpu``; the numpy outputs are updated in place.
    """
    import cupy

    from .compile import kernel

    count_k = kernel("drizzle", "drizzle_count")
    emit_k = kernel("drizzle", "drizzle_emit")
    replay_k = kernel("drizzle", "drizzle_replay")
    c = call.consts
    ny, nx = data.shape
    ony, onx = out_img.shape
    nout = onx * ony
    bits, sentinel_key, max_records = key_layout(nout)
    d_sentinel = cupy.asarray(np.array([sentinel_key], np.int64))

    d_pixmap = cupy.ascontiguousarray(pixmap)
    d_weights = cupy.ascontiguousarray(weights)
    d_data = cupy.ascontiguousarray(data)
    d_lut = cupy.ascontiguousarray(call.lut)
    ndata2 = len(data2)
    if ndata2:
        present = np.array([p is not None for p in data2], dtype=np.int32)
        stack = np.stack([np.zeros_like(data) if p is None else p for p in data2])
        d_data2 = cupy.asarray(stack)
        d_present = cupy.asarray(present)
        d_img2 = cupy.asarray(np.stack(out_img2))
    else:
        d_data2 = cupy.zeros(1, dtype=np.float32)
        d_present = cupy.zeros(1, dtype=np.int32)
        d_img2 = cupy.zeros(1, dtype=np.float32)
    d_dq = cupy.ascontiguousarray(dq) if dq is not None else cupy.zeros(1, dtype=np.uint32)
    d_img = cupy.ascontiguousarray(out_img)
    d_wht = cupy.ascontiguousarray(out_wht)
    d_ctx = cupy.ascontiguousarray(out_ctx) if out_ctx is not None else cupy.zeros(1, dtype=np.int32)
    d_outdq = cupy.ascontiguousarray(out_dq) if out_dq is not None else cupy.zeros(1, dtype=np.uint32)
    geometry = (np.float32(call.wtscale), np.int32(nx), np.int32(ny), np.int32(onx), np.int32(ony), np.int32(c.kernel),
                np.float64(c.dh), np.float64(c.pfo), np.float64(c.scale), np.float64(c.es), np.float64(c.sdp),
                np.int32(c.nlut))

    for start in range(0, call.pix.size, GPU_BLOCK_PIXELS):
        pix_block = call.pix[start:start + GPU_BLOCK_PIXELS]
        d_pix_all = cupy.asarray(pix_block)
        npix = pix_block.size
        d_counts = cupy.empty(npix, dtype=np.int64)
        count_k((_grid(npix),), (THREADS_PER_BLOCK,),
                (d_pix_all, np.int64(npix), d_pixmap, d_weights, *geometry, d_counts))
        ends = cupy.asnumpy(cupy.cumsum(d_counts))
        counts = cupy.asnumpy(d_counts)
        lo = 0
        while lo < npix:
            base = int(ends[lo - 1]) if lo else 0
            hi = max(lo + 1, int(np.searchsorted(ends, base + max_records, side="right")))
            nrec = int(ends[hi - 1]) - base
            if nrec > 1 << bits:
                raise ValueError(f"one input pixel covers {nrec} output pixels: more than {bits}-bit record numbers "
                                 f"allow for an output of {nout} pixels")
            if nrec > 0:
                d_pix = cupy.asarray(pix_block[lo:hi])
                d_offsets = cupy.asarray(ends[lo:hi] - counts[lo:hi] - base)
                d_keys = cupy.empty(nrec, dtype=np.int64)
                d_dows = cupy.empty(nrec, dtype=np.float32)
                d_recpix = cupy.empty(nrec, dtype=np.int32)
                emit_k((_grid(hi - lo),), (THREADS_PER_BLOCK,),
                       (d_pix, np.int64(hi - lo), d_pixmap, d_weights, *geometry, d_lut, d_offsets, np.int32(bits),
                        d_keys, d_dows, d_recpix))
                d_sorted = cupy.sort(d_keys)
                nvalid = int(cupy.searchsorted(d_sorted, d_sentinel)[0])
                if nvalid:
                    replay_k((_grid(nvalid),), (THREADS_PER_BLOCK,),
                             (d_sorted, np.int64(nvalid), np.int32(bits), d_dows, d_recpix, d_pix, d_data, np.float32(call.iscale),
                              d_data2, d_present, np.int32(ndata2), np.int64(nx * ny), np.float32(call.iscale2), d_dq,
                              np.int32(dq is not None), d_img, d_wht, d_img2, np.int64(nout), d_ctx,
                              np.int32(out_ctx is not None), np.int32(call.bit), d_outdq))
            lo = hi

    out_img[...] = cupy.asnumpy(d_img)
    out_wht[...] = cupy.asnumpy(d_wht)
    if out_ctx is not None:
        out_ctx[...] = cupy.asnumpy(d_ctx)
    if out_dq is not None:
        out_dq[...] = cupy.asnumpy(d_outdq)
    if ndata2:
        planes = cupy.asnumpy(d_img2)
        for q, plane in enumerate(out_img2):
            plane[...] = planes[q]
