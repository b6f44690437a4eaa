"""The mosaic product and its ``_i2d.fits`` file (a jwst ImageModel, written atomically)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InputError

log = logging.getLogger(__name__)


@dataclass
class MosaicProduct:
    """A resampled image: float32 data/wht/err/variances, int32 context planes, gwcs and metadata.

    ``meta`` holds the resample parameters (kernel, pixfrac, fillval, weight_type,
    pixel_scale_ratio, pointings), pixel area and the exposure-time totals.
    """

    data: np.ndarray
    wht: np.ndarray
    con: np.ndarray
    err: np.ndarray
    var_rnoise: np.ndarray
    var_poisson: np.ndarray
    var_flat: np.ndarray
    wcs: Any
    pixel_scale: float  # degrees
    meta: dict = field(default_factory=dict)
    reference: Any = None  # the first input's source (metadata for the file)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def to_datamodel(self) -> Any:
        """The product as a ``stdatamodels`` ImageModel (metadata of the first input, as jwst)."""
        try:
            from stdatamodels.jwst import datamodels
        except ImportError as exc:
            raise FileFormatError(f"writing an _i2d file needs stdatamodels: {exc}") from None
        model = datamodels.ImageModel()
        first = None
        if self.reference is not None:
            first = self.reference.load(arrays=False).model
        if first is not None:
            model.update(first)
        model.data = self.data
        model.wht = self.wht
        model.con = self.con
        model.err = self.err
        model.var_rnoise = self.var_rnoise
        model.var_poisson = self.var_poisson
        model.var_flat = self.var_flat
        model.meta.wcs = self.wcs
        _set_meta(model, self.meta)
        _set_wcsinfo(model, self.wcs)
        return model

    def to_fits(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``path`` (an ``_i2d.fits`` name) atomically; returns the path."""
        from ..io.atomic import atomic_write

        path = Path(path)
        if path.suffix.lower() not in (".fits", ".fit"):
            raise InputError(f"output {path} must be a .fits file")
        model = self.to_datamodel()
        model.meta.filename = path.name
        with atomic_write(path, overwrite=overwrite) as fh:
            model.to_fits(fh)
        log.info("wrote %s", path)
        return path


def _set_meta(model: Any, meta: dict) -> None:
    photometry = model.meta.photometry
    photometry.pixelarea_steradians = meta["pixelarea_steradians"]
    photometry.pixelarea_arcsecsq = meta["pixelarea_arcsecsq"]
    resample = model.meta.resample
    resample.pointings = meta["pointings"]
    resample.pixel_scale_ratio = meta["pixel_scale_ratio"]
    resample.pixfrac = meta["pixfrac"]
    resample.kernel = meta["kernel"]
    resample.fillval = meta["fillval"]
    resample.weight_type = meta["weight_type"]
    exposure = model.meta.exposure
    for key in ("exposure_time", "start_time", "end_time", "duration", "measurement_time",
                "elapsed_exposure_time"):
        if meta.get(key) is not None:
            setattr(exposure, key, meta[key])
    exposure.effective_exposure_time = meta["exposure_time"]
    model.meta.cal_step.resample = "COMPLETE"


def _set_wcsinfo(model: Any, wcs: Any) -> None:
    """FITS WCS keywords of the output grid; pointing and SIP keywords of the input removed."""
    info = model.meta.wcsinfo
    transform = wcs.forward_transform
    for key in list(info.instance):
        if key in ("v2_ref", "v3_ref", "ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity") or \
                key.startswith(("a_", "b_", "ap_", "bp_")) or key in ("cd1_1", "cd1_2", "cd2_1", "cd2_2"):
            del info.instance[key]
    crpix = np.asarray(transform.crpix.value)
    crval = np.asarray(transform.crval.value)
    cdelt = np.asarray(transform.cdelt.value)
    pc = np.asarray(transform.pc.value).reshape(2, 2)
    info.crpix1, info.crpix2 = float(crpix[0] + 1), float(crpix[1] + 1)
    info.crval1, info.crval2 = float(crval[0]), float(crval[1])
    info.cdelt1, info.cdelt2 = float(cdelt[0]), float(cdelt[1])
    info.pc1_1, info.pc1_2 = float(pc[0, 0]), float(pc[0, 1])
    info.pc2_1, info.pc2_2 = float(pc[1, 0]), float(pc[1, 1])
    info.ctype1, info.ctype2 = "RA---TAN", "DEC--TAN"
    info.cunit1, info.cunit2 = "deg", "deg"
    info.radesys = "ICRS"
    corners = wcs.footprint()
    info.s_region = "POLYGON ICRS  " + " ".join(f"{np.mod(a, 360.0):.9f} {d:.9f}" for a, d in corners)
