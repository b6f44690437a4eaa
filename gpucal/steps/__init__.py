"""Detector1 group-level steps: each ``step(ramp, ref..., backend=...) -> Ramp``."""

from .ipc import ipc


__all__ = ["ipc"]
