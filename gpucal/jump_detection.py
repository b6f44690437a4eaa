"""Jump (cosmic-ray) detection: the two-point-difference method of stcal 1.20.

:func:`detect_jumps` prepares the exposure-wide decisions (spec ``jump.md`` sections 3
and 4: bad-gain pixel flags, after-jump thresholds, which primary-detection path runs),
then makes two passes over row blocks:

1. the per-pixel kernel ``two_point_kernel`` (``gpucal/kernels/jump.cu``) or its numpy
   twin :func:`cpu_fallback.jump.two_point_block`: primary JUMP_DET flags and per-group
   marks for the second pass;
2. the gather kernel ``neighbour_kernel`` / :func:`cpu_fallback.jump.neighbour_block`:
   four-neighbour flagging (needs a one-row halo, so it runs after pass 1 has finished
   for every row), after-jump flagging and the final JUMP_DET clean-up.

The multi-integration sigma-clipping mode (5.3) runs astropy's ``sigma_clip`` on the CPU
for both backends, between the passes. Snowball expansion (``expand_large_events``) runs
afterwards on the CPU for both backends (:mod:`gpucal.snowballs`), and so does MIRI shower
flagging (``find_showers``, :mod:`gpucal.showers`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cpu_fallback.jump import (
    MODE_ITERATIVE,
    MODE_NONE,
    MODE_SINGLE_PASS,
    JumpParams,
    clear_jump_conflicts,
    neighbour_block,
    sigma_clip_block,
    two_point_block,
)
from gpucal.backend import resolve_backend
from gpucal.chunking import DEFAULT_CPU_MEMORY, cache_block, cpu_workers, parse_memory, rows_per_block
from gpucal.progress import ProgressCallback
from gpucal.dq import DO_NOT_USE, JUMP_DET, NO_GAIN_VALUE, SATURATED
from gpucal.errors import InputError
from gpucal.ramp import Ramp

log = logging.getLogger(__name__)

#: Working bytes per sample of the numpy fallback (electrons, differences, sorts, flags).
CPU_BYTES_PER_SAMPLE = 64


def detect_jumps(
    ramp: Ramp | str | os.PathLike,
    gain: np.ndarray | str | os.PathLike,
    readnoise: np.ndarray | str | os.PathLike,
    *,
    backend: str | None = None,
    rejection_threshold: float = 4.0,
    three_group_rejection_threshold: float = 6.0,
    four_group_rejection_threshold: float = 5.0,
    flag_4_neighbors: bool = True,
    max_jump_to_flag_neighbors: float = 1000.0,
    min_jump_to_flag_neighbors: float = 10.0,
    after_jump_flag_dn1: float = 0.0,
    after_jump_flag_time1: float = 0.0,
    after_jump_flag_dn2: float = 0.0,
    after_jump_flag_time2: float = 0.0,
    minimum_groups: int = 3,
    minimum_sigclip_groups: int = 100,
    only_use_ints: bool = True,
    min_diffs_single_pass: int = 10,
    expand_large_events: bool = False,
    min_sat_area: float = 1.0,
    min_jump_area: float = 5.0,
    expand_factor: float = 2.0,
    sat_required_snowball: bool = True,
    min_sat_radius_extend: float = 2.5,
    sat_expand: float = 2.0,
    edge_size: int = 25,
    mask_snowball_core_next_int: bool = True,
    snowball_time_masked_next_int: float = 4000.0,
    max_extended_radius: float = 200.0,
    find_showers: bool = False,
    extend_snr_threshold: float = 1.2,
    extend_min_area: float = 90.0,
    extend_inner_radius: float = 1.0,
    extend_outer_radius: float = 2.6,
    extend_ellipse_expand_ratio: float = 1.1,
    time_masked_after_shower: float = 15.0,
    max_shower_amplitude: float = 4.0,
    max_memory: int | str | None = None,
    max_device_memory: int | str | None = None,
    progress: ProgressCallback | None = None,
) -> Ramp:
    """Flag cosmic-ray jumps in every pixel ramp (JUMP_DET in the group DQ).

    The algorithm and its results are stcal 1.20's ``detect_jumps_data`` as jwst's
    JumpStep runs it in one process: per pixel, first differences in electrons are
    compared with their median and expected noise (iteratively, clipping the largest
    outlier; or in one pass for ramps with >= 11 usable groups; or by sigma clipping
    across integrations when there are >= ``minimum_sigclip_groups`` integrations).
    Neighbours of large jumps and groups after jumps can be flagged too.

    Parameters
    ----------
    ramp : Ramp or path
        The exposure; it is never modified.
    gain : ndarray or path
        Gain (e/DN), shape ``(ny, nx)``, or a GAIN reference file. NaN or non-positive
        gain flags the pixel NO_GAIN_VALUE | DO_NOT_USE in the pixel DQ.
    readnoise : ndarray or path
        CDS read noise (DN), shape ``(ny, nx)``, or a READNOISE reference file.
    backend : {"gpu", "cpu", "auto"}, optional
        Where to run; default :func:`gpucal.get_backend`.
    rejection_threshold, three_group_rejection_threshold, four_group_rejection_threshold
        Sigma thresholds for >= 4, exactly 2 and exactly 3 usable differences.
    flag_4_neighbors, max_jump_to_flag_neighbors, min_jump_to_flag_neighbors
        Also flag the four neighbours of jumps whose significance is strictly between
        the two limits.
    after_jump_flag_dn1, after_jump_flag_time1, after_jump_flag_dn2, after_jump_flag_time2
        Flag the groups within ``time`` seconds after a jump of at least ``dn`` DN.
    minimum_groups
        Accepted for compatibility; like stcal in a single process the gate is 3 groups.
    minimum_sigclip_groups, only_use_ints
        Sigma clipping across integrations runs when there are at least this many
        integrations (``only_use_ints``) or usable groups in all.
    min_diffs_single_pass
        Ramps with at least this many usable differences use the single pass.
    expand_large_events, min_sat_area, min_jump_area, expand_factor, sat_required_snowball,
    min_sat_radius_extend, sat_expand, edge_size, mask_snowball_core_next_int,
    snowball_time_masked_next_int, max_extended_radius
        Snowball expansion (:mod:`gpucal.snowballs`, on the CPU for both backends; needs
        scikit-image), with jwst JumpStep's parameters and defaults.
    find_showers, extend_snr_threshold, extend_min_area, extend_inner_radius, extend_outer_radius,
    extend_ellipse_expand_ratio, time_masked_after_shower, max_shower_amplitude
        MIRI shower flagging (:mod:`gpucal.showers`, on the CPU for both backends; needs
        scikit-image), with jwst JumpStep's parameters and defaults; ``max_extended_radius``
        limits shower ellipses too.
    max_memory : int or str, optional
        Host memory budget for the working set (bytes or e.g. ``"2GB"``; default 2 GiB). On
        the GPU it bounds the blocks' host copies and pinned staging buffers.
    max_device_memory : int or str, optional
        GPU only: device memory for every block in flight at once (default 70 % of the free
        memory of the current device, never more than is free); see :mod:`gpucal.gpu.budget`.
    progress : callable, optional
        ``progress(done_pixels, total_pixels)`` after each block of each pass (the
        total counts both passes).

    Returns
    -------
    Ramp
        A new ramp with the same data, the new group DQ and pixel DQ. ``meta`` gains
        ``JUMPNPRI`` (number of primary JUMP_DET samples after section 5, or -99 when
        detection was skipped for too few usable groups), ``PRIMECRS`` (jwst's primary
        cosmic-ray rate, events per 1000 s per pixel, when defined) and ``S_JUMP``.
    """
    start_time = time.perf_counter()
    ramp = ramp if isinstance(ramp, Ramp) else Ramp.from_fits(ramp)
    from gpucal.ramp_fitting import _reference_array

    gain_2d = _reference_array(gain, "gain", ramp)
    readnoise_2d = _reference_array(readnoise, "readnoise", ramp)
    _check_parameters(locals())
    shower = None
    if find_showers:
        from gpucal.showers import ShowerParams

        shower = ShowerParams(
            snr_threshold=float(extend_snr_threshold), min_area=float(extend_min_area),
            inner_radius=float(extend_inner_radius), outer_radius=float(extend_outer_radius),
            expand_ratio=float(extend_ellipse_expand_ratio),
            groups_after=int(time_masked_after_shower // ramp.group_time),
            max_amplitude=float(max_shower_amplitude) * ramp.group_time,
            max_extended_width=2 * max_extended_radius, nframes=int(ramp.nframes),
            minimum_sigclip_groups=int(minimum_sigclip_groups))
    snowball = None
    if expand_large_events:
        from gpucal.snowballs import SnowballParams

        snowball = SnowballParams(
            min_sat_area=float(min_sat_area), min_jump_area=float(min_jump_area), expand_factor=float(expand_factor),
            sat_required_snowball=bool(sat_required_snowball), min_sat_radius_extend=float(min_sat_radius_extend),
            sat_expand=2 * sat_expand, edge_size=int(edge_size), mask_persist_next_int=bool(mask_snowball_core_next_int),
            persist_groups=int(snowball_time_masked_next_int // ramp.group_time),
            max_extended_width=2 * max_extended_radius)
    name = resolve_backend(backend)
    budget = parse_memory(max_memory)
    max_device_memory = parse_memory(max_device_memory)
    nints, ngroups, ny, nx = ramp.shape

    if ngroups <= 2:
        log.warning("jump detection skipped: %d groups per integration (needs at least 3)", ngroups)
        return _new_ramp(ramp, np.array(ramp.groupdq, dtype=np.uint8, copy=True),
                         np.array(ramp.pixeldq, dtype=np.uint32, copy=True), None)

    # section 3: pixel DQ for bad gain, electrons-scale constants
    pixeldq = np.array(ramp.pixeldq, dtype=np.uint32, copy=True)
    bad_gain = (gain_2d <= 0.0) | np.isnan(gain_2d)
    pixeldq[bad_gain] |= np.uint32(NO_GAIN_VALUE | DO_NOT_USE)
    rn_e = readnoise_2d * gain_2d
    rn2 = rn_e * rn_e
    with np.errstate(all="ignore"):
        median_gain = np.nanmedian(gain_2d) if not np.all(np.isnan(gain_2d)) else np.float32(np.nan)
    e1 = np.float32(np.float32(after_jump_flag_dn1) * median_gain)
    e2 = np.float32(np.float32(after_jump_flag_dn2) * median_gain)
    n1 = int(after_jump_flag_time1 // ramp.group_time)
    n2 = int(after_jump_flag_time2 // ramp.group_time)

    # section 4: path selection from frame-wide DO_NOT_USE planes
    all_dnu = _all_dnu_planes(ramp)
    flagged = all_dnu.sum(axis=1)
    min_usable = ngroups - int(flagged.max())
    total_groups = nints * ngroups - int(flagged.sum())
    clip = (only_use_ints and nints >= minimum_sigclip_groups) or (
        not only_use_ints and total_groups >= minimum_sigclip_groups)
    skipped = min_usable < 3 and not clip
    if skipped or clip:
        mode = MODE_NONE
    elif min_usable - 1 >= min_diffs_single_pass:
        mode = MODE_SINGLE_PASS
    else:
        mode = MODE_ITERATIVE
    fp = JumpParams(
        nints=nints, ngroups=ngroups, nframes=int(ramp.nframes), mode=mode,
        rejection_threshold=float(rejection_threshold),
        three_group_rejection_threshold=float(three_group_rejection_threshold),
        four_group_rejection_threshold=float(four_group_rejection_threshold),
        min_jump_to_flag_neighbors=float(min_jump_to_flag_neighbors),
        max_jump_to_flag_neighbors=float(max_jump_to_flag_neighbors),
        after_jump_e1=float(e1), after_jump_e2=float(e2),
        flag_4_neighbors=bool(flag_4_neighbors), after_jump_n1=n1, after_jump_n2=n2,
    )

    gdq = np.empty((nints, ngroups, ny, nx), dtype=np.uint8)
    if skipped:
        log.info("jump detection skipped: fewer than 3 usable groups in some integration")
        rows = cache_block(nints * ngroups * nx)
        for r0 in range(0, ny, rows):
            r1 = min(ny, r0 + rows)
            gdq[:, :, r0:r1] = clear_jump_conflicts(np.asarray(ramp.groupdq[:, :, r0:r1], dtype=np.uint8))
        n_extended = _snowballs(gdq, snowball)
        if shower is not None:
            gdq, n_extended = _showers(ramp, gain_2d, rn_e, gdq, pixeldq, shower, masked=False)
        return _new_ramp(ramp, gdq, pixeldq, -99, n_extended)

    marks = np.empty_like(gdq)
    total = 2 * ny * nx
    counter = _Progress(progress, total)

    # pass 1: primary detection and marks
    if name == "gpu":
        from gpucal.gpu.budget import device_budget, host_budget, plan_rows, release_pinned_pool
        from gpucal.gpu.jump import detect_blocks_gpu, two_point_cost

        device, host = device_budget(max_device_memory), host_budget(budget)
        rows = plan_rows(ny, nx, two_point_cost(fp), device=device, host=host)
        stage1 = list(_stage1_blocks(ramp, rows, gain_2d, rn2))
        try:
            detect_blocks_gpu(fp, stage1, gdq, marks, counter.add)
        finally:
            release_pinned_pool()
    else:
        rows = _cpu_rows(fp, ny, nx, budget)
        _stage1_cpu(fp, ramp, rows, gain_2d, rn2, gdq, marks, counter.add)

    if clip:
        _sigma_clip(fp, ramp, gain_2d, gdq, only_use_ints)
    n_primary = int(np.count_nonzero(gdq & np.uint8(JUMP_DET)))

    # pass 2: neighbours, after-jump flags, clean-up (one-row halo)
    out = np.empty_like(gdq)
    if name == "gpu":
        from gpucal.gpu.jump import neighbour_blocks_gpu, neighbour_cost

        rows = plan_rows(ny, nx, neighbour_cost(fp), device=device, host=host, halo=1, in_flight=1)
        try:
            neighbour_blocks_gpu(fp, gdq, marks, out, rows, counter.add)
        finally:
            release_pinned_pool()
    else:
        rows = _cpu_rows(fp, ny, nx, budget)
        _stage2_cpu(fp, gdq, marks, out, rows, counter.add)

    n_extended = _snowballs(out, snowball)
    if shower is not None:
        out, n_extended = _showers(ramp, gain_2d, rn_e, out, pixeldq, shower, masked=True)
    elapsed = time.perf_counter() - start_time
    log.debug("detect_jumps %s on %s: %.2f s, %.1f Msamples/s", ramp.shape, name, elapsed,
              nints * ngroups * ny * nx / elapsed / 1e6)
    return _new_ramp(ramp, out, pixeldq, n_primary, n_extended)


def _showers(ramp: Ramp, gain: np.ndarray, rn_e: np.ndarray, gdq: np.ndarray, pixeldq: np.ndarray, shower,
             masked: bool) -> tuple[np.ndarray, int]:
    """MIRI showers on the whole exposure (CPU, both backends).

    stcal hands shower flagging the electron cube as primary detection left it: NaN in the
    groups flagged DO_NOT_USE or SATURATED on input, unless detection was skipped.
    """
    from gpucal.showers import flag_showers

    blk = ramp.block(0, ramp.ny)
    electrons = blk.data * gain[None, None]
    if masked:
        electrons[(blk.groupdq & np.uint8(DO_NOT_USE | SATURATED)) != 0] = np.nan
    out, count = flag_showers(electrons, gdq, pixeldq, rn_e, shower)
    log.info("showers: %d", count)
    return out, count


def _snowballs(gdq: np.ndarray, snowball) -> int | None:
    if snowball is None:
        return None
    from gpucal.snowballs import flag_snowballs

    count = flag_snowballs(gdq, snowball)
    log.info("snowballs: %d", count)
    return count


def _check_parameters(args: dict) -> None:
    for key in ("rejection_threshold", "three_group_rejection_threshold", "four_group_rejection_threshold",
                "max_jump_to_flag_neighbors", "min_jump_to_flag_neighbors", "after_jump_flag_dn1",
                "after_jump_flag_time1", "after_jump_flag_dn2", "after_jump_flag_time2"):
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not math.isfinite(float(value)):
            raise InputError(f"{key} must be a finite number, got {value!r}")
        if key.startswith("after_jump_flag_time") and value < 0:
            raise InputError(f"{key} must be >= 0 seconds, got {value!r}")
    for key in ("rejection_threshold", "three_group_rejection_threshold", "four_group_rejection_threshold"):
        if args[key] <= 0:
            raise InputError(f"{key} must be > 0, got {args[key]!r}")
    for key in ("min_sat_area", "min_jump_area", "expand_factor", "min_sat_radius_extend", "sat_expand",
                "snowball_time_masked_next_int", "max_extended_radius", "extend_snr_threshold", "extend_min_area",
                "extend_inner_radius", "extend_outer_radius", "extend_ellipse_expand_ratio",
                "time_masked_after_shower", "max_shower_amplitude"):
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not math.isfinite(float(value)) or value < 0:
            raise InputError(f"{key} must be a finite number >= 0, got {value!r}")
    for key in ("minimum_groups", "minimum_sigclip_groups", "min_diffs_single_pass", "edge_size"):
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(f"{key} must be a non-negative integer, got {value!r}")


def _new_ramp(ramp: Ramp, groupdq: np.ndarray, pixeldq: np.ndarray, n_primary: int | None,
              n_extended: int | None = None) -> Ramp:
    meta = dict(ramp.meta)
    if n_extended is not None:
        meta["JUMPNEXT"] = int(n_extended)
    if n_primary is None:
        meta["S_JUMP"] = "SKIPPED"
    else:
        meta["S_JUMP"] = "COMPLETE"
        meta["JUMPNPRI"] = int(n_primary)
        # jwst JumpStep: rate per 1000 s per pixel over the groups that are not DO_NOT_USE everywhere
        nints, ngroups, ny, nx = ramp.shape
        t_used = nints * ngroups - nints - int(_all_dnu_planes_array(groupdq).sum())
        if t_used >= 1:
            meta["PRIMECRS"] = 1000.0 * n_primary / (ramp.group_time * t_used * ny * nx)
    return Ramp(ramp.data, groupdq, pixeldq, group_time=ramp.group_time, frame_time=ramp.frame_time,
                nframes=ramp.nframes, groupgap=ramp.groupgap, drop_frames1=ramp.drop_frames1,
                zeroframe=ramp.zeroframe, meta=meta)


def _all_dnu_planes(ramp: Ramp) -> np.ndarray:
    """(nints, ngroups) booleans: the group is DO_NOT_USE in every pixel (section 4)."""
    return _all_dnu_planes_array(ramp.groupdq)


def _all_dnu_planes_array(groupdq) -> np.ndarray:
    nints, ngroups, ny, nx = groupdq.shape
    result = np.ones((nints, ngroups), dtype=bool)
    rows = cache_block(nints * ngroups * nx)
    for r0 in range(0, ny, rows):
        q = np.asarray(groupdq[:, :, r0:r0 + rows])
        result &= ((q & np.uint8(DO_NOT_USE)) != 0).all(axis=(2, 3))
    return result


class _Progress:
    def __init__(self, progress: ProgressCallback | None, total: int):
        self.progress, self.total, self.done = progress, total, 0
        self._lock = threading.Lock()

    def add(self, npix: int) -> None:
        with self._lock:
            self.done += npix
            done = self.done
        if self.progress is not None:
            self.progress(done, self.total)


def _cpu_rows(fp: JumpParams, ny: int, nx: int, budget: int | None) -> int:
    threads = cpu_workers()
    budget = DEFAULT_CPU_MEMORY if budget is None else budget
    per_pixel = fp.nints * fp.ngroups * CPU_BYTES_PER_SAMPLE
    rows_by_memory = rows_per_block(ny, nx, per_pixel * threads, budget)
    rows_by_cache = cache_block(fp.nints * fp.ngroups * nx)
    return min(rows_by_memory, rows_by_cache)


def _stage1_blocks(ramp: Ramp, rows: int, gain: np.ndarray, rn2: np.ndarray):
    """``(r0, r1, load)`` per row block; ``load()`` gives (data, groupdq, gain, rn2) flattened."""
    nints, ngroups, ny, nx = ramp.shape

    def loader(r0, r1):
        def load():
            blk = ramp.block(r0, r1)
            npix = (r1 - r0) * nx
            return (blk.data.reshape(nints, ngroups, npix), blk.groupdq.reshape(nints, ngroups, npix),
                    np.ascontiguousarray(gain[r0:r1]).reshape(npix), np.ascontiguousarray(rn2[r0:r1]).reshape(npix))
        return load

    for r0 in range(0, ny, rows):
        r1 = min(r0 + rows, ny)
        yield r0, r1, loader(r0, r1)


def _stage1_cpu(fp, ramp, rows, gain, rn2, gdq, marks, add) -> None:
    nints, ngroups, ny, nx = ramp.shape

    def work(item):
        r0, r1, load = item
        data, q, g, r = load()
        npix = data.shape[2]
        q_out = np.empty_like(q)
        m_out = np.empty_like(q)
        med = np.empty(npix)
        sig = np.empty(npix)
        two_point_block(fp, data, q, g, r, q_out, m_out, med, sig)
        gdq[:, :, r0:r1] = q_out.reshape(nints, ngroups, r1 - r0, nx)
        marks[:, :, r0:r1] = m_out.reshape(nints, ngroups, r1 - r0, nx)
        add(npix)

    _run_threads(work, list(_stage1_blocks(ramp, rows, gain, rn2)))


def halo_window(r0: int, r1: int, ny: int) -> tuple[int, int, int]:
    """Rows ``[h0, h1)`` to read for output rows ``[r0, r1)``, and the output's first row in them."""
    h0 = max(0, r0 - 1)
    h1 = min(ny, r1 + 1)
    return h0, h1, r0 - h0


def _stage2_cpu(fp, gdq, marks, out, rows, add) -> None:
    nints, ngroups, ny, nx = gdq.shape

    def work(r0):
        r1 = min(r0 + rows, ny)
        h0, h1, top = halo_window(r0, r1, ny)
        shape_in = (nints, ngroups, (h1 - h0) * nx)
        q_in = np.ascontiguousarray(gdq[:, :, h0:h1]).reshape(shape_in)
        m_in = np.ascontiguousarray(marks[:, :, h0:h1]).reshape(shape_in)
        q_out = np.empty((nints, ngroups, (r1 - r0) * nx), dtype=np.uint8)
        neighbour_block(fp, q_in, m_in, q_out, nx, top, r1 - r0)
        out[:, :, r0:r1] = q_out.reshape(nints, ngroups, r1 - r0, nx)
        add((r1 - r0) * nx)

    _run_threads(work, list(range(0, ny, rows)))


def _run_threads(work, items) -> None:
    threads = cpu_workers()
    if threads == 1 or len(items) == 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(work, items):
            pass


def _sigma_clip(fp: JumpParams, ramp: Ramp, gain: np.ndarray, gdq: np.ndarray, only_use_ints: bool) -> None:
    """Section 5.3 over row blocks, then the frame-wide reset of all-JUMP planes."""
    nints, ngroups, ny, nx = ramp.shape
    log.info("jump detection by sigma clipping across %d integrations", nints)
    rows = cache_block(nints * ngroups * nx)
    for r0 in range(0, ny, rows):
        r1 = min(r0 + rows, ny)
        blk = ramp.block(r0, r1)
        npix = (r1 - r0) * nx
        shape = (nints, ngroups, npix)
        q = np.ascontiguousarray(gdq[:, :, r0:r1]).reshape(shape)
        sigma_clip_block(fp, blk.data.reshape(shape), blk.groupdq.reshape(shape),
                         np.ascontiguousarray(gain[r0:r1]).reshape(npix), q, only_use_ints)
        gdq[:, :, r0:r1] = q.reshape(nints, ngroups, r1 - r0, nx)
    jump_or_dnu = np.uint8(JUMP_DET | DO_NOT_USE)
    for i in range(nints):
        for g in range(ngroups):
            plane = gdq[i, g]
            if np.all((plane & jump_or_dnu) != 0):
                plane[plane == np.uint8(JUMP_DET)] = 0
