"""IFU spectral cubes (MIRI MRS, NIRSpec IFU) from calibrated ``_cal`` files, as jwst's cube_build."""

from __future__ import annotations

from .build import build_cube
from .cubepars import read_cubepars, write_synthetic_cubepars
from .s3d import IFUCube

__all__ = ["IFUCube", "build_cube", "read_cubepars", "write_synthetic_cubepars"]
