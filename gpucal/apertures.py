"""Apertures for :func:`gpucal.extract_ramp`: pixels, circles, rectangles, masks, regions.

Pixel coordinates are 0-based with pixel centres at integers (numpy and astropy-regions
convention): pixel ``(x, y)`` is ``data[..., y, x]`` and covers ``[x-0.5, x+0.5) x
[y-0.5, y+0.5)``. :func:`aperture_weights` turns any accepted aperture into a float64
weight image over its bounding box (clipped to the frame); see
``docs/algorithms/extract_ramp.md``.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

METHODS = ("center", "exact")


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InputError(f"aperture {name} must be a finite number, got {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    v = _real(name, value)
    if not v.is_integer():
        raise InputError(f"rectangle {name} must be an integer pixel index, got {value!r}")
    return int(v)


@dataclass(frozen=True)
class PixelAperture:
    """The single pixel containing the point ``(x, y)`` (index ``floor(v + 0.5)``)."""

    x: float
    y: float

    def __post_init__(self) -> None:
        _real("x", self.x), _real("y", self.y)

    @property
    def index(self) -> tuple[int, int]:
        """``(ix, iy)``: the pixel's column and row."""
        return math.floor(float(self.x) + 0.5), math.floor(float(self.y) + 0.5)

    def describe(self) -> str:
        ix, iy = self.index
        return f"pixel x={ix} y={iy}"


@dataclass(frozen=True)
class CircleAperture:
    """Circle of radius ``r`` (pixels, > 0) centred at ``(x, y)``."""

    x: float
    y: float
    r: float

    def __post_init__(self) -> None:
        _real("x", self.x), _real("y", self.y)
        if _real("radius", self.r) <= 0:
            raise InputError(f"circle radius must be > 0 pixels, got {self.r!r}")

    def describe(self) -> str:
        return f"circle x={float(self.x):g} y={float(self.y):g} r={float(self.r):g}"


@dataclass(frozen=True)
class RectangleAperture:
    """Pixels ``x0..x1`` by ``y0..y1``, integer indices, both ends inclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = (_integer(n, getattr(self, n)) for n in ("x0", "y0", "x1", "y1"))
        if x1 < x0 or y1 < y0:
            raise InputError(
                f"rectangle corners must satisfy x0 <= x1 and y0 <= y1 (inclusive pixel indices), "
                f"got x0={x0} y0={y0} x1={x1} y1={y1}"
            )

    def describe(self) -> str:
        return f"rectangle x={int(self.x0)}..{int(self.x1)} y={int(self.y0)}..{int(self.y1)}"


Aperture = Union[None, PixelAperture, CircleAperture, RectangleAperture, np.ndarray, tuple, Any]


@dataclass
class ApertureWeights:
    """An aperture on a frame: float64 ``weights`` over rows ``r0:r1`` and columns ``c0:c1``.

    Pixels outside the aperture have weight 0; whole-pixel apertures have weights 0 or 1.
    """

    weights: np.ndarray
    r0: int
    r1: int
    c0: int
    c1: int
    description: str
    fractional: bool = False

    @property
    def npix(self) -> int:
        return int(np.count_nonzero(self.weights))


def as_aperture(aperture: Any) -> Any:
    """Normalise tuples (and 1-D numeric arrays) to the aperture dataclasses; others pass through."""
    if isinstance(aperture, np.ndarray) and aperture.ndim == 1 and aperture.dtype.kind in "iuf":
        aperture = tuple(aperture.tolist())
    if isinstance(aperture, (list, tuple)) and not isinstance(aperture, str):
        values = tuple(aperture)
        if len(values) == 2:
            return PixelAperture(*values)
        if len(values) == 3:
            return CircleAperture(*values)
        if len(values) == 4:
            return RectangleAperture(*values)
        raise InputError(
            f"an aperture tuple must be (x, y) pixel, (x, y, r) circle or (x0, y0, x1, y1) "
            f"rectangle, got {len(values)} numbers: {aperture!r}"
        )
    return aperture


def _overlap_band(x0: np.ndarray, x1: np.ndarray, h: np.ndarray, r: float) -> np.ndarray:
    """Area inside the circle (centre 0, radius r), above y=h >= 0, between x0 <= x1."""
    s = np.sqrt(np.maximum(r * r - h * h, 0.0))

    def g(x: np.ndarray) -> np.ndarray:  # integral of (sqrt(r^2 - x^2) - h) dx
        return 0.5 * (x * np.sqrt(np.maximum(r * r - x * x, 0.0))
                      + r * r * np.arcsin(np.clip(x / r, -1.0, 1.0)) - 2.0 * h * x)

    lo = np.clip(x0, -s, s)
    hi = np.clip(x1, -s, s)
    return g(hi) - g(lo)


def _overlap_box(x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray, r: float) -> np.ndarray:
    """Area of the box [x0,x1]x[y0,y1] inside the circle of radius r at the origin (y0 <= y1)."""
    # Split at y=0 and reflect the lower part: each piece is a band above a line y = h >= 0.
    upper_lo = np.maximum(y0, 0.0)
    upper_hi = np.maximum(y1, 0.0)
    lower_lo = np.maximum(-y1, 0.0)
    lower_hi = np.maximum(-y0, 0.0)
    upper = _overlap_band(x0, x1, upper_lo, r) - _overlap_band(x0, x1, upper_hi, r)
    lower = _overlap_band(x0, x1, lower_lo, r) - _overlap_band(x0, x1, lower_hi, r)
    return np.maximum(upper + lower, 0.0)


def circle_weights(cx: float, cy: float, r: float, rows: range, cols: range, method: str) -> np.ndarray:
    """Weights of pixels ``rows x cols`` for a circle: centre-in (0/1) or exact overlap area."""
    y = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None] - cy
    x = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :] - cx
    if method == "center":
        return (x * x + y * y < r * r).astype(np.float64)
    x, y = np.broadcast_arrays(x, y)
    return _overlap_box(x - 0.5, x + 0.5, y - 0.5, y + 0.5, r)


def _clip_box(r0: int, r1: int, c0: int, c1: int, shape: tuple[int, int], what: str) -> tuple[int, int, int, int]:
    ny, nx = shape
    cr0, cr1, cc0, cc1 = max(r0, 0), min(r1, ny), max(c0, 0), min(c1, nx)
    if cr0 >= cr1 or cc0 >= cc1:
        raise InputError(
            f"{what} lies outside the frame (x 0..{nx - 1}, y 0..{ny - 1}): no pixel of it is on the detector"
        )
    if (cr0, cr1, cc0, cc1) != (r0, r1, c0, c1):
        log.warning("%s extends beyond the %dx%d frame; clipped to it", what, nx, ny)
    return cr0, cr1, cc0, cc1


def _check_method(method: str) -> str:
    name = str(method).strip().lower()
    if name not in METHODS:
        raise InputError(f"aperture_method must be one of {METHODS}, got {method!r}")
    return name


def aperture_weights(aperture: Any, shape: tuple[int, int], method: str = "center") -> ApertureWeights:
    """Weights of ``aperture`` on a frame of ``shape = (ny, nx)``, over its bounding box.

    Raises
    ------
    InputError
        Unknown aperture kind or method, aperture outside the frame, empty mask, mask of the
        wrong shape or dtype, non-positive radius, reversed rectangle.
    """
    method = _check_method(method)
    ny, nx = shape
    aperture = as_aperture(aperture)
    if aperture is None:
        return ApertureWeights(np.ones((ny, nx)), 0, ny, 0, nx, "entire frame")
    if isinstance(aperture, PixelAperture):
        ix, iy = aperture.index
        if not (0 <= ix < nx and 0 <= iy < ny):
            raise InputError(
                f"pixel x={ix} y={iy} is outside the frame (x 0..{nx - 1}, y 0..{ny - 1})"
            )
        return ApertureWeights(np.ones((1, 1)), iy, iy + 1, ix, ix + 1, aperture.describe())
    if isinstance(aperture, CircleAperture):
        cx, cy, r = float(aperture.x), float(aperture.y), float(aperture.r)
        what = aperture.describe()
        box = (math.floor(cy - r + 0.5), math.floor(cy + r + 0.5) + 1,
               math.floor(cx - r + 0.5), math.floor(cx + r + 0.5) + 1)
        r0, r1, c0, c1 = _clip_box(*box, shape, what)
        w = circle_weights(cx, cy, r, range(r0, r1), range(c0, c1), method)
        if not np.any(w > 0):
            raise InputError(
                f"{what} contains no pixel centre (aperture_method='center'); use a larger radius "
                "or aperture_method='exact'" if method == "center" else f"{what} covers no pixel of the frame"
            )
        return _shrink(ApertureWeights(w, r0, r1, c0, c1, f"{what} ({method})", method == "exact"))
    if isinstance(aperture, RectangleAperture):
        x0, y0, x1, y1 = int(aperture.x0), int(aperture.y0), int(aperture.x1), int(aperture.y1)
        r0, r1, c0, c1 = _clip_box(y0, y1 + 1, x0, x1 + 1, shape, aperture.describe())
        return ApertureWeights(np.ones((r1 - r0, c1 - c0)), r0, r1, c0, c1, aperture.describe())
    if isinstance(aperture, np.ndarray) or (hasattr(aperture, "shape") and hasattr(aperture, "dtype")):
        mask = np.asarray(aperture)
        if mask.dtype != np.bool_:
            raise InputError(f"an aperture mask must be a boolean array of shape {(ny, nx)}, got dtype {mask.dtype}")
        if mask.shape != (ny, nx):
            raise InputError(f"aperture mask has shape {mask.shape}, the frame is (ny, nx) = {(ny, nx)}")
        if not mask.any():
            raise InputError("aperture mask is empty: it selects no pixel")
        full = ApertureWeights(mask.astype(np.float64), 0, ny, 0, nx, f"mask of {int(mask.sum())} pixels")
        return _shrink(full)
    return _region_weights(aperture, shape, method)


def _shrink(ap: ApertureWeights) -> ApertureWeights:
    """Cut the bounding box to the rows and columns that hold a non-zero weight."""
    rows = np.flatnonzero(ap.weights.any(axis=1))
    cols = np.flatnonzero(ap.weights.any(axis=0))
    a, b, c, d = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return ApertureWeights(np.ascontiguousarray(ap.weights[a:b, c:d]), ap.r0 + a, ap.r0 + b,
                           ap.c0 + c, ap.c0 + d, ap.description, ap.fractional)


def _region_weights(region: Any, shape: tuple[int, int], method: str) -> ApertureWeights:
    """An astropy-regions pixel region (optional dependency)."""
    try:
        import regions
    except ImportError:
        regions = None
    if regions is None or not isinstance(region, (regions.PixelRegion, regions.SkyRegion)):
        raise InputError(
            f"unsupported aperture {type(region).__name__}: use None, (x, y), (x, y, r), "
            "(x0, y0, x1, y1), a boolean mask (ny, nx) or an astropy-regions PixelRegion"
        )
    if isinstance(region, regions.SkyRegion):
        raise InputError("sky regions need a WCS: convert with region.to_pixel(wcs) first")
    ny, nx = shape
    try:
        weights = region.to_mask(mode=method).to_image((ny, nx))
    except Exception as exc:  # regions raises plain errors for degenerate shapes
        raise InputError(f"{type(region).__name__} cannot be turned into a mask: {exc}") from exc
    if weights is None or not np.any(weights > 0):
        raise InputError(f"{type(region).__name__} lies outside the frame or covers no pixel (method {method!r})")
    weights = np.asarray(weights, dtype=np.float64)
    full = ApertureWeights(weights, 0, ny, 0, nx, f"{type(region).__name__} ({method})",
                           bool(np.any((weights > 0) & (weights < 1))))
    return _shrink(full)
