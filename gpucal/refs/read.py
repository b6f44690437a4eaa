"""Read CRDS-format reference images (GAIN, READNOISE, ...) as float32 2-D arrays.

A reference file has REFTYPE, INSTRUME, DETECTOR and SUBARRAY in its primary header and
the image in a SCI extension. When the exposure is a subarray and the reference is larger
(typically full frame), the matching cut-out is returned.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FileFormatError, InputError
from ..io.fits_open import find_hdu, open_fits
from .reftype import check_reftype
from .subarray import cut_subarray, subarray_window

if TYPE_CHECKING:
    from ..ramp import Ramp

logger = logging.getLogger(__name__)

_WILDCARDS = {"", "ANY", "N/A", "GENERIC"}


def _ref_origin(primary: dict, sci: dict) -> tuple[tuple[int, int], bool]:
    """(SUBSTRT1, SUBSTRT2) of the reference (SCI header first), and whether it was given."""
    for header in (sci, primary):
        x, y = header.get("SUBSTRT1"), header.get("SUBSTRT2")
        if isinstance(x, int) and isinstance(y, int) and not isinstance(x, bool) and x >= 1 and y >= 1:
            return (x, y), True
    return (1, 1), False


def _match_exposure(image: np.ndarray, path: Path, origin: tuple[int, int], explicit: bool, ramp: Ramp) -> np.ndarray:
    target = (ramp.ny, ramp.nx)
    window = subarray_window(ramp.meta)
    if image.shape == target:
        if explicit and window is not None and origin != window[:2]:
            raise InputError(
                f"{path}: reference covers detector pixels starting at SUBSTRT1={origin[0]} "
                f"SUBSTRT2={origin[1]}, the exposure starts at SUBSTRT1={window[0]} SUBSTRT2={window[1]}"
            )
        return image
    if window is not None and image.shape[0] >= target[0] and image.shape[1] >= target[1]:
        try:
            image = cut_subarray(image, window, origin)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        logger.info("%s: using the %dx%d subarray cut-out at SUBSTRT1=%d SUBSTRT2=%d",
                    path.name, image.shape[1], image.shape[0], window[0], window[1])
    if image.shape != target:
        raise InputError(
            f"{path}: reference image shape {image.shape} does not match the exposure's "
            f"(ny, nx) = {target}"
            + ("" if window is not None else " (exposure meta has no SUBSTRT1/2, SUBSIZE1/2 to cut a subarray)")
        )
    return image


def read_reference(path: str | os.PathLike[str], reftype: str, *, ramp: Ramp | None = None) -> np.ndarray:
    """Read the SCI image of a CRDS reference file.

    Parameters
    ----------
    path : str or os.PathLike
        Reference file.
    reftype : str
        Expected REFTYPE (case-insensitive), e.g. ``"GAIN"``.
    ramp : Ramp, optional
        Exposure the reference is for. A larger reference is cut to the exposure's
        subarray (meta SUBSTRT1/2, SUBSIZE1/2, offset by the reference's own SUBSTRT1/2);
        the result must have the exposure's ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray
        float32, 2-D, native-endian, C-contiguous (a fresh array). NaN values are kept
        (and counted in a warning): NaN gain is legitimate and flagged downstream.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    FileFormatError
        Not FITS; REFTYPE or DATAMODL naming another type (a file naming none is read,
        with a warning); no SCI extension; SCI not 2-D or not float.
    InputError
        The image does not match the exposure's shape, or has no finite value.
    """
    path = Path(path)
    expected = str(reftype).strip().upper()
    with open_fits(path, memmap=False) as hdul:
        primary = hdul[0].header
        check_reftype(path, primary, expected)
        sci = find_hdu(hdul, "SCI")
        if sci is None or sci.data is None:
            raise FileFormatError(f"{path}: {expected} reference has no SCI image extension")
        if sci.data.ndim != 2:
            raise FileFormatError(
                f"{path}: {expected} reference SCI is {sci.data.ndim}-D {sci.data.shape}, expected 2-D"
            )
        if sci.data.dtype.kind != "f":
            raise FileFormatError(f"{path}: {expected} SCI holds {sci.data.dtype.newbyteorder('=')} values; "
                                  "a reference image is float32")
        image = np.asarray(sci.data)
        origin, explicit = _ref_origin(dict(primary), dict(sci.header))
        ref_detector = str(primary.get("DETECTOR", "")).strip().upper()

    if ramp is not None:
        det = str(ramp.meta.get("DETECTOR", "")).strip().upper()
        if det and ref_detector and det != ref_detector and {det, ref_detector}.isdisjoint(_WILDCARDS):
            logger.warning("%s is for detector %s, the exposure is %s", path.name, ref_detector, det)
        image = _match_exposure(image, path, origin, explicit, ramp)

    out = np.array(image, dtype=np.float32, order="C", copy=True)
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad == out.size:
        raise InputError(f"{path}: {expected} reference has no finite value ({out.size} pixels are NaN/inf)")
    if bad:
        logger.warning("%s: %d of %d %s values are NaN or infinite", path.name, bad, out.size, expected)
    return out


def read_gain(path: str | os.PathLike[str], ramp: Ramp | None = None) -> np.ndarray:
    """GAIN reference image (electrons/DN) as float32 ``(ny, nx)``; see :func:`read_reference`."""
    return read_reference(path, "GAIN", ramp=ramp)


def read_readnoise(path: str | os.PathLike[str], ramp: Ramp | None = None) -> np.ndarray:
    """READNOISE reference image (DN, CDS) as float32 ``(ny, nx)``; see :func:`read_reference`."""
    return read_reference(path, "READNOISE", ramp=ramp)
