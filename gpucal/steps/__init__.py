"""Detector1 group-level steps (and gain_scale on rate products) on either backend.

Each step takes a :class:`~gpucal.Ramp` and its reference (from :mod:`gpucal.refs`) and
returns a new Ramp; the input is never modified. Steps run in row blocks (with the halo
IPC and saturation growth need). The functions share their modules' names, so
``gpucal.steps.ipc`` is the function; reach a module with ``importlib.import_module``.
"""

from __future__ import annotations

from .clean_flicker_noise import clean_flicker_noise
from .dark_current import DarkCurrentResult, dark_current
from .dq_init import dq_init
from .frames import firstframe, lastframe
from .gain_scale import gain_scale
from .group_scale import group_scale
from .ipc import ipc
from .linearity import linearity
from .refpix import refpix
from .saturation import saturation
from .superbias import superbias

__all__ = [
    "clean_flicker_noise",
    "DarkCurrentResult",
    "dark_current",
    "dq_init",
    "firstframe",
    "gain_scale",
    "group_scale",
    "ipc",
    "lastframe",
    "linearity",
    "refpix",
    "saturation",
    "superbias",
]
