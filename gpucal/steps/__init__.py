"""Detector1 group-level steps: each ``step(ramp, ref..., backend=...) -> Ramp``."""

from .ipc import ipc
from .refpix import refpix


__all__ = ["ipc", "refpix"]
