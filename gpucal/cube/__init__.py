"""IFU spectral cubes (MIRI MRS, NIRSpec IFU): point-cloud and drizzle sums."""

from .sums import drizzle_sums, pointcloud_sums

__all__ = ["drizzle_sums", "pointcloud_sums"]
