"""Open an IFU ``_cal`` file: arrays, band keys and the gwcs stored in it.

The gwcs lives in the file's ASDF extension, so reading it needs stdatamodels (and jwst's
transform classes for flight files, which register themselves when jwst is installed).
NaN and DO_NOT_USE are made consistent across data, err, dq and the variance arrays, as
jwst's cube_build does before anything else.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import dq as dqflags
from ..errors import FileFormatError
from ..io.datamodel_open import check_wcs

log = logging.getLogger(__name__)

IFU_EXP_TYPES = {"MIR_MRS": "MIRI", "NRS_IFU": "NIRSPEC"}


@dataclass
class IFUExposure:
    """One calibrated IFU exposure."""

    path: Path
    instrument: str
    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    regions: np.ndarray | None
    wcs: Any
    bands: list[tuple[str, str]]
    model: Any = field(repr=False)
    s_region: str | None = None
    spectral_region: bool = False
    target_type: str | None = None


def _open_model(path: Path):
    from ..io.datamodel_open import open_datamodel
    from ..io.fits_open import check_kinds, open_fits

    with open_fits(path, memmap=False, lazy_load_hdus=True) as hdul:  # a short or corrupt file, named
        check_kinds(hdul, path, floats=("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"),
                    integers=("DQ", "REGIONS"))
    return open_datamodel("IFUImageModel", path)


def _match_nans_and_flags(model) -> None:
    arrays = [model.data, model.err] + [getattr(model, n) for n in ("var_rnoise", "var_poisson", "var_flat")
                                        if model.hasattr(n)]
    arrays = [a for a in arrays if a is not None and a.shape == model.data.shape]
    invalid = np.zeros(model.data.shape, dtype=bool)
    for a in arrays:
        invalid |= np.isnan(a)
    invalid |= (model.dq & dqflags.DO_NOT_USE).astype(bool)
    model.dq[invalid] |= dqflags.DO_NOT_USE
    for a in arrays:
        a[invalid] = np.nan


def open_exposure(path: str | os.PathLike[str]) -> IFUExposure:
    """Open and check one IFU ``_cal`` file (clear errors for non-IFU or WCS-less files)."""
    path = Path(path)
    model = _open_model(path)
    meta = model.meta
    exp_type = str(meta.exposure.type or "").upper()
    instrument = IFU_EXP_TYPES.get(exp_type)
    if instrument is None or model.data.ndim != 2:
        model.close()
        raise FileFormatError(f"{path} is not an IFU exposure (EXP_TYPE={exp_type or 'missing'}); "
                              "expected MIR_MRS or NRS_IFU calibrated images")
    wcs = meta.wcs
    if wcs is None or meta.cal_step.assign_wcs != "COMPLETE":
        model.close()
        raise FileFormatError(f"{path} has no WCS: run assign_wcs (jwst calwebb_spec2) first")
    try:
        check_wcs(wcs, model.data.shape, path)
    except FileFormatError:
        model.close()
        raise
    if instrument == "MIRI":
        channels = str(meta.instrument.channel or "")
        band = str(meta.instrument.band or "").lower()
        if not channels or not band:
            raise FileFormatError(f"{path}: CHANNEL or BAND keyword missing")
        bands = [(ch, band) for ch in channels if ch in "1234"]
    else:
        grating = str(meta.instrument.grating or "").lower()
        filt = str(meta.instrument.filter or "").lower()
        bands = [(grating, filt)]
    _match_nans_and_flags(model)
    regions = model.regions if model.hasattr("regions") else None
    return IFUExposure(
        path=path, instrument=instrument, data=model.data, err=model.err, dq=model.dq,
        regions=regions, wcs=wcs, bands=bands, model=model,
        s_region=getattr(meta.wcsinfo, "s_region", None), target_type=meta.target.type,
        spectral_region=getattr(meta.wcsinfo, "spectral_region", None) is not None,
    )
