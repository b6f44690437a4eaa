"""Reference-pixel statistics of the refpix step, on the host in numpy, for both backends.

The reference pixels of a plane are few (a 4-pixel border), so their clipped means and the
running medians of the side columns are computed here, with the same numpy reductions jwst
3.0.0 ``refpix/reference_pixels.py`` uses (pairwise sums, ``scipy.stats.sigmaclip``'s
loop), in the dtype jwst computes them in. The corrections are then applied to whole planes
with array code on either backend (``gpucal/steps/refpix.py``). Spec section 4.6.
"""

from __future__ import annotations

import warnings

import numpy as np

from .dq import DO_NOT_USE


def clipped_mean(values: np.ndarray, dq: np.ndarray, siglimit: float):
    """``Dataset.sigma_clip``: mean of the sigma-clipped non-DO_NOT_USE values, or None.

    Values are taken in row-major order; the result is a numpy scalar of the values' dtype
    (float64 when all good values are equal, as jwst).
    """
    good = (dq & DO_NOT_USE) == 0
    if not np.any(good):
        return None
    kept = values[good]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if np.std(kept, dtype=np.float64) != 0.0:
            c = kept.ravel()
            low = high = float(siglimit)
            while True:
                c_std = np.std(c)
                c_mean = np.mean(c)
                size = c.size
                lower = c_mean - c_std * low
                upper = c_mean + c_std * high
                c = c[(c >= lower) & (c <= upper)]
                if size - c.size == 0:
                    break
            return c.mean()
        return kept.mean(dtype=np.float64)


def average_with_none(a, b):
    """``NIRDataset.average_with_none``: 0.5 * (a + b), or the one that exists, or None."""
    if a is None and b is None:
        return None
    if a is None:
        return b
    if b is None:
        return a
    return 0.5 * (a + b)


def window_offsets(length: int) -> np.ndarray:
    """Row offsets of a running window of ``length`` rows (odd: -h..h; even: -w/2..w/2-1)."""
    return np.arange(length) - length // 2


def reflect_rows(rows: np.ndarray, nrows: int) -> np.ndarray:
    """Mirror row indices beyond ``[0, nrows)`` without repeating the edge row."""
    rows = np.where(rows < 0, -rows, rows)
    return np.where(rows > nrows - 1, 2 * (nrows - 1) - rows, rows)


def running_median(strip: np.ndarray, dq: np.ndarray, row0: int, full_rows: int, length: int) -> np.ndarray:
    """``NIRDataset.median_filter`` for the rows of a strip of side reference columns.

    ``strip`` (rows, ncols) holds detector rows ``[row0, row0 + rows)`` of the side columns
    (in the working dtype); rows of the detector outside the strip count as DO_NOT_USE.
    Returns float64 (rows,): per row the median of the good values in the reflected window
    of ``length`` rows (np.median's rule, in the strip's dtype), NaN where none.
    """
    nrows, ncols = strip.shape
    out = np.full(nrows, np.nan)
    if ncols == 0 or nrows == 0:
        return out
    absolute = row0 + np.arange(nrows)
    idx = reflect_rows(absolute[:, None] + window_offsets(length)[None, :], full_rows) - row0
    inside = (idx >= 0) & (idx < nrows)
    idx_c = np.clip(idx, 0, nrows - 1)
    vals = strip[idx_c].reshape(nrows, -1)  # (rows, length * ncols), window rows then columns
    good = (inside[:, :, None] & ((dq[idx_c] & DO_NOT_USE) == 0)).reshape(nrows, -1)
    n = good.sum(axis=1)
    has_nan = np.any(good & np.isnan(vals), axis=1)
    filled = np.where(good, vals, np.array(np.inf, dtype=vals.dtype))
    s = np.sort(filled, axis=1)
    rows_ok = n > 0
    lo = np.clip((n - 1) // 2, 0, None)
    hi = np.clip(n // 2, 0, None)
    a = np.take_along_axis(s, lo[:, None], axis=1)[:, 0]
    b = np.take_along_axis(s, hi[:, None], axis=1)[:, 0]
    two = np.array(2, dtype=vals.dtype)
    with np.errstate(all="ignore"):
        mid = np.where(n % 2 == 1, a, (a + b) / two)
    out[rows_ok] = mid[rows_ok]
    out[has_nan] = np.nan
    return out


def combine_with_nans(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``NIRDataset.combine_with_nans``: mean of the two, the non-NaN one, or 0.0 (float64)."""
    an, bn = np.isnan(a), np.isnan(b)
    out = np.zeros(len(a))
    out[an & ~bn] = b[an & ~bn]
    out[~an & bn] = a[~an & bn]
    both = ~an & ~bn
    out[both] = 0.5 * (a[both] + b[both])
    return out
