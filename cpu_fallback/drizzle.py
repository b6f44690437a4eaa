"""Drizzle kernels in numpy: the twin of ``gpucal/kernels/drizzle.cu``.

Spec ``resample.md`` sections 2.3, 4, 5 and 9 (design 1: emit, sort, replay). The same
functions, names and order of operations as the CUDA source, vectorised over input pixels
(``drizzle_count``, ``drizzle_emit``) and over the records of one rank inside their output
pixel (``drizzle_replay``: rank-layered replay, each layer elementwise, so the result equals
the sequential running mean). Every float32/float64 rounding point is an explicit cast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KERNEL_IDS = {"square": 0, "gaussian": 1, "point": 2, "turbo": 3, "lanczos2": 4, "lanczos3": 4}
KERNEL_SQUARE, KERNEL_GAUSSIAN, KERNEL_POINT, KERNEL_TURBO, KERNEL_LANCZOS = 0, 1, 2, 3, 4

_DBL_MAX = np.finfo(np.float64).max
_DBL_MIN = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class DrizzleConsts:
    """Kernel constants of one call (``DrizzleConsts`` in the CUDA source)."""

    kernel: int
    dh: float = 0.0
    pfo: float = 0.0
    scale: float = 0.0
    es: float = 0.0
    sdp: float = 0.0
    nlut: int = 0


def c_round(x: np.ndarray) -> np.ndarray:
    """C ``round``: half away from zero (numpy's ``round`` is half to even)."""
    t = np.trunc(x)
    return t + np.sign(x) * (np.abs(x - t) >= 0.5)


def range_lo(r: np.ndarray, n: int) -> np.ndarray:
    v = np.where(r > 0.0, r, 0.0)
    return np.where(v < n, v, n).astype(np.int64)


def range_hi(r: np.ndarray, n: int) -> np.ndarray:
    v = np.where(r < n - 1, r, float(n - 1))
    return np.where(v > -1.0, v, -1.0).astype(np.int64)


def interpolate_point(pixmap: np.ndarray, xin: np.ndarray, yin: np.ndarray):
    """Bilinear map interpolation (``interpolate_point``); returns ``(xout, yout, ok)``."""
    ny, nx = pixmap.shape[:2]
    i0 = np.clip(np.trunc(xin).astype(np.int64), 0, nx - 2)
    j0 = np.clip(np.trunc(yin).astype(np.int64), 0, ny - 2)
    x = xin - i0
    y = yin - j0
    x1 = 1.0 - x
    y1 = 1.0 - y
    p00 = pixmap[j0, i0]
    p10 = pixmap[j0, i0 + 1]
    p01 = pixmap[j0 + 1, i0]
    p11 = pixmap[j0 + 1, i0 + 1]
    xo = p00[:, 0] * x1 * y1 + p10[:, 0] * x * y1 + p01[:, 0] * x1 * y + p11[:, 0] * x * y
    yo = p00[:, 1] * x1 * y1 + p10[:, 1] * x * y1 + p01[:, 1] * x1 * y + p11[:, 1] * x * y
    return xo, yo, ~(np.isnan(xo) | np.isnan(yo))


def square_corners(pixmap: np.ndarray, i: np.ndarray, j: np.ndarray, h: float):
    """Clockwise corners ``(x (n, 4), y (n, 4), ok)`` of the shrunken pixels (``square_corners``)."""
    ny, nx = pixmap.shape[:2]
    n = i.size
    xo = np.empty((n, 4))
    yo = np.empty((n, 4))
    inner = (i > 0) & (i < nx - 2) & (j > 0) & (j < ny - 2)
    k = np.flatnonzero(inner)
    if k.size:
        ii, jj = i[k], j[k]
        fac_c = (1 - h) * (1 - h)
        fac_e = (1 - h) * h
        fac_k = h * h
        f = {}
        flat = pixmap.reshape(-1, 2)
        base = jj * nx + ii
        for b in range(3):
            for a in range(3):
                fac = fac_c if (a == 1 and b == 1) else (fac_e if (a == 1 or b == 1) else fac_k)
                p = np.take(flat, base + ((b - 1) * nx + a - 1), axis=0)  # pixmap[jj - 1 + b, ii - 1 + a]
                f[a, b] = (p[:, 0] * fac, p[:, 1] * fac)
        for c, (q0, q1, q2, q3) in enumerate((((0, 1), (1, 1), (0, 2), (1, 2)), ((1, 1), (2, 1), (1, 2), (2, 2)),
                                              ((1, 0), (2, 0), (1, 1), (2, 1)), ((0, 0), (1, 0), (0, 1), (1, 1)))):
            for comp, arr in ((0, xo), (1, yo)):
                arr[k, c] = f[q0][comp] + f[q1][comp] + f[q2][comp] + f[q3][comp]
    k = np.flatnonzero(~inner)
    if k.size:
        fi = i[k].astype(np.float64)
        fj = j[k].astype(np.float64)
        yin_hi, yin_lo = fj + h, fj - h
        xin_lo, xin_hi = fi - h, fi + h
        for c, (xi, yi) in enumerate(((xin_lo, yin_hi), (xin_hi, yin_hi), (xin_hi, yin_lo), (xin_lo, yin_lo))):
            xo[k, c], yo[k, c], _ = interpolate_point(pixmap, xi, yi)
    bad = np.isnan(xo[:, 0]) | np.isnan(yo[:, 0])
    for c in (1, 2, 3):
        bad |= np.isnan(xo[:, c]) | np.isnan(yo[:, c])
    return xo, yo, ~bad


def sgarea(x1, y1, x2, y2):
    """Signed area under each segment inside the unit square (``sgarea``), vectorised.

    Only for segments that reach the square's x range (``x1 != x2``, ``min < 1``, ``max > 0``):
    ``boxer`` settles the others (area zero). The segments crossing the square vertically are
    compacted again and computed with the reference's branch order.
    """
    dx = x2 - x1
    sgn = np.where(dx < 0.0, -1.0, 1.0)
    # x1 != x2 and neither is NaN or -0.0 (x - is never is): min/max select like the reference
    lo = np.minimum(x1, x2)
    hi = np.maximum(x1, x2)
    np.maximum(lo, 0.0, out=lo)
    np.minimum(hi, 1.0, out=hi)
    slope = y2 - y1
    slope /= dx
    ylo = lo - x1
    ylo *= slope
    ylo += y1
    yhi = hi - x1
    yhi *= slope
    yhi += y1
    above = ylo >= 1.0
    above &= yhi >= 1.0
    res = hi - lo
    res *= sgn
    # zero-area segments add an exact zero whatever its sign (boxer only tests the sum != 0)
    res *= above
    # segments crossing the square vertically (neither under it nor above it)
    under = ylo <= 0.0
    under &= yhi <= 0.0
    under |= above
    sub = np.flatnonzero(~under)
    if sub.size == 0:
        return res
    x1, y1, x2, y2, dx, s = x1[sub], y1[sub], x2[sub], y2[sub], dx[sub], sgn[sub]
    lo, hi, ylo, yhi = lo[sub], hi[sub], ylo[sub], yhi[sub]
    dy = y2 - y1
    with np.errstate(divide="ignore", invalid="ignore"):
        det = x1 * y2 - y1 * x2
        cut = det / dy
        low = ylo < 0.0
        lo = np.where(low, cut, lo)
        ylo = np.where(low, 0.0, ylo)
        low = yhi < 0.0
        hi = np.where(low, cut, hi)
        yhi = np.where(low, 0.0, yhi)
        xtop = (dx + det) / dy
        inside = s * 0.5 * (hi - lo) * (yhi + ylo)
        cross_top = s * (0.5 * (xtop - lo) * (1.0 + ylo) + hi - xtop)
        from_top = s * (0.5 * (hi - xtop) * (1.0 + yhi) + xtop - lo)
    res[sub] = np.where(ylo <= 1.0, np.where(yhi <= 1.0, inside, cross_top), from_top)
    return res


def boxer(ii: np.ndarray, jj: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Overlap of each quadrilateral with output pixel ``(ii, jj)`` (``boxer``).

    ``x, y (n, 5)``: the four corners then the first again (``pixel_geometry``), so that the
    four edges are the views ``[:, :4] -> [:, 1:]``. All ``4n`` edges are filtered at once;
    ``sgarea`` runs on the few that reach the output pixel's column, and the edge areas are
    summed in the reference's order (skipped edges add an exact zero).
    """
    n = ii.size
    px = x - (ii - 0.5)[:, None]
    py = y - (jj - 0.5)[:, None]
    x1, x2 = px[:, :4], px[:, 1:]
    reach = np.minimum(x1, x2) < 1.0
    reach &= np.maximum(x1, x2) > 0.0
    reach &= x1 != x2
    k = np.flatnonzero(reach)
    k += k >> 2  # edge index in (n, 4) -> flat index of its first corner in (n, 5)
    fx, fy = px.reshape(-1), py.reshape(-1)
    area = np.zeros((n, 4))
    area.reshape(-1)[np.flatnonzero(reach)] = sgarea(fx[k], fy[k], fx[k + 1], fy[k + 1])
    total = area[:, 0] + area[:, 1]
    total += area[:, 2]
    total += area[:, 3]
    return total


_EXP_COEFFS = (1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
               1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0)


def shared_exp(x: np.ndarray) -> np.ndarray:
    """exp(x) for x <= 0, the gaussian kernel's exponential shared with the CUDA source."""
    k = np.floor(x * 1.44269504088896338700e+00 + 0.5)
    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    p = np.full(x.shape, _EXP_COEFFS[0])
    for c in _EXP_COEFFS[1:]:
        p = p * r + c
    with np.errstate(over="ignore", under="ignore"):
        res = np.ldexp(p, np.where(x < -200.0, 0, k).astype(np.int32))
    return np.where(x < -200.0, 0.0, res)


def pixel_geometry(c: DrizzleConsts, pixmap: np.ndarray, onx: int, ony: int, i: np.ndarray, j: np.ndarray,
                   wi: np.ndarray) -> dict:
    """Output box and weight factor of each input pixel (``pixel_geometry``); empty when NaN."""
    n = i.size
    if c.kernel == KERNEL_SQUARE:
        x, y, ok = square_corners(pixmap, i, j, c.dh)
        with np.errstate(all="ignore"):
            jaco = 0.5 * ((x[:, 1] - x[:, 3]) * (y[:, 0] - y[:, 2]) - (x[:, 0] - x[:, 2]) * (y[:, 1] - y[:, 3]))
            w = wi.astype(np.float64) / jaco
        xmn = np.minimum.reduce([x[:, 0], x[:, 1], x[:, 2], x[:, 3], np.full(n, _DBL_MAX)])
        ymn = np.minimum.reduce([y[:, 0], y[:, 1], y[:, 2], y[:, 3], np.full(n, _DBL_MAX)])
        xmx = np.maximum.reduce([x[:, 0], x[:, 1], x[:, 2], x[:, 3], np.full(n, _DBL_MIN)])
        ymx = np.maximum.reduce([y[:, 0], y[:, 1], y[:, 2], y[:, 3], np.full(n, _DBL_MIN)])
        g = dict(x=np.concatenate([x, x[:, :1]], axis=1), y=np.concatenate([y, y[:, :1]], axis=1), w=w, jj0=range_lo(c_round(ymn), ony), jj1=range_hi(c_round(ymx), ony),
                 ii0=range_lo(c_round(xmn), onx), ii1=range_hi(c_round(xmx), onx))
    else:
        nx = pixmap.shape[1]
        p = pixmap.reshape(-1, 2)[j * nx + i]
        ox, oy = p[:, 0], p[:, 1]
        ok = ~(np.isnan(ox) | np.isnan(oy))
        g = dict(x=ox[:, None], y=oy[:, None], w=wi.astype(np.float64))
        with np.errstate(invalid="ignore"):
            if c.kernel == KERNEL_POINT:
                ri, rj = c_round(ox), c_round(oy)
                on = (ri >= 0.0) & (ri < onx) & (rj >= 0.0) & (rj < ony)
                ri = np.where(on, ri, 0.0).astype(np.int64)
                rj = np.where(on, rj, 0.0).astype(np.int64)
                g.update(ii0=ri, ii1=np.where(on, ri, -1), jj0=rj, jj1=np.where(on, rj, -1))
            elif c.kernel == KERNEL_LANCZOS:
                g.update(ii0=range_lo(np.floor(ox - c.pfo) + 1.0, onx), ii1=range_hi(np.floor(ox + c.pfo), onx),
                         jj0=range_lo(np.floor(oy - c.pfo) + 1.0, ony), jj1=range_hi(np.floor(oy + c.pfo), ony))
            else:
                g.update(ii0=range_lo(c_round(ox - c.pfo), onx), ii1=range_hi(c_round(ox + c.pfo), onx),
                         jj0=range_lo(c_round(oy - c.pfo), ony), jj1=range_hi(c_round(oy + c.pfo), ony))
    for key in ("ii0", "jj0"):
        g[key] = np.where(ok, g[key], 0)
    for key in ("ii1", "jj1"):
        g[key] = np.where(ok, g[key], -1)
    g["n"] = n
    return g


def box_cells(g: dict) -> np.ndarray:
    empty = (g["ii1"] < g["ii0"]) | (g["jj1"] < g["jj0"])
    return np.where(empty, 0, (g["ii1"] - g["ii0"] + 1) * (g["jj1"] - g["jj0"] + 1)).astype(np.int64)


def cell_weight(c: DrizzleConsts, g: dict, rep: np.ndarray, wi: np.ndarray, ii: np.ndarray, jj: np.ndarray,
                lut: np.ndarray) -> np.ndarray:
    """Weight ``dow`` (float32) of each record: pixel ``rep`` onto output cell ``(ii, jj)``."""
    w = g["w"][rep]
    if c.kernel == KERNEL_SQUARE:
        dover = boxer(ii, jj, g["x"][rep], g["y"][rep])
        return np.where(dover != 0.0, (dover * w).astype(np.float32), np.float32(0.0))
    if c.kernel == KERNEL_POINT:
        return wi[rep]
    fii = ii.astype(np.float64)
    fjj = jj.astype(np.float64)
    ox = g["x"][rep, 0]
    oy = g["y"][rep, 0]
    if c.kernel == KERNEL_TURBO:
        xxi, xxa = ox - c.pfo, ox + c.pfo
        yyi, yya = oy - c.pfo, oy + c.pfo
        ahi, alo = fii + 0.5, fii - 0.5
        bhi, blo = fjj + 0.5, fjj - 0.5
        dx = np.where(xxa < ahi, xxa, ahi) - np.where(xxi > alo, xxi, alo)
        dy = np.where(yya < bhi, yya, bhi) - np.where(yyi > blo, yyi, blo)
        dover = np.where((dx > 0.0) & (dy > 0.0), dx * dy, 0.0)
        pos = dover > 0.0
        dover = dover * c.scale
        return np.where(pos, (dover * w).astype(np.float32), np.float32(0.0))
    if c.kernel == KERNEL_GAUSSIAN:
        ddy = oy - fjj
        ddx = ox - fii
        r2 = ddx * ddx + ddy * ddy
        dover = c.es * shared_exp(-r2 * c.scale)
        return (dover.astype(np.float32).astype(np.float64) * w).astype(np.float32)
    rx = c_round(np.abs((ox - fii) * c.sdp))
    ry = c_round(np.abs((oy - fjj) * c.sdp))
    inside = (rx < c.nlut) & (ry < c.nlut)
    dover = lut[np.where(inside, rx, 0).astype(np.int64)] * lut[np.where(inside, ry, 0).astype(np.int64)]
    return np.where(inside, (dover * w).astype(np.float32), np.float32(0.0))


def _axis_terms(c: DrizzleConsts, o: np.ndarray, f: np.ndarray, lut: np.ndarray):
    """One axis's factor of a separable kernel: pixel centres ``o (P,)``, cell coordinates ``f (k, P)``."""
    if c.kernel == KERNEL_TURBO:
        lo, hi = o - c.pfo, o + c.pfo
        fhi, flo = f + 0.5, f - 0.5
        return np.where(hi < fhi, hi, fhi) - np.where(lo > flo, lo, flo), None
    if c.kernel == KERNEL_GAUSSIAN:
        d = o - f
        return d * d, None
    r = c_round(np.abs((o - f) * c.sdp))
    inside = r < c.nlut
    return lut[np.where(inside, r, 0).astype(np.int64)], inside


def separable_weights(c: DrizzleConsts, g: dict, lut: np.ndarray) -> np.ndarray:
    """``dow`` (float32) of every record of the pixels of ``g`` for turbo, gaussian and lanczos.

    The same arithmetic as ``cell_weight``, reorganised: these kernels are products (turbo,
    lanczos) or sums (gaussian's ``r2``) of one term per axis, so pixels with equal box shapes
    are grouped, each term is computed once per box column or row (``(w, P)``, ``(h, P)``) and
    combined per cell in a dense ``(h, w, P)`` array (pixels innermost, long numpy loops),
    written at the records' offsets.
    """
    counts = box_cells(g)
    offsets = np.cumsum(counts) - counts
    dows = np.empty(int(counts.sum()), np.float32)
    bw = g["ii1"] - g["ii0"] + 1
    bh = g["jj1"] - g["jj0"] + 1
    shape_id = np.where(counts > 0, bh * (int(bw.max(initial=0)) + 1) + bw, -1)
    for sid in np.unique(shape_id):
        if sid < 0:
            continue
        p = np.flatnonzero(shape_id == sid)
        h, w = int(bh[p[0]]), int(bw[p[0]])
        fx = (g["ii0"][p] + np.arange(w)[:, None]).astype(np.float64)
        fy = (g["jj0"][p] + np.arange(h)[:, None]).astype(np.float64)
        tx, inx = _axis_terms(c, g["x"][p, 0], fx, lut)
        ty, iny = _axis_terms(c, g["y"][p, 0], fy, lut)
        wgt = g["w"][p]
        tx, ty = tx[None], ty[:, None]
        if c.kernel == KERNEL_TURBO:
            dover = tx * ty
            pos = (tx > 0.0) & (ty > 0.0)
            pos &= dover > 0.0
            dover *= c.scale
            dover *= wgt
            cell = np.where(pos, dover.astype(np.float32), np.float32(0.0))
        elif c.kernel == KERNEL_GAUSSIAN:
            r2 = tx + ty
            dover = c.es * shared_exp(-r2 * c.scale)
            cell = (dover.astype(np.float32).astype(np.float64) * wgt).astype(np.float32)
        else:
            dover = tx * ty
            dover *= wgt
            cell = np.where(inx[None] & iny[:, None], dover.astype(np.float32), np.float32(0.0))
        dows[(offsets[p] + np.arange(h * w)[:, None]).reshape(-1)] = cell.reshape(-1)
    return dows


def _pixel_weights(pix: np.ndarray, weights: np.ndarray, wtscale: np.float32) -> np.ndarray:
    return weights.reshape(-1)[pix] * np.float32(wtscale)


def drizzle_count(pix: np.ndarray, pixmap: np.ndarray, weights: np.ndarray, wtscale: float, onx: int, ony: int,
                  c: DrizzleConsts) -> np.ndarray:
    """Box cells of each input pixel ``pix`` (linear input indices), int64."""
    nx = pixmap.shape[1]
    g = pixel_geometry(c, pixmap, onx, ony, pix % nx, pix // nx, _pixel_weights(pix, weights, wtscale))
    return box_cells(g)


def slice_geometry(g: dict, lo: int, hi: int) -> dict:
    """The geometry of pixels ``lo:hi`` of a block (to emit a block counted as a whole)."""
    return {key: (val[lo:hi] if isinstance(val, np.ndarray) else hi - lo) for key, val in g.items()}


def record_bits(nout: int) -> int:
    """Bits of the record number in a key ``(out_index << bits) | record`` for ``nout`` output pixels.

    32, or fewer for outputs of 2**31 pixels or more, so that ``out_index`` (up to ``nout``
    for zero weights) fits the other bits of an int64. The records keyed at once must number
    fewer than ``2**bits``.
    """
    bits = min(32, 63 - int(nout).bit_length())
    if bits < 16:
        raise ValueError(f"an output of {nout} pixels is too large for drizzle's 64-bit record keys")
    return bits


def drizzle_emit(pix: np.ndarray, pixmap: np.ndarray, weights: np.ndarray, wtscale: float, onx: int, ony: int,
                 c: DrizzleConsts, lut: np.ndarray, g: dict | None = None, dows: np.ndarray | None = None,
                 rec_bits: int = 32):
    """Records of the pixels ``pix`` in reference order: ``(keys, dows, rec_pixel)``.

    ``keys = (out_index << rec_bits) | record`` with ``out_index = onx*ony`` for zero weights.
    ``g``: the pixels' ``pixel_geometry`` when already computed (numpy only; the CUDA
    kernel recomputes it); ``dows``: the records' weights when already computed
    (``separable_weights`` over a whole block).
    """
    nx = pixmap.shape[1]
    wi = _pixel_weights(pix, weights, wtscale)
    if g is None:
        g = pixel_geometry(c, pixmap, onx, ony, pix % nx, pix // nx, wi)
    counts = box_cells(g)
    nrec = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    rep = np.repeat(np.arange(pix.size, dtype=np.int64), counts)
    t = np.arange(nrec, dtype=np.int64) - offsets[rep]
    bw = (g["ii1"] - g["ii0"] + 1)[rep]
    jj, ii = np.divmod(t, bw)
    jj += g["jj0"][rep]
    ii += g["ii0"][rep]
    if dows is None:
        dows = cell_weight(c, g, rep, wi, ii, jj, lut)
    out = np.where(dows != 0.0, jj * onx + ii, onx * ony)
    keys = (out << rec_bits) | np.arange(nrec, dtype=np.int64)
    return keys, dows, rep.astype(np.int32)


def replay_layers(keys: np.ndarray, dows: np.ndarray, rec_pixel: np.ndarray, pix: np.ndarray,
                  rec_bits: int = 32) -> tuple:
    """Rank layers of the sorted records ``keys``: ``(layer_sizes, out, dows, pixels)`` in layer order.

    Layer ``r`` holds every output pixel's ``r``-th record (key order), so that a layer is a
    contiguous slice; shared by every image replayed with the same records.
    """
    n = keys.size
    out = keys >> rec_bits
    rec = keys & ((1 << rec_bits) - 1)
    head = np.ones(n, dtype=bool)
    head[1:] = out[1:] != out[:-1]
    start = np.maximum.accumulate(np.where(head, np.arange(n), 0))
    rank = np.arange(n) - start
    # ranks are small: as int16 numpy's stable sort is a radix sort
    order = np.argsort(rank.astype(np.int16) if rank[-1] < 32767 and rank.max() < 32767 else rank, kind="stable")
    r = rec[order]
    return np.bincount(rank), out[order], dows[r], pix[rec_pixel[r]]


def drizzle_replay(keys: np.ndarray, dows: np.ndarray, rec_pixel: np.ndarray, pix: np.ndarray, data: np.ndarray,
                   iscale: np.float32, data2: list, iscale2: np.float32, dq: np.ndarray | None, out_img: np.ndarray,
                   out_wht: np.ndarray, out_img2: list, out_ctx: np.ndarray | None, bit: int,
                   out_dq: np.ndarray | None, layers: tuple | None = None, rec_bits: int = 32) -> None:
    """Apply the sorted records ``keys`` (zero weights excluded) to the outputs, in place.

    Records of one output pixel are applied in key order: layer ``r`` holds every output
    pixel's ``r``-th record, and one layer is one elementwise update. ``layers``: the
    records' ``replay_layers`` when already computed.
    """
    if keys.size == 0:
        return
    layer_sizes, out, dows, p_all = replay_layers(keys, dows, rec_pixel, pix, rec_bits) if layers is None else layers
    if out_ctx is not None:
        # OR is order-free: one pass over the group (repeated pixels write equal values)
        ctx = out_ctx.reshape(-1)
        ctx[out[dows > 0.0]] |= np.int32(bit)
    d_all = data.reshape(-1)[p_all] * np.float32(iscale)
    img, wht = out_img.reshape(-1), out_wht.reshape(-1)
    img2 = [a.reshape(-1) for a in out_img2]
    odq = out_dq.reshape(-1) if dq is not None else None
    pos = 0
    for size in layer_sizes:
        layer = slice(pos, pos + size)
        pos += size
        o = out[layer]
        dow = dows[layer]
        d = d_all[layer]
        vc = wht[o]
        vn = vc + dow
        first = vc == 0.0
        if data2 or odq is not None:
            p = p_all[layer]
        for q, plane in enumerate(data2):
            d2 = plane.reshape(-1)[p] * np.float32(iscale2) if plane is not None else np.zeros(o.size, np.float32)
            with np.errstate(all="ignore"):
                vc2 = (vc * vc).astype(np.float64)
                dow2 = (dow * dow).astype(np.float64)
                vn2 = vn.astype(np.float64) * vn.astype(np.float64)
                upd = ((img2[q][o].astype(np.float64) * vc2 + dow2 * d2.astype(np.float64)) / vn2).astype(np.float32)
            img2[q][o] = np.where(first, d2, upd)
        if odq is not None:
            dqv = dq.reshape(-1)[p]
            odq[o] = np.where(first, dqv, odq[o] | dqv)
        with np.errstate(all="ignore"):
            num = img[o] * vc + dow * d
            upd = (num.astype(np.float64) / vn.astype(np.float64)).astype(np.float32)
        img[o] = np.where(first, d, upd)
        wht[o] = vn
