"""New Ramps derived from an old one (the input is never modified)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ramp import Ramp


def like(ramp: Ramp, data: Any, groupdq: Any, pixeldq: Any, zeroframe: Any, **meta: Any) -> Ramp:
    """A new Ramp with the given arrays, ``ramp``'s timing and a copy of its meta updated by ``meta``."""
    new_meta = dict(ramp.meta)
    new_meta.update(meta)
    return Ramp(data, groupdq, pixeldq, group_time=ramp.group_time, frame_time=ramp.frame_time,
                nframes=ramp.nframes, groupgap=ramp.groupgap, drop_frames1=ramp.drop_frames1,
                zeroframe=zeroframe, meta=new_meta)


def with_data(ramp: Ramp, data: np.ndarray, *, zeroframe: Any = "keep", **meta: Any) -> Ramp:
    """``ramp`` with ``data`` (and optionally ``zeroframe``) replaced, DQ arrays copied, ``meta`` updated."""
    zf = ramp.zeroframe if isinstance(zeroframe, str) and zeroframe == "keep" else zeroframe
    return like(
        ramp,
        data,
        np.array(ramp.groupdq, dtype=np.uint8, order="C", copy=True),
        np.array(ramp.pixeldq, dtype=np.uint32, order="C", copy=True),
        None if zf is None else np.array(zf, dtype=np.float32, order="C", copy=True),
        **meta,
    )
