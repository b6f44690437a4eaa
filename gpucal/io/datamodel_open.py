"""Open jwst datamodel files (``_cal`` images) through stdatamodels, with errors that name the file.

stdatamodels raises many kinds of error on a damaged file (YAML, ASDF, schema validation,
even a ``TypeError`` from a YAML error it could not rebuild) and prints warnings on the way.
:func:`open_datamodel` turns every failure into one :class:`~gpucal.errors.FileFormatError`
line, drops the warnings of a file it refuses and logs those of a file it opens.
:func:`check_wcs` evaluates a model's WCS on a few pixels, so that a WCS damaged in the file
is refused when the file is opened, not deep inside a computation.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InputError, one_line

logger = logging.getLogger(__name__)

#: Pixels per axis at which :func:`check_wcs` evaluates a WCS.
_WCS_SAMPLES = 16


def open_datamodel(model: str, path: Path) -> Any:
    """``stdatamodels.jwst.datamodels.<model>(path)``, or a :class:`FileFormatError` naming ``path``.

    Check the file with :func:`gpucal.io.fits_open.open_fits` first: this only adds the
    datamodel's own reading (the ASDF extension, the schema).

    Raises
    ------
    InputError
        stdatamodels is not installed.
    FileFormatError
        stdatamodels cannot open the file as ``model``.
    """
    try:
        from stdatamodels.jwst import datamodels
    except ImportError as exc:
        raise InputError(f"reading {path} needs stdatamodels (pip install stdatamodels): {exc}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            opened = getattr(datamodels, model)(str(path))
        except Exception as exc:  # YAML, ASDF, schema and stdatamodels' own errors alike
            raise FileFormatError(f"{path}: cannot open as a jwst {model}: {type(exc).__name__}: "
                                  f"{one_line(exc)}") from None
    for warning in caught:
        logger.warning("%s: %s", path.name, one_line(warning.message))
    return opened


def check_wcs(wcs: Any, shape: tuple[int, ...], path: Path) -> None:
    """Evaluate ``wcs`` on a coarse grid of the ``(ny, nx)`` image; refuse the file if it raises.

    Only a WCS of the pixel coordinates alone is checked: one that takes more inputs (the
    NIRSpec IFU WCS, which takes the slice too and is evaluated slice by slice) is left to
    the code that selects its slices.

    Raises
    ------
    FileFormatError
        The WCS cannot be evaluated (a damaged transform, e.g. a lookup table out of order).
    """
    if getattr(getattr(wcs, "forward_transform", None), "n_inputs", 2) != 2:
        return
    ny, nx = shape[-2:]
    y, x = np.meshgrid(np.linspace(0, ny - 1, _WCS_SAMPLES), np.linspace(0, nx - 1, _WCS_SAMPLES), indexing="ij")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN outside the footprint is normal
            wcs(x, y)
    except Exception as exc:  # any transform's error: the file's WCS is unusable
        raise FileFormatError(f"{path}: its WCS cannot be evaluated ({type(exc).__name__}: {one_line(exc)})") from None
