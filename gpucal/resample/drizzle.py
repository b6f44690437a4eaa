# placeholder: replaced by the drizzle-core branch
"""Placeholder for ``gpucal.resample.Drizzle`` until the drizzle-core branch lands."""

from __future__ import annotations

from drizzle.resample import Drizzle as _ReferenceDrizzle


class Drizzle(_ReferenceDrizzle):
    """drizzle 2.2's Drizzle, accepting (and ignoring) ``backend=``."""

    def __init__(self, *args, backend: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = backend
