"""Drizzle resampling: the drop-in ``Drizzle``, device pixel maps and jwst-style image mosaics."""

from __future__ import annotations

from .pixmap import calc_pixmap

__all__ = ["Drizzle", "calc_pixmap", "resample_images"]


def __getattr__(name: str):
    # drizzle and the mosaic machinery load on first use.
    if name == "Drizzle":
        from .drizzle import Drizzle

        return Drizzle
    if name == "resample_images":
        from .mosaic import resample_images

        return resample_images
    raise AttributeError(f"module 'gpucal.resample' has no attribute {name!r}")
