"""Open FITS files with errors that name the file: missing, directory, or not FITS."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from astropy.io import fits

from ..errors import FileFormatError

logger = logging.getLogger(__name__)


def open_fits(path: Path, **kwargs: Any) -> fits.HDUList:
    """Open ``path`` with :func:`astropy.io.fits.open` (``kwargs`` passed on).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    FileFormatError
        ``path`` is a directory or not a readable FITS file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise FileFormatError(f"{path} is a directory, not a FITS file")
    try:
        hdul = fits.open(path, **kwargs)
        _ = hdul[0].header  # forces the primary header to parse
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise FileFormatError(f"{path} is not a readable FITS file: {exc}") from exc
    return hdul


def find_hdu(hdul: fits.HDUList, name: str) -> Any | None:
    """The first extension called ``name`` (EXTVER 1), or None."""
    try:
        return hdul[(name, 1)]
    except KeyError:
        return None
