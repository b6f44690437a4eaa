"""The cube product: arrays, its WCS (FITS keywords and a gwcs), and the ``_s3d.fits`` writer.

The file is written through stdatamodels' ``IFUCubeModel`` (SCI, ERR, DQ, WMAP,
WCS-TABLE and the ASDF extension holding the gwcs), so jwst, jdaviz and astropy read it.
It goes to a temporary name in the destination directory and is renamed into place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .grid import CubeGrid

log = logging.getLogger(__name__)


@dataclass
class IFUCube:
    """An IFU cube built by :func:`gpucal.build_cube`; arrays ``(naxis3, naxis2, naxis1)``."""

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    wmap: np.ndarray
    grid: CubeGrid
    instrument: str
    bands: list[tuple[str, str]]
    weighting: str
    coord_system: str
    inputs: list[Path]
    name: str
    rois: float = 0.0
    roiw: float = 0.0
    weight_power: float = 0.0
    path: Path | None = field(default=None)

    @property
    def wavelength(self) -> np.ndarray:
        """Wavelength of each plane [um] (float64)."""
        g = self.grid
        if not g.linear:
            return g.zcoord.copy()
        return g.crval3 + np.arange(self.data.shape[0]) * g.cdelt3

    def pc_matrix(self) -> np.ndarray:
        """FITS PC matrix of the spatial axes (rotation ``rot_angle``, east left)."""
        t = 0.0 if self.grid.rot_angle is None else self.grid.rot_angle * np.pi / 180.0
        return np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])

    def gwcs(self):
        """The cube's gwcs: 0-based (x, y, plane) -> (RA, Dec) [deg], wavelength [um]."""
        from astropy import coordinates as coord
        from astropy import units as u
        from astropy.modeling import models
        from gwcs import coordinate_frames as cf
        from gwcs import wcs

        g = self.grid
        spatial = ((models.Shift(-(g.crpix1 - 1)) & models.Shift(-(g.crpix2 - 1)))
                   | models.AffineTransformation2D(matrix=self.pc_matrix())
                   | (models.Scale(g.cdelt1 / 3600.0) & models.Scale(g.cdelt2 / 3600.0))
                   | models.Pix2Sky_TAN()
                   | models.RotateNative2Celestial(g.crval1, g.crval2, 180.0))
        if g.linear:
            spectral = models.Scale(g.cdelt3) | models.Shift(g.crval3)
        else:  # WAVE-TAB: the float32 table written in the file
            spectral = models.Tabular1D(lookup_table=self.wavelength.astype(np.float32))
        detector = cf.CoordinateFrame(name="detector", naxes=3, axes_order=(0, 1, 2),
                                      unit=(u.pix, u.pix, u.pix), axes_type=["SPATIAL", "SPATIAL", "SPECTRAL"],
                                      axes_names=("x", "y", "z"), axis_physical_types=None)
        sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
        spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
        world = cf.CompositeFrame([sky, spec], name="world")
        obj = wcs.WCS([(detector, spatial & spectral), (world, None)])
        nz, ny, nx = self.data.shape
        obj.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nz - 1))
        return obj

    def to_model(self):
        """The cube as a stdatamodels ``IFUCubeModel`` (meta copied from the first input)."""
        from stdatamodels.jwst import datamodels

        wave = np.asarray(self.wavelength, dtype=np.float32)
        table = np.array([(wave[None].T,)], dtype=[("wavelength", "<f4", (wave.size, 1))])
        model = datamodels.IFUCubeModel(data=self.data, dq=self.dq, err=self.err,
                                        weightmap=self.wmap, wavetable=table)
        with datamodels.IFUImageModel(str(self.inputs[0])) as ref:
            model.update(ref)
        g = self.grid
        meta = model.meta
        meta.filename = self.name
        if self.instrument == "MIRI":
            meta.instrument.channel = "".join(sorted({b[0] for b in self.bands}))
        info = meta.wcsinfo
        info.crval1, info.crval2 = g.crval1, g.crval2
        info.crpix1, info.crpix2, info.crpix3 = g.crpix1, g.crpix2, 1.0
        info.cdelt1, info.cdelt2 = g.cdelt1 / 3600.0, g.cdelt2 / 3600.0
        info.ctype1, info.ctype2 = "RA---TAN", "DEC--TAN"
        if g.linear:
            info.crval3, info.cdelt3, info.ctype3 = g.crval3, g.cdelt3, "WAVE"
        else:
            info.crval3, info.ctype3, info.ps3_0, info.ps3_1 = 1.0, "WAVE-TAB", "WCS-TABLE", "wavelength"
        info.cunit1, info.cunit2, info.cunit3 = "deg", "deg", "um"
        info.wcsaxes = 3
        pc = self.pc_matrix()
        info.pc1_1, info.pc1_2, info.pc1_3 = pc[0, 0], pc[0, 1], 0
        info.pc2_1, info.pc2_2, info.pc2_3 = pc[1, 0], pc[1, 1], 0
        info.pc3_1, info.pc3_2, info.pc3_3 = 0, 0, 1
        meta.photometry.pixelarea_arcsecsq = g.cdelt1 * g.cdelt2
        meta.photometry.pixelarea_steradians = g.cdelt1 * g.cdelt2 * 2.3504e-11
        ifu = meta.ifu
        ifu.flux_extension, ifu.error_extension, ifu.error_type, ifu.dq_extension = "SCI", "ERR", "ERR", "DQ"
        ifu.weighting = self.weighting
        ifu.weight_power = self.weight_power
        ifu.roi_spatial = float(self.rois)
        ifu.roi_wave = float(self.roiw)
        meta.wcs = self.gwcs()
        meta.cal_step.cube_build = "COMPLETE"
        return model

    def to_fits(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write the cube as ``_s3d.fits`` atomically; returns the path."""
        dest = Path(path)
        if dest.exists() and not overwrite:
            raise InputError(f"{dest} exists (pass overwrite=True to replace it)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.stem}.{secrets.token_hex(6)}.gpucal-tmp.fits")
        model = self.to_model()
        try:
            model.save(str(tmp))
            os.replace(tmp, dest)
        finally:
            model.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.path = dest
        log.debug("wrote %s", dest)
        return dest


def cube_suffix(instrument: str, bands: list[tuple[str, str]]) -> str:
    """jwst's name suffix: ``_ch1-short`` (MIRI) or ``_g140h-f100lp`` (NIRSpec)."""
    if instrument == "MIRI":
        channels = "-".join(dict.fromkeys(b[0] for b in bands))
        names = "".join(sorted({b[1] for b in bands}, reverse=True))  # short, medium, long
        return f"_ch{channels}-{names}"
    return "_" + "-".join(f"{g}-{f}" for g, f in bands)

