"""IFU cube sums in numpy: twin of ``gpucal/kernels/cube.cu``.

The per-element functions carry the names of the kernel's ``__host__ __device__`` functions
and do the same operations in the same order (binary64, binary32 where the reference uses
float), vectorised over (point, voxel) records. Sums follow jwst 3.0.0's C loops: every voxel
adds its contributions in increasing point index, through ``np.add.at`` (unbuffered, applied in
record order), and records are emitted in point order, chunk after chunk. So each voxel's sum
is the same sequence of roundings as in ``cube_match_sky_pointcloud.c`` / ``cube_match_sky_driz.c``.

``exp`` and ``pow`` are the shared portable versions (:func:`portable_exp`, :func:`portable_pow`)
so the CUDA kernel and its host build give the same bits; ``exp``, ``s**2`` and non-integer
powers up to 16 in magnitude are within 1 ulp of the exact value (all bounds in
docs/algorithms/cube_build.md).

Spec: ``../shared/specs/cube_build.md`` sections 4.1-4.4, 6.1, 7.
"""

from __future__ import annotations

import numpy as np

# Cody-Waite split of ln 2 (the high part has trailing zero bits, so k * LN2_HI is exact).
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
# Remez coefficients of the exp remainder on [-ln2/2, ln2/2] (the classic fdlibm set).
EXP_P = (1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05,
         -1.65339022054652515390e-06, 4.13813679705723846039e-08)
EXP_OVERFLOW = 7.09782712893383973096e+02
EXP_UNDERFLOW = -7.45133219101941108420e+02
# log(1+f) = f - f^2/2 + s*(f^2/2 + R(s^2)), s = f/(2+f) (fdlibm coefficients).
LOG_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
          2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
          1.479819860511658591e-01)
SQRT_HALF = 0.70710678118654752440
#: Veltkamp's splitting constant 2**27 + 1 (``two_product``).
SPLIT = 134217729.0
#: Integer exponents up to this use a product chain in ``portable_pow``.
POW_MAX_CHAIN = 16
#: Records (point x voxel candidates) per chunk of points on the CPU path.
DEFAULT_MAX_RECORDS = 1 << 22

_F32_ONE = np.float32(1.0)


# ---------------------------------------------------------------- shared exp / log / pow
def _scale_pow2(y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``y * 2**k`` with one rounding (two exact power-of-two factors when 2**k is not normal)."""
    if k.size and -1020 <= k.min() and k.max() <= 1020:  # the usual case: one factor (same bits)
        return y * np.ldexp(1.0, k)
    low = k < -1020
    high = k > 1020
    k1 = np.where(low, k + 1000, np.where(high, k - 8, k))
    k2 = np.where(low, -1000, np.where(high, 8, 0))
    return (y * np.ldexp(1.0, k1)) * np.ldexp(1.0, k2)


def portable_exp_dd(x: np.ndarray, x_lo) -> np.ndarray:
    """exp(x + x_lo) for a double-double argument, explicit ``+ - * /`` (mirrors ``portable_exp_dd``)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        half = np.where(x < 0, -0.5, 0.5)
        kf = np.trunc(x * INV_LN2 + half)
        kf = np.where(np.isfinite(kf), np.clip(kf, -1100.0, 1100.0), 0.0)
        hi = x - kf * LN2_HI
        lo = kf * LN2_LO - x_lo
        r = hi - lo
        t = r * r
        p1, p2, p3, p4, p5 = EXP_P
        c = r - t * (p1 + t * (p2 + t * (p3 + t * (p4 + t * p5))))
        y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
        out = _scale_pow2(y, kf.astype(np.int64))
        out = np.where(x > EXP_OVERFLOW, np.inf, out)
        out = np.where(x < EXP_UNDERFLOW, 0.0, out)
        return np.where(np.isnan(x), x, out)


def portable_exp(x: np.ndarray) -> np.ndarray:
    """exp(x) in binary64 with explicit ``+ - * /`` (mirrors ``portable_exp`` in cube.cu)."""
    return portable_exp_dd(x, 0.0)


def two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a * b = hi + lo`` exactly (Dekker with Veltkamp's split; mirrors ``two_product``)."""
    ca = SPLIT * a
    cb = SPLIT * b
    ah = ca - (ca - a)
    bh = cb - (cb - b)
    al = a - ah
    bl = b - bh
    hi = a * b
    return hi, (((ah * bh - hi) + ah * bl) + al * bh) + al * bl


def portable_log_dd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(x) = hi + lo for finite x > 0, to about 2**-66 relative (mirrors ``portable_log_dd``)."""
    m, e = np.frexp(x)  # x = m * 2**e, m in [0.5, 1)
    small = m < SQRT_HALF
    m = np.where(small, m * 2.0, m)
    ef = np.where(small, e - 1, e).astype(np.float64)
    f = m - 1.0
    d = 2.0 + f
    d_lo = f - (d - 2.0)
    u = f / d
    qh, ql = two_product(u, d)
    ul = (((f - qh) - ql) - u * d_lo) / d
    z = u * u
    w = z * z
    lg1, lg2, lg3, lg4, lg5, lg6, lg7 = LOG_LG
    t1 = w * (lg2 + w * (lg4 + w * lg6))
    t2 = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)))
    tail = u * (t2 + t1)
    a = ef * LN2_HI
    b = 2.0 * u
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    small_terms = err + (ef * LN2_LO + (tail + (2.0 * ul) * (1.0 + z)))
    hi = s + small_terms
    return hi, small_terms - (hi - s)


def portable_pow(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``s**p`` for s >= 0 (mirrors ``portable_pow``).

    Integer ``p`` in [0, POW_MAX_CHAIN] multiplies ``s`` left to right (p = 2 is ``s*s``,
    correctly rounded); other ``p`` use ``exp(p * log(s))`` with ``log(s)`` and the product
    carried in double-double (within 1 ulp of the exact power).
    """
    s, p = np.broadcast_arrays(np.asarray(s, np.float64), np.asarray(p, np.float64))
    chain = (p == np.floor(p)) & (p >= 0) & (p <= POW_MAX_CHAIN)
    out = np.empty(s.shape)
    with np.errstate(all="ignore"):
        if chain.any():
            sc, pc = s[chain], p[chain]
            prod = np.where(pc >= 1, sc, 1.0)
            for i in range(2, int(pc.max()) + 1):
                prod = np.where(pc >= i, prod * sc, prod)
            out[chain] = prod
        if not chain.all():
            out[~chain] = _pow_general(s[~chain], p[~chain])
    return out


def _pow_general(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``portable_pow`` for non-chain exponents."""
    positive = (s > 0) & (s < np.inf)
    lh, ll = portable_log_dd(np.where(positive, s, 1.0))
    yh = p * lh
    ph, pl = two_product(p, lh)
    out = portable_exp_dd(ph, pl + p * ll)
    out = np.where(yh == 0.0, 1.0, out)
    out = np.where(np.abs(yh) < 746.0, out, portable_exp(yh))
    out = np.where(s == np.inf, np.where(p > 0, np.inf, 0.0), out)
    out = np.where(np.isnan(s) | np.isnan(p) | (s < 0), np.nan, out)
    return np.where(s == 0.0, np.where(p > 0, 0.0, np.where(p == 0, 1.0, np.inf)), out)


# ---------------------------------------------------------------- point cloud (msm / emsm)
def pointcloud_distance2(xdist, ydist, wave_k, zc_w, zcdelt3_w, cdelt1, cdelt2):
    """Normalised squared distance of a point to a voxel centre (pc.c order of operations)."""
    d1 = xdist / cdelt1
    d2 = ydist / cdelt2
    dxy = (d1 * d1) + (d2 * d2)
    d3 = (wave_k - zc_w) / zcdelt3_w
    return d3 * d3 + dxy


def emsm_weight(r2, scalerad_k, cdelt1):
    """exp(-r2 / (scalerad / cdelt1))."""
    return portable_exp(-r2 / (scalerad_k / cdelt1))


def msm_weight(r2, power_k, softrad_k):
    """1 / max(sqrt(r2)**p, softrad)."""
    wn = portable_pow(np.sqrt(r2), power_k)
    wn = np.where(wn < softrad_k, softrad_k, wn)
    return 1.0 / wn


def _axis_range(centres: np.ndarray, value: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[first, end) of the centres with ``|c - value| <= roi`` (contiguous: centres increase)."""
    n = centres.size
    with np.errstate(invalid="ignore"):
        first = np.clip(np.searchsorted(centres, value - roi, side="left") - 2, 0, n)
        end = np.clip(np.searchsorted(centres, value + roi, side="right") + 2, 0, n)

    def inside(i):
        j = np.minimum(i, n - 1)
        return (i < n) & (np.abs(centres[j] - value) <= roi)

    for _ in range(4):
        first = first + ((first < end) & ~inside(first))
    for _ in range(4):
        end = end - ((end > first) & ~inside(end - 1))
    return first, end


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Record -> (owner index, rank inside the owner) for ``counts`` records per owner, in owner order."""
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - starts[owner]


def _chunks(counts: np.ndarray, max_records: int):
    """Consecutive point ranges whose record counts stay near ``max_records``."""
    total = np.cumsum(counts)
    start = 0
    n = counts.size
    while start < n:
        base = total[start - 1] if start else 0
        stop = int(np.searchsorted(total, base + max_records, side="right"))
        stop = min(max(stop, start + 1), n)
        yield start, stop
        start = stop


def _accumulate(acc, voxel, flux_k, err_k, w):
    fluxv, weightv, varv, ifluxv = acc
    np.add.at(fluxv, voxel, flux_k * w)
    np.add.at(weightv, voxel, w)
    np.add.at(varv, voxel, (err_k * w) * (err_k * w))
    np.add.at(ifluxv, voxel, 1.0)


def pointcloud_match(msm: bool, xc, yc, zc, coord1, coord2, wave, flux, err, rois, roiw, scalerad, power,
                     softrad, zcdelt3, cdelt1: float, cdelt2: float, max_records: int = DEFAULT_MAX_RECORDS,
                     progress=None):
    """Flux, weight, variance and count sums of the msm (``msm=True``) or emsm point cloud."""
    nx, ny, nz = xc.size, yc.size, zc.size
    acc = tuple(np.zeros(nx * ny * nz) for _ in range(4))
    x0, x1 = _axis_range(xc, coord1, rois)
    y0, y1 = _axis_range(yc, coord2, rois)
    w0, w1 = _axis_range(zc, wave, roiw)
    nxr, nyr, nwr = x1 - x0, y1 - y0, w1 - w0
    counts = nxr * nyr * nwr
    npt = coord1.size
    for a, b in _chunks(counts, max_records):
        # spatial pairs inside the ROI circle first, then each pair's planes (point order kept)
        k, rank = _expand(nxr[a:b] * nyr[a:b])
        k = k + a
        ny_k = np.maximum(nyr[k], 1)
        ix = x0[k] + rank // ny_k
        iy = y0[k] + rank % ny_k
        xdist = np.abs(xc[ix] - coord1[k])
        ydist = np.abs(yc[iy] - coord2[k])
        keep = np.sqrt(xdist * xdist + ydist * ydist) <= rois[k]
        k, ix, iy, xdist, ydist = k[keep], ix[keep], iy[keep], xdist[keep], ydist[keep]
        pair, j = _expand(nwr[k])
        k = k[pair]
        iw = w0[k] + j
        r2 = pointcloud_distance2(xdist[pair], ydist[pair], wave[k], zc[iw], zcdelt3[iw], cdelt1, cdelt2)
        if msm:
            w = msm_weight(r2, power[k], softrad[k])
        else:
            w = emsm_weight(r2, scalerad[k], cdelt1)
        voxel = iw * (nx * ny) + (iy * nx + ix)[pair]
        _accumulate(acc, voxel, flux[k], err[k], w)
        if progress is not None:
            progress(b, npt)
    return acc


# ---------------------------------------------------------------- drizzle
def driz_spatial_bracket(vmin, vmax, half, c0, cdelt, n):
    """[i1, i2) of driz.c: ``trunc(|(min - half - c0)/cdelt| - 1)`` .. ``trunc(|(max + half - c0)/cdelt| + 1)``."""
    with np.errstate(invalid="ignore"):
        a = np.abs((vmin - half - c0) / cdelt) - 1.0
        b = np.abs((vmax + half - c0) / cdelt) + 1.0
    ok = np.isfinite(a) & np.isfinite(b) & (np.abs(a) < 2.0**31) & (np.abs(b) < 2.0**31)
    i1 = np.where(ok, np.trunc(np.where(ok, a, 0.0)), 0).astype(np.int64)
    i2 = np.where(ok, np.trunc(np.where(ok, b, 0.0)), 0).astype(np.int64)
    return np.maximum(i1, 0), np.minimum(i2, n)


def wave_overlap(wave_k, dwave_k, zc_w, c_w):
    """Spectral overlap of a pixel [lam -+ dwave/2] with a plane [zc -+ c/2] (driz.c order)."""
    ptmin = wave_k - dwave_k / 2
    ptmax = wave_k + dwave_k / 2
    spxmin = zc_w - c_w / 2
    spxmax = zc_w + c_w / 2
    z1 = spxmax - ptmin
    z2 = spxmax - ptmax
    z3 = spxmin - ptmin
    z1 = np.where(z1 < 0, 0.0, z1)
    z2 = np.where(z2 < 0, 0.0, z2)
    z3 = np.where(z3 < 0, 0.0, z3)
    zo = z1 - z2 - z3
    return np.where(zo < 0, 0.0, zo)


def _inside(edge: int, x, y, left, right, bottom, top):
    if edge == 0:
        return x > left
    if edge == 1:
        return x < right
    if edge == 2:
        return y > bottom
    return y < top


def _intersection(edge: int, x1, y1, x2, y2, left, right, bottom, top):
    """Crossing of edge (x1,y1)-(x2,y2) with a clip line, with the reference's binary32 slope."""
    with np.errstate(all="ignore"):
        vertical = x2 == x1
        m = np.where(vertical, np.float32(0.0), ((y2 - y1) / np.where(vertical, 1.0, x2 - x1)).astype(np.float32))
        if edge in (0, 1):
            x = left if edge == 0 else right
            x = np.broadcast_to(x, x1.shape)
            y = y1 + m.astype(np.float64) * (x - x1)
            return x, y
        y = np.broadcast_to(bottom if edge == 2 else top, x1.shape)
        inv = (_F32_ONE / m).astype(np.float64)
        x = np.where(vertical, x1, x1 + inv * (y - y1))
        return x, y


def overlap_area(xcen, ycen, xlen, ylen, xcorner, ycorner):
    """Sutherland-Hodgman overlap of quadrilaterals with axis-aligned boxes (utils.c::sh_find_overlap).

    ``xcorner``/``ycorner`` (M, 4); box centres and sizes broadcast to (M,). Returns (M,) areas.
    Each clip edge turns polygon edge j into up to two vertices (the crossing, then the end
    point); the valid ones are packed in order, which is the reference's vertex list. An
    emptied polygon keeps area 0 whatever its stale closing vertex is.
    """
    m = xcorner.shape[0]
    xcen = np.broadcast_to(np.asarray(xcen, np.float64), (m,))[:, None]
    ycen = np.broadcast_to(np.asarray(ycen, np.float64), (m,))[:, None]
    top = ycen + 0.5 * ylen
    bottom = ycen - 0.5 * ylen
    left = xcen - 0.5 * xlen
    right = xcen + 0.5 * xlen
    rows = np.arange(m)
    xp = np.concatenate([xcorner, xcorner[:, :1]], axis=1)
    yp = np.concatenate([ycorner, ycorner[:, :1]], axis=1)
    nv = np.full(m, 4)
    for edge in range(4):
        wold = xp.shape[1]
        x1, y1, x2, y2 = xp[:, :-1], yp[:, :-1], xp[:, 1:], yp[:, 1:]
        active = np.arange(wold - 1, dtype=np.int8)[None, :] < nv[:, None]
        s1 = _inside(edge, x1, y1, left, right, bottom, top)
        s2 = _inside(edge, x2, y2, left, right, bottom, top)
        cross = active & (s1 != s2)
        keep = active & s2
        valid = np.empty((m, 2 * (wold - 1)), dtype=bool)
        valid[:, 0::2] = cross
        valid[:, 1::2] = keep
        slot = np.cumsum(valid, axis=1, dtype=np.int8)
        n2 = slot[:, -1].astype(np.int64)
        width = int(n2.max(initial=0))
        xflat, yflat = xp.ravel(), yp.ravel()
        xp = np.empty((m, width + 1))
        yp = np.empty((m, width + 1))
        xnew, ynew = xp.ravel(), yp.ravel()
        for mask, odd in ((cross, 0), (keep, 1)):
            flat = np.flatnonzero(mask)
            r, c = np.divmod(flat, wold - 1)
            src = r * wold + c
            dst = r * (width + 1) + slot.ravel()[r * valid.shape[1] + 2 * c + odd] - 1
            if odd:
                xnew[dst] = xflat[src + 1]
                ynew[dst] = yflat[src + 1]
                continue
            bound = {0: left, 1: right, 2: bottom, 3: top}[edge].ravel()[r]
            xi, yi = _intersection(edge, xflat[src], yflat[src], xflat[src + 1], yflat[src + 1], bound, bound,
                                   bound, bound)
            xnew[dst] = xi
            ynew[dst] = yi
        xp[rows, n2] = xp[:, 0]  # close the polygon (an emptied one reads a stale value: area stays 0)
        yp[rows, n2] = yp[:, 0]
        nv = n2
    cols = np.arange(xp.shape[1])[None, :]
    valid = cols <= nv[:, None]
    area = np.zeros(m)
    with np.errstate(invalid="ignore", over="ignore"):
        xmin = np.where(valid, xp, np.inf).min(axis=1)
        ymin = np.where(valid, yp, np.inf).min(axis=1)
        for i in range(xp.shape[1] - 1):
            term = (xp[:, i] - xmin) * (yp[:, i + 1] - ymin) - (xp[:, i + 1] - xmin) * (yp[:, i] - ymin)
            area = np.where(i < nv, area + term, area)
    return np.abs(0.5 * area)


def drizzle_match(xc, yc, zc, wave, flux, err, xi, eta, dwave, cdelt3, cdelt1: float, cdelt2: float,
                  max_records: int = DEFAULT_MAX_RECORDS, progress=None):
    """Flux, weight, variance and count sums of the 3-D drizzle (driz.c::match_driz).

    ``xi``/``eta``: (npt, 4) corners in the order xi1..xi4.
    """
    nx, ny, nz = xc.size, yc.size, zc.size
    acc = tuple(np.zeros(nx * ny * nz) for _ in range(4))
    npt = wave.size
    finite = np.isfinite(xi).all(axis=1) & np.isfinite(eta).all(axis=1) & np.isfinite(wave) & np.isfinite(dwave)
    xmin, xmax = xi.min(axis=1), xi.max(axis=1)
    ymin, ymax = eta.min(axis=1), eta.max(axis=1)
    ix1, ix2 = driz_spatial_bracket(xmin, xmax, cdelt1 / 2.0, xc[0], cdelt1, nx)
    iy1, iy2 = driz_spatial_bracket(ymin, ymax, cdelt2 / 2.0, yc[0], cdelt2, ny)
    guard = (np.abs(dwave) + np.abs(cdelt3).max()) * (1 + 1e-9) + 1e-300
    with np.errstate(invalid="ignore"):
        w0 = np.clip(np.searchsorted(zc, wave - guard, side="left") - 1, 0, nz)
        w1 = np.clip(np.searchsorted(zc, wave + guard, side="left") + 1, 0, nz)
    nxr = np.where(finite, np.maximum(ix2 - ix1, 0), 0)
    nyr = np.where(finite, np.maximum(iy2 - iy1, 0), 0)
    nwr = np.where(finite, np.maximum(w1 - w0, 0), 0)
    counts = nxr * nyr * nwr
    for a, b in _chunks(counts, max_records):
        # spatial pairs (point, ix, iy) with their overlap area, then planes per point
        sp_counts = nxr[a:b] * nyr[a:b]
        k, rank = _expand(sp_counts)
        k = k + a
        ix = ix1[k] + rank // np.maximum(nyr[k], 1)
        iy = iy1[k] + rank % np.maximum(nyr[k], 1)
        xleft = xc[ix] - cdelt1 * 0.5
        xright = xc[ix] + cdelt1 * 0.5
        ybot = yc[iy] - cdelt2 * 0.5
        ytop = yc[iy] + cdelt2 * 0.5
        hit = (xleft < xmax[k]) & (xright > xmin[k]) & (ybot < ymax[k]) & (ytop > ymin[k])
        k, ix, iy = k[hit], ix[hit], iy[hit]
        area = overlap_area(xc[ix], yc[iy], cdelt1, cdelt2, xi[k], eta[k])
        sp_voxel = iy * nx + ix
        # planes of every point in the chunk that pass the strict test
        pk, prank = _expand(nwr[a:b])
        pk = pk + a
        iw = w0[pk] + prank
        zreg = np.abs(dwave[pk] + cdelt3[iw])
        inplane = np.abs(zc[iw] - wave[pk]) < zreg
        pk, iw = pk[inplane], iw[inplane]
        zo = wave_overlap(wave[pk], dwave[pk], zc[iw], cdelt3[iw])
        # join: for each spatial pair of point k, every plane of point k (k order kept)
        plane_start = np.searchsorted(pk, np.arange(a, b + 1))
        nplanes = plane_start[k - a + 1] - plane_start[k - a]
        pair, j = _expand(nplanes)
        prow = plane_start[k[pair] - a] + j
        weight = area[pair] * zo[prow]
        use = weight > 0
        pair, prow, weight = pair[use], prow[use], weight[use]
        voxel = iw[prow] * (nx * ny) + sp_voxel[pair]
        kk = k[pair]
        _accumulate(acc, voxel, flux[kk], err[kk], weight)
        if progress is not None:
            progress(b, npt)
    return acc


# ---------------------------------------------------------------- intermediate DQ planes
def _plane_pairs(zc, wave, roiw_ave):
    """(point, plane) pairs with ``|zc[w] - wave| < roiw_ave``, in point order."""
    nz = zc.size
    with np.errstate(invalid="ignore"):
        w0 = np.clip(np.searchsorted(zc, wave - roiw_ave, side="left") - 2, 0, nz)
        w1 = np.clip(np.searchsorted(zc, wave + roiw_ave, side="right") + 2, 0, nz)
    w1 = np.where(np.isfinite(wave), w1, w0)
    k, rank = _expand(np.maximum(w1 - w0, 0))
    w = w0[k] + rank
    keep = np.abs(zc[w] - wave[k]) < roiw_ave
    return k[keep], w[keep]


def slice_line_voxels(overlap_partial: int, cdelt1, cdelt2, naxis1, naxis2, xstart, ystart,
                      xi_min, eta_min, xi_max, eta_max, plane_dq: np.ndarray) -> None:
    """Mark the Bresenham line of one NIRSpec slice (dq.c::overlap_slice_with_spaxels, its swap slips kept).

    Indices outside the plane are skipped (the reference writes them unchecked).
    """
    x1 = int((xi_min - xstart) / cdelt1)
    y1 = int((eta_min - ystart) / cdelt2)
    x2 = int((xi_max - xstart) / cdelt1)
    y2 = int((eta_max - ystart) / cdelt2)
    steep = abs(y2 - y1) > abs(x2 - x1)
    if steep:
        x1 = y1
        x2 = y2
    if x1 > x2:
        x1 = x2
        y1 = y2
    dx = x2 - x1
    dy = y2 - y1
    error = int(dx / 2.0)
    ystep = 1 if y1 < y2 else -1
    y = y1
    for x in range(x1, x2 + 1):
        xuse, yuse = (y, x) if steep else (x, y)
        index = yuse * naxis1 + xuse
        if 0 <= index < naxis1 * naxis2:
            plane_dq[index] = overlap_partial
        error -= abs(dy)
        if error < 0:
            y += ystep
            error += dx


def dq_nirspec(overlap_partial: int, xc, yc, zc, coord1, coord2, wave, slice_no, roiw_ave: float,
               cdelt1: float, cdelt2: float) -> np.ndarray:
    """NIRSpec intermediate DQ (dq.c::dq_nirspec): per plane, each slice's extent walked as a line."""
    nx, ny, nz = xc.size, yc.size, zc.size
    dq = np.zeros((nz, ny * nx), dtype=np.int32)
    k, w = _plane_pairs(zc, wave, roiw_ave)
    s = slice_no[k].astype(np.int64) - 1
    ok = (s >= 0) & (s < 30)
    k, w, s = k[ok], w[ok], s[ok]
    cell = w * 30 + s
    init_min, init_max = float(np.float32(10000.0)), float(np.float32(-10000.0))
    c1min = np.full(nz * 30, init_min)
    c2min = np.full(nz * 30, init_min)
    c1max = np.full(nz * 30, init_max)
    c2max = np.full(nz * 30, init_max)
    np.fmin.at(c1min, cell, coord1[k])
    np.fmin.at(c2min, cell, coord2[k])
    np.fmax.at(c1max, cell, coord1[k])
    np.fmax.at(c2max, cell, coord2[k])
    match = ((c1min != init_min) & (c2min != init_min) & (c1max != init_max) & (c2max != init_max)
             & (c1min != c1max) & (c2min != c2max))
    f32 = np.float32
    xstart, ystart = float(f32(xc[0])), float(f32(yc[0]))
    for cellno in np.flatnonzero(match):
        plane, sl = divmod(int(cellno), 30)
        slice_line_voxels(overlap_partial, cdelt1, cdelt2, nx, ny, xstart, ystart,
                          float(f32(c1min[cellno])), float(f32(c2min[cellno])),
                          float(f32(c1max[cellno])), float(f32(c2max[cellno])), dq[plane])
    return dq.reshape(-1)
