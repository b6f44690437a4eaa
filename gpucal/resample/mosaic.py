"""Image mosaics as the jwst 3.0.0 resample step makes them (spec §6), one input at a time.

:func:`resample_images` plans the output grid from the inputs' footprints (§6.3), then for each
input: NaN/DO_NOT_USE matching (§6.2), sky level, weight map (ivm or exptime), device pixel
map, one drizzle of the data into the shared output (§6.4), and one drizzle per variance array
folded into running sums (§6.5). Memory holds the output arrays plus one input.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..backend import resolve_backend
from ..dq import PIXEL
from ..errors import InputError
from ..progress import ProgressCallback
from .i2d import MosaicProduct
from .inputs import VARIANCE_NAMES, InputSource, MosaicInput
from .output_wcs import OutputGrid, build_output_grid, sregion_polygons
from .pixmap import calc_pixmap

log = logging.getLogger(__name__)

KERNELS = ("square", "point", "turbo", "gaussian", "lanczos2", "lanczos3")
WEIGHT_TYPES = ("ivm", "exptime")
DO_NOT_USE = PIXEL["DO_NOT_USE"]
BAD_BITS = PIXEL["DO_NOT_USE"] | PIXEL["NON_SCIENCE"]  # jwst good_bits "~DO_NOT_USE+NON_SCIENCE"


def resample_images(
    inputs: Iterable[Any],
    *,
    pixel_scale_ratio: float = 1.0,
    pixel_scale: float | None = None,
    rotation: float | None = None,
    output_shape: Sequence[int] | None = None,
    crpix: Sequence[float] | None = None,
    crval: Sequence[float] | None = None,
    kernel: str = "square",
    pixfrac: float = 1.0,
    weight_type: str = "ivm",
    fillval: str | float = "NaN",
    backend: str | None = "auto",
    pixmap: str = "compiled",
    progress: ProgressCallback | None = None,
) -> MosaicProduct:
    """Drizzle calibrated images onto one sky grid, as jwst's ResampleStep does for imaging.

    Parameters
    ----------
    inputs
        ``_cal.fits`` paths (jwst ImageModel files with a gwcs), :class:`MosaicInput` objects,
        dicts of their fields, or jwst ImageModel objects; mixed freely.
    pixel_scale_ratio
        Output pixel scale over the first input's scale at its reference point.
    pixel_scale
        Absolute output pixel scale in arcsec (overrides ``pixel_scale_ratio``).
    rotation
        Position angle of the output +y axis, degrees east of north (None: the first input's roll).
    output_shape
        ``(ny, nx)`` of the output (numpy order; the jwst step's parameter is ``(nx, ny)``).
    crpix, crval
        0-based ``(x, y)`` reference pixel and its ``(RA, Dec)`` in degrees.
    kernel, pixfrac, fillval
        Drizzle parameters (kernels: square, point, turbo, gaussian, lanczos2, lanczos3).
    weight_type
        ``"ivm"`` (inverse read-noise variance) or ``"exptime"``.
    backend
        ``"gpu"``, ``"cpu"`` or ``"auto"``.
    pixmap
        ``"compiled"`` (default): pixel maps from the compiled WCS array code (on the device
        with the GPU backend; within 1e-8 px of the WCS's own evaluation); ``"wcs"``: the WCSs'
        own CPU evaluation, which reproduces the jwst step bit for bit.
    progress
        Called as ``progress(done, total)`` after each input.

    Returns
    -------
    MosaicProduct
        data, wht, con, err, var_rnoise/var_poisson/var_flat, the output gwcs and metadata;
        ``.to_fits(path)`` writes an ``_i2d.fits`` that jwst datamodels open as an ImageModel.
    """
    if pixmap not in ("compiled", "wcs"):
        raise InputError(f"pixmap must be 'compiled' or 'wcs', got {pixmap!r}")
    if kernel not in KERNELS:
        raise InputError(f"unknown kernel {kernel!r}; use one of {KERNELS}")
    if weight_type not in WEIGHT_TYPES:
        raise InputError(f"weight_type must be one of {WEIGHT_TYPES}, got {weight_type!r}")
    if not (np.isfinite(pixfrac) and pixfrac > 0):
        raise InputError(f"pixfrac must be positive, got {pixfrac}")
    if not (np.isfinite(pixel_scale_ratio) and pixel_scale_ratio > 0):
        raise InputError(f"pixel_scale_ratio must be positive, got {pixel_scale_ratio}")
    for name, value in (("output_shape", output_shape), ("crpix", crpix), ("crval", crval)):
        if value is not None and len(value) != 2:
            raise InputError(f"{name} needs two values, got {value!r}")
    resolved = resolve_backend(backend)
    sources = [InputSource(item, k) for k, item in enumerate(inputs)]
    if not sources:
        raise InputError("resample_images needs at least one input image")

    start = time.perf_counter()
    # Pass 1: metadata only (footprints and the first input's pointing).
    polygons: list[np.ndarray] = []
    ref = None
    for source in sources:
        info, s_region = source.reference()
        try:
            polygons.extend(sregion_polygons(s_region))
        except InputError as exc:
            raise InputError(f"{source.name}: {exc}") from None
        ref = info if ref is None else ref
    grid = build_output_grid(
        polygons, ref, pixel_scale_ratio=pixel_scale_ratio, pixel_scale=pixel_scale, rotation=rotation,
        output_shape=None if output_shape is None else tuple(output_shape),
        crpix=None if crpix is None else tuple(crpix), crval=None if crval is None else tuple(crval),
    )
    log.info("mosaic grid %dx%d, %.6f arcsec/px (ratio %.6g), %d inputs", grid.shape[1], grid.shape[0],
             3600 * grid.pixel_scale, grid.pixel_scale_ratio, len(sources))

    mosaic = _Mosaic(grid, len(sources), kernel, pixfrac, weight_type, fillval, resolved, pixmap == "compiled")
    # Pass 2: one input at a time.
    for k, source in enumerate(sources):
        item = source.load()
        mosaic.add(item, source.name)
        del item
        if progress is not None:
            progress(k + 1, len(sources))
    product = mosaic.finalize(ref_source=sources[0])
    product.meta["elapsed_s"] = time.perf_counter() - start
    return product


class _Mosaic:
    """Running state of a mosaic: the data drizzle and the variance sums (spec §6.4-6.5)."""

    def __init__(self, grid: OutputGrid, n_inputs: int, kernel: str, pixfrac: float, weight_type: str,
                 fillval: Any, backend: str, compiled_pixmap: bool) -> None:
        from .drizzle import Drizzle

        self.grid = grid
        self.kernel = kernel
        self.pixfrac = pixfrac
        self.weight_type = weight_type
        self.fillval = fillval
        self.backend = backend
        self.compiled_pixmap = compiled_pixmap
        self.driz = Drizzle(kernel=kernel, fillval=fillval, out_shape=grid.shape, exptime=0.0,
                            begin_ctx_id=0, max_ctx_id=n_inputs - 1, disable_ctx=False, backend=backend)
        self.var_sum = {name: np.full(grid.shape, np.nan, np.float32) for name in VARIANCE_NAMES}
        self.var_wt = {name: np.zeros(grid.shape, np.float32) for name in VARIANCE_NAMES}
        self.times: list[MosaicInput] = []
        self.group_ids: list[Any] = []

    def add(self, item: MosaicInput, name: str) -> None:
        data, arrays, dq = _matched_arrays(item)
        weight = _weight_map(item, arrays.get("var_rnoise"), dq, self.weight_type, name)
        if not item.background_subtracted and item.background_level is not None:
            data = data - item.background_level
        xmin, xmax, ymin, ymax = _input_range(data.shape, item.wcs)
        pixmap = calc_pixmap(item.wcs, self.grid.wcs, data.shape, backend=self.backend,
                             compiled=self.compiled_pixmap)
        if not np.isfinite(pixmap).any():
            raise InputError(f"{name}: no pixel maps onto the output grid (WCS gives no values)")
        common = dict(exptime=item.exposure_time, pixmap=pixmap, pixel_scale_ratio=self.grid.pixel_scale_ratio,
                      iscale=1.0, weight_map=weight, wht_scale=1.0, pixfrac=self.pixfrac, in_units="cps",
                      xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax)
        log.info("drizzling %s (%dx%d) onto %dx%d", name, data.shape[1], data.shape[0],
                 self.grid.shape[1], self.grid.shape[0])
        # each variance's square root is drizzled like the data into its own fresh outputs (as
        # jwst does with one Drizzle per array), sharing this call's kernel weights
        targets = {}
        for vname in VARIANCE_NAMES:
            if vname in arrays:
                with np.errstate(invalid="ignore"):
                    root = np.sqrt(arrays[vname])
                targets[vname] = (root, np.zeros(self.grid.shape, np.float32), np.zeros(self.grid.shape, np.float32))
        self.driz.add_image(data, **common, also=list(targets.values()))
        group = item.group_id if item.group_id is not None else id(item)
        if group not in self.group_ids:
            self.group_ids.append(group)
            self.times.append(_times(item))
        self._add_variances(targets, item)

    def _add_variances(self, targets: dict[str, tuple], item: MosaicInput) -> None:
        resampled = {}
        for vname, (_, img, wht) in targets.items():
            img[wht == 0.0] = np.nan  # a fresh Drizzle's fillval=NaN
            resampled[vname] = img ** 2
        # Per-pixel image weight W (spec §6.5 step 2); 1/x is taken in the variance's dtype.
        if self.weight_type == "ivm":
            weight = np.zeros(self.grid.shape)
            rn = resampled.get("var_rnoise")
            if rn is not None:
                good = (rn > 0) & np.isfinite(rn)
                weight[good] = np.reciprocal(rn[good])
        else:
            weight = np.full(self.grid.shape, _tmeasure(item))
        for vname, var in resampled.items():
            use = (var >= 0) & np.isfinite(var) & (weight > 0)
            w = weight[use]
            total = self.var_sum[vname][use].astype(np.float64)
            total[np.isnan(total)] = 0.0  # the first contribution replaces the NaN start
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
                self.var_sum[vname][use] = total + var[use] * w * w
            self.var_wt[vname][use] = self.var_wt[vname][use] + w

    def finalize(self, ref_source: InputSource) -> MosaicProduct:
        wht = self.driz.out_wht
        if not np.any(wht > 0):
            raise InputError("no input pixel landed on the output grid: check output_shape, crpix and crval "
                             "(the requested grid does not overlap the inputs)")
        ratio = self.grid.pixel_scale_ratio
        scaling = 1.0 / ratio**2  # a Python float keeps the arithmetic in float32, as jwst does
        variances = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for vname in VARIANCE_NAMES:
                t = self.var_wt[vname]
                variances[vname] = (self.var_sum[vname] * scaling / t / t).astype(np.float32)
        stack = [variances[v] for v in VARIANCE_NAMES]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "All-NaN", RuntimeWarning)
            err = np.sqrt(np.nansum(stack, axis=0))
        err[np.all(np.isnan(stack), axis=0)] = np.nan
        del stack
        meta = _time_meta(self.times)
        meta.update(
            pixel_scale_ratio=float(ratio), pixfrac=self.pixfrac, kernel=self.kernel, fillval=str(self.fillval),
            weight_type=self.weight_type, pointings=len(self.group_ids), backend=self.backend,
            pixelarea_arcsecsq=(3600.0 * self.grid.pixel_scale) ** 2,
        )
        meta["pixelarea_steradians"] = meta["pixelarea_arcsecsq"] / np.rad2deg(3600.0) ** 2
        return MosaicProduct(
            data=self.driz.out_img, wht=wht, con=self.driz.out_ctx, err=err.astype(np.float32),
            var_rnoise=variances["var_rnoise"], var_poisson=variances["var_poisson"],
            var_flat=variances["var_flat"], wcs=self.grid.wcs, pixel_scale=self.grid.pixel_scale,
            meta=meta, reference=ref_source,
        )


def _matched_arrays(item: MosaicInput) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Copies of the arrays with NaN and DO_NOT_USE shared among them (jwst match_nans_and_flags)."""
    data = np.array(item.data, copy=True)
    shape = data.shape
    arrays = {}
    for name in ("err", *VARIANCE_NAMES):
        value = getattr(item, name)
        if value is not None and np.size(value) and np.shape(value) == shape:
            arrays[name] = np.array(value, copy=True)
    invalid = np.isnan(data)
    for value in arrays.values():
        invalid |= np.isnan(value)
    dq = np.zeros(shape, np.uint32) if item.dq is None else np.array(item.dq, dtype=np.uint32, copy=True)
    invalid |= (dq & DO_NOT_USE).astype(bool)
    dq[invalid] |= DO_NOT_USE
    data[invalid] = np.nan
    for value in arrays.values():
        value[invalid] = np.nan
    return data, arrays, dq


def _weight_map(item: MosaicInput, var_rnoise: np.ndarray | None, dq: np.ndarray, weight_type: str,
                name: str) -> np.ndarray:
    """Drizzle weight per input pixel (spec §6.2): 0 for DO_NOT_USE/NON_SCIENCE pixels."""
    good = ((dq & BAD_BITS) == 0).astype(np.uint8)
    if weight_type == "ivm":
        if var_rnoise is None:
            log.warning("%s: no var_rnoise array; ivm weight map set to 1", name)
            inverse = np.ones(dq.shape, np.float32)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                inverse = 1.0 / var_rnoise
            inverse[~np.isfinite(inverse)] = 0
        return (inverse * good).astype(np.float32)
    return (np.float32(_tmeasure(item)) * good).astype(np.float32)


def _tmeasure(item: MosaicInput) -> float:
    return item.measurement_time if item.measurement_time is not None else item.exposure_time


def _input_range(shape: tuple[int, int], wcs: Any) -> tuple[int, int, int, int]:
    """Input pixel rectangle from the WCS bounding box (stcal resample_range)."""
    box = getattr(wcs, "bounding_box", None)
    ny, nx = shape
    if box is None:
        return 0, max(nx - 1, 0), 0, max(ny - 1, 0)
    try:
        box = box.bounding_box(order="F")
    except AttributeError:
        box = tuple(box)
    (x1, x2), (y1, y2) = box
    xmin, ymin = max(0, int(x1 + 0.5)), max(0, int(y1 + 0.5))
    return xmin, max(xmin, min(nx - 1, int(x2 + 0.5))), ymin, max(ymin, min(ny - 1, int(y2 + 0.5)))


def _times(item: MosaicInput) -> dict[str, Any]:
    return {"exposure_time": item.exposure_time, "measurement_time": item.measurement_time,
            "start_time": item.start_time, "end_time": item.end_time, "duration": item.duration}


def _time_meta(times: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over distinct exposures (group ids), as stcal's time counters."""
    starts = [t["start_time"] for t in times if t["start_time"] is not None]
    ends = [t["end_time"] for t in times if t["end_time"] is not None]
    measured = [t["measurement_time"] for t in times]
    duration = sum(t["duration"] or 0.0 for t in times)
    return {
        "exposure_time": sum(t["exposure_time"] for t in times),
        "measurement_time": sum(measured) if all(m is not None for m in measured) else None,
        "start_time": min(starts) if starts else None,
        "end_time": max(ends) if ends else None,
        "duration": duration,
        "elapsed_exposure_time": duration,
    }
