"""IFU spectral cubes (MIRI MRS, NIRSpec IFU) as jwst's cube_build: the point-cloud and drizzle
sums (kernel pair) and cubes from calibrated ``_cal`` files."""

from __future__ import annotations

from .build import build_cube
from .cubepars import read_cubepars, write_synthetic_cubepars
from .s3d import IFUCube
from .sums import drizzle_sums, pointcloud_sums

__all__ = ["IFUCube", "build_cube", "drizzle_sums", "pointcloud_sums", "read_cubepars", "write_synthetic_cubepars"]
