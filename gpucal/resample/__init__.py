"""Drizzle resampling: ``Drizzle`` (a drop-in for drizzle 2.2.0's), pixel maps and image mosaics."""

from .drizzle import Drizzle

__all__ = ["Drizzle"]
