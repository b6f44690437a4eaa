"""New Ramps derived from an old one (the input is never modified).

The arrays stay where they are: a Ramp of CuPy arrays (the detector1 chain on the GPU)
gives a Ramp of CuPy arrays, copied on the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import array_module_of
from ..ramp import Ramp


def like(ramp: Ramp, data: Any, groupdq: Any, pixeldq: Any, zeroframe: Any, **meta: Any) -> Ramp:
    """A new Ramp with the given arrays, ``ramp``'s timing and a copy of its meta updated by ``meta``."""
    new_meta = dict(ramp.meta)
    new_meta.update(meta)
    return Ramp(data, groupdq, pixeldq, group_time=ramp.group_time, frame_time=ramp.frame_time,
                nframes=ramp.nframes, groupgap=ramp.groupgap, drop_frames1=ramp.drop_frames1,
                zeroframe=zeroframe, meta=new_meta)


def _copy(array: Any, dtype: Any) -> Any:
    if array is None:
        return None
    xp = array_module_of(array)
    return xp.array(array, dtype=dtype, order="C", copy=True)


def with_data(ramp: Ramp, data: Any, *, zeroframe: Any = "keep", **meta: Any) -> Ramp:
    """``ramp`` with ``data`` (and optionally ``zeroframe``) replaced, DQ arrays copied, ``meta`` updated."""
    zf = ramp.zeroframe if isinstance(zeroframe, str) and zeroframe == "keep" else zeroframe
    return like(ramp, data, _copy(ramp.groupdq, np.uint8), _copy(ramp.pixeldq, np.uint32), _copy(zf, np.float32),
                **meta)


def copy_ramp(ramp: Ramp, **meta: Any) -> Ramp:
    """A copy of ``ramp`` (native float32/uint8/uint32 arrays, on the device if ``ramp`` is there)."""
    return with_data(ramp, _copy(ramp.data, np.float32), **meta)
