"""Open FITS files with errors that name the file: missing, directory, not FITS, short or corrupt.

Every FITS file gpucal reads comes through :func:`open_fits`, which checks the file's
structure against its size first (:func:`~gpucal.io.fits_layout.fits_layout`), so memory
maps made afterwards can never reach past the end of the file, and parses every header card
at once, so a corrupt card is reported when the file is opened rather than when some
keyword is first looked up.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.utils.exceptions import AstropyUserWarning

from ..errors import FileFormatError, one_line
from .fits_layout import HduLayout, fits_layout

logger = logging.getLogger(__name__)


def check_fits(path: Path) -> list[HduLayout]:
    """The checked layout of the FITS file at ``path`` (see :func:`open_fits` for the errors)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise FileFormatError(f"{path} is a directory, not a FITS file")
    return fits_layout(path)


def open_fits(path: Path, **kwargs: Any) -> fits.HDUList:
    """Open ``path`` with :func:`astropy.io.fits.open` (``kwargs`` passed on), checked.

    Every HDU's header is read and every card parsed before the list is returned.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    FileFormatError
        ``path`` is a directory, is not FITS, is empty or truncated, or has a corrupt
        header (a malformed structural or other card, a missing END card).
    """
    path = Path(path)
    layout = check_fits(path)
    # Recording warnings is process-wide: files are opened before the threaded computing starts.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, **kwargs)
        except (OSError, ValueError, TypeError, IndexError, KeyError, VerifyError) as exc:
            raise FileFormatError(f"{path} is not a readable FITS file: {one_line(exc)}") from exc
        try:
            hdul.readall()
            for hdu in hdul:
                for card in hdu.header.cards:
                    _ = card.value
        except (OSError, ValueError, TypeError, IndexError, KeyError, VerifyError) as exc:
            hdul.close()
            raise FileFormatError(f"{path} is not a readable FITS file: {one_line(exc)}") from exc
    # Zeros after the last HDU were checked by fits_layout; any other warning of astropy's
    # (a card it had to fix or guess at) is a corrupt header here.
    caught = [w for w in caught if "extra padding" not in str(w.message)]
    fixed = [w for w in caught if issubclass(w.category, AstropyUserWarning)]
    if fixed:
        hdul.close()
        raise FileFormatError(f"{path} is not a readable FITS file: {one_line(fixed[0].message)}")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if len(hdul) != len(layout):
        hdul.close()
        raise FileFormatError(f"{path}: astropy reads {len(hdul)} HDUs where the file's headers describe "
                              f"{len(layout)}: the file is corrupt")
    return hdul


def read_header(path: Path, index: int = 0) -> fits.Header:
    """A copy of one checked header of the FITS file at ``path`` (see :func:`open_fits`)."""
    with open_fits(path, memmap=False, lazy_load_hdus=True) as hdul:
        return hdul[index].header.copy()


def check_kinds(hdul: fits.HDUList, path: Path, floats: tuple[str, ...] = (),
                integers: tuple[str, ...] = ()) -> None:
    """Each named image extension present holds floats (``floats``) or integers (``integers``),
    judged from BITPIX alone (no data are read). stdatamodels would cast a float32 array whose
    BITPIX was damaged to 32 into huge integers and carry on; this refuses the file.

    Raises
    ------
    FileFormatError
        An extension of the wrong kind.
    """
    for names, want in ((floats, "float"), (integers, "integer")):
        for name in names:
            hdu = find_hdu(hdul, name)
            if hdu is None or not hdu.header.get("NAXIS", 0):
                continue
            bitpix = int(hdu.header["BITPIX"])
            if (bitpix < 0) != (want == "float"):
                raise FileFormatError(f"{path}: {name} has BITPIX = {bitpix}, expected {want} values")


def find_hdu(hdul: fits.HDUList, name: str) -> Any | None:
    """The first extension called ``name`` (EXTVER 1), or None."""
    try:
        return hdul[(name, 1)]
    except KeyError:
        return None
