"""Inputs of an image mosaic: ``_cal.fits`` files (jwst layout) or in-memory arrays with a WCS.

Every input becomes a :class:`MosaicInput`. Files are opened twice: once for their metadata
(WCS, footprint, pointing keywords) when the output grid is planned, and once for their
arrays when they are drizzled, so only one input's arrays are in memory at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InputError
from ..io.datamodel_open import check_wcs, open_datamodel
from .output_wcs import ReferenceInfo, footprint_sregion

log = logging.getLogger(__name__)

VARIANCE_NAMES = ("var_rnoise", "var_flat", "var_poisson")  # the order jwst combines them in


@dataclass
class MosaicInput:
    """One calibrated image: arrays ``(ny, nx)`` and what the mosaic needs from its metadata.

    ``wcs`` is a gwcs or astropy WCS (pixel -> RA, Dec in degrees). ``wcsinfo`` may give
    ``ra_ref``, ``dec_ref``, ``roll_ref``, ``v3yangle`` and ``vparity`` (jwst names); those
    missing are derived from the WCS (reference point at the image centre, roll of its +y axis,
    parity from its handedness). ``s_region`` defaults to the WCS footprint.
    """

    data: np.ndarray
    wcs: Any
    dq: np.ndarray | None = None
    err: np.ndarray | None = None
    var_rnoise: np.ndarray | None = None
    var_poisson: np.ndarray | None = None
    var_flat: np.ndarray | None = None
    exposure_time: float = 1.0
    measurement_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    wcsinfo: dict = field(default_factory=dict)
    s_region: str | None = None
    filename: str | None = None
    group_id: str | None = None
    background_level: float | None = None
    background_subtracted: bool = False
    bunit_data: str | None = None
    model: Any = None  # the jwst datamodel it came from, if any (metadata source of the product)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(np.shape(self.data))

    def validate(self, name: str) -> None:
        data = np.asarray(self.data)
        if data.ndim != 2:
            raise InputError(f"{name}: data must be a 2-D image, got shape {data.shape}")
        if self.wcs is None:
            raise InputError(f"{name}: has no WCS (run assign_wcs on it first)")
        frame = getattr(self.wcs, "output_frame", None)
        axes = tuple(getattr(frame, "axes_type", ()) or ())
        if axes and any(a != "SPATIAL" for a in axes):
            raise InputError(f"{name}: WCS is not an imaging WCS (world axes {axes})")
        for key in ("dq", "err", *VARIANCE_NAMES):
            value = getattr(self, key)
            if value is not None and np.size(value) and np.shape(value) != data.shape:
                if key == "dq":
                    raise InputError(f"{name}: dq shape {np.shape(value)} differs from data {data.shape}")
                log.warning("%s: %s shape %s differs from data %s; it is ignored", name, key,
                            np.shape(value), data.shape)
        if not (np.isfinite(self.exposure_time) and self.exposure_time > 0):
            raise InputError(f"{name}: exposure_time must be positive, got {self.exposure_time}")


class InputSource:
    """Where one input comes from: a file opened on demand or an in-memory :class:`MosaicInput`."""

    def __init__(self, item: Any, index: int) -> None:
        self.index = index
        self._path: Path | None = None
        self._memory: MosaicInput | None = None
        if isinstance(item, (str, Path)):
            self._path = Path(item)
            self.name = str(item)
        else:
            self._memory = _as_mosaic_input(item, f"input {index}")
            self.name = self._memory.filename or f"input {index}"

    def load(self, arrays: bool = True) -> MosaicInput:
        """The input; a file is read now, its arrays only when ``arrays`` (else ``data`` is a
        zero-size-in-memory placeholder of the right shape and the other arrays are None)."""
        if self._memory is not None:
            self._memory.validate(self.name)
            return self._memory
        item = _read_cal(self._path, arrays)
        item.validate(self.name)
        return item

    def reference(self) -> tuple[ReferenceInfo, str]:
        """Pointing info and S_REGION of the input (arrays are not read)."""
        item = self.load(arrays=False)
        s_region = item.s_region or footprint_sregion(item.wcs, item.shape)
        return reference_info(item), s_region


def _as_mosaic_input(item: Any, name: str) -> MosaicInput:
    if isinstance(item, MosaicInput):
        return item
    if isinstance(item, Mapping):
        known = {f.name for f in fields(MosaicInput)}
        unknown = set(item) - known
        if unknown:
            raise InputError(f"{name}: unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
        if "data" not in item or "wcs" not in item:
            raise InputError(f"{name}: an in-memory input needs 'data' and 'wcs'")
        return MosaicInput(**item)
    if hasattr(item, "meta") and hasattr(item, "data"):
        return _from_datamodel(item, name)
    raise InputError(f"{name}: expected a file path, a MosaicInput, a dict or a jwst ImageModel, "
                     f"got {type(item).__name__}")


def _read_cal(path: Path, arrays: bool = True) -> MosaicInput:
    """A ``_cal.fits`` file through stdatamodels (the gwcs lives in its ASDF extension)."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    from ..io.fits_open import check_kinds, open_fits

    with open_fits(path, memmap=False, lazy_load_hdus=True) as hdul:
        check_kinds(hdul, path, floats=("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"), integers=("DQ",))
        names = {hdu.name for hdu in hdul}
        model_type = str(hdul[0].header.get("DATAMODL", ""))
        shape = hdul["SCI"].shape if "SCI" in names else ()
    if "ASDF" not in names or "SCI" not in names:
        raise FileFormatError(f"{path}: not a JWST calibrated product (no SCI and ASDF extensions)")
    if model_type and model_type != "ImageModel":
        raise FileFormatError(f"{path}: a {model_type}, not a 2-D image (ImageModel) product")
    model = open_datamodel("ImageModel", path)
    if model.meta.wcs is not None:
        check_wcs(model.meta.wcs, shape, path)
    return _from_datamodel(model, str(path), None if arrays else shape)


def _from_datamodel(model: Any, name: str, shape: tuple[int, ...] | None = None) -> MosaicInput:
    """A MosaicInput of a datamodel; with ``shape``, metadata only (arrays are left unread)."""
    meta = model.meta
    if getattr(meta, "wcs", None) is None:
        raise InputError(f"{name}: has no WCS (run assign_wcs on it first)")
    exposure = meta.exposure
    wcsinfo = {k: getattr(meta.wcsinfo, k, None) for k in ("ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity")}
    background = meta.background
    if shape is None:
        arrays = dict(data=model.data, dq=model.dq, err=model.err, var_rnoise=model.var_rnoise,
                      var_poisson=model.var_poisson, var_flat=model.var_flat)
    else:
        arrays = dict(data=np.broadcast_to(np.float32(0), shape))
    return MosaicInput(
        wcs=meta.wcs, **arrays,
        exposure_time=exposure.exposure_time if exposure.exposure_time is not None else 1.0,
        measurement_time=exposure.measurement_time, start_time=exposure.start_time,
        end_time=exposure.end_time, duration=exposure.duration,
        wcsinfo={k: v for k, v in wcsinfo.items() if v is not None},
        s_region=getattr(meta.wcsinfo, "s_region", None), filename=meta.filename or name,
        group_id=getattr(meta, "group_id", None), background_level=background.level,
        background_subtracted=bool(background.subtracted), bunit_data=meta.bunit_data, model=model,
    )


def reference_info(item: MosaicInput) -> ReferenceInfo:
    """Pointing keywords of an input, derived from its WCS where ``wcsinfo`` lacks them."""
    info = dict(item.wcsinfo or {})
    ny, nx = item.shape
    if "ra_ref" not in info or "dec_ref" not in info:
        ra, dec = item.wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
        info.setdefault("ra_ref", float(ra))
        info.setdefault("dec_ref", float(dec))
    if "vparity" not in info or "roll_ref" not in info:
        parity, roll = _orientation(item.wcs, (nx - 1) / 2, (ny - 1) / 2)
        info.setdefault("vparity", parity)
        info.setdefault("v3yangle", 0.0)
        info.setdefault("roll_ref", roll)
    info.setdefault("v3yangle", 0.0)
    return ReferenceInfo(wcs=item.wcs, shape=item.shape, ra_ref=float(info["ra_ref"]), dec_ref=float(info["dec_ref"]),
                         roll_ref=float(info["roll_ref"]), v3yangle=float(info["v3yangle"]),
                         vparity=int(info["vparity"]))


def _orientation(wcs: Any, x: float, y: float) -> tuple[int, float]:
    """x parity (-1: east to the left of north, as on the sky) and PA of +y (deg E of N)."""
    from astropy.coordinates import SkyCoord

    lon, lat = wcs.pixel_to_world_values(np.array([x, x + 1.0, x]), np.array([y, y, y + 1.0]))
    c = SkyCoord(lon, lat, unit="deg")
    pa_x = c[0].position_angle(c[1]).deg
    pa_y = c[0].position_angle(c[2]).deg
    # Sky images have +x at PA(+y) - 90 (east left): parity -1; mirrored images +1.
    parity = -1 if np.sin(np.radians(pa_x - pa_y)) < 0 else 1
    return parity, float(pa_y)
