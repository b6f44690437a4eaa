"""Write rate/rateints and fit-output products in the jwst datamodels FITS layout.

rate (ImageModel) / rateints (CubeModel): primary header, SCI (DN/s), ERR (DN/s),
DQ (uint32), VAR_POISSON and VAR_RNOISE (DN^2/s^2), DQ_DEF table.
fitopt (RampFitOutputModel): SLOPE, SIGSLOPE, YINT, SIGYINT, PEDESTAL, WEIGHTS, CRMAG,
VAR_POISSON, VAR_RNOISE. Validation runs before the file is opened; writing is atomic.
Each image is streamed in chunks of about 4 MiB (:mod:`gpucal.io.fits_stream`), so writing
never holds a second copy of a product.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits

from . import fits_stream
from .atomic import atomic_write
from .fits_meta import dq_def_hdu, primary_header

if TYPE_CHECKING:
    from ..products import FitOptProduct, RateProduct

logger = logging.getLogger(__name__)

RATE_UNIT = "DN/s"
VAR_UNIT = "DN^2/s^2"


#: Bytes of one streamed chunk of an image.
CHUNK_BYTES = 1 << 22


def _image(name: str, data: np.ndarray, unit: str | None = None) -> tuple[str, np.ndarray, str | None]:
    return name, data, unit


def _chunks(data: np.ndarray):
    """Consecutive C-order pieces of ``data`` (native dtype), about :data:`CHUNK_BYTES` each."""
    flat = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
    rows = max(1, CHUNK_BYTES // max(1, flat.shape[1] * data.dtype.itemsize))
    for r0 in range(0, flat.shape[0], rows):
        yield np.asarray(flat[r0:r0 + rows], dtype=data.dtype.newbyteorder("="))


def _write(images: list[tuple[str, np.ndarray, str | None]], header: fits.Header, path: Path, overwrite: bool,
           tail: list[fits.BinTableHDU] = ()) -> Path:
    with atomic_write(path, overwrite=overwrite) as fh:
        fits_stream.write_header(fh, header)
        for name, data, unit in images:
            dtype = data.dtype.newbyteorder("=")
            cards = {} if unit is None else {"BUNIT": unit}
            fits_stream.write_image(fh, fits_stream.image_header(name, dtype, data.shape, cards), _chunks(data), dtype)
        for hdu in tail:
            fits_stream.write_hdu(fh, hdu)
    return path


def write_rate(
    product: RateProduct,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a :class:`~gpucal.products.RateProduct` as a jwst rate (2-D) or rateints (3-D) file.

    Parameters
    ----------
    product : RateProduct
        Validated again before anything is written.
    path : str or os.PathLike
        Output file.
    overwrite : bool
        Replace an existing file.
    meta : Mapping, optional
        Primary-header keywords to use instead of ``product.meta``.

    Returns
    -------
    pathlib.Path
    """
    product.validate()
    path = Path(path)
    datamodl = "CubeModel" if product.data.ndim == 3 else "ImageModel"
    header = primary_header(product.meta if meta is None else meta, datamodl=datamodl, filename=path.name)
    hdus = [
        _image("SCI", product.data, RATE_UNIT),
        _image("ERR", product.err, RATE_UNIT),
        _image("DQ", product.dq),
        _image("VAR_POISSON", product.var_poisson, VAR_UNIT),
        _image("VAR_RNOISE", product.var_rnoise, VAR_UNIT),
    ]
    _write(hdus, header, path, overwrite, tail=[dq_def_hdu()])
    logger.debug("wrote %s (%s %s)", path, datamodl, product.data.shape)
    return path


def write_fitopt(
    product: FitOptProduct,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a :class:`~gpucal.products.FitOptProduct` as a jwst RampFitOutputModel file.

    Parameters
    ----------
    product : FitOptProduct
        Validated again before anything is written.
    path : str or os.PathLike
        Output file.
    overwrite : bool
        Replace an existing file.
    meta : Mapping, optional
        Primary-header keywords to use instead of ``product.meta``.

    Returns
    -------
    pathlib.Path
    """
    product.validate()
    path = Path(path)
    header = primary_header(
        product.meta if meta is None else meta, datamodl="RampFitOutputModel", filename=path.name
    )
    hdus = [
        _image("SLOPE", product.slope, RATE_UNIT),
        _image("SIGSLOPE", product.sigslope, RATE_UNIT),
        _image("YINT", product.yint, "DN"),
        _image("SIGYINT", product.sigyint, "DN"),
        _image("PEDESTAL", product.pedestal, "DN"),
        _image("WEIGHTS", product.weights),
        _image("CRMAG", product.crmag, "DN"),
        _image("VAR_POISSON", product.var_poisson, VAR_UNIT),
        _image("VAR_RNOISE", product.var_rnoise, VAR_UNIT),
    ]
    _write(hdus, header, path, overwrite)
    logger.debug("wrote %s (RampFitOutputModel %s)", path, product.slope.shape)
    return path
