"""Write a :class:`~gpucal.ramp.Ramp` as a jwst ``_ramp.fits`` (RampModel) or ``_uncal.fits``.

Data are streamed one (integration, group) plane at a time, so a lazily opened ramp is
never materialised, and the file is written atomically (:mod:`gpucal.io.atomic`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..ramp import Ramp
from . import fits_stream
from .atomic import atomic_write
from .fits_meta import dq_def_hdu, primary_header

logger = logging.getLogger(__name__)

_DATAMODL = {"ramp": "RampModel", "uncal": "Level1bModel"}


def exposure_cards(ramp: Ramp) -> dict[str, Any]:
    """Keywords that describe the ramp's readout, taken from the Ramp (not its meta)."""
    cards: dict[str, Any] = {
        "NINTS": ramp.nints,
        "NGROUPS": ramp.ngroups,
        "NFRAMES": ramp.nframes,
        "GROUPGAP": ramp.groupgap,
        "TGROUP": ramp.group_time,
        "TFRAME": ramp.frame_time,
        "DRPFRMS1": ramp.drop_frames1,
        "ZEROFRAM": ramp.zeroframe is not None,
    }
    start, end, total = (ramp.meta.get(k) for k in ("INTSTART", "INTEND", "NINTS"))
    if isinstance(start, int) and isinstance(end, int) and end - start + 1 == ramp.nints:
        # A segment of a longer exposure: NINTS stays the exposure's total.
        if isinstance(total, int) and total >= end:
            cards["NINTS"] = total
    return cards


def _planes(array: Any, nints: int, nplanes: int) -> Iterator[np.ndarray]:
    for n in range(nints):
        for g in range(nplanes):
            yield np.asarray(array[n, g])


def _to_uint16(plane: np.ndarray) -> np.ndarray:
    if plane.dtype == np.uint16:
        return plane
    values = np.nan_to_num(np.asarray(plane, dtype=np.float64), nan=0.0)
    return np.clip(np.rint(values), 0, 65535).astype(np.uint16)


def write_ramp(
    ramp: Ramp,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    level: Literal["ramp", "uncal"] = "ramp",
) -> Path:
    """Write ``ramp`` in the jwst file layout, atomically.

    Parameters
    ----------
    ramp : Ramp
        The exposure.
    path : str or os.PathLike
        Output file (conventionally ``*_ramp.fits`` or ``*_uncal.fits``).
    overwrite : bool
        Replace an existing file (default False: raise FileExistsError).
    level : {"ramp", "uncal"}
        ``"ramp"``: RampModel layout, SCI float32 4-D, PIXELDQ uint32, GROUPDQ uint8,
        ZEROFRAME float32 (when present), DQ_DEF table. ``"uncal"``: Level1bModel
        layout, SCI uint16 (rounded, clipped to 0..65535; NaN -> 0), ZEROFRAME uint16
        when present, no DQ extensions.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if level not in _DATAMODL:
        raise InputError(f"level must be 'ramp' or 'uncal', got {level!r}")
    path = Path(path)
    nints, ngroups, ny, nx = ramp.shape
    header = primary_header(
        ramp.meta, datamodl=_DATAMODL[level], filename=path.name, extra=exposure_cards(ramp)
    )
    sci_dtype = np.float32 if level == "ramp" else np.uint16
    with atomic_write(path, overwrite=overwrite) as fh:
        fits_stream.write_header(fh, header)
        sci_header = fits_stream.image_header("SCI", sci_dtype, ramp.shape, {"BUNIT": "DN"})
        sci = _planes(ramp.data, nints, ngroups)
        if level == "uncal":
            sci = (_to_uint16(p) for p in sci)
        fits_stream.write_image(fh, sci_header, sci, sci_dtype)
        if level == "ramp":
            fits_stream.write_image(
                fh,
                fits_stream.image_header("PIXELDQ", np.uint32, (ny, nx)),
                [np.asarray(ramp.pixeldq[...])],
                np.uint32,
            )
            fits_stream.write_image(
                fh,
                fits_stream.image_header("GROUPDQ", np.uint8, ramp.shape),
                _planes(ramp.groupdq, nints, ngroups),
                np.uint8,
            )
        if ramp.zeroframe is not None:
            zf = (np.asarray(ramp.zeroframe[n]) for n in range(nints))
            if level == "uncal":
                zf = (_to_uint16(p) for p in zf)
            fits_stream.write_image(
                fh,
                fits_stream.image_header("ZEROFRAME", sci_dtype, (nints, ny, nx), {"BUNIT": "DN"}),
                zf,
                sci_dtype,
            )
        if level == "ramp":
            fits_stream.write_hdu(fh, dq_def_hdu())
    logger.info("wrote %s (%s, shape %s)", path, _DATAMODL[level], ramp.shape)
    return path
