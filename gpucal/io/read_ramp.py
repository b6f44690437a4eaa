"""Read JWST level-1b ``_uncal.fits`` and ``_ramp.fits`` files into a lazy :class:`Ramp`.

Nothing is read from the data units when the file is opened: SCI (and GROUPDQ,
ZEROFRAME) stay memory-mapped (the maps outlive the closed file handle), scaled integer
images (uint16 SCI of ``_uncal``) are wrapped in :class:`~gpucal.io.lazy.ScaledArray`,
and a missing GROUPDQ becomes a read-only broadcast of zero (no memory). PIXELDQ, one
2-D image, is read at once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import FileFormatError, InputError
from ..ramp import Ramp
from .fits_meta import fits_value, is_structural
from .fits_open import find_hdu, open_fits
from .lazy import lazy_image

logger = logging.getLogger(__name__)

#: Keywords not needed to build a Ramp but copied into meta when present (all other
#: valid primary-header keywords are copied as well; these are documented for users).
OPTIONAL_KEYWORDS = (
    "DRPFRMS1", "INSTRUME", "DETECTOR", "EXP_TYPE", "READPATT", "SUBARRAY", "SUBSTRT1",
    "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "ZEROFRAM", "INTSTART", "INTEND", "R_GAIN",
    "R_READNO",
)


def _not_ramp(path: Path, reason: str, primary: fits.Header) -> FileFormatError:
    hint = ""
    if "REFTYPE" in primary:
        hint = f" (it looks like a {primary['REFTYPE']} reference file)"
    elif primary.get("DATAMODL"):
        hint = f" (DATAMODL={primary['DATAMODL']})"
    return FileFormatError(f"{path} is not a JWST ramp (_uncal/_ramp) product: {reason}{hint}")


def _required(path: Path, header: fits.Header, key: str, kind: type) -> Any:
    if key not in header or header[key] is None or isinstance(header[key], fits.card.Undefined):
        raise FileFormatError(f"{path}: missing required primary-header keyword {key}")
    value = header[key]
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        return float(value)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{path}: keyword {key}={value!r} is not a valid {kind.__name__}") from exc


def _check_samples(path: Path, name: str, data: Any) -> None:
    """SCI and ZEROFRAME hold DN as float (``_ramp``) or uint16 (``_uncal``), as the jwst
    models do; an integer image of another width is a corrupt or foreign file (a float32
    image whose BITPIX was damaged to 32 would otherwise be read as huge integers)."""
    dtype = np.dtype(data.dtype).newbyteorder("=")
    if dtype.kind != "f" and dtype != np.uint16:
        raise FileFormatError(f"{path}: {name} holds {dtype} values; a ramp's {name} is float32 (_ramp) or "
                              "uint16 (_uncal)")


def header_meta(header: fits.Header) -> dict[str, Any]:
    """Scalar, non-structural keywords of a primary header as an upper-case dict."""
    meta: dict[str, Any] = {}
    for key in header:
        if not key or is_structural(key) or key in meta:
            continue
        value = fits_value(header[key])
        if value is not None:
            meta[key] = value
    return meta


def _expected_nints(primary: fits.Header, nints_kw: int) -> int:
    """Integrations the SCI cube must hold: INTEND-INTSTART+1 in a segment, else NINTS."""
    start, end = primary.get("INTSTART"), primary.get("INTEND")
    if isinstance(start, int) and isinstance(end, int) and end >= start >= 1:
        return end - start + 1
    return nints_kw


def read_ramp(path: str | os.PathLike[str]) -> Ramp:
    """Open a JWST ``_uncal.fits`` or ``_ramp.fits`` as a lazy :class:`Ramp`.

    Parameters
    ----------
    path : str or os.PathLike
        Level-1b (SCI uint16, usually without GROUPDQ/PIXELDQ) or ramp (SCI float32,
        PIXELDQ, GROUPDQ, optional ZEROFRAME) file.

    Returns
    -------
    Ramp
        Arrays memory-mapped (nothing read yet); ``meta`` holds the primary-header
        keywords, with FILENAME set to the file's basename.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    FileFormatError
        Not FITS; no 4-D SCI extension; a required keyword (NGROUPS, NINTS, NFRAMES,
        GROUPGAP, TGROUP, TFRAME) missing; SCI shape disagreeing with NINTS/NGROUPS; or
        a DQ extension of the wrong shape or type.
    """
    path = Path(path)
    hdul = open_fits(path, memmap=True, do_not_scale_image_data=True, lazy_load_hdus=True)
    try:
        ramp = _ramp_from_hdul(path, hdul)
    finally:
        # The arrays keep their memory maps alive; the file descriptor is not needed.
        hdul.close()
    logger.debug("opened %s: %s", path, ramp)
    return ramp


def _ramp_from_hdul(path: Path, hdul: fits.HDUList) -> Ramp:
    primary = hdul[0].header
    sci = find_hdu(hdul, "SCI")
    if sci is None:
        raise _not_ramp(path, "it has no SCI extension", primary)
    sci_ndim = int(sci.header.get("NAXIS", 0))
    if sci_ndim != 4:
        raise _not_ramp(
            path, f"its SCI extension is {sci_ndim}-D, expected 4-D (nints, ngroups, ny, nx)", primary
        )

    values = {
        "NGROUPS": _required(path, primary, "NGROUPS", int),
        "NINTS": _required(path, primary, "NINTS", int),
        "NFRAMES": _required(path, primary, "NFRAMES", int),
        "GROUPGAP": _required(path, primary, "GROUPGAP", int),
        "TGROUP": _required(path, primary, "TGROUP", float),
        "TFRAME": _required(path, primary, "TFRAME", float),
    }
    drop_frames1 = primary.get("DRPFRMS1", 0)
    drop_frames1 = int(drop_frames1) if isinstance(drop_frames1, (int, float)) else 0

    data = lazy_image(sci)
    _check_samples(path, "SCI", data)
    nints, ngroups, ny, nx = data.shape
    expected = (_expected_nints(primary, values["NINTS"]), values["NGROUPS"])
    if (nints, ngroups) != expected:
        raise FileFormatError(
            f"{path}: SCI shape {tuple(data.shape)} disagrees with the header: "
            f"expected nints={expected[0]} (NINTS/INTSTART/INTEND), ngroups={expected[1]} (NGROUPS)"
        )

    gdq_hdu = find_hdu(hdul, "GROUPDQ")
    if gdq_hdu is not None:
        groupdq = lazy_image(gdq_hdu)
    else:
        # Level-1b: no group DQ yet. A broadcast zero costs no memory; block() copies.
        groupdq = np.broadcast_to(np.zeros((), dtype=np.uint8), data.shape)
    pdq_hdu = find_hdu(hdul, "PIXELDQ")
    if pdq_hdu is not None:
        pixeldq = lazy_image(pdq_hdu)
        if pixeldq is None:
            raise FileFormatError(f"{path}: PIXELDQ extension has no data")
        if np.dtype(pixeldq.dtype).newbyteorder("=") == np.uint32:
            # One 2-D image: read it now as a plain native array (steps index it freely).
            pixeldq = np.ascontiguousarray(pixeldq[...], dtype=np.uint32)
    else:
        pixeldq = np.zeros((ny, nx), dtype=np.uint32)
    zf_hdu = find_hdu(hdul, "ZEROFRAME")
    zeroframe = lazy_image(zf_hdu) if zf_hdu is not None and zf_hdu.header.get("NAXIS", 0) else None
    if zeroframe is not None:
        _check_samples(path, "ZEROFRAME", zeroframe)

    meta = header_meta(primary)
    meta["FILENAME"] = path.name
    try:
        ramp = Ramp(
            data,
            groupdq,
            pixeldq,
            group_time=values["TGROUP"],
            frame_time=values["TFRAME"],
            nframes=values["NFRAMES"],
            groupgap=values["GROUPGAP"],
            drop_frames1=max(drop_frames1, 0),
            zeroframe=zeroframe,
            meta=meta,
        )
    except InputError as exc:
        raise FileFormatError(f"{path}: {exc}") from exc
    return ramp
