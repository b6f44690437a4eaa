"""CUBEPAR reference: per-band cube sampling and region-of-interest parameters.

The values come from a CRDS-format CUBEPAR FITS file (explicit path, or the local CRDS
cache), or from :func:`write_synthetic_cubepars` (tests and demos; not flight values).
Every numeric value is rounded to float32 on reading (then widened exactly to float64): the
jwst datamodel schemas of the CUBEPAR tables declare float32 columns, so a float64
SPECTRALSTEP column is rounded too, and that rounding shows in the cube's wavelength axis.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputError

log = logging.getLogger(__name__)

#: MIRI band names in the order jwst visits them.
MIRI_BANDS = ("short", "medium", "long")

_NAN = float("nan")


@dataclass(frozen=True)
class BandPars:
    """Parameters of one band: MIRI (channel, band) or NIRSpec (grating, filter)."""

    wavemin: float
    wavemax: float
    spaxelsize: float
    spectralstep: float
    rois: float = _NAN
    roiw: float = _NAN
    power: float = _NAN
    softrad: float = _NAN
    scalerad: float = _NAN


@dataclass(frozen=True)
class CubePars:
    """The CUBEPAR values needed for one weighting."""

    instrument: str
    weighting: str
    bands: dict[tuple[str, str], BandPars]
    path: Path | None = None
    #: Wavelength tables for non-linear axes: "multi" (MIRI) or "prism"/"med"/"high" (NIRSpec)
    #: -> columns wavelength, rois, roiw, power, softrad, scalerad (NaN where absent).
    wave_tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def wave_table(self, name: str) -> dict[str, np.ndarray]:
        """The wavelength table ``name``; an :class:`InputError` when the file lacks it."""
        try:
            return self.wave_tables[name]
        except KeyError:
            raise InputError(f"no {name!r} wavelength table for weighting={self.weighting!r} in {self.path}") from None

    def band(self, key: tuple[str, str]) -> BandPars:
        """Parameters of ``key``; an :class:`InputError` names a band the file lacks."""
        try:
            return self.bands[key]
        except KeyError:
            where = f" in {self.path}" if self.path else ""
            raise InputError(f"no CUBEPAR entry for band {key}{where}") from None


def _band_keys(table: np.ndarray, instrument: str) -> list[tuple[str, str]]:
    cols = ("CHANNEL", "BAND") if instrument == "MIRI" else ("DISPERSER", "FILTER")
    a, b = (np.char.strip(np.char.lower(np.asarray(table[c]).astype(str))) for c in cols)
    return list(zip(a.tolist(), b.tolist()))


def _f32(value) -> float:
    return float(np.float32(value))


def read_cubepars(path: str | os.PathLike[str], instrument: str, weighting: str) -> CubePars:
    """Read a CUBEPAR file for ``instrument`` ('MIRI'/'NIRSPEC') and ``weighting``.

    msm reads ROISPATIAL/ROISPECTRAL/POWER/SOFTRAD from CUBEPAR_MSM, emsm reads
    ROISPATIAL/ROISPECTRAL/SCALERAD from CUBEPAR_EMSM; drizzle needs only CUBEPAR.
    """
    from ..io.fits_open import open_fits

    path = Path(path)
    instrument = instrument.upper()
    with open_fits(path, memmap=False) as hdul:
        names = {h.name for h in hdul}
        if "CUBEPAR" not in names:
            raise FileFormatError(f"{path} has no CUBEPAR extension: not a cube parameter reference")
        refinst = str(hdul[0].header.get("INSTRUME", instrument)).upper()
        if refinst != instrument:
            raise FileFormatError(f"{path} is a CUBEPAR file for {refinst}, not {instrument}")
        base = hdul["CUBEPAR"].data
        bands: dict[tuple[str, str], dict[str, float]] = {}
        for i, key in enumerate(_band_keys(base, instrument)):
            bands[key] = {name.lower(): _f32(base[name.upper()][i])
                          for name in ("wavemin", "wavemax", "spaxelsize", "spectralstep")}
        extra = {"msm": ("CUBEPAR_MSM", ("ROISPATIAL", "ROISPECTRAL", "POWER", "SOFTRAD")),
                 "emsm": ("CUBEPAR_EMSM", ("ROISPATIAL", "ROISPECTRAL", "SCALERAD"))}.get(weighting)
        if extra is not None:
            ext, cols = extra
            if ext not in names:
                raise FileFormatError(f"{path} has no {ext} extension, needed for weighting={weighting!r}")
            table = hdul[ext].data
            rename = {"ROISPATIAL": "rois", "ROISPECTRAL": "roiw"}
            for i, key in enumerate(_band_keys(table, instrument)):
                if key in bands:
                    for col in cols:
                        bands[key][rename.get(col, col.lower())] = _f32(table[col][i])
        tables = {}
        kind = {"msm": "MSM", "emsm": "EMSM"}.get(weighting, "DRIZ" if instrument == "MIRI" else "DRIZZLE")
        names = {"multi": "MULTICHANNEL"} if instrument == "MIRI" else {
            "prism": "MULTICHAN_PRISM", "med": "MULTICHAN_MED", "high": "MULTICHAN_HIGH"}
        for key, prefix in names.items():
            ext = f"{prefix}_{kind}"
            if ext in {h.name for h in hdul}:
                tables[key] = _wave_table(hdul[ext].data)
    return CubePars(instrument, weighting, {k: BandPars(**v) for k, v in bands.items()}, path, tables)


def _wave_table(data) -> dict[str, np.ndarray]:
    """Table columns as float64 arrays of float32-rounded values (NaN for absent columns)."""
    cols = {n.upper() for n in data.columns.names}
    n = len(data)
    out = {}
    for key, col in (("wavelength", "WAVELENGTH"), ("rois", "ROISPATIAL"), ("roiw", "ROISPECTRAL"),
                     ("power", "POWER"), ("softrad", "SOFTRAD"), ("scalerad", "SCALERAD")):
        values = np.asarray(data[col], dtype=np.float32) if col in cols else np.full(n, np.nan, np.float32)
        out[key] = values.astype(np.float64)
    return out


def write_synthetic_cubepars(path: str | os.PathLike[str], instrument: str = "MIRI") -> Path:
    """Write a small synthetic CUBEPAR file in CRDS layout (for tests; not flight values).

    MIRI: all 12 bands, with short wavelength ranges so that test cubes stay small.
    NIRSpec: the G140H/F100LP and G395H/F290LP bands.
    """
    from astropy.io import fits

    from ..io.atomic import atomic_write

    instrument = instrument.upper()
    if instrument == "MIRI":
        a = np.repeat(["1", "2", "3", "4"], 3)
        b = np.array([s.upper() for s in MIRI_BANDS] * 4)
        names = ("CHANNEL", "BAND")
        lo = np.array([4.90, 5.66, 6.53, 7.50, 8.66, 10.01, 11.55, 13.38, 15.45, 17.67, 20.55, 23.96])
        wmin, wmax = lo, lo + 0.1 * np.repeat([1.0, 1.5, 2.0, 3.0], 3)
        spsize = np.repeat([0.13, 0.17, 0.20, 0.35], 3)
        step = np.repeat([0.001, 0.0015, 0.002, 0.003], 3)
    elif instrument == "NIRSPEC":
        a, b, names = np.array(["G140H", "G395H"]), np.array(["F100LP", "F290LP"]), ("DISPERSER", "FILTER")
        wmin, wmax = np.array([1.40, 3.00]), np.array([1.45, 3.10])
        spsize, step = np.array([0.1, 0.1]), np.array([0.000235, 0.000665])
    else:
        raise InputError(f"instrument must be 'MIRI' or 'NIRSPEC', got {instrument!r}")
    n = len(a)
    keys = [fits.Column(name=names[0], format="6A", array=a), fits.Column(name=names[1], format="6A", array=b)]
    rois = 1.5 * spsize
    roiw = step * 1.5
    primary = fits.PrimaryHDU()
    primary.header.update(REFTYPE="CUBEPAR", INSTRUME=instrument, PEDIGREE="DUMMY",
                          DESCRIP="gpucal synthetic cube parameters (tests only)",
                          EXP_TYPE="MIR_MRS" if instrument == "MIRI" else "NRS_IFU")

    def table(name: str, cols: list) -> fits.BinTableHDU:
        hdu = fits.BinTableHDU.from_columns(keys + cols)
        hdu.header["EXTNAME"] = name
        return hdu

    hdus = [
        primary,
        table("CUBEPAR", [fits.Column(name="WAVEMIN", format="E", array=wmin),
                          fits.Column(name="WAVEMAX", format="E", array=wmax),
                          fits.Column(name="SPAXELSIZE", format="E", array=spsize),
                          fits.Column(name="SPECTRALSTEP", format="D", array=step)]),
        table("CUBEPAR_MSM", [fits.Column(name="ROISPATIAL", format="E", array=rois),
                              fits.Column(name="ROISPECTRAL", format="E", array=roiw),
                              fits.Column(name="POWER", format="I", array=np.full(n, 2)),
                              fits.Column(name="SOFTRAD", format="E", array=np.full(n, 0.01))]),
        table("CUBEPAR_EMSM", [fits.Column(name="ROISPATIAL", format="E", array=rois),
                               fits.Column(name="ROISPECTRAL", format="E", array=roiw),
                               fits.Column(name="SCALERAD", format="E", array=spsize)]),
    ]
    # Wavelength tables (for 'multi' cubes): one row per 0.2 % in wavelength.
    wave = np.exp(np.arange(math.log(wmin.min()), math.log(wmax.max()), 0.002))
    for prefix in (("MULTICHANNEL",) if instrument == "MIRI" else ("MULTICHAN_PRISM", "MULTICHAN_MED", "MULTICHAN_HIGH")):
        wcols = [fits.Column(name="WAVELENGTH", format="D", array=wave),
                 fits.Column(name="ROISPATIAL", format="E", array=np.full(wave.size, 0.2)),
                 fits.Column(name="ROISPECTRAL", format="E", array=wave / 2000.0)]
        for kind, more in (("MSM", [fits.Column(name="POWER", format="I", array=np.full(wave.size, 2)),
                                    fits.Column(name="SOFTRAD", format="E", array=np.full(wave.size, 0.01))]),
                           ("EMSM", [fits.Column(name="SCALERAD", format="E", array=np.full(wave.size, 0.2))])):
            hdu = fits.BinTableHDU.from_columns(wcols + more)
            hdu.header["EXTNAME"] = f"{prefix}_{kind}"
            hdus.append(hdu)
        hdu = fits.BinTableHDU.from_columns(wcols[:1])
        hdu.header["EXTNAME"] = f"{prefix}_DRIZ" if instrument == "MIRI" else f"{prefix}_DRIZZLE"
        hdus.append(hdu)
    path = Path(path)
    with atomic_write(path) as fh:
        fits.HDUList(hdus).writeto(fh)
    return path


def crds_cubepars(header: dict[str, object]) -> Path:
    """The CUBEPAR file the local CRDS cache selects for an exposure ``header``.

    Raises :class:`InputError` when crds is missing or not configured (no ``CRDS_PATH``).
    """
    try:
        import crds
    except ImportError:
        raise InputError("no CUBEPAR reference: pass cubepars=PATH (crds is not installed)") from None
    if not os.environ.get("CRDS_PATH"):
        raise InputError("no CUBEPAR reference: pass cubepars=PATH, or set CRDS_PATH to a local CRDS cache")
    try:
        refs = crds.getreferences(header, reftypes=["cubepar"], observatory="jwst")
    except SystemExit:  # crds exits (after logging why) when its cache cannot be used
        raise InputError(f"the CRDS cache at {os.environ['CRDS_PATH']} could not provide a CUBEPAR reference "
                         "(see the CRDS message above); pass cubepars=PATH") from None
    except Exception as exc:  # crds raises its own hierarchy (CrdsError, network errors)
        raise InputError(f"CRDS could not provide a CUBEPAR reference: {exc}") from None
    return Path(refs["cubepar"])
