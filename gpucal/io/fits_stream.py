"""Stream FITS HDUs to an open file chunk by chunk, for cubes too large to hold twice.

astropy writes an image from one in-memory array; a 4-D ramp read lazily from a memory
map (or converted from uint16) would have to be materialised first. These helpers write
the header with astropy and then the data in chunks (e.g. one integration at a time) in
FITS on-disk form (big-endian; unsigned integers as signed with BZERO), padded to the
2880-byte FITS block.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

import numpy as np
from astropy.io import fits

logger = logging.getLogger(__name__)

BLOCK = 2880

# native dtype -> (BITPIX, BZERO or None)
_ON_DISK: dict[np.dtype, tuple[int, int | None]] = {
    np.dtype(np.uint8): (8, None),
    np.dtype(np.int16): (16, None),
    np.dtype(np.uint16): (16, 1 << 15),
    np.dtype(np.int32): (32, None),
    np.dtype(np.uint32): (32, 1 << 31),
    np.dtype(np.float32): (-32, None),
    np.dtype(np.float64): (-64, None),
}


def _pad(nbytes: int) -> int:
    return (-nbytes) % BLOCK


def image_header(
    extname: str, dtype: np.dtype | type, shape: tuple[int, ...], cards: Mapping[str, Any] | None = None
) -> fits.Header:
    """Header of an IMAGE extension holding an array of ``dtype`` and C-order ``shape``."""
    dtype = np.dtype(dtype)
    bitpix, bzero = _ON_DISK[dtype]
    header = fits.Header()
    header["XTENSION"] = ("IMAGE", "Image extension")
    header["BITPIX"] = bitpix
    header["NAXIS"] = len(shape)
    for axis, length in enumerate(reversed(shape), start=1):
        header[f"NAXIS{axis}"] = int(length)
    header["PCOUNT"] = 0
    header["GCOUNT"] = 1
    if bzero is not None:
        header["BSCALE"] = 1
        header["BZERO"] = bzero
    header["EXTNAME"] = extname
    for key, value in (cards or {}).items():
        header[key] = value
    return header


def encode(chunk: np.ndarray, dtype: np.dtype | type) -> bytes:
    """``chunk`` as FITS data bytes of ``dtype`` (values must already fit ``dtype``)."""
    dtype = np.dtype(dtype)
    _, bzero = _ON_DISK[dtype]
    arr = np.asarray(chunk)
    if bzero is not None:
        arr = arr.astype(dtype, copy=True)
        arr ^= dtype.type(bzero)  # value - BZERO in two's complement == flip the sign bit
    return np.ascontiguousarray(arr, dtype=dtype.newbyteorder(">")).tobytes()


def write_header(fh: BinaryIO, header: fits.Header) -> None:
    """Write ``header`` with its END card, padded to a FITS block."""
    fh.write(header.tostring().encode("ascii"))


def write_image(
    fh: BinaryIO, header: fits.Header, chunks: Iterable[np.ndarray], dtype: np.dtype | type
) -> None:
    """Write an image HDU whose data arrive as consecutive C-order ``chunks``.

    Raises
    ------
    ValueError
        The chunks do not add up to the size the header declares.
    """
    dtype = np.dtype(dtype)
    write_header(fh, header)
    expected = dtype.itemsize
    for axis in range(1, int(header["NAXIS"]) + 1):
        expected *= int(header[f"NAXIS{axis}"])
    written = 0
    for chunk in chunks:
        data = encode(chunk, dtype)
        fh.write(data)
        written += len(data)
    if written != expected:
        raise ValueError(f"{header.get('EXTNAME')}: wrote {written} data bytes, header declares {expected}")
    fh.write(b"\0" * _pad(written))


def write_hdu(fh: BinaryIO, hdu: fits.ImageHDU | fits.BinTableHDU) -> None:
    """Write a (small, in-memory) astropy extension HDU as the next HDU of ``fh``.

    astropy only serialises whole files, so the HDU is written behind a minimal primary
    header into memory and the bytes after that header are copied.
    """
    buf = io.BytesIO()
    primary = fits.PrimaryHDU()
    fits.HDUList([primary, hdu]).writeto(buf)
    raw = buf.getvalue()
    start = len(primary.header.tostring())
    if raw[start : start + 8] != b"XTENSION":
        raise RuntimeError("unexpected layout while serialising an extension HDU")
    fh.write(raw[start:])
