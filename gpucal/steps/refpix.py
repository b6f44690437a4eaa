"""Reference-pixel correction step, as jwst 3.0.0 ``refpix`` with the median algorithm (spec 4.6).

Design: the statistics (sigma-clipped means of the top/bottom or left/right reference
pixels, running medians of the side columns) are computed on the host with numpy in
``gpucal/refpix_stats.py`` for both backends -- they touch only the 4-pixel border and must
follow numpy's reduction order to match jwst. The corrections are applied to whole planes
with the same array code on numpy or CuPy (``gpucal.backend.array_module``), a few whole
planes at a time (refpix needs whole planes; never row blocks). No custom kernel: the per-plane work is a broadcast
subtraction. A Ramp already on the GPU (the detector1 chain) stays there: only the border
pixels the statistics need come to the host.

Precision follows jwst exactly, including its reused work buffer: with side reference pixels,
the first plane of the exposure has its top/bottom means and subtraction in float32 and every
later plane (and the zero frame) works in float64; results are rounded to float32 once.

Modes: NIR full frame; NIR subarrays (NOUTPUTS = 4: the full-frame algorithm on the
subarray's place in the detector; otherwise the single-output odd/even-column means of the
REFERENCE_PIXEL pixels); MIRI full frame (odd/even rows). MIRI subarrays, subarrays outside
the detector -> SKIPPED. Not ported: SIRS, IRS2, multistripe readouts (raise).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from .. import dq as dqflags
from ..backend import array_module, on_device, resolve_backend, to_host
from ..chunking import parse_memory
from ..errors import InputError
from ..ramp import Ramp
from ..refpix_stats import average_with_none, clipped_mean, combine_with_nans, running_median
from ..refs.subarray import subarray_window
from ._derive import copy_ramp, like, with_data

log = logging.getLogger(__name__)

NIR_FULL = 2048
MIRI_ROWS, MIRI_COLS = 1024, 1032
NRS_EDGELESS = ("SUB512", "SUB512S", "SUB32")
AMP_WIDTH = 512
#: Planes (groups) corrected at a time, at most: bounds the float64 work arrays.
PLANES_PER_CHUNK = 8
#: Host bytes per pixel of one plane in flight (float32 copy, float64 work, float32 result and
#: its science-frame copy); ``max_memory`` divided by a plane's share sets the planes per chunk.
BYTES_PER_PLANE_PIXEL = 24


# ---------------------------------------------------------------- frames
def to_detector(a, fastaxis: int, slowaxis: int):
    """``science_detector_frame_transform`` on the last two axes (views; works for CuPy)."""
    if abs(fastaxis) == 1:
        return a[..., ::int(np.sign(slowaxis)), ::int(np.sign(fastaxis))]
    return a[..., ::int(np.sign(fastaxis)), ::int(np.sign(slowaxis))].swapaxes(-2, -1)


def to_science(a, fastaxis: int, slowaxis: int):
    """``detector_science_frame_transform``: the inverse of :func:`to_detector`."""
    if abs(fastaxis) == 1:
        return a[..., ::int(np.sign(slowaxis)), ::int(np.sign(fastaxis))]
    return a.swapaxes(-2, -1)[..., ::int(np.sign(fastaxis)), ::int(np.sign(slowaxis))]


# ---------------------------------------------------------------- NIR
class _NirGeometry:
    """Where the exposure lies in the detector frame, and its DQ there."""

    def __init__(self, ramp: Ramp, x0: int, y0: int, fast: int, slow: int, subarray: bool):
        full = np.zeros((NIR_FULL, NIR_FULL), dtype=np.uint32)
        pdq = to_host(ramp.pixeldq).astype(np.uint32, copy=False)
        if subarray:
            edge = dqflags.DO_NOT_USE | dqflags.REFERENCE_PIXEL
            full[:4, :] = edge
            full[-4:, :] = edge
            full[4:-4, :4] = edge
            full[4:-4, -4:] = edge
            full[y0:y0 + ramp.ny, x0:x0 + ramp.nx] = pdq
            if str(ramp.meta.get("SUBARRAY", "")).strip().upper() in NRS_EDGELESS:
                full[y0:y0 + ramp.ny, x0:x0 + 4] |= dqflags.REFERENCE_PIXEL
                full[y0:y0 + ramp.ny, x0 + ramp.nx - 4:x0 + ramp.nx] |= dqflags.REFERENCE_PIXEL
        else:
            full[...] = pdq
        mark = np.zeros((NIR_FULL, NIR_FULL), dtype=bool)
        mark[y0:y0 + ramp.ny, x0:x0 + ramp.nx] = True
        dmark = to_detector(mark, fast, slow)
        rows = np.flatnonzero(dmark.any(axis=1))
        cols = np.flatnonzero(dmark.any(axis=0))
        self.r0, self.r1 = int(rows[0]), int(rows[-1]) + 1
        self.c0, self.c1 = int(cols[0]), int(cols[-1]) + 1
        self.dq_full = np.ascontiguousarray(to_detector(full, fast, slow))
        self.dq = self.dq_full[self.r0:self.r1, self.c0:self.c1]
        self.fast, self.slow = fast, slow
        # window-local indices of the reference rows / side columns
        self.bottom = np.arange(max(self.r0, 0), min(self.r1, 4)) - self.r0
        self.top = np.arange(max(self.r0, NIR_FULL - 4), min(self.r1, NIR_FULL)) - self.r0
        self.left = np.arange(max(self.c0, 0), min(self.c1, 4)) - self.c0
        self.right = np.arange(max(self.c0, NIR_FULL - 4), min(self.c1, NIR_FULL)) - self.c0
        self.columns = np.arange(self.c0, self.c1)


def _nir_offsets(g: _NirGeometry, bands: dict[str, np.ndarray], wd, odd_even: bool, siglimit: float) -> np.ndarray:
    """Top/bottom offsets per window column (0 where an amplifier is left untouched)."""
    offsets = np.zeros(len(g.columns), dtype=np.float64)
    for amp in range(4):
        in_amp = (g.columns >= amp * AMP_WIDTH) & (g.columns < (amp + 1) * AMP_WIDTH)
        if not in_amp.any():
            continue
        groups = [(g.columns % 2 == p) & in_amp for p in (0, 1)] if odd_even else [in_amp]
        signals = []
        for sel in groups:
            edge = {}
            for name in ("top", "bottom"):
                rows = getattr(g, name)
                values = bands[name][:, sel].astype(wd, copy=False)
                edge[name] = clipped_mean(values, g.dq[rows][:, sel], siglimit) if len(rows) else None
            signals.append(average_with_none(edge["top"], edge["bottom"]))
        if any(s is None for s in signals):
            continue
        for sel, s in zip(groups, signals):
            offsets[sel] = np.float64(s)
    return offsets


def _nir_side(g: _NirGeometry, left: np.ndarray, right: np.ndarray, length: int) -> np.ndarray:
    ml = running_median(left, g.dq[:, g.left], g.r0, NIR_FULL, length)
    mr = running_median(right, g.dq[:, g.right], g.r0, NIR_FULL, length)
    return combine_with_nans(ml, mr)


def _nir_fullframe_planes(xp, planes, g: _NirGeometry, first_plane_f32: list, p: dict):
    """Correct detector-frame planes (n, rows, cols) of the window; returns float32 planes."""
    n = planes.shape[0]
    ix = {name: xp.asarray(getattr(g, name)) for name in ("bottom", "top", "left", "right")}
    bands = {"bottom": to_host(planes[:, ix["bottom"]]), "top": to_host(planes[:, ix["top"]])}
    sides = {"left": to_host(planes[:, :, ix["left"]]), "right": to_host(planes[:, :, ix["right"]])}
    offsets = np.zeros((n, len(g.columns)))
    side = np.zeros((n, g.r1 - g.r0))
    round_first = np.zeros(n, dtype=bool)
    for k in range(n):
        wd = np.float32 if (first_plane_f32[0] or not p["use_side_ref_pixels"]) else np.float64
        round_first[k] = wd is np.float32
        offsets[k] = _nir_offsets(g, {e: bands[e][k] for e in bands}, wd, p["odd_even_columns"], p["siglimit"])
        if p["use_side_ref_pixels"]:
            corrected = {}
            for name in ("left", "right"):
                cols = getattr(g, name)
                v = sides[name][k].astype(np.float64) - offsets[k][cols][None, :]
                corrected[name] = v.astype(np.float32) if wd is np.float32 else v
            side[k] = _nir_side(g, corrected["left"], corrected["right"], p["side_smoothing_length"])
            first_plane_f32[0] = False
    d_off = xp.asarray(offsets)
    work = planes.astype(xp.float64)
    work -= d_off[:, None, :]  # in place: the same operations, one float64 array
    if round_first.any():
        idx = xp.asarray(np.flatnonzero(round_first))
        work[idx] = work[idx].astype(xp.float32).astype(xp.float64)
    if p["use_side_ref_pixels"]:
        work -= xp.asarray(float(p["side_gain"]) * side)[:, :, None]
    return work.astype(xp.float32)


def _nir_single_output(xp, planes, g: _NirGeometry, odd_even: bool, siglimit: float):
    ref = ((g.dq & dqflags.REFERENCE_PIXEL) != 0) & ((g.dq & dqflags.DO_NOT_USE) == 0)
    if not ref.any():
        return planes, False
    n = planes.shape[0]
    rr, cc = np.nonzero(ref)
    host = to_host(planes[:, xp.asarray(rr), xp.asarray(cc)])
    absolute = cc + g.c0
    col_parity = (np.arange(g.c0, g.c1) % 2)
    offsets = np.zeros((n, g.c1 - g.c0))
    if odd_even:
        sets = {0: absolute % 2 == 0, 1: absolute % 2 == 1}
        for parity, sel in sets.items():
            if not sel.any():
                raise InputError(
                    f"refpix: the subarray has reference pixels only in {'odd' if parity == 0 else 'even'} "
                    "detector columns; jwst fails here (use odd_even_columns=False)"
                )
    for k in range(n):
        if odd_even:
            for parity in (0, 1):
                sel = absolute % 2 == parity
                m = clipped_mean(host[k, sel], np.zeros(int(sel.sum()), np.uint32), siglimit)
                offsets[k, col_parity == parity] = np.float64(m)
        else:
            m = clipped_mean(host[k], np.zeros(host.shape[1], np.uint32), siglimit)
            offsets[k] = np.float64(m)
    work = planes.astype(xp.float64)
    work -= xp.asarray(offsets)[:, None, :]
    return work.astype(xp.float32), True


# ---------------------------------------------------------------- MIRI
def _miri_groups(xp, cube, first, g0: int, state: dict, odd_even_rows: bool, siglimit: float):
    """Groups ``g0 .. g0 + len(cube)`` of one MIRI integration (n, 1024, 1032); returns float32.

    ``first`` is the integration's group 0 (float64, device). Groups are corrected in order;
    once a reference value is missing (``state["bad"]``) no later group is corrected.
    """
    diff = (cube.astype(xp.float64) - first[None]).astype(xp.float32)
    n = cube.shape[0]
    host_cols = to_host(diff[:, :, xp.asarray(np.r_[0:4, 1028:1032])])
    table = np.zeros((n, 2, 4))
    for k in range(n):
        if g0 + k == 0:
            continue
        if state["bad"]:
            break
        values = {}
        for amp in range(4):
            for side, col in (("left", amp), ("right", 4 + amp)):
                column = host_cols[k, :, col]
                dq = state["dq"][:, amp if side == "left" else 1028 + amp]
                if odd_even_rows:
                    values[amp, side] = (clipped_mean(column[0::2], dq[0::2], siglimit),
                                         clipped_mean(column[1::2], dq[1::2], siglimit))
                else:
                    m = clipped_mean(column, dq, siglimit)
                    values[amp, side] = (m, m)
        if any(v is None for pair in values.values() for v in pair):
            state["bad"] = True
            break
        for amp in range(4):
            for parity in (0, 1):
                s = 0.5 * (values[amp, "left"][parity] + values[amp, "right"][parity])
                table[k, parity, amp] = np.float64(s)
    rows = np.arange(MIRI_ROWS) % 2
    cols = np.arange(MIRI_COLS) % 4
    off = table[:, rows][:, :, cols]  # (n, rows, cols)
    corrected = (diff.astype(xp.float64) - xp.asarray(off)).astype(xp.float32)
    return (corrected.astype(xp.float64) + first[None]).astype(xp.float32)


# ---------------------------------------------------------------- step
def refpix(ramp: Ramp, *, backend: str | None = None, odd_even_columns: bool = True,
           use_side_ref_pixels: bool = True, side_smoothing_length: int = 11, side_gain: float = 1.0,
           odd_even_rows: bool = True, siglimit: float = 3.0, refpix_algorithm: str = "median",
           exposure_start: bool = True, out: np.ndarray | None = None,
           max_memory: int | str | None = None) -> Ramp:
    """Reference-pixel correction, as jwst 3.0.0's ``refpix`` step (median algorithm).

    Parameters are jwst's, with its defaults. The exposure's meta needs SUBSTRT1/2, SUBSIZE1/2,
    DETECTOR (MIRI detectors start with "MIR"), for NIR FASTAXIS/SLOWAXIS and, for subarrays,
    NOUTPUTS (4 runs the full-frame algorithm) and SUBARRAY (NIRSpec edgeless subarrays).
    ``exposure_start=False`` says ``ramp`` is a later integration block of a streamed exposure:
    jwst's float32 first plane (see the module notes) belongs to the exposure's first block only.
    ``out`` (float32, ``ramp.shape``; may be ``ramp.data`` itself, e.g. a memory map: each chunk
    of planes is read before it is written) receives the corrected data, and the returned Ramp
    shares ``out`` and ``ramp``'s DQ arrays instead of copying them: the ramp is never held in
    memory whole. ``max_memory`` (bytes or e.g. ``"256MB"``) bounds the planes corrected at
    a time (:data:`BYTES_PER_PLANE_PIXEL` bytes a pixel each; at least one plane, at most
    :data:`PLANES_PER_CHUNK`); the result does not depend on it.

    Returns
    -------
    Ramp
        A new ramp (input untouched) with ``S_REFPIX`` = COMPLETE, or SKIPPED with the data
        unchanged (MIRI subarray, subarray not inside the detector).
    """
    if not isinstance(ramp, Ramp):
        raise InputError(f"ramp must be a gpucal.Ramp, got {type(ramp).__name__}")
    if refpix_algorithm != "median":
        raise InputError(f"refpix_algorithm={refpix_algorithm!r} is not supported (only 'median'; SIRS not ported)")
    if isinstance(side_smoothing_length, bool) or int(side_smoothing_length) < 1:
        raise InputError(f"side_smoothing_length must be a positive integer, got {side_smoothing_length!r}")
    if not np.isfinite(side_gain) or not np.isfinite(siglimit) or siglimit <= 0:
        raise InputError(f"side_gain must be finite and siglimit finite and > 0, got {side_gain}, {siglimit}")
    window = subarray_window(ramp.meta)
    if window is None:
        raise InputError("refpix needs SUBSTRT1/2 and SUBSIZE1/2 in the exposure's meta (jwst: subarray metadata "
                         "not found)")
    xstart, ystart, xsize, ysize = window
    if (ysize, xsize) != (ramp.ny, ramp.nx):
        raise InputError(f"SUBSIZE1={xsize} SUBSIZE2={ysize} disagree with the data's (ny, nx) = "
                         f"{(ramp.ny, ramp.nx)}")
    if ramp.meta.get("MULTISTRIPE_READS1") is not None or ramp.meta.get("MSTRPRD1") is not None:
        raise InputError("refpix: multistripe readouts are not supported")
    detector = str(ramp.meta.get("DETECTOR", "")).strip().upper()
    if not detector:
        raise InputError("refpix needs DETECTOR in the exposure's meta")
    miri = ramp.instrument == "MIRI" or detector.startswith("MIR")
    budget = parse_memory(max_memory)
    chunk = PLANES_PER_CHUNK if budget is None else \
        max(1, min(PLANES_PER_CHUNK, budget // (BYTES_PER_PLANE_PIXEL * ramp.ny * ramp.nx)))
    name = resolve_backend(backend)
    xp = array_module(name)
    device = name == "gpu" and on_device(ramp.data)
    start = time.perf_counter()

    def load(sel):
        """Planes ``ramp.data[sel]`` as float32 on the backend (a view when already on the device)."""
        if device:
            return ramp.data[sel].astype(xp.float32, copy=False)
        return xp.asarray(np.array(ramp.data[sel], dtype=np.float32))

    def store(res):
        """A corrected result in the form ``out`` holds (device arrays stay on the device)."""
        return res if device and on_device(out) else to_host(res)
    x0, y0 = xstart - 1, ystart - 1
    params = dict(odd_even_columns=bool(odd_even_columns), use_side_ref_pixels=bool(use_side_ref_pixels),
                  side_smoothing_length=int(side_smoothing_length), side_gain=float(side_gain),
                  siglimit=float(siglimit))

    if miri:
        if ramp.nx < MIRI_COLS or ramp.ny < MIRI_ROWS:
            log.info("refpix: MIRI subarray, step skipped")
            return _finish(ramp, out, None, "keep", "SKIPPED")
        given = out
        out = (xp if device else np).empty(ramp.shape, dtype=np.float32) if out is None else out
        state = {"bad": False, "dq": to_host(ramp.pixeldq).astype(np.uint32, copy=False)}
        for i in range(ramp.nints):
            first = load((i, 0)).astype(xp.float64)
            for g0 in range(0, ramp.ngroups, chunk):
                g1 = min(ramp.ngroups, g0 + chunk)
                cube = load((i, slice(g0, g1)))
                out[i, g0:g1] = store(_miri_groups(xp, cube, first, g0, state, bool(odd_even_rows),
                                                   params["siglimit"]))
        log.info("refpix: MIRI full frame %s (%s), %.2f s", ramp.shape, name, time.perf_counter() - start)
        return _finish(ramp, given, out, "keep", "COMPLETE")

    if ramp.ny == 3200 or ramp.nx == 3200:
        raise InputError("refpix: NIRSpec IRS2 readouts are not supported")
    subarray = ramp.nx < NIR_FULL or ramp.ny < NIR_FULL
    if subarray and (x0 < 0 or y0 < 0 or y0 + ysize > NIR_FULL or x0 + xsize > NIR_FULL):
        log.info("refpix: subarray does not fit in the detector, step skipped")
        return _finish(ramp, out, None, "keep", "SKIPPED")
    fast, slow = ramp.meta.get("FASTAXIS"), ramp.meta.get("SLOWAXIS")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and abs(int(v)) in (1, 2)
               for v in (fast, slow)) or abs(int(fast)) == abs(int(slow)):
        raise InputError(f"refpix needs FASTAXIS/SLOWAXIS (+-1, +-2) in the exposure's meta, got {fast}, {slow}")
    fast, slow = int(fast), int(slow)
    g = _NirGeometry(ramp, x0, y0, fast, slow, subarray)
    single = subarray and ramp.meta.get("NOUTPUTS") != 4
    first_f32 = [bool(exposure_start)]
    given = out
    out = (xp if device else np).empty(ramp.shape, dtype=np.float32) if out is None else out

    def run(planes):
        planes = to_detector(planes, fast, slow)
        if single:
            res, _ = _nir_single_output(xp, planes, g, params["odd_even_columns"], params["siglimit"])
        else:
            res = _nir_fullframe_planes(xp, planes, g, first_f32, params)
        return store(xp.ascontiguousarray(to_science(res, fast, slow)))

    for i in range(ramp.nints):
        for g0 in range(0, ramp.ngroups, chunk):
            g1 = min(ramp.ngroups, g0 + chunk)
            out[i, g0:g1] = run(load((i, slice(g0, g1))))
    zeroframe: Any = "keep"
    if ramp.zeroframe is not None and bool(ramp.meta.get("ZEROFRAM", False)):
        zxp = xp if device else np
        zf = zxp.array(ramp.zeroframe, dtype=np.float32)
        zero = zf == 0.0
        zeroframe = run(xp.asarray(zf))
        zeroframe[zero] = 0.0
    log.info("refpix: NIR %s%s %s (%s), %.2f s", "subarray" if subarray else "full frame",
             " (single output)" if single else "", ramp.shape, name, time.perf_counter() - start)
    return _finish(ramp, given, out, zeroframe, "COMPLETE")


def _finish(ramp: Ramp, given: np.ndarray | None, data: np.ndarray | None, zeroframe: Any, status: str) -> Ramp:
    """The step's Ramp: copies (``with_data``), or sharing ``given`` and the DQ arrays when ``out`` was given."""
    if given is None:
        if data is None:  # skipped: an unchanged copy
            return copy_ramp(ramp, S_REFPIX=status)
        return with_data(ramp, data, zeroframe=zeroframe, S_REFPIX=status)
    if data is None and given is not ramp.data:
        for i in range(ramp.nints):
            given[i] = ramp.data[i]
    zf = ramp.zeroframe if isinstance(zeroframe, str) else zeroframe
    return like(ramp, given, ramp.groupdq, ramp.pixeldq, zf, S_REFPIX=status)
