"""Host-side geometry of one drizzle call: valid map section, row scanner, pixel-scale estimate.

Spec ``resample.md`` sections 2.2-2.4 and 3 (drizzle 2.2.0 ``cdrizzlemap.c``). All of it is
O(rows) scalar work shared by both backends; it decides which input pixels the kernels
visit, so every comparison and rounding point follows the reference.
"""

from __future__ import annotations

import logging
import math
import sys

import numpy as np

from gpucal.errors import InputError

log = logging.getLogger(__name__)

#: Inversion tolerance of the scanner (MAX_INV_ERR).
MAX_INV_ERR = 0.03
VERTEX_ATOL = 1.0e-12
APPROX_ZERO = 1.0e3 * sys.float_info.min
_GOLDEN = 0.6180339887498948482


def c_round(x: float) -> int:
    """C ``(int) round(x)``: half away from zero."""
    t = math.trunc(x)
    if abs(x - t) >= 0.5:
        t += 1 if x > 0 else -1
    return int(t)


def shrink_image_section(pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int) -> tuple[int, int, int, int]:
    """Tighten the input rectangle to valid (non-NaN) map entries; InputError when too few remain."""
    sub = pixmap[ymin:ymax + 1, xmin:xmax + 1]
    valid = ~(np.isnan(sub[..., 0]) | np.isnan(sub[..., 1]))
    rows = np.flatnonzero(valid.any(axis=1))
    imin, jmin = xmax, ymax
    if rows.size:
        first = valid[rows].argmax(axis=1) + xmin
        imin = min(imin, int(first.min()))
        jmin = min(jmin, int(rows[0]) + ymin)
    imax, jmax = imin, jmin
    if rows.size:
        last = xmax - valid[rows, ::-1].argmax(axis=1)
        imax = max(imax, int(last.max()))
        jmax = max(jmax, int(rows[-1]) + ymin)
    if imin >= imax or jmin >= jmax:
        raise InputError("no or too few valid pixels in the pixel map")
    return imin, imax, jmin, jmax


class MapInterpolator:
    """Bilinear interpolation of the pixel map at fractional input positions (``interpolate_point``)."""

    def __init__(self, pixmap: np.ndarray):
        self.pixmap = pixmap
        self.nx2 = pixmap.shape[1] - 2
        self.ny2 = pixmap.shape[0] - 2

    def __call__(self, xin: float, yin: float) -> tuple[float, float] | None:
        i0 = min(max(int(xin), 0), self.nx2)
        j0 = min(max(int(yin), 0), self.ny2)
        x = xin - i0
        y = yin - j0
        x1 = 1.0 - x
        y1 = 1.0 - y
        m = self.pixmap
        f00, g00 = float(m[j0, i0, 0]), float(m[j0, i0, 1])
        f10, g10 = float(m[j0, i0 + 1, 0]), float(m[j0, i0 + 1, 1])
        f01, g01 = float(m[j0 + 1, i0, 0]), float(m[j0 + 1, i0, 1])
        f11, g11 = float(m[j0 + 1, i0 + 1, 0]), float(m[j0 + 1, i0 + 1, 1])
        xo = f00 * x1 * y1 + f10 * x * y1 + f01 * x1 * y + f11 * x * y
        yo = g00 * x1 * y1 + g10 * x * y1 + g01 * x1 * y + g11 * x * y
        if math.isnan(xo) or math.isnan(yo):
            return None
        return xo, yo


def _area(a, b) -> float:
    return a[0] * b[1] - a[1] * b[0]


def _orient_ccw(p: list) -> list:
    n = len(p)
    if n < 3:
        return p
    cx = 0.0
    cy = 0.0
    for v in p:
        cx += v[0]
        cy += v[1]
    cx /= n
    cy /= n
    v1 = (p[0][0] - cx, p[0][1] - cy)
    v2 = (p[1][0] - cx, p[1][1] - cy)
    if _area(v1, v2) >= 0.0:
        return p
    return p[::-1]


def _equal(a, b) -> bool:
    return abs(a[0] - b[0]) < VERTEX_ATOL and abs(a[1] - b[1]) < VERTEX_ATOL


def _append(p: list, v) -> None:
    if p and (_equal(p[-1], v) or _equal(p[0], v)):
        return
    p.append(v)


def _simplify(p: list) -> list:
    n = len(p)
    if n < 3:
        return p
    out = []
    for k in range(n):
        prev, cur, nxt = p[k - 1], p[k], p[(k + 1) % n]
        dp = (nxt[0] - prev[0], nxt[1] - prev[1])
        dq = (cur[0] - prev[0], cur[1] - prev[1])
        if abs(_area(dp, dq)) > APPROX_ZERO and math.sqrt(dp[0] * dp[0] + dp[1] * dp[1]) > VERTEX_ATOL:
            out.append(cur)
    return out


def _strictly_in_half_plane(pt, a, b) -> bool:
    # drizzle's is_point_strictly_in_hp(pt, v_, v), called with (window v_, window v, point)
    return (_area(b, pt) - _area(a, pt) - _area(b, a)) > 0.0


def clip_polygon_to_window(p: list, wnd: list) -> list:
    """Sutherland-Hodgman clip of ``p`` by the convex window ``wnd`` (``clip_polygon_to_window``)."""
    p = _orient_ccw(p)
    wnd = _orient_ccw(wnd)
    out = list(p)
    for k in range(len(wnd)):
        w_, w = wnd[k - 1], wnd[k]
        dw = (w[0] - w_[0], w[1] - w_[1])
        pin, out = out, []
        for j in range(len(pin)):
            v_, v = pin[j - 1], pin[j]
            dp = (v[0] - v_[0], v[1] - v_[1])
            in1 = _strictly_in_half_plane(w_, w, v_)
            in2 = _strictly_in_half_plane(w_, w, v)
            if in1 != in2:
                d = _area(dp, dw)
                app_ = _area(v, v_)
                aww_ = _area(w, w_)
                with np.errstate(all="ignore"):
                    vx = float(np.float64(app_ * dw[0] - aww_ * dp[0]) / np.float64(d))
                    vy = float(np.float64(app_ * dw[1] - aww_ * dp[1]) / np.float64(d))
                if math.isfinite(vx) and math.isfinite(vy):
                    _append(out, (vx, vy))
                if in2:
                    _append(out, v)
            elif in1:
                _append(out, v)
    return _simplify(_orient_ccw(out))


def invert_pixmap(interp: MapInterpolator, box: tuple[int, int, int, int], xout: float, yout: float):
    """Golden-section search for the input point that maps to ``(xout, yout)`` (``invert_pixmap``)."""
    bx0, bx1, by0, by1 = box
    xmin, xmax = bx0 - 0.5, bx1 + 0.5
    ymin, ymax = by0 - 0.5, by1 + 0.5
    dx, dy = xmax - xmin, ymax - ymin
    niter = 0
    while (dx > MAX_INV_ERR or dy > MAX_INV_ERR) and niter < 50:
        niter += 1
        x1 = xmax - _GOLDEN * dx
        x2 = xmin + _GOLDEN * dx
        y1 = ymax - _GOLDEN * dy
        y2 = ymin + _GOLDEN * dy
        d = []
        for px, py in ((x1, y1), (x1, y2), (x2, y1), (x2, y2)):
            v = interp(px, py)
            if v is None:
                return None
            ex, ey = v[0] - xout, v[1] - yout
            d.append(ex * ex + ey * ey)
        d11, d12, d21, d22 = d
        if d11 < d12 and d11 < d21 and d11 < d22:
            xmax, ymax = x2, y2
        elif d12 < d11 and d12 < d21 and d12 < d22:
            xmax, ymin = x2, y1
        elif d21 < d11 and d21 < d12 and d21 < d22:
            xmin, ymax = x1, y2
        else:
            xmin, ymin = x1, y1
        dx, dy = xmax - xmin, ymax - ymin
    if niter == 50:
        return None
    return 0.5 * (xmin + xmax), 0.5 * (ymin + ymax)


def _edge(v1, v2, position: int):
    m = _div(v2[0] - v1[0], v2[1] - v1[1])
    b = _div(v1[0] * v2[1] - v1[1] * v2[0], v2[1] - v1[1])
    c = b - math.copysign(0.5 + 0.5 * abs(m), float(position))
    return v1, v2, m, c


def _div(a: float, b: float) -> float:
    with np.errstate(all="ignore"):
        return float(np.float64(a) / np.float64(b))


def scan_rows(pixmap: np.ndarray, box: tuple[int, int, int, int], out_shape: tuple[int, int]):
    """Input rows and column ranges the kernels visit, and the scanner polygon.

    Returns ``(rows, x1, x2, polygon)``: int arrays of row ``j`` and inclusive column limits in
    visiting order, and the input-frame polygon (for the pixel-scale estimate).
    """
    xmin, xmax, ymin, ymax = box
    interp = MapInterpolator(pixmap)
    rect = [(xmin - 0.5, ymin - 0.5), (xmax + 0.5, ymin - 0.5), (xmax + 0.5, ymax + 0.5), (xmin - 0.5, ymax + 0.5)]
    mapped = [interp(x, y) for x, y in rect]
    if any(v is None for v in mapped):
        poly = rect
    else:
        ony, onx = out_shape
        wnd = [(-0.5, -0.5), (onx - 0.5, -0.5), (onx - 0.5, ony - 0.5), (-0.5, ony - 0.5)]
        clipped = clip_polygon_to_window(mapped, wnd)
        poly = []
        for k, v in enumerate(clipped):
            inv = invert_pixmap(interp, box, v[0], v[1])
            if inv is None:
                # drizzle 2.2.0 keeps the vertices inverted so far over the input rectangle's
                # and scans that 4-vertex polygon, without an error: reproduced as is.
                log.warning("failed to invert the pixel map at output position (%.2f, %.2f); scanning drizzle "
                            "2.2.0's partial polygon", v[0], v[1])
                poly = (poly + rect[k:])[:4]
                break
            poly.append(inv)
        else:
            poly = _orient_ccw(poly)
    empty = np.zeros(0, dtype=np.int64)
    if len(poly) < 3:
        return empty, empty, empty, poly
    rows, x1s, x2s = [], [], []
    for j, lo, hi in _scanlines(poly, box):
        rows.append(j)
        x1s.append(lo)
        x2s.append(hi)
    return (np.asarray(rows, dtype=np.int64), np.asarray(x1s, dtype=np.int64), np.asarray(x2s, dtype=np.int64), poly)


def _scanlines(p: list, box):
    """Yield ``(j, x1, x2)`` per visited row (``init_scanner`` + ``get_scanline_limits``)."""
    xmin_b, xmax_b, ymin_b, ymax_b = box
    n = len(p)
    min_y = p[0][1]
    min_left = 0
    for k in range(1, n):
        if p[k][1] < min_y:
            min_left, min_y = k, p[k][1]
    i1, i2 = (min_left - 1) % n, (min_left + 1) % n
    min_right = i1 if p[i1][1] < p[i2][1] else i2
    if p[min_right][1] <= min_y * (1.0 + math.copysign(VERTEX_ATOL, min_y)):
        if p[min_left][0] > p[min_right][0]:
            min_left, min_right = min_right, min_left
    else:
        min_right = min_left
    max_y = p[0][1]
    max_right = 0
    for k in range(1, n):
        if p[k][1] > max_y:
            max_right, max_y = k, p[k][1]
    i1, i2 = (max_right - 1) % n, (max_right + 1) % n
    max_left = i1 if p[i1][1] > p[i2][1] else i2
    if p[max_left][1] >= max_y * (1.0 - math.copysign(VERTEX_ATOL, max_y)):
        if p[max_left][0] > p[max_right][0]:
            max_left, max_right = max_right, max_left
    else:
        max_left = max_right
    if max_left > min_left:
        min_left += n
    left = []
    for k in range(min_left - max_left):
        a = (min_left - k) % n
        left.append(_edge(p[a], p[(a - 1) % n], -1))
    if max_right < min_right:
        max_right += n
    right = []
    for k in range(max_right - min_right):
        a = (min_right + k) % n
        right.append(_edge(p[a], p[(a + 1) % n], 1))

    jstart = max(0, int(min_y + 0.5 + 2.0 * MAX_INV_ERR))
    jstop = min(ymax_b, int(max_y + 2.0 * MAX_INV_ERR))
    if not left or not right:
        return
    li, ri = 0, 0
    for y in range(jstart, jstop + 1):
        if ymax_b >= ymin_b and (y < 0 or y > ymax_b):
            continue
        pyb, pyt = y - 0.5, y + 0.5
        if pyt <= min_y or pyb >= max_y + 1:
            continue
        while pyb > left[li][1][1]:
            if li == len(left) - 1:
                return
            li += 1
        while pyb > right[ri][1][1]:
            if ri == len(right) - 1:
                return
            ri += 1
        xlb = left[li][2] * y + left[li][3] - MAX_INV_ERR
        xrb = right[ri][2] * y + right[ri][3] + MAX_INV_ERR
        while pyt > left[li][1][1] + 0.5 + MAX_INV_ERR:
            if li == len(left) - 1:
                return
            li += 1
        while pyt > right[ri][1][1] + 0.5 + MAX_INV_ERR:
            if ri == len(right) - 1:
                return
            ri += 1
        xlt = left[li][2] * y + left[li][3] - MAX_INV_ERR
        xrt = right[ri][2] * y + right[ri][3] + MAX_INV_ERR
        if xmax_b >= xmin_b:
            xlb = float(xmin_b) if xlb < xmin_b else xlb
            xlt = float(xmin_b) if xlt < xmin_b else xlt
            xrb = float(xmax_b) if xrb > xmax_b else xrb
            xrt = float(xmax_b) if xrt > xmax_b else xrt
        if xlt >= xrt:
            if xlb >= xrb:
                continue
            lo, hi = xlb, xrb
        elif xlb >= xrb:
            lo, hi = xlt, xrt
        else:
            lo, hi = (xlb if xlb > xlt else xlt), (xrb if xrb < xrt else xrt)
        if math.isnan(lo) or math.isnan(hi):
            # a degenerate (zero-height) edge: drizzle 2.2.0 converts NaN to int (undefined
            # behaviour, a crash in practice); gpucal skips the row
            log.debug("scanner: NaN column limit in row %d, row skipped", y)
            continue
        yield y, c_round(lo), c_round(hi)


def estimate_pscale_ratio(pixmap: np.ndarray, polygon: list) -> float:
    """drizzle's pixel-scale estimate at the scanner polygon's centroid (``compute_pscale_ratio``)."""
    n = len(polygon)
    a = 0.0
    if n >= 3:
        j = n - 1
        for k in range(n):
            a += (polygon[j][0] + polygon[k][0]) * (polygon[j][1] - polygon[k][1])
            j = k
        a = 0.5 * a
    ny, nx = pixmap.shape[:2]
    if n < 3 or abs(a) < APPROX_ZERO or nx < 2 or ny < 2:
        raise InputError("unable to estimate pixel_scale_ratio from the pixel map")
    sx = sy = 0.0
    j = n - 1
    for k in range(n):
        f = polygon[j][0] * polygon[k][1] - polygon[k][0] * polygon[j][1]
        sx += (polygon[j][0] + polygon[k][0]) * f
        sy += (polygon[j][1] + polygon[k][1]) * f
        j = k
    i = min(max(int(sx / (6.0 * a)), 0), nx - 2)
    jj = min(max(int(sy / (6.0 * a)), 0), ny - 2)
    o = pixmap[jj, i]
    o1 = pixmap[jj, i + 1]
    o2 = pixmap[jj + 1, i]
    if np.isnan(o).any() or np.isnan(o1).any() or np.isnan(o2).any():
        raise InputError("unable to estimate pixel_scale_ratio from the pixel map")
    cd11 = float(o1[0]) - float(o[0])
    cd12 = float(o1[1]) - float(o[1])
    cd21 = float(o2[0]) - float(o[0])
    cd22 = float(o2[1]) - float(o[1])
    return float(np.float32(math.sqrt(abs(cd11 * cd22 - cd12 * cd21))))
