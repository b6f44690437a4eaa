"""Shape checks shared by the steps for reference arrays handed in directly."""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..ramp import Ramp


def check_image(ref: Any, reftype: str, ramp: Ramp) -> None:
    """Raise InputError unless ``ref`` is a CalibReference of ``reftype`` cut to ``ramp``'s (ny, nx)."""
    actual = getattr(ref, "reftype", None)
    if actual is None:
        raise InputError(f"expected a {reftype} reference (gpucal.refs.read_{reftype.lower()}), "
                         f"got {type(ref).__name__}")
    if actual != reftype:
        raise InputError(f"expected a {reftype} reference, got a {actual} reference")
    target = (ramp.ny, ramp.nx)
    for name in ("data", "dq"):
        arr = getattr(ref, name)
        if arr is not None and tuple(arr.shape[-2:]) != target:
            raise InputError(f"{reftype} reference {name} has shape {tuple(arr.shape)}, the exposure's "
                             f"(ny, nx) is {target}; read it with ramp= to cut a subarray")
