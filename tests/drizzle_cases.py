"""Small drizzle cases shared by the parity, host-build and GPU tests (numpy only).

Pixel maps are built with numpy directly: an affine map (rotation, scale, flip, shift)
around the input centre, optionally with a mild polynomial distortion, NaN islands and
output-edge shifts. Every case is small so the tests stay fast.
"""

from __future__ import annotations

import numpy as np

KERNELS = ["square", "point", "turbo", "gaussian", "lanczos2", "lanczos3"]


def affine_pixmap(shape, rot_deg=0.0, scale=1.0, flip=False, shift=(0.0, 0.0), centre_out=None, distort=0.0):
    """Output (x, y) of every input pixel centre: rotation, scale (output px per input px), flip."""
    ny, nx = shape
    y, x = np.indices(shape, dtype=np.float64)
    u = x - (nx - 1) / 2.0
    v = y - (ny - 1) / 2.0
    if flip:
        u = -u
    if distort:
        u, v = u + distort * (u * u - v * v) / nx, v + distort * 2.0 * u * v / ny
    t = np.deg2rad(rot_deg)
    xo = scale * (np.cos(t) * u - np.sin(t) * v)
    yo = scale * (np.sin(t) * u + np.cos(t) * v)
    cx, cy = centre_out if centre_out is not None else ((nx - 1) / 2.0, (ny - 1) / 2.0)
    return np.dstack([xo + cx + shift[0], yo + cy + shift[1]])


def random_image(shape, seed=0, nan_fraction=0.0):
    rng = np.random.default_rng(seed)
    data = rng.normal(10.0, 3.0, shape).astype(np.float32)
    if nan_fraction:
        data[rng.random(shape) < nan_fraction] = np.nan
    return data


def add_nan_islands(pixmap, seed=0, n=3, size=3):
    rng = np.random.default_rng(seed)
    pm = pixmap.copy()
    ny, nx = pm.shape[:2]
    for _ in range(n):
        j = rng.integers(0, ny - size)
        i = rng.integers(0, nx - size)
        pm[j:j + size, i:i + size, rng.integers(0, 2)] = np.nan
    return pm


def run(drizzle_cls, calls, **init):
    """Create ``drizzle_cls(**init)``, call ``add_image(**kw)`` for each of ``calls``; return it."""
    d = drizzle_cls(**init)
    for kw in calls:
        d.add_image(**kw)
    return d


def outputs(d):
    """The comparable output arrays of a Drizzle object, by name."""
    res = {"out_img": d.out_img, "out_wht": d.out_wht}
    if d.out_ctx is not None:
        res["out_ctx"] = d.out_ctx
    if d.out_dq is not None:
        res["out_dq"] = d.out_dq
    for k, plane in enumerate(d.out_img2 or []):
        res[f"out_img2_{k}"] = plane
    return res


def ulp_distance(a, b):
    """Distance in float32 units in the last place (0 where both are NaN)."""
    ai = a.astype(np.float32).view(np.int32).astype(np.int64)
    bi = b.astype(np.float32).view(np.int32).astype(np.int64)
    ai = np.where(ai < 0, np.int64(-(2**31)) - ai, ai)
    bi = np.where(bi < 0, np.int64(-(2**31)) - bi, bi)
    dist = np.abs(ai - bi)
    both_nan = np.isnan(a) & np.isnan(b)
    return np.where(both_nan, 0, np.where(np.isnan(a) != np.isnan(b), np.iinfo(np.int64).max, dist))
