"""FITS header helpers shared by every writer: keyword filtering, primary header, DQ_DEF.

``meta`` dictionaries in gpucal hold primary-header keywords (upper-case names, scalar
values). Writers turn them into headers with :func:`primary_header`, which keeps only
valid FITS keywords with values FITS can hold and never lets ``meta`` override the
structural cards or the keywords the writer owns (DATAMODL, TELESCOP, FILENAME).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits

from ..dq import dq_def_rows

logger = logging.getLogger(__name__)

_KEYWORD_RE = re.compile(r"^[A-Z0-9_-]{1,8}$")

#: Cards that describe an HDU's structure (or are commentary) and never come from meta.
STRUCTURAL = frozenset(
    {
        "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "BZERO",
        "BSCALE", "BLANK", "BUNIT", "EXTNAME", "EXTVER", "TFIELDS", "CHECKSUM", "DATASUM",
        "END", "COMMENT", "HISTORY", "",
    }
)
_STRUCTURAL_PREFIX = re.compile(r"^(NAXIS\d+|TTYPE\d+|TFORM\d+|TUNIT\d+|TZERO\d+|TSCAL\d+|TDIM\d+)$")

#: Exposure keywords a ramp product must carry.
EXPOSURE_KEYWORDS = ("NINTS", "NGROUPS", "NFRAMES", "GROUPGAP", "TGROUP", "TFRAME")


def is_structural(key: str) -> bool:
    """True for cards that describe an HDU's layout rather than the observation."""
    return key in STRUCTURAL or bool(_STRUCTURAL_PREFIX.match(key))


def fits_value(value: Any) -> str | int | float | bool | None:
    """Convert ``value`` to a type a FITS card can hold, or None if it cannot be stored.

    numpy scalars become Python scalars; non-finite floats, non-ASCII strings and
    containers are rejected.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if value.isascii() and value.isprintable():
            return value
        return None
    return None


def header_cards(meta: Mapping[str, Any], *, exclude: frozenset[str] = frozenset()) -> list[tuple[str, Any]]:
    """The ``(keyword, value)`` pairs of ``meta`` that are valid, non-structural FITS cards.

    Parameters
    ----------
    meta : Mapping
        Keyword dictionary; keys are upper-cased.
    exclude : frozenset of str
        Keywords the caller sets itself.

    Returns
    -------
    list of (str, value)
        In the order of ``meta``. Skipped entries are logged at debug level.
    """
    cards: list[tuple[str, Any]] = []
    for raw_key, raw_value in meta.items():
        key = str(raw_key).upper()
        if not _KEYWORD_RE.match(key) or is_structural(key) or key in exclude:
            if key not in exclude and not is_structural(key):
                logger.debug("meta key %r is not a FITS keyword; not written", raw_key)
            continue
        value = fits_value(raw_value)
        if value is None:
            logger.debug("meta %s=%r cannot be stored in a FITS header; not written", key, raw_value)
            continue
        cards.append((key, value))
    return cards


def primary_header(
    meta: Mapping[str, Any] | None,
    *,
    datamodl: str,
    filename: str,
    extra: Mapping[str, Any] | None = None,
) -> fits.Header:
    """Build a primary header: meta cards, then ``extra``, then the writer-owned keywords.

    Parameters
    ----------
    meta : Mapping or None
        Primary-header keywords to carry over.
    datamodl : str
        jwst datamodel class name written as DATAMODL (e.g. ``"ImageModel"``).
    filename : str
        Basename written as FILENAME.
    extra : Mapping, optional
        Keywords that take precedence over ``meta`` (e.g. authoritative exposure values).

    Returns
    -------
    astropy.io.fits.Header
        Header of a data-less primary HDU (SIMPLE, BITPIX=8, NAXIS=0, EXTEND=T first).
    """
    owned = frozenset({"TELESCOP", "DATAMODL", "FILENAME"})
    header = fits.PrimaryHDU().header
    header["TELESCOP"] = "JWST"
    header["DATAMODL"] = datamodl
    header["FILENAME"] = filename
    extra = dict(extra or {})
    extra_keys = frozenset(str(k).upper() for k in extra)
    for key, value in header_cards(meta or {}, exclude=owned | extra_keys):
        header[key] = value
    for key, value in header_cards(extra, exclude=owned):
        header[key] = value
    return header


def dq_def_hdu() -> fits.BinTableHDU:
    """The DQ_DEF binary table (BIT int32, VALUE uint32, NAME, DESCRIPTION) of gpucal.dq."""
    rows = dq_def_rows()
    table = np.zeros(
        len(rows),
        dtype=[("BIT", "<i4"), ("VALUE", "<u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")],
    )
    for i, (bit, value, name, description) in enumerate(rows):
        table[i] = (bit, value, name.encode("ascii"), description.encode("ascii"))
    return fits.BinTableHDU(data=table, name="DQ_DEF")
