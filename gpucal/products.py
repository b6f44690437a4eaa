"""Ramp-fitting products: rate (2-D), rateints (3-D), optional fit output, and their files.

The dataclasses validate their arrays when built and again before writing, so a product
that was modified into an invalid state raises before anything touches the disk. Files use
the jwst datamodels layout (ImageModel / CubeModel / RampFitOutputModel) and are written
atomically by :mod:`gpucal.io.write_products`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GpucalError, InputError

logger = logging.getLogger(__name__)


def _check(name: str, arr: Any, dtype: type, shape: tuple[int, ...] | None, ndim: tuple[int, ...]) -> np.ndarray:
    """Return ``arr`` if it is a numpy array of ``dtype`` (any byte order) and the shape."""
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{name} must be a numpy array of {np.dtype(dtype)}, got {type(arr).__name__}")
    if arr.dtype.newbyteorder("=") != np.dtype(dtype):
        raise InputError(f"{name} must be {np.dtype(dtype)}, got {arr.dtype} {arr.shape}")
    if arr.ndim not in ndim:
        dims = " or ".join(f"{n}-D" for n in ndim)
        raise InputError(f"{name} must be {dims}, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise InputError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


def _check_meta(meta: Any) -> None:
    if not isinstance(meta, dict):
        raise InputError(f"meta must be a dict of header keywords, got {type(meta).__name__}")


@dataclass
class RateProduct:
    """Slope image(s) with errors, DQ and variances, as in a jwst rate/rateints file.

    Parameters
    ----------
    data : numpy.ndarray of float32
        Slopes in DN/s: ``(ny, nx)`` for rate, ``(nints, ny, nx)`` for rateints.
    err : numpy.ndarray of float32
        1-sigma uncertainty (DN/s), same shape.
    dq : numpy.ndarray of uint32
        DQ flags, same shape.
    var_poisson, var_rnoise : numpy.ndarray of float32
        Poisson and read-noise variances (DN^2/s^2), same shape.
    meta : dict
        Primary-header keywords for the file.

    Raises
    ------
    InputError
        Wrong dtype, dimensionality, or arrays of different shapes.
    """

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def is_cube(self) -> bool:
        """True for a per-integration (rateints, 3-D) product."""
        return self.data.ndim == 3

    def validate(self) -> None:
        """Check dtypes and shapes (called on creation and before writing)."""
        data = _check("data", self.data, np.float32, None, (2, 3))
        _check("err", self.err, np.float32, data.shape, (data.ndim,))
        _check("dq", self.dq, np.uint32, data.shape, (data.ndim,))
        _check("var_poisson", self.var_poisson, np.float32, data.shape, (data.ndim,))
        _check("var_rnoise", self.var_rnoise, np.float32, data.shape, (data.ndim,))
        _check_meta(self.meta)

    def to_fits(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write an ImageModel (2-D) or CubeModel (3-D) file atomically; return its path."""
        from .io.write_products import write_rate

        return write_rate(self, path, overwrite=overwrite)


_FITOPT_4D = ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint", "weights")


@dataclass
class FitOptProduct:
    """Per-segment fit output (jwst RampFitOutputModel, the ``_fitopt`` file).

    Parameters
    ----------
    slope, sigslope, var_poisson, var_rnoise, yint, sigyint, weights : numpy.ndarray
        float32 ``(nints, nsegs, ny, nx)``.
    pedestal : numpy.ndarray
        float32 ``(nints, ny, nx)``.
    crmag : numpy.ndarray
        float32 ``(nints, ncrs, ny, nx)``; ``ncrs`` may be 0 (no jump found).
    meta : dict
        Primary-header keywords.
    """

    slope: np.ndarray
    sigslope: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    yint: np.ndarray
    sigyint: np.ndarray
    weights: np.ndarray
    pedestal: np.ndarray
    crmag: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check dtypes and shapes (called on creation and before writing)."""
        slope = _check("slope", self.slope, np.float32, None, (4,))
        for name in _FITOPT_4D[1:]:
            _check(name, getattr(self, name), np.float32, slope.shape, (4,))
        nints, _, ny, nx = slope.shape
        _check("pedestal", self.pedestal, np.float32, (nints, ny, nx), (3,))
        crmag = _check("crmag", self.crmag, np.float32, None, (4,))
        if crmag.shape[0] != nints or crmag.shape[2:] != (ny, nx):
            raise InputError(f"crmag must have shape ({nints}, ncrs, {ny}, {nx}), got {crmag.shape}")
        _check_meta(self.meta)

    def to_fits(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write a RampFitOutputModel file atomically; return its path."""
        from .io.write_products import write_fitopt

        return write_fitopt(self, path, overwrite=overwrite)


@dataclass
class RampFitResult:
    """Everything ramp fitting returns: rate, rateints, optional fit output, provenance.

    Parameters
    ----------
    rate : RateProduct or None
        2-D rate; None when there was nothing to fit.
    rateints : RateProduct or None
        3-D per-integration rates.
    fitopt : FitOptProduct, optional
        Per-segment fit output.
    backend : str
        ``"cpu"`` or ``"gpu"``: where the fit ran.
    elapsed_s : float
        Wall time of the fit.
    meta : dict
        Keywords added to every product's primary header (a product's own meta wins).
    """

    rate: RateProduct | None
    rateints: RateProduct | None
    fitopt: FitOptProduct | None = None
    backend: str = "cpu"
    elapsed_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check product types and that rate (2-D) and rateints (3-D) agree on (ny, nx)."""
        for name, cls in (("rate", RateProduct), ("rateints", RateProduct), ("fitopt", FitOptProduct)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, cls):
                raise InputError(f"{name} must be a {cls.__name__} or None, got {type(value).__name__}")
            if value is not None:
                value.validate()
        if self.rate is not None and self.rate.data.ndim != 2:
            raise InputError(f"rate must be 2-D (ny, nx), got shape {self.rate.data.shape}")
        if self.rateints is not None:
            if self.rateints.data.ndim != 3:
                raise InputError(f"rateints must be 3-D (nints, ny, nx), got shape {self.rateints.data.shape}")
            if self.rate is not None and self.rateints.data.shape[1:] != self.rate.data.shape:
                raise InputError(
                    f"rateints shape {self.rateints.data.shape} does not match rate shape {self.rate.data.shape}"
                )
        _check_meta(self.meta)

    def _products(self) -> list[tuple[str, RateProduct | FitOptProduct]]:
        products: list[tuple[str, RateProduct | FitOptProduct]] = []
        if self.rate is not None:
            products.append(("rate", self.rate))
        if self.rateints is not None:
            products.append(("rateints", self.rateints))
        if self.fitopt is not None:
            products.append(("fitopt", self.fitopt))
        return products

    def to_fits(self, path_prefix: str | os.PathLike[str], *, overwrite: bool = True) -> list[Path]:
        """Write ``{prefix}_rate.fits``, ``{prefix}_rateints.fits``, ``{prefix}_fitopt.fits``.

        Parameters
        ----------
        path_prefix : str or os.PathLike
            e.g. ``out/jw001_nrca1``; a trailing ``.fits`` and ``_uncal``/``_ramp``/``_rate``
            suffix is removed, so an input file name also works.
        overwrite : bool
            Replace existing files.

        Returns
        -------
        list of pathlib.Path
            The files written (rateints/fitopt only when present).

        Raises
        ------
        GpucalError
            ``rate`` is None: ramp fitting had nothing to fit, so there is no product.
        InputError
            A product is invalid; nothing is written.
        """
        from .io.paths import product_prefix
        from .io.write_products import write_fitopt, write_rate

        if self.rate is None:
            raise GpucalError(
                "no products to write: ramp fitting found nothing to fit "
                "(every group was flagged or the ramp has too few usable groups), so rate is None"
            )
        self.validate()  # everything, before the first file is touched
        prefix = product_prefix(path_prefix)
        written: list[Path] = []
        for suffix, product in self._products():
            path = prefix.with_name(f"{prefix.name}_{suffix}.fits")
            meta = {**self.meta, **product.meta}
            if isinstance(product, FitOptProduct):
                written.append(write_fitopt(product, path, overwrite=overwrite, meta=meta))
            else:
                written.append(write_rate(product, path, overwrite=overwrite, meta=meta))
        logger.debug("wrote %s", ", ".join(str(p) for p in written))
        return written
