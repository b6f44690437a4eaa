"""The ramp model: a 4-D exposure cube with its data quality and readout timing.

:class:`Ramp` holds references to (possibly memory-mapped, possibly big-endian or integer)
arrays without copying them; :meth:`Ramp.block` is the one way pixel data are read, a row
range at a time, as native-endian C-contiguous float32/uint8/uint32 arrays. Files are read
and written by :mod:`gpucal.io` (:meth:`Ramp.from_fits`, :meth:`Ramp.to_fits`).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .errors import InputError

logger = logging.getLogger(__name__)


@runtime_checkable
class ArrayLike(Protocol):
    """What :class:`Ramp` needs from an array: numpy arrays, memmaps, lazy FITS views."""

    shape: tuple[int, ...]
    dtype: np.dtype
    ndim: int

    def __getitem__(self, key: Any) -> Any: ...


class RampBlock(NamedTuple):
    """Rows ``[row_start, row_stop)`` of a ramp, as fresh native-endian C-contiguous arrays.

    Attributes
    ----------
    data : numpy.ndarray
        float32 ``(nints, ngroups, rows, nx)``.
    groupdq : numpy.ndarray
        uint8, same shape as ``data``.
    pixeldq : numpy.ndarray
        uint32 ``(rows, nx)``.
    zeroframe : numpy.ndarray or None
        float32 ``(nints, rows, nx)``.
    """

    data: np.ndarray
    groupdq: np.ndarray
    pixeldq: np.ndarray
    zeroframe: np.ndarray | None


def _dtype_name(dtype: Any) -> str:
    dtype = np.dtype(dtype)
    if dtype.isnative:
        return str(dtype)
    order = "big" if dtype.byteorder == ">" else "little"
    return f"{dtype.newbyteorder('=')} ({order}-endian)"


def _describe(arr: Any) -> str:
    return f"{_dtype_name(arr.dtype)} {tuple(arr.shape)}"


def _check_array(name: str, arr: Any) -> None:
    if not all(hasattr(arr, attr) for attr in ("shape", "dtype", "ndim", "__getitem__")):
        raise InputError(f"{name} must be an array (numpy array or memmap), got {type(arr).__name__}")


def _check_real(name: str, arr: Any, shape: tuple[int, ...], what: str) -> None:
    _check_array(name, arr)
    dtype = np.dtype(arr.dtype)
    if dtype.kind not in "iuf" or tuple(arr.shape) != shape:
        raise InputError(
            f"{name} must be a real (integer or float) array with shape {shape} {what}, "
            f"got {_describe(arr)}"
        )


def _check_exact(name: str, arr: Any, dtype: type, shape: tuple[int, ...]) -> None:
    _check_array(name, arr)
    actual = np.dtype(arr.dtype)
    if actual.newbyteorder("=") != np.dtype(dtype) or tuple(arr.shape) != shape:
        raise InputError(f"{name} must be {np.dtype(dtype)} with shape {shape}, got {_describe(arr)}")


def _positive_time(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a finite number > 0 (seconds), got {value!r}")
    out = float(value)
    if not math.isfinite(out) or out <= 0:
        raise InputError(f"{name} must be a finite number > 0 (seconds), got {value!r}")
    return out


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Ramp:
    """A JWST up-the-ramp exposure: science cube, group/pixel DQ and readout timing.

    Parameters
    ----------
    data : array, shape (nints, ngroups, ny, nx)
        Ramp samples in DN. float32 normally; any integer or real float dtype (uint16
        from ``_uncal``, big-endian memory maps) is accepted and converted to native
        float32 only when a block is read.
    groupdq : array of uint8, same shape as ``data``
        Per-group DQ flags (:mod:`gpucal.dq`).
    pixeldq : array of uint32, shape (ny, nx)
        Per-pixel DQ flags; big-endian is accepted.
    group_time, frame_time : float
        TGROUP and TFRAME in seconds, finite and > 0.
    nframes : int
        Frames averaged per group (>= 1).
    groupgap : int
        Frames dropped between groups (>= 0).
    drop_frames1 : int
        Frames dropped at the start of each integration (>= 0).
    zeroframe : array, shape (nints, ny, nx), optional
        First-frame image of each integration.
    meta : dict, optional
        Primary-header keywords (upper-case keys): INSTRUME, DETECTOR, EXP_TYPE,
        READPATT, SUBSTRT1/2, SUBSIZE1/2, FILENAME, R_GAIN, R_READNO, ...

    Notes
    -----
    Arrays are stored as given, never copied, so memory-mapped files stay lazy. ``meta``
    is copied into a new dict with upper-case keys.

    Raises
    ------
    InputError
        An array has the wrong number of dimensions, shape or dtype, or a timing value
        is not valid. The message names the argument, what was expected and what was given.
    """

    def __init__(
        self,
        data: ArrayLike,
        groupdq: ArrayLike,
        pixeldq: ArrayLike,
        *,
        group_time: float,
        frame_time: float,
        nframes: int,
        groupgap: int = 0,
        drop_frames1: int = 0,
        zeroframe: ArrayLike | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        _check_array("data", data)
        if data.ndim != 4:
            raise InputError(
                f"data must be 4-D (nints, ngroups, ny, nx), got {data.ndim}-D {_describe(data)}"
            )
        shape = tuple(int(n) for n in data.shape)
        if min(shape) < 1:
            raise InputError(f"data must have at least one element on every axis, got shape {shape}")
        if np.dtype(data.dtype).kind not in "iuf":
            raise InputError(
                f"data must have a real (integer or float) dtype, got {_describe(data)}"
            )
        nints, _, ny, nx = shape
        _check_exact("groupdq", groupdq, np.uint8, shape)
        _check_exact("pixeldq", pixeldq, np.uint32, (ny, nx))
        if zeroframe is not None:
            _check_real("zeroframe", zeroframe, (nints, ny, nx), "(nints, ny, nx)")
        if meta is not None and not isinstance(meta, dict):
            raise InputError(f"meta must be a dict of header keywords, got {type(meta).__name__}")

        self.data = data
        self.groupdq = groupdq
        self.pixeldq = pixeldq
        self.zeroframe = zeroframe
        self.group_time = _positive_time("group_time", group_time)
        self.frame_time = _positive_time("frame_time", frame_time)
        self.nframes = _count("nframes", nframes, 1)
        self.groupgap = _count("groupgap", groupgap, 0)
        self.drop_frames1 = _count("drop_frames1", drop_frames1, 0)
        self.meta: dict[str, Any] = {str(k).upper(): v for k, v in (meta or {}).items()}
        self._shape = shape

    # ----------------------------------------------------------------- shape
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(nints, ngroups, ny, nx)``."""
        return self._shape  # type: ignore[return-value]

    @property
    def nints(self) -> int:
        return self._shape[0]

    @property
    def ngroups(self) -> int:
        return self._shape[1]

    @property
    def ny(self) -> int:
        return self._shape[2]

    @property
    def nx(self) -> int:
        return self._shape[3]

    @property
    def instrument(self) -> str:
        """INSTRUME from meta, upper-case, or ``""``."""
        return str(self.meta.get("INSTRUME", "") or "").strip().upper()

    @property
    def nbytes_per_row(self) -> int:
        """Bytes one detector row of the whole exposure takes when read by :meth:`block`.

        float32 data + uint8 groupdq for every integration and group, uint32 pixeldq,
        plus float32 zeroframe per integration when present.
        """
        nints, ngroups, _, nx = self._shape
        total = nints * ngroups * nx * (4 + 1) + nx * 4
        if self.zeroframe is not None:
            total += nints * nx * 4
        return total

    # ------------------------------------------------------------------ read
    def block(self, row_start: int, row_stop: int, *, ints: tuple[int, int] | None = None) -> RampBlock:
        """Read rows ``[row_start, row_stop)`` of every group of every integration (or of
        integrations ``[ints[0], ints[1])``).

        Only those rows are read from a memory-mapped file. The returned arrays are
        fresh copies (never views of the ramp's arrays), native-endian, C-contiguous
        and writable: data float32 ``(nints, ngroups, rows, nx)``, groupdq uint8,
        pixeldq uint32 ``(rows, nx)``, zeroframe float32 ``(nints, rows, nx)`` or None.

        Raises
        ------
        InputError
            The row or integration range is empty or outside the exposure.
        """
        i0, i1 = (0, self.nints) if ints is None else ints
        for name, value in (("row_start", row_start), ("row_stop", row_stop), ("ints[0]", i0), ("ints[1]", i1)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InputError(f"{name} must be an integer, got {value!r}")
        r0, r1 = int(row_start), int(row_stop)
        if not 0 <= r0 < r1 <= self.ny:
            raise InputError(f"row range [{r0}, {r1}) must be non-empty and inside [0, {self.ny})")
        if not 0 <= i0 < i1 <= self.nints:
            raise InputError(f"integration range [{i0}, {i1}) must be non-empty and inside [0, {self.nints})")
        rows, its = slice(r0, r1), slice(int(i0), int(i1))
        data = np.array(self.data[its, :, rows, :], dtype=np.float32, order="C", copy=True)
        groupdq = np.array(self.groupdq[its, :, rows, :], dtype=np.uint8, order="C", copy=True)
        pixeldq = np.array(self.pixeldq[rows, :], dtype=np.uint32, order="C", copy=True)
        zeroframe = None
        if self.zeroframe is not None:
            zeroframe = np.array(self.zeroframe[its, rows, :], dtype=np.float32, order="C", copy=True)
        return RampBlock(data, groupdq, pixeldq, zeroframe)

    # ----------------------------------------------------------------- files
    @classmethod
    def from_fits(cls, path: str | os.PathLike[str]) -> Ramp:
        """Open a JWST ``_uncal.fits`` or ``_ramp.fits`` lazily (memory-mapped).

        See :func:`gpucal.io.read_ramp.read_ramp` for details.
        """
        from .io.read_ramp import read_ramp

        return read_ramp(path)

    def to_fits(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write a jwst-layout ``_ramp.fits`` (RampModel) atomically, streaming by integration.

        See :func:`gpucal.io.write_ramp.write_ramp` for details.
        """
        from .io.write_ramp import write_ramp

        return write_ramp(self, path, overwrite=overwrite)

    def __repr__(self) -> str:
        name = self.meta.get("FILENAME", "")
        return (
            f"Ramp(shape={self.shape}, dtype={_dtype_name(self.data.dtype)}, "
            f"instrument={self.instrument!r}, group_time={self.group_time}, "
            f"nframes={self.nframes}, groupgap={self.groupgap}"
            f"{', zeroframe' if self.zeroframe is not None else ''}"
            f"{f', file={name!r}' if name else ''})"
        )
