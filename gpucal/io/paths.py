"""Output file naming: ``<dir>/<basename without product suffix>_<product>.fits``."""

from __future__ import annotations

import os
from pathlib import Path

#: Suffixes removed (once, after the extension) to get an exposure's base name.
PRODUCT_SUFFIXES = ("_uncal", "_ramp", "_jump", "_rateints", "_rate", "_fitopt", "_cal")
_EXTENSIONS = (".fits.gz", ".fits", ".fit")


def strip_product_suffix(name: str) -> str:
    """Drop a FITS extension and then one product suffix from a file name.

    Examples
    --------
    >>> strip_product_suffix("jw01_nrca1_uncal.fits")
    'jw01_nrca1'
    >>> strip_product_suffix("jw01_nrca1")
    'jw01_nrca1'
    """
    lowered = name.lower()
    for ext in _EXTENSIONS:
        if lowered.endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
            break
    for suffix in PRODUCT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def product_prefix(path_prefix: str | os.PathLike[str]) -> Path:
    """``path_prefix`` with a trailing ``.fits`` and product suffix removed from its name."""
    path = Path(path_prefix)
    return path.with_name(strip_product_suffix(path.name))


def output_prefix(input_path: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> Path:
    """Prefix for the products of ``input_path`` written into ``output_dir``.

    Parameters
    ----------
    input_path : str or os.PathLike
        The exposure, e.g. ``data/jw001_nrca1_uncal.fits``.
    output_dir : str or os.PathLike
        Where products go.

    Returns
    -------
    pathlib.Path
        ``output_dir/<basename without _uncal.fits / _ramp.fits / .fits>``, e.g.
        ``out/jw001_nrca1``; products are ``<prefix>_rate.fits`` and so on.
    """
    return Path(output_dir) / strip_product_suffix(Path(input_path).name)
