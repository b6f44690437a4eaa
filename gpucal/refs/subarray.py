"""Cut the part of a (full-frame) reference image that a subarray exposure covers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError

logger = logging.getLogger(__name__)

_SUBARRAY_KEYS = ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")


def subarray_window(meta: Mapping[str, Any]) -> tuple[int, int, int, int] | None:
    """``(xstart, ystart, xsize, ysize)`` (1-based starts) from SUBSTRT1/2, SUBSIZE1/2, or None.

    Returns None when any of the four keywords is missing or not a positive integer.
    """
    values = []
    for key in _SUBARRAY_KEYS:
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            return None
        values.append(int(value))
    return values[0], values[1], values[2], values[3]


def cut_subarray(
    image: np.ndarray,
    exposure: tuple[int, int, int, int],
    ref_origin: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """The pixels of ``image`` that the exposure window covers.

    Parameters
    ----------
    image : numpy.ndarray, 2-D
        Reference image whose pixel ``[0, 0]`` is detector pixel ``ref_origin``.
    exposure : tuple of int
        ``(SUBSTRT1, SUBSTRT2, SUBSIZE1, SUBSIZE2)`` of the exposure (1-based starts).
    ref_origin : tuple of int
        ``(SUBSTRT1, SUBSTRT2)`` of the reference file itself; ``(1, 1)`` for full frame.

    Returns
    -------
    numpy.ndarray
        ``image[y0:y0+SUBSIZE2, x0:x0+SUBSIZE1]`` with ``x0 = SUBSTRT1 - ref SUBSTRT1``
        and ``y0 = SUBSTRT2 - ref SUBSTRT2`` (a view).

    Raises
    ------
    InputError
        The exposure window is not inside the reference image.
    """
    xstart, ystart, xsize, ysize = exposure
    x0 = xstart - ref_origin[0]
    y0 = ystart - ref_origin[1]
    ny, nx = image.shape
    if x0 < 0 or y0 < 0 or x0 + xsize > nx or y0 + ysize > ny:
        raise InputError(
            f"subarray SUBSTRT1={xstart} SUBSTRT2={ystart} SUBSIZE1={xsize} SUBSIZE2={ysize} "
            f"is not inside the reference image of shape {image.shape} starting at detector "
            f"pixel (x={ref_origin[0]}, y={ref_origin[1]})"
        )
    logger.debug("cutting reference [%d:%d, %d:%d]", y0, y0 + ysize, x0, x0 + xsize)
    return image[y0 : y0 + ysize, x0 : x0 + xsize]
