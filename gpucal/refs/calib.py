"""Read and write the detector1 calibration references: MASK, SATURATION, SUPERBIAS, LINEARITY, DARK.

Each reader checks REFTYPE, the extensions and their dimensions, and cuts a larger
(full-frame) reference to the exposure's subarray on the last two axes, as
:func:`gpucal.refs.read_reference` does for GAIN/READNOISE. DARK is never cut (jwst does
not cut it either: CRDS supplies a dark matching the readout); its shape must match.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits

from ..errors import FileFormatError, InputError
from ..io.atomic import atomic_write
from ..io.fits_meta import primary_header
from ..io.fits_open import find_hdu, open_fits
from .read import _ref_origin
from .reftype import MODELS, check_reftype
from .subarray import cut_subarray, subarray_window
from .write import USEAFTER

if TYPE_CHECKING:
    from ..ramp import Ramp

logger = logging.getLogger(__name__)

_MODELS = {t: MODELS[t][0] for t in ("MASK", "SATURATION", "SUPERBIAS", "LINEARITY", "DARK")}


@dataclass
class CalibReference:
    """One calibration reference, cut to the exposure.

    Attributes
    ----------
    reftype : str
        REFTYPE (upper case).
    data : numpy.ndarray or None
        float32 SCI (SATURATION, SUPERBIAS: ``(ny, nx)``; DARK: ``(ngroups, ny, nx)`` or
        ``(nints, ngroups, ny, nx)``) or COEFFS ``(ncoeffs, ny, nx)`` for LINEARITY; None for MASK.
    dq : numpy.ndarray
        uint32 DQ, ``(ny, nx)`` (DARK MIRI: ``(nints, ngroups, ny, nx)`` allowed).
    header : dict
        Primary header keywords (NFRAMES, GROUPGAP, NGROUPS, AVDRKCUR, ...).
    dq_def : list of tuple, optional
        DQ_DEF rows (bit, value, name, description) when present.
    path : pathlib.Path or None
        Source file.
    average_dark_current : numpy.ndarray or None
        DARK only: the float32 ``(ny, nx)`` AVDRKCUR image (electrons/s) when the file has one.
    inv_coeffs : numpy.ndarray or None
        LINEARITY only: float32 INV_COEFFS ``(ncoeffs, ny, nx)`` when the file has them.
    """

    reftype: str
    data: np.ndarray | None
    dq: np.ndarray
    header: dict[str, Any] = field(default_factory=dict)
    dq_def: list[tuple[Any, ...]] = field(default_factory=list)
    path: Path | None = None
    average_dark_current: np.ndarray | None = None
    inv_coeffs: np.ndarray | None = None


def _cut(arr: np.ndarray, path: Path, name: str, origin: tuple[int, int], ramp: Ramp | None) -> np.ndarray:
    if ramp is None:
        return arr
    target = (ramp.ny, ramp.nx)
    if arr.shape[-2:] == target:
        return arr
    window = subarray_window(ramp.meta)
    if window is None or arr.shape[-2] < target[0] or arr.shape[-1] < target[1]:
        raise InputError(
            f"{path}: {name} image shape {arr.shape} does not match the exposure's (ny, nx) = {target}"
            + ("" if window is not None else " (exposure meta has no SUBSTRT1/2, SUBSIZE1/2 to cut a subarray)")
        )
    lead = arr.shape[:-2]
    flat = arr.reshape((-1,) + arr.shape[-2:])
    try:
        planes = [cut_subarray(p, window, origin) for p in flat]
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    logger.info("%s: %s cut to the %dx%d subarray at SUBSTRT1=%d SUBSTRT2=%d",
                path.name, name, target[1], target[0], window[0], window[1])
    return np.stack(planes).reshape(lead + target)


def _read(path: str | os.PathLike[str], reftype: str, layout: dict[str, tuple[int, ...]],
          ramp: Ramp | None, *, cut: bool = True) -> tuple[dict[str, np.ndarray | None], dict, list, Path]:
    """Read the named extensions (name -> allowed ndims; an empty tuple marks optional ones)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{reftype} reference file {path} does not exist")
    out: dict[str, np.ndarray | None] = {}
    with open_fits(path, memmap=False) as hdul:
        primary = dict(hdul[0].header)
        check_reftype(path, primary, reftype)
        origin_header: dict = {}
        for name, ndims in layout.items():
            hdu = find_hdu(hdul, name)
            if hdu is None or hdu.data is None:
                if ndims:
                    raise FileFormatError(f"{path}: {reftype} reference has no {name} extension")
                out[name] = None
                continue
            arr = np.asarray(hdu.data)
            if ndims and arr.ndim not in ndims:
                raise FileFormatError(
                    f"{path}: {reftype} {name} is {arr.ndim}-D {arr.shape}, expected "
                    + " or ".join(f"{n}-D" for n in ndims))
            if arr.dtype.kind not in ("iu" if name == "DQ" else "f"):
                raise FileFormatError(f"{path}: {reftype} {name} holds {arr.dtype.newbyteorder('=')} values; "
                                      f"it must be {'an integer' if name == 'DQ' else 'a float'} array")
            out[name] = arr
            origin_header = origin_header or dict(hdu.header)
        dq_def_hdu = find_hdu(hdul, "DQ_DEF")
        has_def = dq_def_hdu is not None and dq_def_hdu.data is not None
        dq_def = [tuple(row) for row in dq_def_hdu.data] if has_def else []
    origin, _ = _ref_origin(primary, origin_header)
    for name, arr in out.items():
        if arr is None:
            continue
        if cut:
            arr = _cut(arr, path, name, origin, ramp)
        dtype = np.uint32 if name == "DQ" else np.float32
        out[name] = np.array(arr, dtype=dtype, order="C", copy=True)
    return out, primary, dq_def, path


def _check_dq(path: Path, reftype: str, dq: np.ndarray, shape: tuple[int, ...]) -> None:
    if dq.shape != shape:
        raise InputError(f"{path}: {reftype} DQ shape {dq.shape} does not match its image's {shape}")


def read_mask(path: str | os.PathLike[str], ramp: Ramp | None = None) -> CalibReference:
    """MASK reference: DQ uint32 ``(ny, nx)`` and DQ_DEF, cut to the exposure's subarray.

    Raises
    ------
    FileNotFoundError, FileFormatError, InputError
        Missing file; wrong REFTYPE, missing DQ, wrong dimensions; shape mismatch.
    """
    ext, header, dq_def, p = _read(path, "MASK", {"DQ": (2,)}, ramp)
    return CalibReference("MASK", None, ext["DQ"], header, dq_def, p)


def _image_ref(path: str | os.PathLike[str], reftype: str, ramp: Ramp | None) -> CalibReference:
    ext, header, dq_def, p = _read(path, reftype, {"SCI": (2,), "DQ": ()}, ramp)
    sci = ext["SCI"]
    dq = ext["DQ"] if ext["DQ"] is not None else np.zeros(sci.shape, np.uint32)
    _check_dq(p, reftype, dq, sci.shape)
    if not np.isfinite(sci).any():
        raise InputError(f"{p}: {reftype} reference has no finite value")
    nbad = int(np.count_nonzero(~np.isfinite(sci)))
    if nbad:
        logger.warning("%s: %d of %d %s values are NaN or infinite", p.name, nbad, sci.size, reftype)
    return CalibReference(reftype, sci, dq, header, dq_def, p)


def read_saturation(path: str | os.PathLike[str], ramp: Ramp | None = None) -> CalibReference:
    """SATURATION reference: SCI thresholds float32 ``(ny, nx)`` (DN) and DQ, cut to the subarray."""
    return _image_ref(path, "SATURATION", ramp)


def read_superbias(path: str | os.PathLike[str], ramp: Ramp | None = None) -> CalibReference:
    """SUPERBIAS reference: SCI bias float32 ``(ny, nx)`` (DN) and DQ, cut to the subarray."""
    return _image_ref(path, "SUPERBIAS", ramp)


def read_linearity(path: str | os.PathLike[str], ramp: Ramp | None = None) -> CalibReference:
    """LINEARITY reference: COEFFS float32 ``(ncoeffs, ny, nx)`` and DQ ``(ny, nx)``, cut to the subarray."""
    ext, header, dq_def, p = _read(path, "LINEARITY", {"COEFFS": (3,), "DQ": (), "INV_COEFFS": ()}, ramp)
    coeffs = ext["COEFFS"]
    if ext["INV_COEFFS"] is not None:
        if ext["INV_COEFFS"].shape != coeffs.shape:
            raise FileFormatError(f"{p}: LINEARITY INV_COEFFS shape {ext['INV_COEFFS'].shape} differs from "
                                  f"COEFFS {coeffs.shape}")
    if coeffs.shape[0] < 2:
        raise FileFormatError(f"{p}: LINEARITY COEFFS has {coeffs.shape[0]} coefficient(s), need at least 2")
    dq = ext["DQ"] if ext["DQ"] is not None else np.zeros(coeffs.shape[1:], np.uint32)
    _check_dq(p, "LINEARITY", dq, coeffs.shape[1:])
    return CalibReference("LINEARITY", coeffs, dq, header, dq_def, p, inv_coeffs=ext["INV_COEFFS"])


def read_dark(path: str | os.PathLike[str], ramp: Ramp | None = None) -> CalibReference:
    """DARK reference: SCI float32 ``(ngroups, ny, nx)`` (near-IR) or ``(nints, ngroups, ny, nx)`` (MIRI).

    DQ is ``(ny, nx)`` or, for MIRI, 4-D like SCI. Header NFRAMES and GROUPGAP are required.
    Not cut to a subarray (as jwst): the frame size must match the exposure's.
    """
    ext, header, dq_def, p = _read(path, "DARK", {"SCI": (3, 4), "DQ": (), "AVDRKCUR": ()}, ramp, cut=False)
    sci = ext["SCI"]
    for key in ("NFRAMES", "GROUPGAP"):
        value = header.get(key)
        minimum = 1 if key == "NFRAMES" else 0
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise FileFormatError(f"{p}: DARK reference needs an integer {key} keyword, got {value!r}")
    dq = ext["DQ"] if ext["DQ"] is not None else np.zeros(sci.shape[-2:], np.uint32)
    if dq.shape not in (sci.shape[-2:], sci.shape):
        raise InputError(f"{p}: DARK DQ shape {dq.shape} matches neither {sci.shape[-2:]} nor {sci.shape}")
    if ramp is not None and sci.shape[-2:] != (ramp.ny, ramp.nx):
        raise InputError(f"{p}: DARK frame shape {sci.shape[-2:]} does not match the exposure's "
                         f"(ny, nx) = {(ramp.ny, ramp.nx)} (darks are not cut to subarrays)")
    avg = ext["AVDRKCUR"]
    if avg is not None and avg.ndim != 2:
        raise FileFormatError(f"{p}: DARK AVDRKCUR is {avg.ndim}-D {avg.shape}, expected 2-D")
    return CalibReference("DARK", sci, dq, header, dq_def, p, avg)


def write_calib_reference(
    path: str | os.PathLike[str],
    reftype: str,
    *,
    data: np.ndarray | None,
    dq: np.ndarray,
    instrument: str,
    detector: str,
    subarray: str = "FULL",
    extra: Mapping[str, Any] | None = None,
    dq_def: list[tuple[int, int, str, str]] | None = None,
    images: Mapping[str, np.ndarray] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a MASK/SATURATION/SUPERBIAS/LINEARITY/DARK reference in the CRDS layout.

    ``data`` goes to SCI (COEFFS for LINEARITY; must be None for MASK), ``dq`` to DQ (uint32),
    ``dq_def`` rows to a DQ_DEF table, ``extra`` into the primary header (NFRAMES, GROUPGAP, ...),
    ``images`` into further float32 image extensions by name (e.g. DARK ``AVDRKCUR``).
    """
    reftype = str(reftype).strip().upper()
    if reftype not in _MODELS:
        raise InputError(f"unknown calibration REFTYPE {reftype!r}; expected one of {sorted(_MODELS)}")
    if (data is None) != (reftype == "MASK"):
        raise InputError(f"{reftype} reference {'takes no' if reftype == 'MASK' else 'needs a'} data array")
    path = Path(path)
    header = primary_header(
        extra or {}, datamodl=_MODELS[reftype], filename=path.name,
        extra={"INSTRUME": str(instrument).upper(), "DETECTOR": str(detector).upper(), "REFTYPE": reftype,
               "SUBARRAY": str(subarray).upper(), "DESCRIP": f"gpucal synthetic {reftype} reference",
               "AUTHOR": "gpucal synthetic", "PEDIGREE": "DUMMY", "USEAFTER": USEAFTER})
    hdus: list[Any] = [fits.PrimaryHDU(header=header)]
    if data is not None:
        hdus.append(fits.ImageHDU(np.asarray(data, dtype=">f4"), name="COEFFS" if reftype == "LINEARITY" else "SCI"))
    hdus.append(fits.ImageHDU(np.asarray(dq, dtype=">u4"), name="DQ"))
    for name, image in (images or {}).items():
        hdus.append(fits.ImageHDU(np.asarray(image, dtype=">f4"), name=str(name).upper()))
    if dq_def:
        bits, values, names, descr = zip(*dq_def)
        hdus.append(fits.BinTableHDU.from_columns([
            fits.Column("BIT", "J", array=np.array(bits)), fits.Column("VALUE", "J", array=np.array(values)),
            fits.Column("NAME", "40A", array=np.array(names)),
            fits.Column("DESCRIPTION", "80A", array=np.array(descr))],
            name="DQ_DEF"))
    with atomic_write(path, overwrite=overwrite) as fh:
        fits.HDUList(hdus).writeto(fh, output_verify="exception")
    logger.info("wrote %s reference %s", reftype, path)
    return path
