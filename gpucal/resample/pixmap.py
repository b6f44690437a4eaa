"""Pixel maps: where each input pixel centre lands on the output grid, computed on the device.

``calc_pixmap(wcs_from, wcs_to)`` returns ``pixmap[j, i] = wcs_to.world_to_pixel(
wcs_from.pixel_to_world(i, j))`` as float64 ``(ny, nx, 2)``, with the semantics of the pixel
map the jwst 3.0.0 resample step uses (stcal ``calc_pixmap`` with ``stepsize=1`` and
``disable_bbox="to"``): input pixels outside ``wcs_from``'s bounding box are NaN, the bounding
box of ``wcs_to`` is ignored.

Both WCSs are translated into float64 array code (:mod:`.model_compiler`) for astropy FITS WCS
(TAN, and TAN-SIP on the pixel-to-world side) and gwcs pipelines of common astropy models, and
evaluated with numpy or CuPy. A WCS that cannot be translated is evaluated by its own CPU code
instead, with an INFO log line saying why.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..backend import array_module, resolve_backend, to_host
from ..errors import InputError
from .model_compiler import CompiledFunction, UnsupportedModel, compile_model

log = logging.getLogger(__name__)


def calc_pixmap(
    wcs_from: Any,
    wcs_to: Any,
    shape: tuple[int, int] | None = None,
    backend: str | None = None,
    *,
    compiled: bool = True,
    keep_on_device: bool = False,
) -> Any:
    """Pixel map from the pixel grid of ``wcs_from`` to the pixel frame of ``wcs_to``.

    Parameters
    ----------
    wcs_from, wcs_to
        astropy ``WCS`` or ``gwcs.WCS`` objects (2-D imaging, world in degrees).
    shape
        ``(ny, nx)`` of the input image; default ``wcs_from.array_shape``, else the upper
        limits of ``wcs_from``'s bounding box.
    backend
        ``"gpu"``, ``"cpu"`` or ``"auto"`` (None: the process default).
    compiled
        False evaluates both WCSs with their own CPU code (bit-identical to the jwst step's
        map); True (default) uses the compiled array code where the WCS allows it.
    keep_on_device
        Return a CuPy array on the GPU backend instead of copying it to the host.

    Returns
    -------
    float64 array ``(ny, nx, 2)``: ``[..., 0]`` output x, ``[..., 1]`` output y; NaN where
    the input pixel is outside ``wcs_from``'s bounding box or the WCSs give no value.
    """
    resolved = resolve_backend(backend)
    xp = array_module(resolved)
    bbox = pixel_bounding_box(wcs_from)
    shape = _map_shape(wcs_from, shape, bbox)

    y, x = xp.indices(shape, dtype=np.float64)
    forward = _pixel_to_world(wcs_from) if compiled else None
    if forward is not None:
        lon, lat = forward(xp, x, y)
        if bbox is not None:
            (x0, x1), (y0, y1) = bbox
            outside = (x < x0) | (x > x1) | (y < y0) | (y > y1)
            lon = xp.where(outside, xp.nan, lon)
            lat = xp.where(outside, xp.nan, lat)
    else:
        lon, lat = (xp.asarray(v) for v in _host_pixel_to_world(wcs_from, to_host(x), to_host(y)))
    del x, y

    inverse = _world_to_pixel(wcs_to) if compiled else None
    if inverse is not None:
        px, py = inverse(xp, lon, lat)
    else:
        px, py = (xp.asarray(v) for v in _host_world_to_pixel(wcs_to, to_host(lon), to_host(lat)))
    pixmap = xp.stack([xp.asarray(px, dtype=np.float64), xp.asarray(py, dtype=np.float64)], axis=-1)
    return pixmap if keep_on_device else to_host(pixmap)


# --------------------------------------------------------------------------- shape and box


def pixel_bounding_box(wcs: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """``((x0, x1), (y0, y1))`` of a WCS's bounding box, or None."""
    box = getattr(wcs, "bounding_box", None)
    if box is None:
        return None
    try:
        box = box.bounding_box(order="F")
    except AttributeError:
        box = tuple(box)
    if np.ndim(box) != 2 or len(box) != 2:
        raise InputError(f"expected a 2-D imaging WCS bounding box, got {box!r}")
    (x0, x1), (y0, y1) = box
    return (float(x0), float(x1)), (float(y0), float(y1))


def _map_shape(wcs: Any, shape: Any, bbox: Any) -> tuple[int, int]:
    if shape is None:
        shape = getattr(wcs, "array_shape", None)
    if shape is None and bbox is not None:
        shape = tuple(math.ceil(hi + 0.5) for _, hi in bbox[::-1])
    if shape is None:
        raise InputError("cannot tell the input image shape: pass shape= or set the WCS's array_shape")
    shape = tuple(int(n) for n in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(f"pixel map shape must be (ny, nx) with positive sizes, got {shape}")
    return shape


# --------------------------------------------------------------------------- compiled paths


def _pixel_to_world(wcs: Any) -> CompiledFunction | None:
    try:
        if _is_fits_wcs(wcs):
            return _fits_pixel_to_world(wcs)
        transform = getattr(wcs, "forward_transform", None)
        if transform is None:
            raise UnsupportedModel(f"{type(wcs).__name__} is neither astropy WCS nor gwcs")
        _check_celestial_gwcs(wcs)
        return compile_model(transform)
    except UnsupportedModel as exc:
        log.info("pixel map: evaluating the input WCS on the CPU (%s)", exc)
        return None


def _world_to_pixel(wcs: Any) -> CompiledFunction | None:
    try:
        if _is_fits_wcs(wcs):
            return _fits_world_to_pixel(wcs)
        transform = getattr(wcs, "forward_transform", None)
        if transform is None:
            raise UnsupportedModel(f"{type(wcs).__name__} is neither astropy WCS nor gwcs")
        _check_celestial_gwcs(wcs)
        # gwcs inverts with the forward transform's inverse (user-set or analytic).
        return compile_model(transform, inverse=True)
    except UnsupportedModel as exc:
        log.info("pixel map: evaluating the output WCS inverse on the CPU (%s)", exc)
        return None


def _check_celestial_gwcs(wcs: Any) -> None:
    frame = getattr(wcs, "output_frame", None)
    axes = tuple(getattr(frame, "axes_type", ()) or ())
    if axes and any(a != "SPATIAL" for a in axes):
        raise UnsupportedModel(f"non-imaging output frame {axes}")
    units = getattr(frame, "unit", None)
    if units and any(str(u) != "deg" for u in units):
        raise UnsupportedModel(f"world units {tuple(str(u) for u in units)}")


def _is_fits_wcs(wcs: Any) -> bool:
    from astropy.wcs import WCS

    return isinstance(wcs, WCS)


def _fits_parts(wcs: Any) -> dict[str, Any]:
    """Linear part, projection and reference of a celestial TAN / TAN-SIP astropy WCS."""
    w = wcs.wcs
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise UnsupportedModel("FITS WCS is not 2-D celestial")
    ctype = [c.upper() for c in w.ctype]
    if [c[4:8] for c in ctype] != ["-TAN", "-TAN"] or w.lng != 0:
        raise UnsupportedModel(f"FITS WCS ctype {tuple(w.ctype)}")
    if any(getattr(wcs, name, None) is not None for name in ("cpdis1", "cpdis2", "det2im1", "det2im2")):
        raise UnsupportedModel("FITS WCS with table distortions")
    if [str(u) for u in w.cunit] not in (["deg", "deg"], ["", ""]):
        raise UnsupportedModel(f"FITS WCS units {tuple(str(u) for u in w.cunit)}")
    w.set()
    # wcslib's linear matrix: CD, or PC scaled by CDELT per row.
    matrix = np.asarray(w.get_pc(), np.float64) * np.asarray(w.get_cdelt(), np.float64)[:, None]
    return {
        "crpix": [float(v) - 1.0 for v in w.crpix],  # 0-based pixel origin
        "matrix": matrix,
        "crval": [float(v) for v in w.crval],
        "lonpole": float(w.lonpole),
        "sip": wcs.sip,
    }


def _fits_rotation(parts: dict[str, Any], inverse: bool) -> CompiledFunction:
    from astropy.modeling import models as m

    cls = m.RotateCelestial2Native if inverse else m.RotateNative2Celestial
    return compile_model(cls(parts["crval"][0], parts["crval"][1], parts["lonpole"]))


def _fits_pixel_to_world(wcs: Any) -> CompiledFunction:
    parts = _fits_parts(wcs)
    (a, b), (c, d) = parts["matrix"].tolist()
    cx, cy = parts["crpix"]
    sip = parts["sip"]
    sip_a = _sip_terms(sip.a, sip.a_order) if sip is not None else []
    sip_b = _sip_terms(sip.b, sip.b_order) if sip is not None else []
    rotate = _fits_rotation(parts, inverse=False)
    tan = compile_model(_tan(inverse=False))

    def pixel_to_world(xp, x, y):
        u = x - cx
        v = y - cy
        if sip is not None:
            u, v = u + _sip_eval(xp, sip_a, u, v), v + _sip_eval(xp, sip_b, u, v)
        px = a * u + b * v
        py = c * u + d * v
        return rotate(xp, *tan(xp, px, py))

    return pixel_to_world


def _fits_world_to_pixel(wcs: Any) -> CompiledFunction:
    parts = _fits_parts(wcs)
    if parts["sip"] is not None:
        raise UnsupportedModel("inverse of a SIP distortion (astropy iterates it)")
    inv = np.linalg.inv(parts["matrix"])
    (a, b), (c, d) = inv.tolist()
    cx, cy = parts["crpix"]
    rotate = _fits_rotation(parts, inverse=True)
    tan = compile_model(_tan(inverse=True))

    def world_to_pixel(xp, lon, lat):
        px, py = tan(xp, *rotate(xp, lon, lat))
        return a * px + b * py + cx, c * px + d * py + cy

    return world_to_pixel


def _tan(inverse: bool) -> Any:
    from astropy.modeling import models as m

    return m.Sky2Pix_TAN() if inverse else m.Pix2Sky_TAN()


def _sip_terms(coeffs: np.ndarray, order: int) -> list[tuple[int, int, float]]:
    return [(p, q, float(coeffs[p, q])) for p in range(order + 1) for q in range(order + 1 - p)
            if coeffs[p, q] != 0.0]


def _sip_eval(xp, terms: list[tuple[int, int, float]], u, v):
    result = xp.zeros_like(u)
    for p, q, value in terms:
        result = result + value * (u ** p * v ** q)
    return result


# --------------------------------------------------------------------------- CPU fallback


def _host_pixel_to_world(wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.asarray(v, np.float64) for v in wcs.pixel_to_world_values(x, y))


def _host_world_to_pixel(wcs: Any, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # As stcal: the output WCS's bounding box is disabled while it is evaluated.
    saved = pixel_bounding_box(wcs) if getattr(wcs, "bounding_box", None) is not None else None
    if saved is not None:
        wcs.bounding_box = None
    try:
        return tuple(np.asarray(v, np.float64) for v in wcs.world_to_pixel_values(lon, lat))
    finally:
        if saved is not None:
            wcs.bounding_box = saved

