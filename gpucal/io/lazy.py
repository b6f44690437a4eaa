"""Lazy access to FITS image data, including BZERO/BSCALE-scaled integer images.

astropy memory-maps unscaled images, but for scaled ones (uint16 ``_uncal`` SCI is stored
as int16 with BZERO=32768, uint32 as int32 with BZERO=2**31) reading ``hdu.data``
converts the whole array at once. :func:`lazy_image` instead returns the raw memory map
(opened with ``do_not_scale_image_data=True``) wrapped in :class:`ScaledArray`, which
applies the scaling only to the slices that are actually read.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from astropy.io import fits

logger = logging.getLogger(__name__)

# (BITPIX, BZERO) pairs that encode an unsigned (or signed byte) integer type exactly.
_PSEUDO_INTEGER = {
    (8, -128): np.dtype(np.int8),
    (16, 32768): np.dtype(np.uint16),
    (32, 2147483648): np.dtype(np.uint32),
    (64, 9223372036854775808): np.dtype(np.uint64),
}


class ScaledArray:
    """Read-only, lazily scaled view of a raw FITS image: ``value = raw * bscale + bzero``.

    Supports what gpucal's readers need from an array: ``shape``, ``ndim``, ``dtype``,
    ``size``, ``nbytes``, ``len()``, basic/advanced indexing (returns a native-endian
    numpy array of ``dtype``) and ``np.asarray`` (reads everything).

    Parameters
    ----------
    raw : numpy.ndarray
        Unscaled, usually memory-mapped, big-endian data as stored in the file.
    bscale, bzero : float
        FITS scaling.
    dtype : numpy.dtype
        Result type (uint16/uint32/... for pseudo-unsigned integers, else float).
    """

    def __init__(self, raw: np.ndarray, bscale: float, bzero: float, dtype: np.dtype) -> None:
        self._raw = raw
        self._bscale = bscale
        self._bzero = bzero
        self.dtype = np.dtype(dtype)
        self._offset_bits = None
        if bscale == 1 and self.dtype.kind in "ui" and raw.dtype.kind in "ui":
            if self.dtype.kind == "u":
                # value = raw + 2**(bits-1) == raw XOR sign bit, reinterpreted unsigned.
                self._offset_bits = self.dtype.type(1 << (8 * self.dtype.itemsize - 1))
            else:  # int8 from BITPIX=8 (stored unsigned) with BZERO=-128
                self._offset_bits = np.uint8(0x80)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._raw.shape)

    @property
    def ndim(self) -> int:
        return self._raw.ndim

    @property
    def size(self) -> int:
        return int(self._raw.size)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self._raw)

    def _scale(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw)
        if self._offset_bits is not None:
            unsigned = raw.dtype.newbyteorder("=")
            if self.dtype.kind == "u":
                bits = raw.astype(unsigned, copy=True).view(self.dtype)
            else:
                bits = raw.astype(np.uint8, copy=True)
            bits ^= self._offset_bits
            return bits.view(self.dtype)
        out = raw.astype(np.float64) * self._bscale + self._bzero
        return out.astype(self.dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        return self._scale(self._raw[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._scale(self._raw)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"ScaledArray(shape={self.shape}, dtype={self.dtype}, bzero={self._bzero}, bscale={self._bscale})"


def lazy_image(hdu: fits.ImageHDU | fits.PrimaryHDU) -> np.ndarray | ScaledArray:
    """Lazy data of an image HDU from a file opened with ``do_not_scale_image_data=True``.

    Parameters
    ----------
    hdu : astropy image HDU
        Must come from ``fits.open(..., memmap=True, do_not_scale_image_data=True)``.

    Returns
    -------
    numpy.ndarray or ScaledArray
        The raw memory map when the image is not scaled, else a :class:`ScaledArray`.
    """
    raw = hdu.data
    bscale = hdu.header.get("BSCALE", 1)
    bzero = hdu.header.get("BZERO", 0)
    if raw is None or (bscale == 1 and bzero == 0):
        return raw
    bitpix = int(hdu.header["BITPIX"])
    dtype = _PSEUDO_INTEGER.get((bitpix, bzero)) if bscale == 1 else None
    if dtype is None:
        dtype = np.dtype(np.float64) if bitpix in (32, 64, -64) else np.dtype(np.float32)
    logger.debug("%s: lazy scaling BSCALE=%s BZERO=%s -> %s", hdu.name, bscale, bzero, dtype)
    return ScaledArray(raw, float(bscale), float(bzero), dtype)
