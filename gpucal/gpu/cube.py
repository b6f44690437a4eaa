"""CuPy launcher of the IFU cube sums (``gpucal/kernels/cube.cu``).

Points are uploaded once; a count pass gives every point's candidate voxels, and the points
are then processed in chunks whose records fit the free device memory. Per chunk: emit
records in point order, drop rejected ones, sort by (voxel, record index), and add each
voxel's segment onto the running sums in order. The sums are therefore the C's sequence of
roundings, and equal ``cpu_fallback.cube`` bit for bit.
"""

from __future__ import annotations

import numpy as np

from cpu_fallback.cube import _chunks

THREADS_PER_BLOCK = 128
#: Device bytes per record: voxel, weight, point (emit), key, permutation, order, sorted voxel.
BYTES_PER_RECORD = 8 + 8 + 4 + 8 + 8 + 8 + 8


def _grid(n: int) -> int:
    return max(1, min((n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, 65535))


def _max_records(max_records: int | None) -> int:
    if max_records is not None:
        return int(max_records)
    from ..backend import free_device_memory

    return max(1 << 16, free_device_memory() // 3 // BYTES_PER_RECORD)


def _launch(name: str, n: int, args: tuple) -> None:
    from .compile import kernel

    kernel("cube", name)((_grid(n),), (THREADS_PER_BLOCK,), args)


def _accumulate_chunk(cupy, a: int, b: int, counts: np.ndarray, emit, d_flux, d_err, acc) -> None:
    """Emit the records of points [a, b) with ``emit(offsets, recs)`` and add them per voxel in order."""
    n_rec = int(counts[a:b].sum())
    if n_rec == 0:
        return
    offsets = np.concatenate([[0], np.cumsum(counts[a:b])[:-1]]).astype(np.int64)
    recs = (cupy.empty(n_rec, dtype=np.int64), cupy.empty(n_rec, dtype=np.float64),
            cupy.empty(n_rec, dtype=np.int32))
    emit(cupy.asarray(offsets), recs)
    rec_voxel = recs[0]
    valid = cupy.flatnonzero(rec_voxel >= 0)
    if valid.size == 0:
        return
    key = rec_voxel[valid] * np.int64(n_rec) + valid  # unique keys: any sort keeps point order
    order = valid[cupy.argsort(key)]
    sv = rec_voxel[order]
    bounds = cupy.flatnonzero(sv[1:] != sv[:-1]) + 1
    seg_start = cupy.concatenate([cupy.zeros(1, dtype=np.int64), bounds.astype(np.int64),
                                  cupy.asarray(np.array([order.size], dtype=np.int64))])
    nseg = int(seg_start.size - 1)
    _launch("segment_sum_kernel", nseg, (np.int64(nseg), seg_start, order.astype(np.int64), rec_voxel, recs[1],
                                         recs[2], d_flux, d_err, *acc))


def pointcloud_match_gpu(msm: bool, xc, yc, zc, coord1, coord2, wave, flux, err, rois, roiw, scalerad, power,
                         softrad, zcdelt3, cdelt1: float, cdelt2: float, max_records: int | None = None,
                         progress=None):
    """GPU twin of :func:`cpu_fallback.cube.pointcloud_match`; returns host arrays."""
    import cupy

    nx, ny, nz = xc.size, yc.size, zc.size
    npt = coord1.size
    d = {name: cupy.asarray(np.ascontiguousarray(v, dtype=np.float64)) for name, v in dict(
        xc=xc, yc=yc, zc=zc, coord1=coord1, coord2=coord2, wave=wave, flux=flux, err=err, rois=rois, roiw=roiw,
        scalerad=scalerad, power=power, softrad=softrad, zcdelt3=zcdelt3).items()}
    acc = tuple(cupy.zeros(nx * ny * nz, dtype=np.float64) for _ in range(4))
    ranges = cupy.empty((npt, 6), dtype=np.int32)
    d_counts = cupy.empty(npt, dtype=np.int64)
    _launch("pointcloud_count_kernel", npt, (np.int64(npt), d["xc"], np.int32(nx), d["yc"], np.int32(ny), d["zc"],
                                             np.int32(nz), d["coord1"], d["coord2"], d["wave"], d["rois"],
                                             d["roiw"], ranges, d_counts))
    counts = cupy.asnumpy(d_counts)
    for a, b in _chunks(counts, _max_records(max_records)):
        def emit(offsets, recs, a=a, b=b):
            _launch("pointcloud_emit_kernel", b - a, (
                np.int64(b - a), np.int32(1 if msm else 0), d["xc"], np.int32(nx), d["yc"], np.int32(ny), d["zc"],
                d["coord1"][a:b], d["coord2"][a:b], d["wave"][a:b], d["rois"][a:b], d["scalerad"][a:b],
                d["power"][a:b], d["softrad"][a:b], d["zcdelt3"], np.float64(cdelt1), np.float64(cdelt2),
                ranges[a:b], offsets, np.int64(a), *recs))

        _accumulate_chunk(cupy, a, b, counts, emit, d["flux"], d["err"], acc)
        if progress is not None:
            progress(b, npt)
    return tuple(cupy.asnumpy(x) for x in acc)


def drizzle_match_gpu(xc, yc, zc, wave, flux, err, xi, eta, dwave, cdelt3, cdelt1: float, cdelt2: float,
                      max_records: int | None = None, progress=None):
    """GPU twin of :func:`cpu_fallback.cube.drizzle_match`; returns host arrays."""
    import cupy

    nx, ny, nz = xc.size, yc.size, zc.size
    npt = wave.size
    d = {name: cupy.asarray(np.ascontiguousarray(v, dtype=np.float64)) for name, v in dict(
        xc=xc, yc=yc, zc=zc, wave=wave, flux=flux, err=err, xi=xi, eta=eta, dwave=dwave, cdelt3=cdelt3).items()}
    acc = tuple(cupy.zeros(nx * ny * nz, dtype=np.float64) for _ in range(4))
    ranges = cupy.empty((npt, 6), dtype=np.int32)
    d_counts = cupy.empty(npt, dtype=np.int64)
    max_c3 = np.float64(np.abs(cdelt3).max())
    _launch("drizzle_count_kernel", npt, (np.int64(npt), d["xc"], np.int32(nx), d["yc"], np.int32(ny), d["zc"],
                                          np.int32(nz), d["wave"], d["xi"], d["eta"], d["dwave"], max_c3,
                                          np.float64(cdelt1), np.float64(cdelt2), ranges, d_counts))
    counts = cupy.asnumpy(d_counts)
    for a, b in _chunks(counts, _max_records(max_records)):
        def emit(offsets, recs, a=a, b=b):
            _launch("drizzle_emit_kernel", b - a, (
                np.int64(b - a), d["xc"], np.int32(nx), d["yc"], np.int32(ny), d["zc"], d["wave"][a:b],
                d["xi"][a:b], d["eta"][a:b], d["dwave"][a:b], d["cdelt3"], np.float64(cdelt1), np.float64(cdelt2),
                ranges[a:b], d_counts[a:b], offsets, np.int64(a), *recs))

        _accumulate_chunk(cupy, a, b, counts, emit, d["flux"], d["err"], acc)
        if progress is not None:
            progress(b, npt)
    return tuple(cupy.asnumpy(x) for x in acc)
