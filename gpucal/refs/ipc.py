"""IPC reference files: read (with validation) and write, plus a synthetic kernel.

A CRDS IPC reference (jwst ``IPCModel``) holds the deconvolution kernel in SCI: either one
2-D kernel ``(kh, kw)`` (normally 3x3) for the whole detector, or a 4-D per-pixel kernel
``(kh, kw, ny, nx)``, normally full frame. The 4-D kernel is cut to a subarray exposure by
the step (:func:`gpucal.steps.ipc`), as jwst's ``get_ipc_slice`` does.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import FileFormatError, InputError
from ..io.atomic import atomic_write
from ..io.fits_meta import primary_header
from ..io.fits_open import find_hdu, open_fits
from .reftype import MODELS, check_reftype

logger = logging.getLogger(__name__)

REFTYPE = "IPC"


@dataclass(frozen=True)
class IpcReference:
    """An IPC kernel: ``data`` float32 (kh, kw) or (kh, kw, ny, nx); ``meta`` primary keywords."""

    data: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def per_pixel(self) -> bool:
        return self.data.ndim == 4

    @classmethod
    def from_array(cls, data: Any, meta: dict[str, Any] | None = None, *, source: str = "IPC kernel") -> IpcReference:
        return cls(validate_ipc_kernel(data, source), dict(meta or {}))


def validate_ipc_kernel(data: Any, source: str = "IPC kernel") -> np.ndarray:
    """The kernel as a fresh native float32 C-contiguous array, or a clear :class:`InputError`.

    It must be real, 2-D or 4-D, with at least one element on every axis, and entirely finite
    (a NaN weight would spread NaN over its whole footprint of every group).
    """
    arr = np.asarray(data)
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{source}: IPC kernel must be real, got dtype {arr.dtype}")
    if arr.ndim not in (2, 4):
        raise InputError(
            f"{source}: IPC kernel must be 2-D (kh, kw) or 4-D (kh, kw, ny, nx), got {arr.ndim}-D {arr.shape}"
        )
    if min(arr.shape) < 1:
        raise InputError(f"{source}: IPC kernel has an empty axis, shape {arr.shape}")
    out = np.array(arr, dtype=np.float32, order="C", copy=True)
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise InputError(f"{source}: IPC kernel has {bad} NaN or infinite values of {out.size}")
    return out


def read_ipc(path: str | os.PathLike[str]) -> IpcReference:
    """Read a CRDS IPC reference file.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    FileFormatError
        Not FITS, REFTYPE or DATAMODL naming another type, no SCI image.
    InputError
        SCI is not 2-D or 4-D, or has NaN/infinite values.
    """
    path = Path(path)
    with open_fits(path, memmap=False) as hdul:
        primary = hdul[0].header
        check_reftype(path, primary, REFTYPE)
        sci = find_hdu(hdul, "SCI")
        if sci is None or sci.data is None:
            raise FileFormatError(f"{path}: IPC reference has no SCI image extension")
        if sci.data.dtype.kind != "f":
            raise FileFormatError(f"{path}: IPC SCI holds {sci.data.dtype.newbyteorder('=')} values; "
                                  "a kernel is float32")
        data = validate_ipc_kernel(sci.data, str(path))
        meta = {k: primary[k] for k in ("INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1",
                                        "SUBSIZE2") if k in primary}
    logger.info("read IPC kernel %s %s", path.name, data.shape)
    return IpcReference(data, meta)


def write_ipc(path: str | os.PathLike[str], data: Any, *, instrument: str, detector: str,
              overwrite: bool = True) -> Path:
    """Write an IPC reference file (``DATAMODL = IPCModel``, float32 SCI), atomically."""
    arr = validate_ipc_kernel(data)
    path = Path(path)
    header = primary_header(
        {},
        datamodl=MODELS[REFTYPE][0],
        filename=path.name,
        extra={
            "INSTRUME": str(instrument).upper(),
            "DETECTOR": str(detector).upper(),
            "REFTYPE": REFTYPE,
            "SUBARRAY": "FULL",
            "DESCRIP": "gpucal synthetic IPC reference",
            "AUTHOR": "gpucal synthetic",
            "PEDIGREE": "DUMMY",
            "USEAFTER": "2022-01-01T00:00:00",
        },
    )
    sci = fits.ImageHDU(data=arr.astype(">f4"), name="SCI")
    with atomic_write(path, overwrite=overwrite) as fh:
        fits.HDUList([fits.PrimaryHDU(header=header), sci]).writeto(fh, output_verify="exception")
    logger.info("wrote IPC reference %s %s", path, arr.shape)
    return path


def synthetic_ipc_kernel(per_pixel: tuple[int, int] | None = None, *, alpha: float = 0.0155,
                         beta: float = 0.0021, seed: int = 0) -> np.ndarray:
    """A deterministic 3x3 IPC deconvolution kernel (HgCdTe-like coupling).

    Edge neighbours ``-alpha``, corners ``-beta``, centre ``1 + 4 alpha + 4 beta`` (the kernel
    sums to 1, so flux is conserved). With ``per_pixel=(ny, nx)`` a 4-D kernel with a smooth
    +-5 % variation of the coupling across the detector.
    """
    k = np.array([[-beta, -alpha, -beta], [-alpha, 1 + 4 * alpha + 4 * beta, -alpha], [-beta, -alpha, -beta]])
    if per_pixel is None:
        return k.astype(np.float32)
    ny, nx = per_pixel
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, ny)[:, None]
    x = np.linspace(0, 1, nx)[None, :]
    scale = 1 + 0.05 * np.sin(2 * np.pi * (x + 0.3 * y)) + 0.002 * rng.standard_normal((ny, nx))
    k4 = k[:, :, None, None] * scale[None, None]
    k4[1, 1] = 1 - (k4.sum(axis=(0, 1)) - k4[1, 1])
    return k4.astype(np.float32)
