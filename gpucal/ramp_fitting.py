"""Ramp fitting: count rates from up-the-ramp exposures (JWST ``ramp_fit``, OLS_C).

:func:`ramp_fit` prepares the exposure-wide constants (spec ``ramp_fit.md`` sections 3
and 4.1), cuts the exposure into row blocks that fit the memory it may use, and fits
each block with the CUDA kernel (``gpucal/kernels/ramp_fit.cu``) or its numpy twin
(``cpu_fallback/ramp_fit.py``). Both give the same bits; both agree with stcal 1.20.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cpu_fallback.ramp_fit import FitParams, ramp_fit_block
from gpucal.backend import resolve_backend
from gpucal.chunking import DEFAULT_CPU_MEMORY, cache_block, cpu_workers, parse_memory, rows_per_block
from gpucal.progress import ProgressCallback
from gpucal.dq import DO_NOT_USE, PERSISTENCE, SATURATED
from gpucal.errors import InputError
from gpucal.products import FitOptProduct, RampFitResult, RateProduct
from gpucal.ramp import Ramp
from gpucal.ramp_fit_io import BlockInputs, BlockOutputs
from gpucal.weight_table import weight_table

log = logging.getLogger(__name__)

#: Working bytes per sample of the numpy fallback (float64 values, rates, sorted
#: differences, flags and their copies), measured on 1x10x1024x1024.
CPU_BYTES_PER_SAMPLE = 96


def ramp_fit(
    ramp: Ramp | str | os.PathLike,
    gain: np.ndarray | str | os.PathLike,
    readnoise: np.ndarray | str | os.PathLike,
    *,
    backend: str | None = None,
    save_opt: bool = False,
    suppress_one_group: bool = True,
    max_memory: int | str | None = None,
    max_device_memory: int | str | None = None,
    average_dark_current: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> RampFitResult:
    """Fit slopes to every pixel ramp with ordinary least squares and optimal weighting.

    The algorithm is stcal 1.20's OLS_C: ramps are split into segments at flagged
    groups (a JUMP_DET group starts the next segment), each segment is fitted with
    SNR-dependent weights, and segments and integrations are combined by inverse
    read-noise variance. Poisson variance comes from the median of first differences.

    Parameters
    ----------
    ramp : Ramp or path
        The exposure (a :class:`gpucal.Ramp`, or a ``_ramp.fits``/``_uncal.fits`` path).
    gain : ndarray or path
        Gain in electrons/DN, shape ``(ny, nx)``, or a GAIN reference file. NaN or
        non-positive gain flags the pixel DO_NOT_USE | NO_GAIN_VALUE.
    readnoise : ndarray or path
        CDS read noise in DN, shape ``(ny, nx)``, or a READNOISE reference file.
    backend : {"gpu", "cpu", "auto"}, optional
        Where to run; default :func:`gpucal.get_backend`.
    save_opt : bool
        Also return the per-segment optional product (``result.fitopt``).
    suppress_one_group : bool
        Treat ramps with a single good group as having none (jwst's default).
        Ignored (off) for one-group exposures.
    max_memory : int or str, optional
        Host memory the fit may use for its working set, in bytes or as ``"2GB"``; default
        2 GiB. On the GPU it bounds the blocks' host copies and pinned staging buffers.
    max_device_memory : int or str, optional
        GPU only: device memory for every block in flight at once (default 70 % of the free
        memory of the current device, never more than is free); see :mod:`gpucal.gpu.budget`.
    average_dark_current : ndarray, optional
        Average dark current (DN/s) per pixel, added to the Poisson variance.
    progress : callable, optional
        Called as ``progress(done_pixels, total_pixels)`` after each block.

    Returns
    -------
    RampFitResult
        ``rate`` (2-D) and ``rateints`` (3-D) products, or both None when nothing can
        be fitted (every pixel saturated in its first group, or a MIRI exposure with
        fewer than two usable groups), and ``fitopt`` when ``save_opt``.
    """
    start_time = time.perf_counter()
    ramp = ramp if isinstance(ramp, Ramp) else Ramp.from_fits(ramp)
    gain_2d = _reference_array(gain, "gain", ramp)
    readnoise_2d = _reference_array(readnoise, "readnoise", ramp)
    dark_2d = (np.zeros((ramp.ny, ramp.nx), dtype=np.float32) if average_dark_current is None
               else _reference_array(average_dark_current, "average_dark_current", ramp))
    name = resolve_backend(backend)
    budget = parse_memory(max_memory)
    max_device_memory = parse_memory(max_device_memory)

    suppress = bool(suppress_one_group) and ramp.ngroups > 1
    window = _group_window(ramp, suppress)
    meta = dict(ramp.meta)
    if window is None:
        log.warning("nothing to fit in %s: fewer than two usable groups", meta.get("FILENAME", "exposure"))
        return RampFitResult(rate=None, rateints=None, backend=name, meta=meta)
    fp = fit_params(ramp, window, suppress=suppress, save_opt=save_opt)
    sigma_r = scaled_read_noise(readnoise_2d, gain_2d, ramp.nframes)
    table = weight_table(fp.ngroups)

    outputs = _ExposureOutputs(fp, ramp.ny, ramp.nx)
    if name == "gpu":
        from gpucal.gpu.budget import device_budget, host_budget, plan_rows, release_pinned_pool
        from gpucal.gpu.ramp_fit import block_cost, fit_blocks_gpu, resident_bytes

        rows = plan_rows(ramp.ny, ramp.nx, block_cost(fp), device=device_budget(max_device_memory),
                         host=host_budget(budget), resident=resident_bytes(table))
        blocks = _blocks(ramp, rows, gain_2d, sigma_r, dark_2d, outputs)
        try:
            fit_blocks_gpu(fp, blocks, outputs.store_with_progress(progress, ramp), table)
        finally:
            release_pinned_pool()
    else:
        _fit_cpu(fp, ramp, gain_2d, sigma_r, dark_2d, table, outputs, budget, progress)

    elapsed = time.perf_counter() - start_time
    samples = fp.nints * ramp.ngroups * ramp.ny * ramp.nx
    log.debug("ramp_fit %s on %s: %.2f s, %.1f Msamples/s", ramp.shape, name, elapsed, samples / elapsed / 1e6)
    if outputs.all_first_saturated:
        log.warning("every pixel is saturated in its first group: no rate products")
        return RampFitResult(rate=None, rateints=None, backend=name, elapsed_s=elapsed, meta=meta)
    return outputs.result(name, elapsed, meta)


def fit_params(ramp: Ramp, window: tuple[int, int, bool], *, suppress: bool, save_opt: bool) -> FitParams:
    """Exposure-wide constants (spec 4.1): float32-rounded times, one-group time, pedestal factor."""
    g_first, ngroups, clear_first_jump = window
    t_g = float(np.float32(ramp.group_time))
    t_f = float(np.float32(ramp.frame_time))
    nframes, groupgap, drop_frames1 = int(ramp.nframes), int(ramp.groupgap), int(ramp.drop_frames1 or 0)
    return FitParams(
        nints=ramp.nints,
        ngroups_raw=ramp.ngroups,
        g_first=g_first,
        ngroups=ngroups,
        t_g=t_g,
        t_f=t_f,
        t_1=(float(nframes) + 1.0) * t_f / 2.0,
        ped_tmp=((nframes + 1) / 2.0 + drop_frames1) / float(nframes + groupgap),
        suppress=suppress,
        clear_first_jump=clear_first_jump,
        save_opt=bool(save_opt),
        max_segs=max(1, (ngroups + 1) // 2),
        max_crs=max(ngroups - 1, 0),
    )


def scaled_read_noise(readnoise: np.ndarray, gain: np.ndarray, nframes: int) -> np.ndarray:
    """Read noise of one group in electrons, rounded once to float32 (spec 3.3)."""
    scale = gain.astype(np.float64) / np.sqrt(2.0 * nframes)
    return (readnoise.astype(np.float64) * scale).astype(np.float32)


def _group_window(ramp: Ramp, suppress: bool) -> tuple[int, int, bool] | None:
    """Groups to fit as ``(first, count, clear_jump_in_first)``; None if too few (spec 3.4).

    Only MIRI drops leading groups flagged DO_NOT_USE in every pixel (and then a final
    such group); the decision sees the one-good-group suppression, so it needs one pass
    over the group flags.
    """
    ngroups = ramp.ngroups
    if ramp.instrument != "MIRI" or ngroups < 2:
        return 0, ngroups, False
    all_dnu = np.ones(ngroups, dtype=bool)
    rows = cache_block(ramp.nints * ngroups * ramp.nx)
    not_pers = np.uint8(~PERSISTENCE & 0xFF)
    for r0 in range(0, ramp.ny, rows):
        gdq = np.asarray(ramp.groupdq[:, :, r0 : r0 + rows, :])
        dnu = (gdq & np.uint8(DO_NOT_USE)) != 0
        if suppress:
            n_good = ((gdq & not_pers) == 0).sum(axis=1)
            dnu |= (n_good == 1)[:, None]
        all_dnu &= dnu.all(axis=(0, 2, 3))
    first = 0
    while first < ngroups and all_dnu[first]:
        first += 1
    if first == ngroups:
        return None
    count = ngroups - first
    if all_dnu[-1]:
        count -= 1
    if count < 2:
        return None
    if first or count < ngroups:
        log.info("MIRI: fitting groups %d..%d of %d (the rest are DO_NOT_USE everywhere)",
                 first, first + count - 1, ngroups)
    return first, count, first > 0


def _reference_array(value, name: str, ramp: Ramp) -> np.ndarray:
    if isinstance(value, (str, os.PathLike)):
        from gpucal.refs import read_reference

        reftype = {"gain": "GAIN", "readnoise": "READNOISE"}.get(name)
        if reftype is None:
            raise InputError(f"{name} must be an array, not a path")
        return read_reference(Path(value), reftype, ramp=ramp)
    array = np.asarray(value)
    if array.shape != (ramp.ny, ramp.nx):
        raise InputError(f"{name} must have the exposure's image shape {(ramp.ny, ramp.nx)}, got {array.shape}")
    if array.dtype.kind not in "fiu":
        raise InputError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    return array.astype(np.float32)


def first_group_saturated(groupdq: np.ndarray, g_first: int) -> bool:
    """True when every ramp of the block is SATURATED in its first fitted group."""
    return bool(np.all(groupdq[:, g_first] & np.uint8(SATURATED)))


class _ExposureOutputs:
    """Full-exposure output arrays that blocks are stored into."""

    def __init__(self, fp: FitParams, ny: int, nx: int):
        self.fp, self.ny, self.nx = fp, ny, nx
        npix = ny * nx
        self.block = BlockOutputs.allocate(fp, npix)
        self.all_first_saturated = True
        self._lock = threading.Lock()
        self._done = 0

    def store(self, r0: int, r1: int, out: BlockOutputs) -> None:
        sl = slice(r0 * self.nx, r1 * self.nx)
        for full, part in zip(self.block, out):
            if full is not None:
                full[..., sl] = part

    def store_with_progress(self, progress: ProgressCallback | None, ramp: Ramp):
        total = ramp.ny * ramp.nx

        def store(r0: int, r1: int, out: BlockOutputs) -> None:
            self.store(r0, r1, out)
            with self._lock:
                self._done += (r1 - r0) * self.nx
                done = self._done
            if progress is not None:
                progress(done, total)

        return store

    def note_first_group(self, groupdq: np.ndarray) -> None:
        """Record whether a block (groupdq ``(nints, ngroups, npix)``) has any pixel whose
        first fitted group is not saturated (spec 3.5: all saturated means no products)."""
        if not first_group_saturated(groupdq, self.fp.g_first):
            self.all_first_saturated = False

    def result(self, backend: str, elapsed: float, meta: dict) -> RampFitResult:
        fp, ny, nx, b = self.fp, self.ny, self.nx, self.block
        rate = RateProduct(
            data=b.rate_out[0].reshape(ny, nx),
            err=b.rate_out[3].reshape(ny, nx),
            dq=b.rate_dq.reshape(ny, nx),
            var_poisson=b.rate_out[1].reshape(ny, nx),
            var_rnoise=b.rate_out[2].reshape(ny, nx),
            meta=dict(meta),
        )
        rateints = RateProduct(
            data=b.ints_out[0].reshape(fp.nints, ny, nx),
            err=b.ints_out[3].reshape(fp.nints, ny, nx),
            dq=b.ints_dq.reshape(fp.nints, ny, nx),
            var_poisson=b.ints_out[1].reshape(fp.nints, ny, nx),
            var_rnoise=b.ints_out[2].reshape(fp.nints, ny, nx),
            meta=dict(meta),
        )
        fitopt = None
        if fp.save_opt:
            nsegs = int(b.counts[0].max(initial=0))
            ncrs = int(b.counts[1].max(initial=0))
            shape4 = (fp.nints, -1, ny, nx)
            planes = [np.ascontiguousarray(b.opt_out[i, :, :nsegs].reshape(shape4)) for i in range(7)]
            fitopt = FitOptProduct(
                slope=planes[0], sigslope=planes[1], var_poisson=planes[2], var_rnoise=planes[3],
                yint=planes[4], sigyint=planes[5], weights=planes[6],
                pedestal=b.pedestal.reshape(fp.nints, ny, nx),
                crmag=np.ascontiguousarray(b.crmag[:, :ncrs].reshape(fp.nints, ncrs, ny, nx)),
                meta=dict(meta),
            )
        return RampFitResult(rate=rate, rateints=rateints, fitopt=fitopt, backend=backend, elapsed_s=elapsed,
                             meta=meta)


def _load_block(ramp: Ramp, r0: int, r1: int, gain: np.ndarray, sigma_r: np.ndarray,
                dark: np.ndarray) -> BlockInputs:
    """Read rows ``[r0, r1)`` of the exposure as one block of pixels."""
    blk = ramp.block(r0, r1)
    npix = (r1 - r0) * ramp.nx
    return BlockInputs(
        data=blk.data.reshape(ramp.nints, ramp.ngroups, npix),
        groupdq=blk.groupdq.reshape(ramp.nints, ramp.ngroups, npix),
        pixeldq=blk.pixeldq.reshape(npix),
        gain=np.ascontiguousarray(gain[r0:r1]).reshape(npix),
        sigma_r=np.ascontiguousarray(sigma_r[r0:r1]).reshape(npix),
        dark=np.ascontiguousarray(dark[r0:r1]).reshape(npix),
        zeroframe=None if blk.zeroframe is None else blk.zeroframe.reshape(ramp.nints, npix),
    )


def _blocks(ramp: Ramp, rows: int, gain: np.ndarray, sigma_r: np.ndarray, dark: np.ndarray,
            outputs: _ExposureOutputs) -> Iterator[tuple[int, int, Callable[[], BlockInputs]]]:
    """``(row_start, row_stop, load)`` for each row block; ``load`` reads the block."""

    def loader(r0: int, r1: int) -> Callable[[], BlockInputs]:
        def load() -> BlockInputs:
            inputs = _load_block(ramp, r0, r1, gain, sigma_r, dark)
            outputs.note_first_group(inputs.groupdq)
            return inputs

        return load

    for r0 in range(0, ramp.ny, rows):
        yield r0, min(r0 + rows, ramp.ny), loader(r0, min(r0 + rows, ramp.ny))


#: Exposures with at least this many samples are fitted in worker processes (where the
#: platform forks): numpy's many short calls hold the GIL often enough that two threads
#: gain only ~30%, two processes ~90% (1x10x1024x1024 on two cores).
PROCESS_MIN_SAMPLES = 1 << 22

# What workers fit, by job id: registered before the workers fork (so they inherit it) and
# removed when the fit ends. Keyed, so that concurrent ramp_fit calls never share a job.
_CPU_JOBS: dict[int, dict] = {}
_JOB_IDS = itertools.count()


def _fit_rows(job_id: int, r0: int, r1: int) -> tuple[int, int, BlockOutputs, bool]:
    """Fit rows ``[r0, r1)`` of job ``job_id``, in cache-sized pixel slices."""
    job = _CPU_JOBS[job_id]
    fp = job["fp"]
    inputs = _load_block(job["ramp"], r0, r1, job["gain"], job["sigma_r"], job["dark"])
    npix = inputs.data.shape[2]
    out = BlockOutputs.allocate(fp, npix)
    step = job["pixels_per_slice"]
    for p0 in range(0, npix, step):
        cols = slice(p0, min(p0 + step, npix))
        ramp_fit_block(fp, *(None if a is None else a[..., cols] for a in inputs), job["table"],
                       *(None if a is None else a[..., cols] for a in out))
    return r0, r1, out, first_group_saturated(inputs.groupdq, fp.g_first)


def _fit_cpu(fp: FitParams, ramp: Ramp, gain: np.ndarray, sigma_r: np.ndarray, dark: np.ndarray,
             table: np.ndarray, outputs: _ExposureOutputs, budget: int | None,
             progress: ProgressCallback | None) -> None:
    """Fit row blocks with the numpy fallback, one block per core at a time.

    Large exposures use forked worker processes, which inherit the exposure without a
    copy (a memory map, or pages shared copy-on-write) and send back only the outputs;
    small ones, and platforms that cannot fork, use threads.
    """
    workers = cpu_workers()
    budget = DEFAULT_CPU_MEMORY if budget is None else budget
    per_pixel = fp.nints * ramp.ngroups * CPU_BYTES_PER_SAMPLE
    rows_by_memory = rows_per_block(ramp.ny, ramp.nx, per_pixel * workers, budget)
    rows_by_cache = cache_block(fp.nints * ramp.ngroups * ramp.nx)
    rows = min(rows_by_memory, rows_by_cache)
    store = outputs.store_with_progress(progress, ramp)
    # Rows are the unit of reading; a row of a long time series is still too big for the
    # cache, so each row block is fitted in cache-sized pixel slices.
    job_id = next(_JOB_IDS)
    _CPU_JOBS[job_id] = dict(fp=fp, ramp=ramp, gain=gain, sigma_r=sigma_r, dark=dark, table=table,
                             pixels_per_slice=cache_block(fp.nints * ramp.ngroups))
    ranges = [(r0, min(r0 + rows, ramp.ny)) for r0 in range(0, ramp.ny, rows)]

    def finish(result: tuple[int, int, BlockOutputs, bool]) -> None:
        r0, r1, out, first_saturated = result
        if not first_saturated:
            outputs.all_first_saturated = False
        store(r0, r1, out)

    try:
        if workers == 1 or len(ranges) == 1:
            for r0, r1 in ranges:
                finish(_fit_rows(job_id, r0, r1))
            return
        samples = fp.nints * ramp.ngroups * ramp.ny * ramp.nx
        # Daemonic processes (Dask's workers) may not have children: they use threads.
        if (samples >= PROCESS_MIN_SAMPLES and "fork" in multiprocessing.get_all_start_methods()
                and not multiprocessing.current_process().daemon):
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpucal-rampfit")
        with pool:
            in_flight = []
            for r0, r1 in ranges:
                in_flight.append(pool.submit(_fit_rows, job_id, r0, r1))
                if len(in_flight) >= 2 * workers:
                    finish(in_flight.pop(0).result())
            for future in in_flight:
                finish(future.result())
    finally:
        del _CPU_JOBS[job_id]
