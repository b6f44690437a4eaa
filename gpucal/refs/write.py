"""Write CRDS-style reference images (used for the synthetic reference set)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import InputError
from ..io.atomic import atomic_write
from ..io.fits_meta import primary_header
from .reftype import MODELS

logger = logging.getLogger(__name__)

#: BUNIT of the SCI image per REFTYPE.
UNITS = {"GAIN": "electrons/DN", "READNOISE": "DN"}
#: jwst datamodel class per REFTYPE, written as DATAMODL so stdatamodels opens the file.
DATAMODELS = {t: MODELS[t][0] for t in ("GAIN", "READNOISE")}
USEAFTER = "2022-01-01T00:00:00"


def write_reference(
    path: str | os.PathLike[str],
    reftype: str,
    data: np.ndarray,
    *,
    instrument: str,
    detector: str,
    subarray: str = "FULL",
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a CRDS-style reference file with a float32 SCI image, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    reftype : str
        REFTYPE, e.g. ``"GAIN"`` (SCI BUNIT electrons/DN) or ``"READNOISE"`` (DN).
    data : numpy.ndarray
        2-D real image; stored as float32.
    instrument, detector : str
        INSTRUME and DETECTOR.
    subarray : str
        SUBARRAY name (``"FULL"``, ``"GENERIC"``, ...).
    extra : Mapping, optional
        More primary keywords, e.g. SUBSTRT1/2 and SUBSIZE1/2 for a subarray reference.
    overwrite : bool
        Replace an existing file (default True).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    InputError
        ``data`` is not a 2-D real array.
    """
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.dtype.kind not in "iuf":
        raise InputError(f"reference data must be a 2-D real array, got {arr.dtype} {arr.shape}")
    path = Path(path)
    reftype = str(reftype).strip().upper()
    header = primary_header(
        extra or {},
        datamodl=DATAMODELS.get(reftype, "ReferenceImageModel"),
        filename=path.name,
        extra={
            "INSTRUME": str(instrument).upper(),
            "DETECTOR": str(detector).upper(),
            "REFTYPE": reftype,
            "SUBARRAY": str(subarray).upper(),
            "DESCRIP": f"gpucal synthetic {reftype} reference",
            "AUTHOR": "gpucal synthetic",
            "PEDIGREE": "DUMMY",
            "USEAFTER": USEAFTER,
        },
    )
    sci = fits.ImageHDU(data=arr.astype(">f4"), name="SCI")
    if reftype in UNITS:
        sci.header["BUNIT"] = UNITS[reftype]
    with atomic_write(path, overwrite=overwrite) as fh:
        fits.HDUList([fits.PrimaryHDU(header=header), sci]).writeto(fh, output_verify="exception")
    logger.info("wrote %s reference %s %s", reftype, path, arr.shape)
    return path
