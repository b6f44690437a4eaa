"""Snowball (large-event) expansion, spec ``jump.md`` section 10, as stcal 1.20 does it.

This runs on the CPU for both backends, after the kernels: snowballs are rare, and the
work is region labelling and ellipse drawing on whole group planes, which is sequential
by nature (each group's expansion changes the SATURATED flags the next groups see). The
GPU path already brings the finished group DQ back to the host, so nothing extra moves.

Regions and their moments come from scikit-image (``measure.label`` with full 8-
connectivity, ``regionprops``) and filled ellipses from ``skimage.draw.ellipse``, the
functions stcal uses, so the flagged pixel sets are the same; scikit-image is needed only
when ``expand_large_events`` is on.

Ellipses are tuples ``((x_centre, y_centre), (width, height), angle_degrees)``: the
centre as (column, row), the two full axis lengths (moment-based length minus one) and
the orientation of the region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpucal.dq import JUMP_DET, SATURATED
from gpucal.errors import InputError

_SAT = np.uint8(SATURATED)
_JUMP = np.uint8(JUMP_DET)


@dataclass(frozen=True)
class SnowballParams:
    """Step-level snowball settings (jwst JumpStep names; radii already doubled as jwst passes them)."""

    min_sat_area: float = 1.0
    min_jump_area: float = 5.0
    expand_factor: float = 2.0
    sat_required_snowball: bool = True
    min_sat_radius_extend: float = 2.5
    sat_expand: float = 4.0  # 2 * jwst's sat_expand
    edge_size: int = 25
    mask_persist_next_int: bool = True
    persist_groups: int = 0  # int(snowball_time_masked_next_int // group_time)
    max_extended_width: float = 400.0  # 2 * jwst's max_extended_radius


def _skimage():
    try:
        import skimage.draw
        import skimage.measure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("expand_large_events needs scikit-image (pip install scikit-image)") from exc
    return skimage


def region_ellipses(mask: np.ndarray, min_area: float) -> list[tuple]:
    """Ellipses of the 8-connected regions of ``mask`` whose hole-filled area >= ``min_area``."""
    sk = _skimage()
    labels = sk.measure.label(mask)
    found = []
    for region in sk.measure.regionprops(labels):
        if region.area_filled < min_area:
            continue
        width = region.axis_minor_length - 1
        height = region.axis_major_length - 1
        centre = (float(region.centroid[1]), float(region.centroid[0]))
        found.append((centre, (width, height), np.degrees(region.orientation)))
    return found


def filled_ellipse(centre_x: float, centre_y: float, axis1: float, axis2: float, angle: float,
                   shape: tuple[int, int]) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Boolean cut-out of a filled ellipse and its place ``(row0, row1, col0, col1)`` in ``shape``.

    ``axis1`` and ``axis2`` are full lengths along the ellipse's own x and y before the
    rotation by ``angle`` degrees; the half-axes are rounded to whole pixels.
    """
    sk = _skimage()
    col_c, row_c = round(centre_x), round(centre_y)
    half1, half2 = round(axis1 / 2), round(axis2 / 2)
    reach = max(half1, half2) + 2
    col0, col1 = max(col_c - reach, 0), min(col_c + reach + 1, shape[1])
    row0, row1 = max(row_c - reach, 0), min(row_c + reach + 1, shape[0])
    cut = np.zeros((row1 - row0, col1 - col0), dtype=bool)
    if half1 != 0 and half2 != 0:
        rr, cc = sk.draw.ellipse(row_c - row0, col_c - col0, half2, half1, cut.shape, np.radians(angle))
        cut[rr, cc] = True
    return (row0, row1, col0, col1), cut


def inside_ellipse(point: tuple[float, float], ellipse: tuple) -> bool:
    """Whether ``point`` (x, y) lies in ``ellipse`` (boundary included)."""
    (cx, cy), (w, h), angle = ellipse
    theta = np.radians(180 - angle)
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = point[0] - cx, point[1] - cy
    along = dx * c - dy * s
    across = dx * s + dy * c
    major, minor = (h * 0.5, w * 0.5) if h >= w else (w * 0.5, h * 0.5)
    return along**2 / major**2 + across**2 / minor**2 <= 1


def _near_edge(ellipse: tuple, low: float, high: float) -> bool:
    # stcal compares both centre coordinates with limits derived from the number of rows.
    (cx, cy), _, _ = ellipse
    return cx < low or cy < low or cx > high or cy > high


def _grow_saturated_cores(cube: np.ndarray, group: int, sat_ellipses: list[tuple], sp: SnowballParams,
                          persist: np.ndarray) -> None:
    """Large new-saturation cores become SATURATED (the whole flag byte) from ``group`` on,
    enlarged by ``sat_expand``; their unenlarged area is remembered for the next integration."""
    shape = cube.shape[1:]
    for (cx, cy), (w, h), angle in sat_ellipses:
        if min(w, h) <= sp.min_sat_radius_extend:
            continue
        a1 = min(w + sp.sat_expand, sp.max_extended_width)
        a2 = min(h + sp.sat_expand, sp.max_extended_width)
        (r0, r1, c0, c1), cut = filled_ellipse(cx, cy, a1, a2, angle, shape)
        for g in range(group, cube.shape[0]):
            cube[g, r0:r1, c0:c1][cut] = _SAT
        (r0, r1, c0, c1), core = filled_ellipse(cx, cy, w, h, angle, shape)
        persist[r0:r1, c0:c1][core] = _JUMP


def _expanded_axes(ellipse: tuple, expansion: float, limit: float) -> tuple[int, int]:
    """Half-axes after growing both axes by what the minor axis grows (limited), rounded."""
    w, h = ellipse[1]
    if h < w:
        a1, a2 = w + (expansion - 1.0) * h, h * expansion
    else:
        a1, a2 = w * expansion, h + (expansion - 1.0) * w
    return round(min(a1, limit) / 2), round(min(a2, limit) / 2)


def flag_snowballs(gdq: np.ndarray, sp: SnowballParams) -> int:
    """Expand snowballs in ``gdq`` (nints, ngroups, ny, nx) in place; returns how many were found."""
    nints, ngroups, ny, nx = gdq.shape
    persist = np.zeros((nints, ny, nx), dtype=np.uint8)
    low, high = sp.edge_size, max(0, ny - sp.edge_size)
    total = 0
    next_new_sat = None
    for i in range(nints):
        for g in range(1, ngroups):
            sat_now = (gdq[i, g] & _SAT) != 0
            new_sat = sat_now & ((gdq[i, g - 1] & _SAT) == 0)
            if g < ngroups - 1:
                next_new_sat = ((gdq[i, g + 1] & _SAT) != 0) & ~sat_now
            next_sat_ellipses = region_ellipses(next_new_sat, sp.min_sat_area)
            sat_ellipses = region_ellipses(new_sat, sp.min_sat_area)
            jump_ellipses = region_ellipses((gdq[i, g] & _JUMP) != 0, sp.min_jump_area)
            if sp.sat_required_snowball:
                snowballs: list[tuple] = []
                for jump in jump_ellipses:
                    if _near_edge(jump, low, high):
                        snowballs.append(jump)
                        continue
                    cores = list(sat_ellipses) + (list(next_sat_ellipses) if g < ngroups - 1 else [])
                    for core in cores:
                        if inside_ellipse(core[0], jump) and jump not in snowballs:
                            snowballs.append(jump)
                _grow_saturated_cores(gdq[i], g, sat_ellipses, sp, persist[i])
            else:
                snowballs = jump_ellipses
            total += len(snowballs)
            for ellipse in snowballs:
                (cx, cy), _, angle = ellipse
                half1, half2 = _expanded_axes(ellipse, sp.expand_factor, sp.max_extended_width)
                (r0, r1, c0, c1), cut = filled_ellipse(cx, cy, half1 * 2, half2 * 2, angle, (ny, nx))
                window = gdq[i, g, r0:r1, c0:c1]
                cut &= (window & _SAT) == 0
                window[cut] |= _JUMP
    if sp.mask_persist_next_int and sp.persist_groups >= 1:
        last = min(sp.persist_groups, ngroups)
        for i in range(1, nints):
            gdq[i, 1:last] |= persist[i - 1][None]
    return total
